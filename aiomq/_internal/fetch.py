"""How a Reader gets its messages: the aiokafka consumer, its fetches, its records' conversion.

A reader fetches through one `AIOKafkaConsumer`, built here from its settings. `fill`
moves one fetch into the reader's buffer, where `fetch_message`, `fetch_batch` and
`read_message` take messages from. aiokafka usually builds the messages itself (see
`aiomq._internal.records`); `RecordConverter` converts its records when it does not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from aiokafka import AIOKafkaConsumer

from aiomq._internal.errmap import map_errors
from aiomq._internal.records import MessageFactory, message_bytes
from aiomq._internal.security import connection_options
from aiomq.errors import ClosedError, Error
from aiomq.message import Message

if TYPE_CHECKING:
    from aiomq.reader import Reader, ReaderConfig, TopicPartition

__all__ = [
    "RecordConverter",
    "committed_future",
    "drop_buffered",
    "fill",
    "new_consumer",
    "stop_consumer",
    "to_messages",
]

_new_message: Final = tuple.__new__


def new_consumer(
    config: ReaderConfig,
    factory: MessageFactory | None,
    *,
    earliest: bool,
    read_committed: bool,
) -> AIOKafkaConsumer:
    """Build, without starting it, the aiokafka consumer a reader with `config` reads through.

    Commits are left to the reader: aiokafka never commits by itself.

    Args:
        config: The reader's settings.
        factory: The record hook's marker (see `aiomq._internal.records`), so that the
            consumer's records arrive as messages; None when the hook is not installed.
        earliest: Whether `config.start_offset` is FIRST_OFFSET (else LAST_OFFSET).
        read_committed: Whether `config.isolation_level` is READ_COMMITTED.
    """
    return AIOKafkaConsumer(
        key_deserializer=factory,
        bootstrap_servers=list(config.brokers),
        client_id=config.effective_client_id,
        **connection_options(config.dialer),
        group_id=config.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if earliest else "latest",
        fetch_min_bytes=config.min_bytes,
        fetch_max_bytes=max(config.max_bytes, 52_428_800),
        max_partition_fetch_bytes=config.max_bytes,
        fetch_max_wait_ms=int(config.max_wait * 1000),
        max_poll_records=config.queue_capacity,
        heartbeat_interval_ms=int(config.heartbeat_interval * 1000),
        session_timeout_ms=int(config.session_timeout * 1000),
        rebalance_timeout_ms=int(config.rebalance_timeout * 1000),
        max_poll_interval_ms=max(int(config.rebalance_timeout * 1000), 300_000),
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )


async def stop_consumer(consumer: AIOKafkaConsumer, log: Any, budget: float) -> None:
    """Stop an aiokafka consumer completely within `budget`, even mid-join or mid-outage.

    aiokafka's `stop()` waits for a group join under way to finish, which can take half a
    session timeout, and when cut short it leaves its fetcher, metadata and connection
    tasks running. So the group coordination task is ended first (leaving the group is
    still attempted), `stop()` gets `budget`, and whatever it left is torn down after.

    Args:
        consumer: The consumer to stop.
        log: The reader's logger.
        budget: Seconds `stop()` may take before its tasks are torn down.
    """
    coordinator = consumer._coordinator
    task = getattr(coordinator, "_coordination_task", None)
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=budget)
    try:
        async with asyncio.timeout(budget):
            await consumer.stop()
        return
    except TimeoutError:
        log.warning("reader_close_timed_out", budget=budget)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        # aiokafka re-raises the cancellation of one of its own tasks here.
        log.warning("reader_close_interrupted")
    except Exception as exc:
        log.warning("reader_close_failed", error=repr(exc))
    await _tear_down(consumer)


async def _tear_down(consumer: AIOKafkaConsumer) -> None:
    """End every task an aiokafka consumer runs, and close its connections."""
    tasks: list[asyncio.Task[Any]] = []
    coordinator = consumer._coordinator
    if coordinator is not None:
        for name in (
            "_coordination_task",
            "_heartbeat_task",
            "_commit_refresh_task",
            "_reset_committed_task",
        ):
            task = getattr(coordinator, name, None)
            if task is not None:
                tasks.append(task)
    fetcher = consumer._fetcher
    if fetcher is not None:
        tasks.append(fetcher._fetch_task)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1.0)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await consumer._client.close()


def committed_future(consumer: AIOKafkaConsumer, tp: Any) -> asyncio.Future[Any] | None:
    """Ask aiokafka for the group's committed offset of an assigned partition.

    aiokafka asks the coordinator once for every partition that waits (it does so anyway
    to start fetching), so this costs no request of its own.

    Returns:
        A future of the `OffsetAndMetadata` (offset -1 when nothing is committed), or None
        when the partition is not assigned in aiokafka's view.
    """
    subscription = consumer._subscription.subscription
    assignment = None if subscription is None else subscription.assignment
    if assignment is None or tp not in assignment.tps:
        return None
    future: asyncio.Future[Any] = assignment.state_value(tp).fetch_committed()
    return future


def drop_buffered(reader: Reader, which: Callable[[Message], bool] | None = None) -> int:
    """Take messages out of a reader's buffer without returning them; uncount them.

    The buffer is changed in place, since tasks waiting to read hold on to it.

    Args:
        reader: The reader.
        which: Which messages to drop; None drops them all.

    Returns:
        How many were dropped.
    """
    buffer = reader._buffer
    if not buffer:
        return 0
    if which is None:
        dropped = list(buffer)
        buffer.clear()
    else:
        kept = [m for m in buffer if not which(m)]
        if len(kept) == len(buffer):
            return 0
        dropped = [m for m in buffer if which(m)]
        buffer.clear()
        buffer.extend(kept)
    counts = reader._counts
    counts["messages"] -= len(dropped)
    counts["bytes"] -= message_bytes(dropped)
    return len(dropped)


async def fill(reader: Reader, take: int = 0) -> list[Message] | None:
    """Fetch once, and add the messages of partitions the reader owns to its buffer.

    A pending `set_offset` is applied first. A fetch may bring nothing, when nothing
    arrived within `max_wait`; the caller fetches again.

    Args:
        reader: The reader to fill.
        take: When the buffer is empty and the fetch brings one partition's messages, at
            most `take` of them, return them instead of buffering them (a batch read then
            copies nothing). 0 always buffers.

    Returns:
        The messages taken, or None when they went to the buffer (or there were none).

    Raises:
        ClosedError: The reader is closed, or was closed during the fetch.
        Error: The fetch failed (counted in the stats' errors).
    """
    consumer = reader._open_consumer()
    reader._tasks.check()
    if reader._pending_seek is not None:
        await reader._apply_seek(consumer)
    config = reader.config
    try:
        with reader._calls.wait("fetching"), map_errors(brokers=config.brokers, topic=config.topic):
            batch: dict[Any, list[Any]] = await consumer.getmany(
                timeout_ms=max(100, int(config.max_wait * 1000)),
                max_records=config.queue_capacity,
            )
    except ClosedError:
        raise ClosedError(f"the Reader is {reader._state}") from None
    except Error:
        reader._counts["errors"] += 1
        raise
    if reader._state != "open":
        raise ClosedError(f"the Reader is {reader._state}")
    health = reader._health
    if not batch:
        with reader._calls.wait("fetching"):
            await health.after_empty_fetch(consumer, reader._assigned)
        return None
    if health.down:
        health.answered()
    counts = reader._counts
    counts["fetches"] += 1
    factory = reader._factory
    if factory is not None:
        # Every message getmany built is in `batch`: take their bytes now, and give back
        # those of partitions dropped below.
        counts["bytes"] += factory.bytes
        factory.bytes = 0
    assigned = reader._assigned
    kept: list[list[Message]] = []
    for tp, records in batch.items():
        if not records:
            continue
        key = (tp.topic, tp.partition)
        built = records[0].__class__ is Message
        if key not in assigned:
            # Fetched just before a revocation: another member owns these now.
            if built:
                counts["bytes"] -= message_bytes(records)
            continue
        if built:
            kept.append(to_messages(reader, key, records, -1))
        else:
            high_water = consumer.highwater(tp)
            kept.append(to_messages(reader, key, records, -1 if high_water is None else high_water))
    buffer = reader._buffer
    # Only an empty buffer may be bypassed: what it holds was fetched earlier and goes first.
    if len(kept) == 1 and not buffer and len(kept[0]) <= take:
        return kept[0]
    for messages in kept:
        buffer.extend(messages)
    return None


def to_messages(
    reader: Reader, key: TopicPartition, records: list[Any], high_water_mark: int
) -> list[Message]:
    """Take one partition's fetched records as messages, and count them as read.

    Records usually arrive as messages already (see `aiomq._internal.records`);
    otherwise they are converted here. Counting happens once per fetch rather than per
    message returned: what is still buffered is subtracted when `stats()` or `offset`
    ask (see `aiomq._internal.positions`).

    Args:
        reader: The reader whose fetch brought the records.
        key: The `(topic, partition)` the records come from.
        records: The fetched records (messages, or aiokafka's `ConsumerRecord`s).
        high_water_mark: The partition's high water mark at the fetch, or -1.

    Returns:
        The messages, in offset order.
    """
    if not records:
        return []
    counts = reader._counts
    if records[0].__class__ is Message:
        messages: list[Message] = records
        factory = reader._factory
        if factory is not None:
            counts["bytes"] += factory.bytes
            factory.bytes = 0
    else:
        messages = reader._converter.convert(key, records, high_water_mark)
    reader._fetched_next[key] = messages[-1][2] + 1
    counts["messages"] += len(messages)
    return messages


class RecordConverter:
    """Turns aiokafka's `ConsumerRecord`s into messages, when the record hook is missing.

    With the hook (see `aiomq._internal.records`) records arrive as messages already, and
    this is not used. Not safe from several threads; one event loop's tasks may share it.
    """

    __slots__ = ("_counts", "_last_dt", "_last_ts")

    def __init__(self, counts: dict[str, int]) -> None:
        self._counts = counts
        self._last_ts = -1
        self._last_dt = datetime.fromtimestamp(0, UTC)

    def convert(
        self, key: TopicPartition, records: list[Any], high_water_mark: int
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
