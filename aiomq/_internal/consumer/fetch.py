"""How a Reader gets its messages: the aiokafka consumer, its fetches, its records' conversion.

A reader fetches through one `AIOKafkaConsumer`, built here from its settings. `fill`
moves one fetch into the reader's buffer (in its `ReaderState`), where `fetch_message`,
`fetch_batch` and `read_message` take messages from. aiokafka usually builds the
messages itself (see `aiomq._internal.kafka.record_hook`); `RecordConverter` converts its records
when it does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition as _TP

from aiomq._internal.kafka.connect import connection_options
from aiomq._internal.kafka.consumer import client_of
from aiomq._internal.kafka.errors import map_errors
from aiomq._internal.kafka.metadata import topic_partitions
from aiomq._internal.kafka.record_hook import MessageFactory, message_bytes
from aiomq.errors import (
    ClosedError,
    Error,
    RequestTimeoutError,
    UnknownTopicOrPartitionError,
)
from aiomq.message import FIRST_OFFSET, LAST_OFFSET, Message

if TYPE_CHECKING:
    from aiomq._internal.consumer.state import Key, ReaderSettings, ReaderState

__all__ = [
    "apply_seek",
    "check_partition",
    "fill",
    "new_consumer",
    "to_messages",
]

_new_message: Final = tuple.__new__


def new_consumer(
    config: ReaderSettings,
    factory: MessageFactory | None,
    *,
    earliest: bool,
    read_committed: bool,
) -> AIOKafkaConsumer:
    """Build, without starting it, the aiokafka consumer a reader with `config` reads through.

    Commits are left to the reader: aiokafka never commits by itself.

    Args:
        config: The reader's settings.
        factory: The record hook's marker (see `aiomq._internal.kafka.record_hook`), so that the
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


async def fill(state: ReaderState, take: int = 0) -> list[Message] | None:
    """Fetch once, and add the messages of partitions the reader owns to its buffer.

    A pending `set_offset` is applied first. A fetch may bring nothing, when nothing
    arrived within `max_wait`; the caller fetches again.

    Args:
        state: The state of the reader to fill.
        take: When the buffer is empty and the fetch brings one partition's messages, at
            most `take` of them, return them instead of buffering them (a batch read then
            copies nothing). 0 always buffers.

    Returns:
        The messages taken, or None when they went to the buffer (or there were none).

    Raises:
        ClosedError: The reader is closed, or was closed during the fetch.
        Error: The fetch failed (counted in the stats' errors).
    """
    consumer = state.open_consumer()
    state.tasks.check()
    if state.pending_seek is not None:
        await apply_seek(state, consumer)
    config = state.settings
    try:
        with state.calls.wait("fetching"), map_errors(brokers=config.brokers, topic=config.topic):
            batch: dict[Any, list[Any]] = await consumer.getmany(
                timeout_ms=max(100, int(config.max_wait * 1000)),
                max_records=config.queue_capacity,
            )
    except ClosedError:
        raise ClosedError(f"the Reader is {state.life}") from None
    except Error:
        state.counts["errors"] += 1
        raise
    state.check_open()
    health = state.health
    if not batch:
        with state.calls.wait("fetching"):
            await health.after_empty_fetch(consumer, state.assigned)
        return None
    if health.down:
        health.answered()
    counts = state.counts
    counts["fetches"] += 1
    factory = state.factory
    if factory is not None:
        # Every message getmany built is in `batch`: take their bytes now, and give back
        # those of partitions dropped below.
        counts["bytes"] += factory.bytes
        factory.bytes = 0
    assigned = state.assigned
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
            kept.append(to_messages(state, key, records, -1))
        else:
            high_water = consumer.highwater(tp)
            kept.append(to_messages(state, key, records, -1 if high_water is None else high_water))
    buffer = state.buffer
    # Only an empty buffer may be bypassed: what it holds was fetched earlier and goes first.
    if len(kept) == 1 and not buffer and len(kept[0]) <= take:
        return kept[0]
    for messages in kept:
        buffer.extend(messages)
    return None


