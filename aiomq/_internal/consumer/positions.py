"""Where a Reader stands in each partition: its read positions, its lag, its stats.

A reader counts messages and bytes once per fetch rather than per message returned (see
`aiomq._internal.consumer.fetch.to_messages`), so what is still in its buffer is taken
away here, when someone asks.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiokafka.structs import TopicPartition as _TP

from aiomq._internal.kafka.errors import map_errors
from aiomq.errors import Error
from aiomq.stats import PartitionStats, ReaderStats

if TYPE_CHECKING:
    from aiomq._internal.consumer.state import Key, ReaderState

__all__ = [
    "partition_lag",
    "read_lag",
    "read_position",
    "stats_snapshot",
    "update_lag_periodically",
]


def read_position(state: ReaderState, key: Key) -> int | None:
    """The offset of the next message this reader returns from a partition, if known.

    Args:
        state: The reader's state.
        key: The `(topic, partition)`.
    """
    for message in state.buffer:
        if message[0] == key[0] and message[1] == key[1]:
            return message[2]
    return state.fetched_next.get(key)


def partition_lag(state: ReaderState, key: Key) -> int:
    """Messages between the read position and the high water mark of the last fetch.

    Before the first fetch, a single-partition reader answers with its last `read_lag()`.

    Args:
        state: The reader's state.
        key: The `(topic, partition)`.

    Returns:
        The lag, or -1 when it is not known.
    """
    consumer = state.consumer
    if consumer is None:
        return -1
    high_water = consumer.highwater(_TP(*key))
    position = read_position(state, key)
    if high_water is None or position is None:
        return state.read_lag if key == state.partition else -1
    lag: int = max(0, high_water - position)
    return lag


async def update_lag_periodically(state: ReaderState) -> None:
    """Ask for a single-partition reader's lag every `read_lag_interval`, until cancelled.

    Args:
        state: The single-partition reader's state.
    """
    while True:
        await asyncio.sleep(state.settings.read_lag_interval)
        try:
            await read_lag(state)
        except Error as exc:
            state.log.warning("read_lag_failed", error=str(exc))


def stats_snapshot(state: ReaderState) -> ReaderStats:
    """Return a snapshot of a reader's counters and per-partition lag.

    Args:
        state: The reader's state.
    """
    parts = []
    total = 0
    known = False
    for key in sorted(state.assigned):
        lag = partition_lag(state, key)
        consumer = state.consumer
        hw = consumer.highwater(_TP(*key)) if consumer is not None else None
        parts.append(
            PartitionStats(
                topic=key[0],
                partition=key[1],
                offset=-1 if (position := read_position(state, key)) is None else position,
                high_water_mark=-1 if hw is None else hw,
                lag=lag,
            )
        )
        if lag >= 0:
            total += lag
            known = True
    c = state.counts
    buffer = state.buffer
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
        rebalances=state.rebalances,
        queued=len(buffer),
        lag=total if known else -1,
        partitions=tuple(parts),
        processing=None if state.processing is None else state.processing(),
    )


async def read_lag(state: ReaderState) -> int:
    """Ask the broker for a single-partition reader's end offset; return the lag behind it.

    Args:
        state: The single-partition reader's state.
    """
    key = state.partition
    assert key is not None
    consumer = state.open_consumer()
    tp = _TP(*key)
    with map_errors(brokers=state.settings.brokers, topic=tp.topic, partition=tp.partition):
        end = (await consumer.end_offsets([tp]))[tp]
        position = read_position(state, key)
        if position is None:
            position = await consumer.position(tp)
    state.read_lag = max(0, end - position)
    return state.read_lag
