"""Balancers: how a `Writer` picks the partition for each message.

A balancer receives the message and the ids of the partitions it may choose from, and
returns one of those ids. Any object with a `balance(message, partitions)` method will
do, and so will a plain function with that signature.

The hash balancers reproduce the partition choices of other Kafka clients, so that
records with the same key land on the same partition whichever client wrote them:

- `Hash`: Sarama's default partitioner, kafka-go's `Hash` and librdkafka's `fnv1a_random`
  and `fnv1a` partitioners (FNV-1a).
- `ReferenceHash`: Sarama's reference hash partitioner and kafka-go's `ReferenceHash`.
- `CRC32Balancer`: librdkafka's `consistent_random` and `consistent` partitioners, the
  defaults of confluent-kafka-python and confluent-kafka-go.
- `Murmur2Balancer`: the Java client's default partitioner for keyed records, and
  librdkafka's `murmur2_random` and `murmur2` partitioners.

Hashing only agrees across clients when every client sees the same list: offer the
topic's partitions in ascending order, including those that are briefly unavailable.

Balancers keep a little state (a round robin counter, byte counts). `balance` never
awaits, so one balancer is safe to share between the tasks of an event loop; it is not
synchronised for use from several threads at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import partial
from itertools import repeat
from typing import Protocol, TypeAlias, cast

from ._internal.hashing import crc32_ieee, fnv1a_32, fnv1a_32_cached, murmur2, murmur2_cached
from .message import Message

__all__ = [
    "Balancer",
    "BalancerLike",
    "CRC32Balancer",
    "Hash",
    "LeastBytes",
    "Murmur2Balancer",
    "ReferenceHash",
    "RoundRobin",
]

_NO_PARTITIONS = "no partitions offered: a balancer needs at least one partition to choose from"


class Balancer(Protocol):
    """The interface of a partition balancer (kafka-go's `Balancer`)."""

    def balance(self, message: Message, partitions: Sequence[int], /) -> int:
        """Return the partition to write `message` to.

        Use one balancer per topic: stateful balancers notice a change of partitions by
        comparing what they are offered from one call to the next.

        Args:
            message: The message being written.
            partitions: The ids of the partitions to choose from, in ascending order.
                Never empty when a writer calls.

        Returns:
            One of the ids in `partitions`.

        Raises:
            ValueError: `partitions` is empty.
        """
        ...


BalancerLike: TypeAlias = Balancer | Callable[[Message, Sequence[int]], int]
"""What a writer accepts as its balancer: a `Balancer`, or a function with the same
signature as `Balancer.balance`."""


class _FunctionBalancer:
    """Adapts a plain function to the `Balancer` interface (kafka-go's `BalancerFunc`)."""

    __slots__ = ("balance",)

    def __init__(self, func: Callable[[Message, Sequence[int]], int]) -> None:
        # Stored as the attribute itself, so calling `balance` costs no extra frame.
        self.balance = func

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.balance!r})"


def as_balancer(obj: BalancerLike) -> Balancer:
    """Return `obj` as a `Balancer`, wrapping a plain function. Internal to aiomq.

    Args:
        obj: A balancer instance, or a function taking `(message, partitions)`.

    Returns:
        `obj` itself when it has a `balance` method, otherwise a wrapper around it.

    Raises:
        TypeError: `obj` is a class rather than an instance, or is neither a balancer
            nor callable.
    """
    if isinstance(obj, type):
        name = obj.__qualname__
        raise TypeError(
            f"balancer must be an instance, not the class {name}: pass {name}() instead"
        )
    if callable(getattr(obj, "balance", None)):
        return cast("Balancer", obj)
    if callable(obj):
        return _FunctionBalancer(obj)
    raise TypeError(
        "balancer must have a balance(message, partitions) method or be a function "
        f"taking (message, partitions), not {type(obj).__name__}"
    )


def _fnv1a_32(data: bytes) -> int:
    """FNV-1a, remembering the hashes of recent `bytes` keys."""
    return fnv1a_32_cached(data) if data.__class__ is bytes else fnv1a_32(data)


