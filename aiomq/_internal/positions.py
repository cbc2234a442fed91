"""Where a Reader stands in each partition: its read positions, its lag, its stats.

A reader counts messages and bytes once per fetch rather than per message returned (see
`aiomq._internal.fetch.to_messages`), so what is still in its buffer is taken away here,
when someone asks.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiokafka.structs import TopicPartition as _TP

from aiomq.errors import Error
from aiomq.stats import PartitionStats, ReaderStats

if TYPE_CHECKING:
    from aiomq.reader import Reader, TopicPartition

__all__ = ["partition_lag", "read_position", "stats_snapshot", "update_lag_periodically"]


def read_position(reader: Reader, key: TopicPartition) -> int | None:
    """The offset of the next message this reader returns from a partition, if known.

    Args:
        reader: The reader.
        key: The `(topic, partition)`.
    """
    for message in reader._buffer:
        if message[0] == key[0] and message[1] == key[1]:
            return message[2]
    return reader._fetched_next.get(key)


def partition_lag(reader: Reader, key: TopicPartition) -> int:
    """Messages between the read position and the high water mark of the last fetch.

    Before the first fetch, a single-partition reader answers with its last `read_lag()`.

    Args:
        reader: The reader.
        key: The `(topic, partition)`.

    Returns:
        The lag, or -1 when it is not known.
    """
    consumer = reader._consumer
    if consumer is None:
        return -1
    high_water = consumer.highwater(_TP(*key))
    position = read_position(reader, key)
    if high_water is None or position is None:
        return reader._read_lag if key == reader._tp else -1
    lag: int = max(0, high_water - position)
    return lag


async def update_lag_periodically(reader: Reader) -> None:
    """Ask for a single-partition reader's lag every `read_lag_interval`, until cancelled.

    Args:
        reader: The single-partition reader.
    """
    while True:
        await asyncio.sleep(reader.config.read_lag_interval)
        try:
            await reader.read_lag()
        except Error as exc:
            reader._log.warning("read_lag_failed", error=str(exc))


def stats_snapshot(reader: Reader) -> ReaderStats:
    """Return a snapshot of a reader's counters and per-partition lag.

    Args:
        reader: The reader.
    """
    parts = []
    total = 0
    known = False
    for key in sorted(reader._assigned):
        lag = partition_lag(reader, key)
        consumer = reader._consumer
        hw = consumer.highwater(_TP(*key)) if consumer is not None else None
        parts.append(
            PartitionStats(
                topic=key[0],
                partition=key[1],
                offset=-1 if (position := read_position(reader, key)) is None else position,
                high_water_mark=-1 if hw is None else hw,
                lag=lag,
            )
        )
        if lag >= 0:
            total += lag
            known = True
    c = reader._counts
    buffer = reader._buffer
    buffered_bytes = sum(
        (0 if m[4] is None else len(m[4])) + (0 if m[5] is None else len(m[5])) for m in buffer
    )
    return ReaderStats(
        messages=c["messages"] - len(buffer),
        bytes=c["bytes"] - buffered_bytes,
        fetches=c["fetches"],
        errors=c["errors"],
        commits=c["commits"],
        stale_commits=c["stale_commits"],
        rebalances=reader._rebalances,
        queued=len(buffer),
        lag=total if known else -1,
        partitions=tuple(parts),
    )
