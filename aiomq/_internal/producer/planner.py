"""The Writer's planner: check a call's messages, choose their partitions, group them.

Every message of a call is checked, and its partition chosen, before any is queued: a
call that fails here has handed nothing over. The result is one `Chunk` per partition,
holding that partition's messages in input order.

The usual call (one topic, balanced, `bytes` keys and values, no headers) is planned in a
few passes over the whole call; anything else, and any call with something wrong in it,
one message at a time, which raises on the first bad message with its index.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from operator import add, attrgetter, itemgetter
from typing import Any, Final, Protocol, TypeAlias, cast

from aiomq._internal.kafka.produce import BATCH_OVERHEAD, PLAIN_RECORD_OVERHEAD, record_size
from aiomq.errors import (
    ConfigError,
    Error,
    InvalidMessageError,
    MessageTooLargeError,
    UnknownTopicOrPartitionError,
)
from aiomq.message import Message

__all__ = [
    "FEW",
    "BalanceAll",
    "Balances",
    "Chunk",
    "Planned",
    "Planner",
    "WriteCall",
    "header_bytes",
    "payload_bytes",
]

# Below this many messages, a call or a chunk is handled one message at a time: cheaper
# than setting up the passes over the whole that serve larger ones.
FEW: Final = 8

_BYTES: Final = (bytes, bytearray, memoryview)
_NO_HEADERS: Final[list[Any]] = []
_topic_of = itemgetter(0)
_partition_of = itemgetter(1)
_key_of = itemgetter(4)
_value_of = itemgetter(5)
_headers_of = itemgetter(6)
_time_of = itemgetter(7)
_tzinfo_of = attrgetter("tzinfo")
_NONE_TYPE: Final = type(None)
_PLAIN_TYPES: Final = frozenset((bytes, _NONE_TYPE))
_TIME_TYPES: Final = frozenset((datetime, _NONE_TYPE))


class WriteCall:
    """The outcomes of one synchronous `write_messages` call, aligned with its input."""

    __slots__ = ("done", "errors", "failed", "pending", "written")

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self.written: list[Message | None] = [None] * size
        self.errors: list[Error | None] = [None] * size
        self.failed = 0
        self.pending = 0
        self.done: asyncio.Future[None] = loop.create_future()

    def finish(self) -> None:
        # The caller may have been cancelled, which cancels this future too.
        if not self.done.done():
            self.done.set_result(None)


def header_bytes(headers: Sequence[tuple[str, bytes | None]]) -> int:
    """The bytes of a message's header names (in UTF-8) and values."""
    return sum(len(name.encode()) + (0 if value is None else len(value)) for name, value in headers)


def payload_bytes(messages: Sequence[Message]) -> int:
    """The key, value and header bytes of `messages` (what `WriterStats.bytes` counts)."""
    total = sum(map(len, filter(None, map(_key_of, messages))))
    total += sum(map(len, filter(None, map(_value_of, messages))))
    return total + sum(map(header_bytes, filter(None, map(_headers_of, messages))))


class Chunk:
    """Messages of one write call for one partition, queued and sent together.

    A batch takes whole chunks where it can, and splits one where a batch limit falls
    inside it; settling a chunk builds its written messages in one pass.
    """

    __slots__ = ("call", "indices", "messages", "nbytes", "plain", "queued_at", "start")

    def __init__(
        self,
        messages: list[Message],
        call: WriteCall | None,
        indices: Sequence[int],
        queued_at: float,
        plain: bool,
        nbytes: int,
    ) -> None:
        self.messages = messages
        self.call = call
        self.indices = indices
        """Where each message stands in its call's input (empty without a call)."""
        self.queued_at = queued_at
        self.plain = plain
        """No message has headers or a time of its own."""
        self.nbytes = nbytes
        """The key, value and header bytes of the messages not yet split off."""
        self.start = 0
        """How many leading messages earlier splits took: they are no longer this chunk's.
        Keeping the lists whole until then spares a copy of the rest at every split."""

    def split(self, count: int) -> Chunk:
        """Detach and return the next `count` messages as a chunk of their own."""
        start = self.start
        end = start + count
        messages = self.messages[start:end]
        head = Chunk(
            messages,
            self.call,
            self.indices[start:end] if self.call is not None else (),
            self.queued_at,
            self.plain,
            payload_bytes(messages),
        )
        self.start = end
        self.nbytes -= head.nbytes
        return head

    def whole(self) -> Chunk:
        """This chunk with only its own messages in its lists (itself if nothing was split)."""
        if not self.start:
            return self
        return self.split(len(self.messages) - self.start)