_fnv1a_32.__qualname__ = "fnv1a_32"


def _name(func: Callable[..., object]) -> str:
    return str(getattr(func, "__qualname__", None) or repr(func))


_MEMO_LIMIT = 16_384
"""The most keys a hash balancer remembers the partition of, before starting afresh."""


class _KeyMemo:
    """The partitions recently chosen for `bytes` keys, valid for one list of partitions.

    A hash balancer's answer for a key depends only on the key and the offered
    partitions, so a writer can look most keys up instead of hashing them again.
    """

    __slots__ = ("chosen", "partitions")

    def __init__(self) -> None:
        self.partitions: Sequence[int] = ()
        self.chosen: dict[bytes, int] = {}

    def for_partitions(self, partitions: Sequence[int]) -> dict[bytes, int]:
        if partitions != self.partitions or len(self.chosen) > _MEMO_LIMIT:
            self.partitions = partitions
            self.chosen = {}
        return self.chosen


class _Sticky:
    """The partition keyless messages stick to, `run` of them at a time (KIP-480)."""

    __slots__ = ("_choice", "_left", "_offered", "_partition")

    def __init__(self, choice: Callable[[Sequence[int]], int]) -> None:
        self._choice = choice
        self._partition = -1
        self._left = 0
        self._offered: tuple[int, ...] = ()

    def next(self, partitions: tuple[int, ...], run: int) -> int:
        """The partition for the next keyless message."""
        if self._left <= 0 or partitions is not self._offered:
            if partitions is not self._offered and self._partition not in partitions:
                self._partition = -1
            previous = self._partition
            choice = self._choice(partitions)
            if choice == previous and len(partitions) > 1:
                choice = self._choice([p for p in partitions if p != previous])
            self._partition = choice
            self._offered = partitions
            self._left = run
        self._left -= 1
        return self._partition

    def take(self, partitions: tuple[int, ...], count: int, run: int) -> list[int]:
        """The partitions of the next `count` keyless messages, in runs."""
        chosen: list[int] = []
        while count > 0:
            first = self.next(partitions, run)
            length = min(count, self._left + 1)
            self._left -= length - 1
            chosen += [first] * length
            count -= length
        return chosen


def sticky_keyless(balancer: Balancer, run: int) -> Callable[[tuple[int, ...]], int] | None:
    """Internal to aiomq: the partition chooser for keyless messages of a balancer that
    sticks them to a partition per batch (`Murmur2Balancer`, `run` at a time), else None."""
    sticky: _Sticky | None = getattr(balancer, "_sticky", None)
    if sticky is None or type(balancer).balance is not Murmur2Balancer.balance:
        return None
    return partial(sticky.next, run=run)


def balance_all(
    balancer: Balancer,
    messages: Sequence[Message],
    keys: Sequence[bytes | None],
    partitions: tuple[int, ...],
    *,
    sticky_run: int = 0,
) -> list[int]:
    """Choose the partition of every message, as calling `balancer.balance` on each would.

    Internal to aiomq. `keys` are the messages' keys, each `bytes` or `None`. aiomq's
    hash balancers answer keys they have seen from a memo and are asked about the rest;
    every other balancer, a subclass overriding `balance` included, is called once per
    message, in order. With `sticky_run`, `Murmur2Balancer` sends keyless messages to one
    partition, `sticky_run` of them at a time (a Writer's `batch_size`).
    """
    memo: _KeyMemo | None = getattr(balancer, "_memo", None)
    balance = balancer.balance
    # A subclass's own `balance` may answer differently for the same key: never memoise it.
    if memo is None or type(balancer).balance not in _KEYED_BALANCE:
        return list(map(balance, messages, repeat(partitions)))
    remembered = memo.for_partitions(partitions)
    look_up: Callable[[bytes | None], int | None] = remembered.get  # type: ignore[assignment]
    sticky: _Sticky | None = getattr(balancer, "_sticky", None) if sticky_run > 0 else None
    if sticky is not None and keys.count(None) == len(keys):
        return sticky.take(partitions, len(keys), sticky_run)  # a keyless call
    chosen = list(map(look_up, keys))
    if None in chosen:
        for index, partition in enumerate(chosen):
            if partition is None:
                key = keys[index]
                if key is None and sticky is not None:
                    chosen[index] = sticky.next(partitions, sticky_run)
                    continue
                partition = chosen[index] = balance(messages[index], partitions)
                if key:  # None and empty keys may be spread at random: never remembered
                    remembered[key] = partition
    return chosen  # type: ignore[return-value]  # no None is left


