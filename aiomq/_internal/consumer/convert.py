"""Turning aiokafka's fetched records into messages, when aiokafka cannot build them itself.

With the record hook (see `aiomq._internal.kafka.record_hook`) records arrive as messages already;
`RecordConverter` is the fallback for an aiokafka whose fetcher lacks what the hook needs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from aiomq.message import Message

__all__ = ["RecordConverter"]

_new_message: Final = tuple.__new__


class RecordConverter:
    """Turns aiokafka's `ConsumerRecord`s into messages, when the record hook is missing.

    With the hook (see `aiomq._internal.kafka.record_hook`) records arrive as messages already, and
    this is not used. Not safe from several threads; one event loop's tasks may share it.
    """

    __slots__ = ("_counts", "_last_dt", "_last_ts")

    def __init__(self, counts: dict[str, int]) -> None:
        self._counts = counts
        self._last_ts = -1
        self._last_dt = datetime.fromtimestamp(0, UTC)

    def convert(
        self, key: tuple[str, int], records: list[Any], high_water_mark: int
    ) -> list[Message]:
        """Build one partition's messages, adding their key and value bytes to the counts.

        Args:
            key: The `(topic, partition)` the records come from.
            records: The fetched `ConsumerRecord`s, in offset order.
            high_water_mark: The partition's high water mark at the fetch, or -1.

        Returns:
            One message per record, in the same order.
        """
        topic, partition = key
        new = _new_message
        last_ts, last_dt = self._last_ts, self._last_dt
        size = 0
        messages: list[Message] = []
        append = messages.append
        for r in records:
            ts = r.timestamp
            if ts != last_ts:
                # Records of one batch usually share a millisecond: build each datetime once.
                last_ts, last_dt = ts, datetime.fromtimestamp(ts / 1000, UTC)
            k, v = r.key, r.value
            size += (0 if k is None else len(k)) + (0 if v is None else len(v))
            append(
                new(
                    Message,
                    (topic, partition, r.offset, high_water_mark, k, v, r.headers, last_dt, None),
                )
            )
        self._last_ts, self._last_dt = last_ts, last_dt
        self._counts["bytes"] += size
        return messages
