"""The partition balancers against kafka-go's, Sarama's, librdkafka's and Java's choices."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiomq._internal.hashing import crc32_ieee, fnv1a_32
from aiomq.balancer import (
    Balancer,
    CRC32Balancer,
    Hash,
    LeastBytes,
    Murmur2Balancer,
    ReferenceHash,
    RoundRobin,
    as_balancer,
)
from aiomq.message import Message
from tests.support.vectors import load_vectors

VECTORS = load_vectors()
HASHERS: dict[str | None, Callable[[bytes], int] | None] = {None: None, "crc32_ieee": crc32_ieee}

ALL_BALANCERS: list[Callable[[], Balancer]] = [
    RoundRobin,
    lambda: RoundRobin(chunk_size=3),
    LeastBytes,
    Hash,
    lambda: Hash(consistent=True),
    lambda: Hash(hasher=crc32_ieee),
    ReferenceHash,
    CRC32Balancer,
    lambda: CRC32Balancer(consistent=True),
    Murmur2Balancer,
    lambda: Murmur2Balancer(consistent=True),
]
BALANCER_IDS = [repr(make()) for make in ALL_BALANCERS]


def key_message(key: bytes | None) -> Message:
    return Message(key=key)


def hash_cases(section: str) -> list[Any]:
    return [
        pytest.param(case, id=f"{case['key']!r}-n{case['n']}-{case.get('hasher', 'fnv1a')}")
        for case in VECTORS[section]["cases"]
    ]


def listed_cases(partitions: list[int], cases: list[dict[str, Any]]) -> list[Any]:
    params = []
    for case in cases:
        key = bytes.fromhex(case["key_hex"]) if "key_hex" in case else case["key"].encode()
        params.append(pytest.param(partitions, key, case["expect"], id=repr(key)[:30]))
    return params


def murmur2_cases() -> list[Any]:
    squares = VECTORS["murmur2_java"]["squares17"]
    range1000 = VECTORS["murmur2_java"]["range1000"]
    assert range1000["partitions"] == "0..999"
    return listed_cases(squares["partitions"], squares["cases"]) + listed_cases(
        list(range(1000)), range1000["cases"]
    )


partition_lists = st.lists(
    st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40, unique=True
).map(sorted)
keys = st.none() | st.binary(max_size=64)


# Reference vectors.


@pytest.mark.parametrize("case", hash_cases("hash_sarama_fnv1a"))
def test_hash_picks_the_same_partition_as_sarama(case: dict[str, Any]) -> None:
    balancer = Hash(hasher=HASHERS[case.get("hasher")])
    assert balancer.balance(key_message(case["key"].encode()), range(case["n"])) == case["expect"]


@pytest.mark.parametrize("case", hash_cases("reference_hash_sarama"))
def test_reference_hash_picks_the_same_partition_as_sarama_reference(
    case: dict[str, Any],
) -> None:
    balancer = ReferenceHash(hasher=HASHERS[case.get("hasher")])
    assert balancer.balance(key_message(case["key"].encode()), range(case["n"])) == case["expect"]


@pytest.mark.parametrize(
    ("partitions", "key", "expected"),
    listed_cases(VECTORS["crc32_librdkafka"]["partitions"], VECTORS["crc32_librdkafka"]["cases"]),
)
@pytest.mark.parametrize("consistent", [False, True])
def test_crc32_balancer_picks_the_same_partition_as_librdkafka(
    partitions: list[int], key: bytes, expected: int, consistent: bool
) -> None:
    balancer = CRC32Balancer(consistent=consistent)
    assert balancer.balance(key_message(key), partitions) == expected


@pytest.mark.parametrize(("partitions", "key", "expected"), murmur2_cases())
@pytest.mark.parametrize("consistent", [False, True])
def test_murmur2_balancer_picks_the_same_partition_as_the_java_client(
    partitions: list[int], key: bytes, expected: int, consistent: bool
) -> None:
    balancer = Murmur2Balancer(consistent=consistent)
    assert balancer.balance(key_message(key), partitions) == expected


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id="-".join(case["keys"])) for case in VECTORS["least_bytes"]["cases"]],
)
def test_least_bytes_picks_the_same_sequence_as_kafka_go(case: dict[str, Any]) -> None:
    balancer = LeastBytes()
    picks = [
        balancer.balance(key_message(key.encode()), tuple(partitions))
        for key, partitions in zip(case["keys"], case["partitions"], strict=True)
    ]
    assert picks == case["picks"]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7])
def test_round_robin_call_i_returns_partition_i_divided_by_chunk_size(chunk_size: int) -> None:
    partitions = (3, 5, 8, 13)
    balancer = RoundRobin(chunk_size=chunk_size)
    picks = [balancer.balance(Message(), partitions) for _ in range(100)]
    assert picks == [partitions[(i // chunk_size) % len(partitions)] for i in range(100)]


@pytest.mark.parametrize("chunk_size", [0, -1, -100])
def test_round_robin_treats_a_chunk_size_below_one_as_one(chunk_size: int) -> None:
    balancer = RoundRobin(chunk_size=chunk_size)
    assert balancer.chunk_size == 1
    assert [balancer.balance(Message(), (0, 1, 2)) for _ in range(6)] == [0, 1, 2, 0, 1, 2]


# Properties.


@pytest.mark.parametrize("make", ALL_BALANCERS, ids=BALANCER_IDS)
@given(data=st.data())
def test_a_balancer_always_returns_one_of_the_offered_partitions(
    make: Callable[[], Balancer], data: st.DataObject
) -> None:
    balancer = make()
    for _ in range(data.draw(st.integers(min_value=1, max_value=20), label="calls")):
        partitions = data.draw(partition_lists, label="partitions")
        key = data.draw(keys, label="key")
        assert balancer.balance(key_message(key), partitions) in partitions


@given(
    chunk_size=st.integers(min_value=1, max_value=10),
    partitions=partition_lists,
    rounds=st.integers(min_value=1, max_value=5),
)
def test_round_robin_sends_each_partition_an_equal_share_in_runs_of_chunk_size(
    chunk_size: int, partitions: list[int], rounds: int
) -> None:
    balancer = RoundRobin(chunk_size=chunk_size)
    picks = [
        balancer.balance(Message(), partitions)
        for _ in range(rounds * chunk_size * len(partitions))
    ]
    assert Counter(picks) == dict.fromkeys(partitions, rounds * chunk_size)
    runs = [picks[i : i + chunk_size] for i in range(0, len(picks), chunk_size)]
    assert all(len(set(run)) == 1 for run in runs)


@given(
    partitions=partition_lists,
    messages=st.lists(
        st.tuples(st.none() | st.binary(max_size=50), st.none() | st.binary(max_size=50)),
        max_size=200,
    ),
)
def test_least_bytes_keeps_partitions_within_one_message_of_each_other(
    partitions: list[int], messages: list[tuple[bytes | None, bytes | None]]
) -> None:
    balancer = LeastBytes()
    sent = dict.fromkeys(partitions, 0)
    largest = 0
    for key, value in messages:
        size = len(key or b"") + len(value or b"")
        largest = max(largest, size)
        sent[balancer.balance(Message(key=key, value=value), tuple(partitions))] += size
    assert max(sent.values()) - min(sent.values()) <= largest


@given(partitions=partition_lists, key=st.binary(max_size=64))
def test_a_hash_balancer_sends_the_same_key_to_the_same_partition(
    partitions: list[int], key: bytes
) -> None:
    for make in (Hash, ReferenceHash, CRC32Balancer, Murmur2Balancer):
        first, second = make(), make()
        if key or make is not CRC32Balancer:
            assert first.balance(key_message(key), partitions) == second.balance(
                key_message(key), partitions
            )


@given(partitions=partition_lists, key=st.binary(max_size=64))
def test_hash_indexes_the_offered_partitions_with_saramas_formula(
    partitions: list[int], key: bytes
) -> None:
    signed = int.from_bytes(fnv1a_32(key).to_bytes(4, "big"), "big", signed=True)
    n = len(partitions)
    quotient = abs(signed) // n * (1 if signed >= 0 else -1)  # Go's / truncates toward zero
    go_remainder = signed - quotient * n
    assert Hash().balance(key_message(key), partitions) == partitions[abs(go_remainder)]
    assert (
        ReferenceHash().balance(key_message(key), partitions)
        == partitions[(signed & 0x7FFFFFFF) % n]
    )


# Keys that are None or empty.


@pytest.mark.parametrize("make", [Hash, ReferenceHash])
def test_a_none_key_goes_round_robin_with_hash_and_reference_hash(
    make: Callable[[], Balancer],
) -> None:
    balancer = make()
    picks = [balancer.balance(key_message(None), (2, 4, 6)) for _ in range(7)]
    assert picks == [2, 4, 6, 2, 4, 6, 2]


def test_a_none_key_hashes_like_an_empty_key_with_consistent_hash() -> None:
    partitions = range(16)
    expected = Hash().balance(key_message(b""), partitions)
    assert expected == 11  # the vectors' empty key with 16 partitions
    balancer = Hash(consistent=True)
    assert {balancer.balance(key_message(None), partitions) for _ in range(20)} == {expected}


@pytest.mark.parametrize("make", [Hash, ReferenceHash, Murmur2Balancer])
def test_an_empty_key_is_hashed_not_spread(make: Callable[[], Balancer]) -> None:
    balancer = make()
    picks = {balancer.balance(key_message(b""), range(16)) for _ in range(50)}
    assert len(picks) == 1


@pytest.mark.parametrize("key", [None, b""])
def test_a_none_or_empty_key_goes_to_a_random_partition_with_crc32(key: bytes | None) -> None:
    balancer = CRC32Balancer()
    picks = Counter(balancer.balance(key_message(key), (1, 3, 5, 7)) for _ in range(400))
    assert set(picks) == {1, 3, 5, 7}


@pytest.mark.parametrize("key", [None, b""])
def test_a_none_or_empty_key_goes_to_the_first_partition_with_consistent_crc32(
    key: bytes | None,
) -> None:
    partitions = VECTORS["crc32_librdkafka"]["partitions"][3:]
    balancer = CRC32Balancer(consistent=True)
    assert {balancer.balance(key_message(key), partitions) for _ in range(20)} == {9}


def test_a_none_key_goes_to_a_random_partition_with_murmur2() -> None:
    balancer = Murmur2Balancer()
    picks = Counter(balancer.balance(key_message(None), (1, 3, 5, 7)) for _ in range(400))
    assert set(picks) == {1, 3, 5, 7}


def test_a_none_key_hashes_like_an_empty_key_with_consistent_murmur2() -> None:
    squares = VECTORS["murmur2_java"]["squares17"]
    (empty,) = [case for case in squares["cases"] if case["key"] == ""]
    balancer = Murmur2Balancer(consistent=True)
    picks = {balancer.balance(key_message(None), squares["partitions"]) for _ in range(20)}
    assert picks == {empty["expect"]}


# State.


def test_least_bytes_counts_the_key_and_the_value() -> None:
    balancer = LeastBytes()
    partitions = (0, 1)
    assert balancer.balance(Message(key=b"k", value=b"1234"), partitions) == 0
    assert balancer.balance(Message(key=None, value=b"123"), partitions) == 1
    assert balancer.balance(Message(key=b"kk", value=None), partitions) == 1
    assert balancer.balance(Message(), partitions) == 0  # 5 bytes each: tie to the first


def test_least_bytes_starts_again_when_other_partitions_of_the_same_count_are_offered() -> None:
    balancer = LeastBytes()
    assert balancer.balance(Message(value=b"abc"), (0, 1)) == 0
    assert balancer.balance(Message(value=b"abc"), (2, 3)) == 2
    assert balancer.balance(Message(value=b"abc"), (2, 3)) == 3


def test_least_bytes_accepts_a_list_as_well_as_a_tuple() -> None:
    balancer = LeastBytes()
    picks = [balancer.balance(Message(value=b"x"), [4, 5, 6]) for _ in range(4)]
    assert picks == [4, 5, 6, 4]


def test_round_robin_carries_on_when_the_partitions_change() -> None:
    balancer = RoundRobin()
    assert [balancer.balance(Message(), (0, 1, 2)) for _ in range(2)] == [0, 1]
    assert balancer.balance(Message(), (0, 1, 2, 3)) == 2


@pytest.mark.parametrize("make", ALL_BALANCERS, ids=BALANCER_IDS)
@pytest.mark.parametrize("key", [None, b"", b"key"])
def test_a_balancer_offered_no_partitions_raises_value_error(
    make: Callable[[], Balancer], key: bytes | None
) -> None:
    with pytest.raises(ValueError, match="no partitions offered"):
        make().balance(key_message(key), ())


# Callables and bad balancers.


def test_a_function_is_accepted_as_a_balancer() -> None:
    def last(message: Message, partitions: Sequence[int]) -> int:
        return partitions[-1]

    balancer = as_balancer(last)
    assert balancer.balance(key_message(b"k"), (1, 2, 3)) == 3


def test_a_lambda_is_accepted_as_a_balancer() -> None:
    balancer = as_balancer(lambda message, partitions: partitions[len(message.key or b"")])
    assert balancer.balance(key_message(b"ab"), (7, 8, 9)) == 9


def test_a_balancer_instance_is_used_as_it_is() -> None:
    balancer = RoundRobin()
    assert as_balancer(balancer) is balancer


def test_a_user_class_with_a_balance_method_is_used_as_it_is() -> None:
    class First:
        def balance(self, message: Message, partitions: Sequence[int]) -> int:
            return partitions[0]

    balancer = First()
    assert as_balancer(balancer) is balancer


def test_a_balancer_class_instead_of_an_instance_raises_type_error() -> None:
    balancer_class: Any = RoundRobin
    with pytest.raises(TypeError, match=r"pass RoundRobin\(\) instead"):
        as_balancer(balancer_class)


@pytest.mark.parametrize("bad", [42, "hash", None, object()])
def test_something_that_is_neither_a_balancer_nor_callable_raises_type_error(
    bad: Any,
) -> None:
    with pytest.raises(TypeError, match=r"balance\(message, partitions\) method"):
        as_balancer(bad)


def test_balancers_describe_their_settings_in_repr() -> None:
    assert repr(RoundRobin(chunk_size=4)) == "RoundRobin(chunk_size=4)"
    assert repr(Hash(consistent=True)) == "Hash(hasher=fnv1a_32, consistent=True)"
    assert repr(ReferenceHash(hasher=crc32_ieee)) == "ReferenceHash(hasher=crc32_ieee)"
    assert repr(CRC32Balancer()) == "CRC32Balancer(consistent=False)"
    assert repr(Murmur2Balancer(consistent=True)) == "Murmur2Balancer(consistent=True)"
    assert repr(LeastBytes()) == "LeastBytes()"
