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


_original_init: Callable[..., None]


def _init_building_messages(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    factory = getattr(self, "_key_deserializer", None)
    if factory.__class__ is MessageFactory:
        # An instance attribute: it takes precedence over the class's method, for this
        # instance only.
        self._consumer_record = _message_builder(factory, self._tp)


def install() -> bool:
    """Install the hook once; tell whether aiokafka has the parts it relies on."""
    global _original_init
    try:
        from aiokafka.consumer.fetcher import PartitionRecords
    except ImportError:  # pragma: no cover - an aiokafka outside the pinned range
        return False
    if getattr(PartitionRecords, "_consumer_record", None) is None:  # pragma: no cover
        return False  # an aiokafka outside the pinned range
    current = PartitionRecords.__init__
    if current is not _init_building_messages:
        _original_init = current
        PartitionRecords.__init__ = _init_building_messages  # type: ignore[method-assign]
    return True