Planned: TypeAlias = list[tuple[tuple[str, int], Chunk]]
"""A planned call: `((topic, partition), chunk)` for each partition it writes to."""


class Balances(Protocol):
    """What the planner needs of a balancer (`aiomq.Balancer`)."""

    def balance(self, message: Message, partitions: Sequence[int], /) -> int: ...


BalanceAll: TypeAlias = Callable[
    [Sequence[Message], Sequence[bytes | None], tuple[int, ...]], list[int]
]
"""Chooses the partitions of a whole call's messages, given their keys, as asking the
balancer about each in turn would (`aiomq.balancer.balance_all`, for one balancer)."""


class _Group:
    """The messages of one call bound for one partition, gathered one at a time."""

    __slots__ = ("indices", "messages", "nbytes", "plain")

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.indices: list[int] = []
        self.nbytes = 0
        self.plain = True

    def chunk(self, call: WriteCall | None, now: float) -> Chunk:
        """The group as a chunk of `call`, queued at `now`."""
        indices = self.indices if call is not None else ()
        return Chunk(self.messages, call, indices, now, self.plain, self.nbytes)


class Planner:
    """Checks the messages of write calls, chooses their partitions and groups them.

    Args:
        topic: The writer's topic, or None when each message names its own.
        balancer: Chooses the partition of each message that names none.
        balance_all: Chooses them for a whole call at once, as `balancer` would.
        trusted: The balancer only ever answers with an offered partition (aiomq's own
            do), so its answers need no check.
        batch_bytes: The most bytes in a record batch; a larger message is refused.
        partitions: Returns a topic's partition ids (the writer's cached look-up).
        keyless: Chooses the partition of a keyless message that names none, when the
            balancer sticks keyless messages to a partition per batch; None: the
            balancer chooses.
    """

    __slots__ = (
        "_balance_all",
        "_balancer",
        "_batch_bytes",
        "_keyless",
        "_limit",
        "_partitions",
        "_topic",
        "_trusted",
    )

    def __init__(
        self,
        *,
        topic: str | None,
        balancer: Balances,
        balance_all: BalanceAll,
        trusted: bool,
        batch_bytes: int,
        partitions: Callable[[str], Awaitable[tuple[int, ...]]],
        keyless: Callable[[tuple[int, ...]], int] | None = None,
    ) -> None:
        self._keyless = keyless
        self._topic = topic
        self._balancer = balancer
        self._balance_all = balance_all
        self._trusted = trusted
        self._batch_bytes = batch_bytes
        # The most a record may take, past what its batch adds around it.
        self._limit = batch_bytes - BATCH_OVERHEAD
        self._partitions = partitions

    async def plan(
        self, messages: Sequence[Message], call: WriteCall | None, now: float
    ) -> Planned:
        """Check every message and choose its partition, before any is queued.

        Args:
            messages: The call's messages.
            call: The synchronous call the messages belong to; None in async mode.
            now: The event loop time the call was made, when its messages are queued.

        Returns:
            One chunk per partition, holding its messages in input order.

        Raises:
            InvalidMessageError, MessageTooLargeError, UnknownTopicOrPartitionError: A
                message cannot be written; the message names its index.
            ConfigError: The balancer chose a partition the topic does not have.
            ClosedError, RequestTimeoutError, BrokerConnectionError: A topic's partitions
                could not be looked up.
        """
        # A few messages are cheaper to check one at a time than in passes over the call.
        topic = self._common_topic(messages) if len(messages) >= FEW else None
        if topic is not None:
            planned = await self._plan_plain(messages, topic, call, now)
            if planned is not None:
                return planned
        return await self._plan_each(messages, call, now)

    def _common_topic(self, messages: Sequence[Message]) -> str | None:
        """The one topic of a call of well-formed `Message`s, or None to check each."""
        if set(map(type, messages)) != {Message}:
            return None
        try:
            topics = set(map(_topic_of, messages))
        except TypeError:  # an unhashable topic: let the careful path say what is wrong
            return None
        default = self._topic
        if default is not None:
            topics.discard("")
            return default if not topics or topics == {default} else None
        if len(topics) != 1:
            return None
        (topic,) = topics
        return topic if topic and topic.__class__ is str else None

    async def _plan_plain(
        self, messages: Sequence[Message], topic: str, call: WriteCall | None, now: float
    ) -> Planned | None:
        """`plan` in a few passes over the whole call, for the usual shape of input.

        Returns None when the call is not of that shape, or has something wrong in it,
        and `_plan_each` then checks one message at a time and says what.
        """
        shape = _plain_shape(messages)
        if shape is None:
            return None
        keys, sizes, timed = shape
        if max(sizes) + PLAIN_RECORD_OVERHEAD > self._limit:
            return None  # perhaps too large: the careful path decides, and says which
        partitions = await self._partitions(topic)
        chosen = self._balance_all(messages, keys, partitions)
        try:
            distinct = set(chosen)
        except TypeError:  # an unhashable answer: the careful path reports it
            return None
        if not self._trusted and not distinct.issubset(partitions):
            partition = next(p for p in chosen if p not in partitions)
            raise _bad_choice(partition, topic, partitions)
        if len(distinct) == 1:
            indices: Sequence[int] = range(len(messages)) if call is not None else ()
            chunk = Chunk(list(messages), call, indices, now, not timed, sum(sizes))
            return [((topic, chosen[0]), chunk)]
        # Group by partition, keeping input order within each group (sorted is stable).
        order = sorted(range(len(messages)), key=chosen.__getitem__)
        pick, size_at = messages.__getitem__, sizes.__getitem__
        planned: Planned = []
        start = 0
        for partition in sorted(distinct):
            stop = start + chosen.count(partition)
            indices = order[start:stop]
            chunk = Chunk(
                list(map(pick, indices)),
                call,
                indices if call is not None else (),
                now,
                not timed,
                sum(map(size_at, indices)),
            )
            planned.append(((topic, partition), chunk))
            start = stop
        return planned

    async def _plan_each(
        self, messages: Sequence[Message], call: WriteCall | None, now: float
    ) -> Planned:
        """`plan` for any input, one message at a time; raises on the first bad one."""
        # The checks are inline and only the errors are built elsewhere: this loop runs
        # for every message of every small call.
        default_topic = self._topic
        limit = self._limit
        size_of = record_size
        balance = self._balancer.balance
        keyless = self._keyless
        trusted = self._trusted
        groups: dict[tuple[str, int], _Group] = {}
        cached_topic = ""
        cached: tuple[int, ...] = ()
        index = -1
        for message in messages:
            index += 1
            if message.__class__ is not Message:
                raise _not_a_message(index, message)
            topic, partition, _, _, key, value, headers, when, _ = message
            if partition.__class__ is not int and (
                not isinstance(partition, int) or isinstance(partition, bool)
            ):
                raise _bad_partition(index, partition)
            if default_topic is not None:
                if topic and topic != default_topic:
                    raise _other_topic(index, topic, default_topic)
                topic = default_topic
            elif not topic:
                raise _no_topic(index)
            if not (key is None or key.__class__ is bytes or isinstance(key, _BYTES)) or not (
                value is None or value.__class__ is bytes or isinstance(value, _BYTES)
            ):
                raise _not_bytes(index, key, value)
            if when is not None and when.tzinfo is None:
                raise _naive_time(index)
            try:
                listed: list[Any] = (
                    headers
                    if headers.__class__ is list
                    else (list(headers) if headers else _NO_HEADERS)
                )
                size = size_of(key, value, listed)
            except (TypeError, AttributeError, ValueError) as exc:
                raise _bad_headers(index, headers) from exc
            if size > limit:
                raise _too_large(index, size, topic, self._batch_bytes)
            if topic != cached_topic:
                cached_topic, cached = topic, await self._partitions(topic)
            if partition < 0:
                if key is None and keyless is not None:
                    partition = keyless(cached)
                else:
                    partition = balance(message, cached)
                if not trusted and partition not in cached:
                    raise _bad_choice(partition, topic, cached)
            elif partition not in cached:
                raise UnknownTopicOrPartitionError(
                    topic=topic,
                    partition=partition,
                    detail=f"the topic has partitions {list(cached)}",
                )
            where = (topic, partition)
            group = groups.get(where)
            if group is None:
                group = groups[where] = _Group()
            group.messages.append(message)
            group.indices.append(index)
            group.nbytes += (0 if key is None else len(key)) + (0 if value is None else len(value))
            if listed:
                group.nbytes += header_bytes(listed)
                group.plain = False
            elif when is not None:
                group.plain = False
        return [(where, group.chunk(call, now)) for where, group in groups.items()]


