"""`balance_all`, the Writer's way of balancing a whole call, agrees with `balance`.

The Writer chooses the partitions of a call's messages in one pass, and aiomq's hash
balancers answer keys they have seen before from a memo. These tests hold that shortcut
to the rule it must keep: the partitions are exactly those that calling `balance` on
each message in turn would give.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiomq.balancer import (
    Balancer,
    CRC32Balancer,
    Hash,
    LeastBytes,
    Murmur2Balancer,
    ReferenceHash,
    RoundRobin,
    always_offers_a_member,
    as_balancer,
    balance_all,
)
from aiomq.message import Message

# Balancers whose answer depends only on the key and the partitions, None keys included.
DETERMINISTIC: list[Callable[[], Balancer]] = [
    Hash,
    lambda: Hash(consistent=True),
    lambda: Hash(hasher=zlib.crc32),
    ReferenceHash,
    CRC32Balancer,
    lambda: CRC32Balancer(consistent=True),
    Murmur2Balancer,
    lambda: Murmur2Balancer(consistent=True),
]
# Balancers with state: two fresh ones given the same calls answer the same.
STATEFUL: list[Callable[[], Balancer]] = [
    RoundRobin,
    lambda: RoundRobin(chunk_size=3),
    LeastBytes,
    Hash,  # None keys go round robin
    ReferenceHash,
]
FOUR = (0, 1, 2, 3)
SIX = (0, 1, 2, 3, 4, 5)


def messages_for(keys: Sequence[bytes | None]) -> list[Message]:
    return [Message(key=key, value=b"v" * (i % 7)) for i, key in enumerate(keys)]


def one_by_one(
    balancer: Balancer, messages: Sequence[Message], partitions: Sequence[int]
) -> list[int]:
    return [balancer.balance(message, partitions) for message in messages]


keys_strategy = st.lists(
    st.one_of(st.binary(min_size=1, max_size=12), st.sampled_from([b"a", b"b", b"hot"])),
    max_size=200,
)


@pytest.mark.parametrize("make", DETERMINISTIC, ids=[repr(m()) for m in DETERMINISTIC])
@given(keys=keys_strategy)
def test_hash_balancers_choose_per_call_as_they_do_per_message(
    make: Callable[[], Balancer], keys: list[bytes]
) -> None:
    balancer, reference = make(), make()
    messages = messages_for(keys)
    expected = one_by_one(reference, messages, FOUR)

    assert balance_all(balancer, messages, keys, FOUR) == expected
    # Again, now mostly from the memo.
    assert balance_all(balancer, messages, keys, FOUR) == expected


@pytest.mark.parametrize("make", DETERMINISTIC, ids=[repr(m()) for m in DETERMINISTIC])
def test_a_change_of_partitions_is_not_answered_from_the_old_memo(
    make: Callable[[], Balancer],
) -> None:
    keys: list[bytes | None] = [b"key-%d" % i for i in range(300)]
    messages = messages_for(keys)
    balancer = make()
    balance_all(balancer, messages, keys, FOUR)

    assert balance_all(balancer, messages, keys, SIX) == one_by_one(make(), messages, SIX)


@pytest.mark.parametrize("make", STATEFUL, ids=[repr(m()) for m in STATEFUL])
def test_stateful_balancers_are_asked_once_per_message_in_order(
    make: Callable[[], Balancer],
) -> None:
    keys: list[bytes | None] = [None if i % 3 == 0 else b"k%d" % (i % 5) for i in range(100)]
    messages = messages_for(keys)
    balancer, reference = make(), make()

    for _ in range(3):
        assert balance_all(balancer, messages, keys, FOUR) == one_by_one(reference, messages, FOUR)


def test_a_function_balancer_is_called_for_every_message_in_order() -> None:
    seen: list[bytes | None] = []

    def last_partition(message: Message, partitions: Sequence[int]) -> int:
        seen.append(message.key)
        return partitions[-1]

    keys: list[bytes | None] = [b"a", b"a", None, b"b"]
    chosen = balance_all(as_balancer(last_partition), messages_for(keys), keys, FOUR)

    assert chosen == [3, 3, 3, 3]
    assert seen == keys


def test_a_hasher_of_the_callers_own_is_asked_every_time() -> None:
    calls: list[bytes] = []

    def counting_crc32(data: bytes) -> int:
        calls.append(data)
        return zlib.crc32(data)

    keys: list[bytes | None] = [b"same"] * 10
    for make in (lambda: Hash(hasher=counting_crc32), lambda: ReferenceHash(counting_crc32)):
        calls.clear()
        balance_all(make(), messages_for(keys), keys, FOUR)
        assert calls == keys


@pytest.mark.parametrize("make", [CRC32Balancer, Murmur2Balancer], ids=["crc32", "murmur2"])
def test_keys_that_go_to_a_random_partition_still_spread_when_balanced_per_call(
    make: Callable[[], Balancer],
) -> None:
    # CRC32Balancer sends None and empty keys to random partitions, Murmur2Balancer None
    # keys: remembering the first answer would pin every later one to it.
    keys: list[bytes | None] = [None, b""] * 200 if make is CRC32Balancer else [None] * 400
    chosen = balance_all(make(), messages_for(keys), keys, FOUR)

    assert set(chosen) == set(FOUR)


def test_the_memo_forgets_everything_past_its_limit_and_keeps_answering_right() -> None:
    from aiomq import balancer as module

    keys: list[bytes | None] = [b"key-%d" % i for i in range(module._MEMO_LIMIT + 500)]
    messages = messages_for(keys)
    balancer = Murmur2Balancer()

    assert balance_all(balancer, messages, keys, FOUR) == one_by_one(
        Murmur2Balancer(), messages, FOUR
    )
    memo = balancer._memo
    assert memo is not None
    remembered = len(memo.for_partitions(FOUR))
    assert remembered == 0  # it started afresh
    assert balance_all(balancer, messages[:10], keys[:10], FOUR) == one_by_one(
        Murmur2Balancer(), messages[:10], FOUR
    )


MEMOISING: list[type[Balancer]] = [Hash, ReferenceHash, CRC32Balancer, Murmur2Balancer]


def changing_subclass(base: type[Balancer]) -> Balancer:
    """A subclass of `base` whose `balance` answers differently once `moved` is set."""

    class Changing(base):  # type: ignore[misc, valid-type]
        moved = False

        def balance(self, message: Message, partitions: Sequence[int], /) -> int:
            return partitions[-1] if self.moved else partitions[0]

    return Changing()


@pytest.mark.parametrize("base", MEMOISING, ids=[b.__name__ for b in MEMOISING])
def test_a_subclass_overriding_balance_is_asked_every_time_not_answered_from_a_memo(
    base: type[Balancer],
) -> None:
    keys: list[bytes | None] = [b"a", b"b", b"a"]
    messages = messages_for(keys)
    balancer = changing_subclass(base)

    assert balance_all(balancer, messages, keys, FOUR) == [0, 0, 0]
    balancer.moved = True  # type: ignore[attr-defined]
    assert balance_all(balancer, messages, keys, FOUR) == [3, 3, 3]


@pytest.mark.parametrize("base", MEMOISING, ids=[b.__name__ for b in MEMOISING])
def test_a_subclass_overriding_balance_has_its_answers_checked_by_the_writer(
    base: type[Balancer],
) -> None:
    assert always_offers_a_member(base())
    assert not always_offers_a_member(changing_subclass(base))


# Keyless messages stick to one partition per batch (KIP-480).


def runs(partitions: list[int]) -> list[tuple[int, int]]:
    """The partitions as (partition, length) runs."""
    found: list[tuple[int, int]] = []
    for partition in partitions:
        if found and found[-1][0] == partition:
            found[-1] = (partition, found[-1][1] + 1)
        else:
            found.append((partition, 1))
    return found


def test_keyless_messages_of_a_call_stick_to_a_partition_a_batch_at_a_time() -> None:
    balancer = Murmur2Balancer()
    offered = (0, 1, 2, 3)
    keyless = [Message(value=b"v")] * 2500
    chosen = balance_all(balancer, keyless, [None] * 2500, offered, sticky_run=1000)
    assert [length for _, length in runs(chosen)] == [1000, 1000, 500]
    assert all(a != b for (a, _), (b, _) in zip(runs(chosen), runs(chosen)[1:], strict=False))
    # The next call goes on with the run under way.
    more = balance_all(balancer, keyless[:600], [None] * 600, offered, sticky_run=1000)
    assert runs(more) == [(chosen[-1], 500), (runs(more)[1][0], 100)]
    assert runs(more)[1][0] != chosen[-1]


def test_keyed_messages_beside_keyless_ones_keep_their_hash_partition() -> None:
    offered = (0, 1, 2, 3)
    keys = [b"a", None, b"b", None, b"c"] * 200
    messages = [Message(key=k, value=b"v") for k in keys]
    sticky = balance_all(Murmur2Balancer(), messages, keys, offered, sticky_run=1000)
    plain = Murmur2Balancer()
    for message, partition in zip(messages, sticky, strict=True):
        if message.key is not None:
            assert partition == plain.balance(message, offered)
    assert len({p for k, p in zip(keys, sticky, strict=True) if k is None}) == 1


def test_keyless_runs_spread_over_every_partition_in_time() -> None:
    balancer = Murmur2Balancer()
    offered = (0, 1, 2, 3)
    seen = balance_all(balancer, [Message()] * 40_000, [None] * 40_000, offered, sticky_run=100)
    assert set(seen) == set(offered)
    counts = [seen.count(p) for p in offered]
    assert min(counts) > 0.15 * len(seen)


def test_without_a_run_length_keyless_messages_go_to_random_partitions() -> None:
    chosen = balance_all(Murmur2Balancer(), [Message()] * 400, [None] * 400, (0, 1, 2, 3))
    assert len(runs(chosen)) > 100
