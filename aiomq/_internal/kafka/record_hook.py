"""Build `aiomq.Message` objects straight from fetched record batches.

aiokafka turns every fetched record into a `ConsumerRecord`, which a reader would then
turn into a `Message`: two objects per record on the hottest path of consumption. This
module teaches aiokafka to build the `Message` itself, but only for consumers that ask
for it, by passing a `MessageFactory` as their key deserializer; every other consumer in
the process keeps aiokafka's behaviour, at aiokafka's cost.

aiokafka keeps one `PartitionRecords` per partition and fetch response, and asks its
`_consumer_record(tp, record)` method for the object to return for each record. The hook
wraps `PartitionRecords.__init__`: when the key deserializer is a `MessageFactory`, the
new instance gets its own `_consumer_record`, a closure that already knows the topic, the
partition and the high water mark of that fetch. Other consumers pay one check per
partition and fetch, nothing per record.

The hook relies on private parts of aiokafka's fetcher (`PartitionRecords.__init__`
setting `_tp` and `_key_deserializer`, and its record iterator calling
`self._consumer_record`), so it is installed only if they exist, and readers fall back to
converting `ConsumerRecord`s when they do not. aiomq pins the aiokafka versions it is
tested with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka.structs import TopicPartition

from aiomq.message import Message

__all__ = ["MessageFactory", "install", "message_bytes"]

_new_message: Final = tuple.__new__
_EPOCH: Final = datetime.fromtimestamp(0, UTC)


class MessageFactory:
    """Marks a consumer whose records should come out as `Message`s, and counts bytes.

    aiokafka receives it as `key_deserializer`; were it ever called as one, it returns
    the key unchanged.
    """

    __slots__ = ("bytes", "high_water")

    def __init__(self, high_water: Callable[[TopicPartition], int | None]) -> None:
        self.high_water = high_water
        self.bytes = 0
        """Key and value bytes of every message built since the reader last took them."""

    def __call__(self, key: bytes | None) -> bytes | None:
        return key


def message_bytes(messages: list[Message]) -> int:
    """The key and value bytes of `messages`, as `MessageFactory.bytes` counts them."""
    return sum(
        (0 if m[4] is None else len(m[4])) + (0 if m[5] is None else len(m[5])) for m in messages
    )


def _message_builder(factory: MessageFactory, tp: TopicPartition) -> Callable[[Any, Any], Message]:
    """Return the record-to-message function of one `PartitionRecords` (one fetch response).

    The high water mark is read once, when the fetch response arrives: it is the one that
    response carried. Records of one batch usually share their timestamp, so a datetime
    is built only when the timestamp changes.
    """
    topic = tp.topic
    partition = tp.partition
    known = factory.high_water(tp)
    high_water = -1 if known is None else known
    new = _new_message
    last_ts: int | None = None
    when = _EPOCH

    def build(_tp: Any, record: Any) -> Message:
        nonlocal last_ts, when
        ts = record.timestamp
        if ts != last_ts:
            when = datetime.fromtimestamp(ts / 1000, UTC)
            last_ts = ts
        key = record.key
        value = record.value
        factory.bytes += (0 if key is None else len(key)) + (0 if value is None else len(value))
        headers = record.headers
        return new(
            Message,
            (
                topic,
                partition,
                record.offset,
                high_water,
                key,
                value,
                tuple(headers) if headers else (),
                when,
                None,
            ),
        )

    return build


_HOOK_MARK: Final = "__aiomq_record_hook__"
"""Set on the hooked `PartitionRecords.__init__`. `functools.wraps` copies it onto the
wrapper of another library that wraps ours, so the hook is recognised under it."""


def _hook(original: Callable[..., None]) -> Callable[..., None]:
    """Return `original` (the `__init__` found when installing) followed by the hook.

    Each hook calls the very function it was given, never whatever `__init__` is at call
    time, so no chain of wrappers, however libraries stack them, can lead back to itself.
    """

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        factory = getattr(self, "_key_deserializer", None)
        if factory.__class__ is MessageFactory:
            # An instance attribute: it takes precedence over the class's method, for this
            # instance only.
            self._consumer_record = _message_builder(factory, self._tp)

    setattr(__init__, _HOOK_MARK, True)
    return __init__


def _hooked(func: Any) -> bool:
    """Tell whether `func` is the hook, or a wrapper that says (by `__wrapped__`, as
    `functools.wraps` sets it) that it calls the hook."""
    seen: set[int] = set()
    while func is not None and id(func) not in seen:
        if getattr(func, _HOOK_MARK, False):
            return True
        seen.add(id(func))
        func = getattr(func, "__wrapped__", None)
    return False


def install() -> bool:
    """Install the hook once; tell whether aiokafka has the parts it relies on.

    Safe to call again, and safe next to other libraries that wrap
    `PartitionRecords.__init__` before or after: the hook is recognised by a mark rather
    than by identity, so it is not added twice under a wrapper made with
    `functools.wraps`. A wrapper that hides what it wraps gets the hook again on top,
    which only repeats an idempotent assignment.
    """
    try:
        from aiokafka.consumer.fetcher import PartitionRecords
    except ImportError:  # pragma: no cover - an aiokafka outside the pinned range
        return False
    if getattr(PartitionRecords, "_consumer_record", None) is None:  # pragma: no cover
        return False  # an aiokafka outside the pinned range
    current = PartitionRecords.__init__
    if not _hooked(current):
        PartitionRecords.__init__ = _hook(current)  # type: ignore[method-assign]
    return True