def _plain_shape(
    messages: Sequence[Message],
) -> tuple[list[bytes | None], list[int], bool] | None:
    """The keys, key and value sizes, and whether any has a time, of a call whose messages
    are all balanced, with `bytes` or None keys and values, no headers, and aware times or
    none; None for any other call."""
    try:
        if set(map(_partition_of, messages)) != {-1}:
            return None
    except TypeError:
        return None
    keys = list(map(_key_of, messages))
    values = list(map(_value_of, messages))
    key_types = set(map(type, keys))
    value_types = set(map(type, values))
    if not _PLAIN_TYPES.issuperset(key_types) or not _PLAIN_TYPES.issuperset(value_types):
        return None
    if any(map(_headers_of, messages)):
        return None
    timed = any(map(_time_of, messages))
    if timed:
        times = list(map(_time_of, messages))
        if not _TIME_TYPES.issuperset(map(type, times)) or None in map(
            _tzinfo_of, filter(None, times)
        ):
            return None
    key_sizes, value_sizes = _lengths(keys, key_types), _lengths(values, value_types)
    if key_sizes is None:
        sizes = value_sizes or [0] * len(messages)
    elif value_sizes is None:
        sizes = key_sizes
    else:
        sizes = list(map(add, key_sizes, value_sizes))
    return keys, sizes, timed