async def check_partition(
    consumer: AIOKafkaConsumer, key: Key, brokers: Sequence[str], within: float
) -> None:
    """Refuse a partition that does not exist, instead of waiting for it forever.

    Raises:
        UnknownTopicOrPartitionError: The topic does not exist, or has no such partition
            (the message gives the partition count).
        RequestTimeoutError: No metadata arrived within `within` seconds.
    """
    topic, partition = key
    try:
        async with asyncio.timeout(within):
            partitions = await topic_partitions(
                client_of(consumer), topic, allow_create=False, brokers=brokers
            )
    except TimeoutError:
        raise RequestTimeoutError(
            f"the metadata of topic {topic!r} did not arrive within {within:g} s"
        ) from None
    if partition not in partitions:
        raise UnknownTopicOrPartitionError(
            topic=topic,
            partition=partition,
            detail=f"the topic has {len(partitions)} partitions (0 to {len(partitions) - 1})",
        )


async def apply_seek(state: ReaderState, consumer: AIOKafkaConsumer) -> None:
    """Move a single-partition reader to the offset `set_offset` asked for.

    FIRST_OFFSET and LAST_OFFSET are looked up, then sought to: aiokafka's own
    seek_to_beginning/seek_to_end can be overtaken by the answer to the reset it started
    when the partition was assigned, which would leave the reader at the other end.
    """
    key = state.partition
    offset = state.pending_seek
    assert key is not None and offset is not None
    tp = _TP(*key)
    with map_errors(brokers=state.settings.brokers, topic=tp.topic, partition=tp.partition):
        if offset == FIRST_OFFSET:
            offset = (await consumer.beginning_offsets([tp]))[tp]
        elif offset == LAST_OFFSET:
            offset = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, offset)
    state.pending_seek = None
    state.drop_buffered()
    state.fetched_next[key] = offset


async def fetch_partition(state: ReaderState, key: Key, ended: asyncio.Event) -> list[Message]:
    """Fetch one partition's next messages for a group handler's claim.

    An empty fetch lets the outage watch probe the brokers, as a reader's own reads do.

    Returns:
        The messages (possibly none); none either when `ended` was set first: records not
        yet taken then stay with the broker and go to the partition's next owner.

    Raises:
        BrokerConnectionError: The cluster has been unreachable for longer than
            `unavailable_timeout`.
    """
    consumer = state.consumer
    if consumer is None or not state.life.is_open:
        return []
    settings = state.settings
    tp = _TP(*key)
    fetch = asyncio.ensure_future(
        consumer.getmany(
            tp,
            timeout_ms=max(100, int(settings.max_wait * 1000)),
            max_records=settings.queue_capacity,
        )
    )
    waiting = asyncio.ensure_future(ended.wait())
    try:
        with map_errors(brokers=settings.brokers, topic=key[0]):
            await asyncio.wait((fetch, waiting), return_when=asyncio.FIRST_COMPLETED)
            if not fetch.done():
                return []
            batch = fetch.result()
    finally:
        # Neither is left running, nor cancelled without being awaited.
        for task in (fetch, waiting):
            task.cancel()
        await asyncio.gather(fetch, waiting, return_exceptions=True)
    records = batch.get(tp)
    health = state.health
    if not records:
        await health.after_empty_fetch(consumer, state.assigned)
        return []
    if health.down:
        health.answered()
    high_water = consumer.highwater(tp)
    return to_messages(state, key, records, -1 if high_water is None else high_water)


def to_messages(
    state: ReaderState, key: Key, records: list[Any], high_water_mark: int
) -> list[Message]:
    """Take one partition's fetched records as messages, and count them as read.

    Records usually arrive as messages already (see `aiomq._internal.kafka.record_hook`);
    otherwise they are converted here. Counting happens once per fetch rather than per
    message returned: what is still buffered is subtracted when `stats()` or `offset`
    ask (see `aiomq._internal.consumer.positions`).

    Args:
        state: The state of the reader whose fetch brought the records.
        key: The `(topic, partition)` the records come from.
        records: The fetched records (messages, or aiokafka's `ConsumerRecord`s).
        high_water_mark: The partition's high water mark at the fetch, or -1.

    Returns:
        The messages, in offset order.
    """
    if not records:
        return []
    counts = state.counts
    if records[0].__class__ is Message:
        messages: list[Message] = records
        factory = state.factory
        if factory is not None:
            counts["bytes"] += factory.bytes
            factory.bytes = 0
    else:
        messages = state.converter.convert(key, records, high_water_mark)
    state.fetched_next[key] = messages[-1][2] + 1
    counts["messages"] += len(messages)
    return messages
