"""Build `aiomq.Message` objects straight from fetched record batches.

aiokafka turns every fetched record into a `ConsumerRecord`, which a reader would then
turn into a `Message`: two objects per record on the hottest path of consumption. This
module teaches aiokafka's per-partition record iterator to build the `Message` itself,
but only for consumers that ask for it, by passing a `MessageFactory` as their key
deserializer; every other consumer in the process keeps aiokafka's behaviour.

The hook relies on one private method of aiokafka's fetcher
(`PartitionRecords._consumer_record`), so it is installed only if that method exists,
and readers fall back to converting `ConsumerRecord`s when it does not. aiomq pins the
aiokafka versions it is tested with.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka.structs import TopicPartition

from aiomq.message import Message

__all__ = ["MessageFactory", "install"]

_new_message: Final = tuple.__new__


class MessageFactory:
    """Marks a consumer whose records should come out as `Message`s, and counts bytes.

    aiokafka receives it as `key_deserializer`; were it ever called as one, it returns
    the key unchanged.
    """

    __slots__ = ("bytes", "high_water")

    def __init__(self, high_water: Callable[[TopicPartition], int | None]) -> None:
        self.high_water = high_water
        self.bytes = 0
        """Key and value bytes of every message built so far."""

    def __call__(self, key: bytes | None) -> bytes | None:
        return key


def _message_record(self: Any, tp: TopicPartition, record: Any) -> Any:
    factory = self._key_deserializer
    if factory.__class__ is not MessageFactory:
        return _original(self, tp, record)
    state = self.__dict__
    # One high water mark and one datetime per run of records, kept on the iterator.
    high_water = state.get("_aiomq_hw")
    if high_water is None:
        known = factory.high_water(tp)
        high_water = state["_aiomq_hw"] = -1 if known is None else known
    ts = record.timestamp
    if ts == state.get("_aiomq_ts"):
        when = state["_aiomq_dt"]
    else:
        when = state["_aiomq_dt"] = datetime.fromtimestamp(ts / 1000, UTC)
        state["_aiomq_ts"] = ts
    key, value = record.key, record.value
    factory.bytes += (0 if key is None else len(key)) + (0 if value is None else len(value))
    return _new_message(
        Message,
        (
            tp.topic,
            tp.partition,
            record.offset,
            high_water,
            key,
            value,
            tuple(record.headers),
            when,
            None,
        ),
    )


_original: Callable[[Any, TopicPartition, Any], Any]


def install() -> bool:
    """Install the hook once; tell whether aiokafka has the method it relies on."""
    global _original
    try:
        from aiokafka.consumer.fetcher import PartitionRecords
    except ImportError:  # pragma: no cover - an aiokafka outside the pinned range
        return False
    current = getattr(PartitionRecords, "_consumer_record", None)
    if current is None:  # pragma: no cover - an aiokafka outside the pinned range
        return False
    if current is not _message_record:
        _original = current
        PartitionRecords._consumer_record = _message_record  # type: ignore[method-assign]
    return True