def _lengths(items: list[bytes | None], types: set[type]) -> list[int] | None:
    """The lengths of `items`, whose types are `types` (None counting as 0), or None when
    they are all None."""
    if _NONE_TYPE not in types:
        return list(map(len, cast(list[bytes], items)))
    if len(types) == 1:
        return None
    return [0 if item is None else len(item) for item in items]


def _bad_choice(partition: object, topic: str, partitions: tuple[int, ...]) -> ConfigError:
    """The error for a balancer that chose a partition the topic does not have."""
    return ConfigError(
        f"the balancer chose partition {partition!r} for topic {topic!r}, "
        f"which has partitions {list(partitions)}"
    )


def _not_a_message(index: int, message: object) -> InvalidMessageError:
    return InvalidMessageError(
        f"message {index} is a {type(message).__name__}, not an aiomq.Message"
    )


def _bad_partition(index: int, partition: object) -> InvalidMessageError:
    return InvalidMessageError(
        f"message {index}: partition must be an int, not {partition!r}: leave "
        "it unset (-1) to let the balancer choose, or name a partition id"
    )


def _other_topic(index: int, topic: str, default: str) -> InvalidMessageError:
    return InvalidMessageError(
        f"message {index} names topic {topic!r}, but this writer writes to "
        f"{default!r}: leave Message.topic empty, or create the writer "
        "without a topic"
    )


def _no_topic(index: int) -> InvalidMessageError:
    return InvalidMessageError(
        f"message {index} has no topic, and the writer has none: set "
        "Message.topic, or create the writer with topic="
    )


def _not_bytes(index: int, key: object, value: object) -> InvalidMessageError:
    return InvalidMessageError(
        f"message {index}: key and value must be bytes or None, not "
        f"{type(key).__name__} and {type(value).__name__}"
    )


def _naive_time(index: int) -> InvalidMessageError:
    return InvalidMessageError(
        f"message {index}: time must be timezone-aware (for example "
        "datetime.now(UTC)); a naive datetime would be read as local time"
    )


def _bad_headers(index: int, headers: object) -> InvalidMessageError:
    return InvalidMessageError(
        f"message {index}: headers must be (str, bytes) pairs, not {headers!r}"
    )


def _too_large(index: int, size: int, topic: str, batch_bytes: int) -> MessageTooLargeError:
    total = size + BATCH_OVERHEAD
    return MessageTooLargeError(
        size=total,
        limit=batch_bytes,
        topic=topic,
        detail=(
            f"message {index} takes {total} bytes in a record batch, "
            f"and batch_bytes is {batch_bytes}"
        ),
    )