class RoundRobin:
    """Sends messages to the offered partitions in turn, `chunk_size` at a time.

    Compatible with kafka-go's `RoundRobin` (including its `ChunkSize`): call number i,
    counting from 0, returns `partitions[(i // chunk_size) % len(partitions)]`. This is
    kafka-go's default balancer. Sending a few consecutive messages to one partition
    lets a writer fill larger batches.

    Safe to share between the tasks of one event loop.

    Args:
        chunk_size: How many consecutive messages go to one partition before moving on
            to the next. Values below 1 act as 1. Default: 1.
    """

    __slots__ = ("_chunk_size", "_counter")

    def __init__(self, chunk_size: int = 1) -> None:
        self._chunk_size = max(chunk_size, 1)
        self._counter = 0

    @property
    def chunk_size(self) -> int:
        """How many consecutive messages go to one partition. Default: 1."""
        return self._chunk_size

    def balance(self, message: Message, partitions: Sequence[int], /) -> int:
        """Return the next partition in turn. See `Balancer.balance`."""
        if not partitions:
            raise ValueError(_NO_PARTITIONS)
        counter = self._counter
        self._counter = counter + 1
        return partitions[(counter // self._chunk_size) % len(partitions)]

    def __repr__(self) -> str:
        return f"RoundRobin(chunk_size={self._chunk_size})"


class LeastBytes:
    """Sends each message to the partition that this balancer has given the fewest bytes.

    Compatible with kafka-go's `LeastBytes`. A message counts as the length of its key
    plus the length of its value; ties go to the first offered partition. The counts
    start again from zero whenever the offered partitions change. Nothing is shared
    between writers, so the balance holds for each writer on its own.

    `balance` allocates nothing when `partitions` is a tuple. Safe to share between the
    tasks of one event loop.
    """

    __slots__ = ("_bytes", "_partitions")

    def __init__(self) -> None:
        self._partitions: tuple[int, ...] = ()
        self._bytes: list[int] = []

    def balance(self, message: Message, partitions: Sequence[int], /) -> int:
        """Return the partition with the fewest bytes so far. See `Balancer.balance`."""
        if not partitions:
            raise ValueError(_NO_PARTITIONS)
        offered = self._partitions
        if partitions is not offered:
            given = tuple(partitions)  # the same object when partitions is a tuple
            if given != offered:
                self._bytes = [0] * len(given)
            # Keep the caller's tuple, so the identity check above succeeds next time.
            self._partitions = offered = given
        counts = self._bytes
        index = counts.index(min(counts))
        key = message.key
        value = message.value
        counts[index] += (0 if key is None else len(key)) + (0 if value is None else len(value))
        return offered[index]

    def __repr__(self) -> str:
        return "LeastBytes()"


class Hash:
    """Picks the partition from a hash of the message key, as Sarama's default does.

    Compatible with Sarama's `NewHashPartitioner`, kafka-go's `Hash` and, with the
    default hasher, librdkafka's `fnv1a_random` partitioner, or its `fnv1a` partitioner
    when `consistent` is true: the 32-bit hash of the key is read as a signed integer,
    its remainder by the number of partitions is taken toward zero (Go's `%`), and the
    absolute value of that indexes the offered partitions. The same key always lands on
    the same partition while the partition count stays the same.

    A `None` key goes round robin across the offered partitions, as in kafka-go (Sarama
    and librdkafka's `fnv1a_random` pick at random). An empty key is hashed like any
    other.

    Safe to share between the tasks of one event loop.

    Args:
        hasher: A function from the key's bytes to an unsigned 32-bit hash, such as
            `zlib.crc32`. Default: None, meaning FNV-1a, as in Sarama and kafka-go.
        consistent: Hash a `None` key as if it were empty (librdkafka's `fnv1a`), sending
            all of them to one partition, instead of spreading them round robin.
            Default: False.
    """

    __slots__ = ("_consistent", "_hasher", "_memo", "_round_robin")

    def __init__(
        self, hasher: Callable[[bytes], int] | None = None, consistent: bool = False
    ) -> None:
        self._hasher: Callable[[bytes], int] = _fnv1a_32 if hasher is None else hasher
        self._consistent = consistent
        self._round_robin = RoundRobin()
        # A hasher of the caller's own might not answer the same way twice: ask it always.
        self._memo = _KeyMemo() if hasher is None else None

    def balance(self, message: Message, partitions: Sequence[int], /) -> int:
        """Return the partition for the message's key. See `Balancer.balance`."""
        key = message.key
        if key is None:
            if not self._consistent:
                return self._round_robin.balance(message, partitions)
            key = b""
        if not partitions:
            raise ValueError(_NO_PARTITIONS)
        h = self._hasher(key) & 0xFFFFFFFF
        if h & 0x80000000:
            # Negative as an int32; |h rem n| is |h| mod n, so take |h| first.
            h = 0x100000000 - h
        return partitions[h % len(partitions)]

    def __repr__(self) -> str:
        return f"Hash(hasher={_name(self._hasher)}, consistent={self._consistent})"


class ReferenceHash:
    """Picks the partition from a hash of the message key, as Sarama's reference does.

    Compatible with Sarama's `NewReferenceHashPartitioner` and kafka-go's
    `ReferenceHash`: the 32-bit hash of the key, with its sign bit cleared, modulo the
    number of partitions indexes the offered partitions. This is how the Java client
    turns a hash into a partition; with the default FNV-1a it still differs from the
    Java client, which hashes with murmur2 (use `Murmur2Balancer` for that).

    A `None` key goes round robin across the offered partitions (Sarama and kafka-go pick
    at random). An empty key is hashed like any other.

    Safe to share between the tasks of one event loop.

    Args:
        hasher: A function from the key's bytes to an unsigned 32-bit hash, such as
            `zlib.crc32`. Default: None, meaning FNV-1a, as in Sarama and kafka-go.
    """

    __slots__ = ("_hasher", "_memo", "_round_robin")

    def __init__(self, hasher: Callable[[bytes], int] | None = None) -> None:
        self._hasher: Callable[[bytes], int] = _fnv1a_32 if hasher is None else hasher
        self._round_robin = RoundRobin()
        # A hasher of the caller's own might not answer the same way twice: ask it always.
        self._memo = _KeyMemo() if hasher is None else None

    def balance(self, message: Message, partitions: Sequence[int], /) -> int:
        """Return the partition for the message's key. See `Balancer.balance`."""
        key = message.key
        if key is None:
            return self._round_robin.balance(message, partitions)
        if not partitions:
            raise ValueError(_NO_PARTITIONS)
        return partitions[(self._hasher(key) & 0x7FFFFFFF) % len(partitions)]

    def __repr__(self) -> str:
        return f"ReferenceHash(hasher={_name(self._hasher)})"


class CRC32Balancer:
    """Picks the partition from the CRC-32 of the message key, as librdkafka does.

    Compatible with librdkafka's `consistent_random` partitioner (the default of
    confluent-kafka-python and confluent-kafka-go), or with its `consistent` partitioner
    when `consistent` is true, and with kafka-go's `CRC32Balancer`: the CRC-32 (IEEE) of
    the key modulo the number of partitions indexes the offered partitions.

    librdkafka makes no difference between a `None` key and an empty one: both go to a
    random partition, or, when `consistent` is true, both hash to the first offered
    partition. Leave `consistent` off unless every message has a key, or that partition
    runs hot.

    Safe to share between the tasks of one event loop.

    Args:
        consistent: Hash `None` and empty keys too (librdkafka's `consistent`), instead
            of picking a random partition for them (`consistent_random`). Default: False.
    """

    __slots__ = ("_choice", "_consistent", "_memo")

    def __init__(self, consistent: bool = False) -> None:
        self._consistent = consistent
        self._choice = random.Random().choice
        self._memo = _KeyMemo()

    def balance(self, message: Message, partitions: Sequence[int], /) -> int:
        """Return the partition for the message's key. See `Balancer.balance`."""
        if not partitions:
            raise ValueError(_NO_PARTITIONS)
        key = message.key
        if not key:
            if not self._consistent:
                return self._choice(partitions)
            key = b""
        return partitions[crc32_ieee(key) % len(partitions)]

    def __repr__(self) -> str:
        return f"CRC32Balancer(consistent={self._consistent})"


class Murmur2Balancer:
    """Picks the partition from the murmur2 hash of the message key, as Java does.

    Compatible with the Java client's default partitioner for keyed records, with
    librdkafka's `murmur2_random` partitioner, or its `murmur2` partitioner when
    `consistent` is true, and with kafka-go's `Murmur2Balancer`: Kafka's murmur2 of the
    key, with the sign bit cleared, modulo the number of partitions indexes the offered
    partitions.

    Messages without a key (a `None` key) stick to one partition per batch, as the Java
    client's default partitioner does (KIP-480): a Writer sends the keyless messages of a
    call to one partition, up to its `batch_size` of them, then to another one picked at
    random, and the next call goes on from there. Whole batches fill up, and the
    partitions still share the keyless messages evenly over time. Asked about one message
    at a time (`balance`, which a Writer uses for calls of fewer than 8 messages), it
    picks a random partition for each, as librdkafka's `murmur2_random` and kafka-go do.
    An empty key is hashed like any other. Leave `consistent` off unless every message
    has a key, or one partition runs hot.

    Safe to share between the tasks of one event loop.

    Args:
        consistent: Hash a `None` key as if it were empty (librdkafka's `murmur2`),
            instead of picking a random partition (`murmur2_random`). Default: False.
    """

    __slots__ = ("_choice", "_consistent", "_memo", "_sticky")

    def __init__(self, consistent: bool = False) -> None:
        self._consistent = consistent
        self._choice = random.Random().choice
        self._memo = _KeyMemo()
        self._sticky = None if consistent else _Sticky(self._choice)

    def balance(self, message: Message, partitions: Sequence[int], /) -> int:
        """Return the partition for the message's key. See `Balancer.balance`."""
        if not partitions:
            raise ValueError(_NO_PARTITIONS)
        key = message.key
        if key is None:
            if not self._consistent:
                return self._choice(partitions)
            key = b""
        h = murmur2_cached(key) if key.__class__ is bytes else murmur2(key)
        return partitions[(h & 0x7FFFFFFF) % len(partitions)]

    def __repr__(self) -> str:
        return f"Murmur2Balancer(consistent={self._consistent})"


def always_offers_a_member(balancer: Balancer) -> bool:
    """Tell whether `balancer` answers with one of aiomq's own `balance` methods, which
    only answer with an offered partition, so that a writer may skip checking each answer.
    A subclass overriding `balance` is checked like any other balancer."""
    return getattr(type(balancer), "balance", None) in _OWN_BALANCE


_KEYED_BALANCE = frozenset(
    (CRC32Balancer.balance, Hash.balance, Murmur2Balancer.balance, ReferenceHash.balance)
)
"""The `balance` methods whose answer depends only on the key and the partitions, which
`balance_all` may therefore answer from a memo."""

_OWN_BALANCE = _KEYED_BALANCE | {LeastBytes.balance, RoundRobin.balance}
"""aiomq's own `balance` methods."""
