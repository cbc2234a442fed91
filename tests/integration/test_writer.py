"""The Writer against a real broker: what it writes, where, in which order, and what it reports.

Every test writes to a topic of its own and checks the outcome by reading the topic back
with a plain aiokafka consumer, never with aiomq's own reader.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord
from structlog.testing import capture_logs

from aiomq import (
    BackgroundTaskError,
    ClosedError,
    Compression,
    Error,
    InvalidMessageError,
    Message,
    MessageTooLargeError,
    RoundRobin,
    UnknownTopicOrPartitionError,
    WriteErrors,
    Writer,
)

# Generous upper bound for any wait: everything here takes well under a second on the
# embedded broker, so reaching it means a hang, not a slow machine.
DEADLINE = 30.0

Record = ConsumerRecord[bytes, bytes]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(when: datetime) -> int:
    """Milliseconds since the epoch, in exact integer arithmetic (Kafka's record timestamp)."""
    return (when - EPOCH) // timedelta(milliseconds=1)


async def create_topic(bootstrap_servers: str, topic: str, partitions: int) -> None:
    """Create `topic` with `partitions` partitions and one replica, and wait until it is usable.

    Apache Kafka creates topics asynchronously: the wait is for every partition to have a
    leader. The embedded broker has them at once.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
        async with asyncio.timeout(DEADLINE):
            while True:
                (described,) = await admin.describe_topics([topic])
                leaders = [p["leader"] for p in described["partitions"] if not p["error_code"]]
                if len(leaders) == partitions and min(leaders) >= 0:
                    break
                # Polling: the admin client offers nothing to wait on.
                await asyncio.sleep(0.05)
    finally:
        await admin.close()


def partitions_of(topic: str, count: int) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(count)]


async def read_all(bootstrap_servers: str, partitions: Sequence[TopicPartition]) -> list[Record]:
    """Every record in `partitions`, by partition then offset.

    Reads until the consumer's position reaches the high water mark its fetches report
    for every partition, so an empty partition is known to be empty, and a duplicate
    shows up as an extra record. (Tansu's ListOffsets "latest" is unreliable, the
    fetch's high water mark is not.)
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        retry_backoff_ms=50,
        # An empty partition answers a fetch only after this wait: keep it short.
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    records: list[Record] = []
    try:
        consumer.assign(list(partitions))
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(DEADLINE):
            while True:
                caught_up = True
                for tp in partitions:
                    highwater = consumer.highwater(tp)
                    if highwater is None or await consumer.position(tp) < highwater:
                        caught_up = False
                if caught_up:
                    break
                batches = await consumer.getmany(timeout_ms=100)
                for batch in batches.values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))


def values_of(records: Sequence[Record]) -> list[bytes | None]:
    return [r.value for r in records]


def numbered(count: int, *, prefix: str = "m") -> list[Message]:
    """`count` keyed messages whose values say their place in the input."""
    return [
        Message(key=f"{prefix}-key-{i}".encode(), value=f"{prefix}-{i}".encode(), writer_data=i)
        for i in range(count)
    ]


# -- what a write returns and what lands in the topic ------------------------------------


async def test_a_synchronous_write_returns_the_message_with_its_topic_partition_offset_and_time(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    tag = object()

    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        (written,) = await writer.write_messages(Message(key=b"k", value=b"v", writer_data=tag))

    assert (written.topic, written.partition, written.key, written.value) == (topic, 0, b"k", b"v")
    assert written.offset >= 0
    assert written.time is not None
    assert written.time.tzinfo is not None
    assert written.writer_data is tag
    (record,) = await read_all(bootstrap_servers, partitions_of(topic, 1))
    assert (record.offset, record.value) == (written.offset, b"v")
    assert record.timestamp == epoch_ms(written.time)


async def test_results_are_aligned_with_the_input_with_consecutive_offsets_per_partition(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    messages = numbered(200)

    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        written = await writer.write_messages(*messages)

    assert [(m.key, m.value, m.writer_data) for m in written] == [
        (m.key, m.value, m.writer_data) for m in messages
    ]
    offsets: defaultdict[int, list[int]] = defaultdict(list)
    for message in written:
        offsets[message.partition].append(message.offset)
    assert sorted(offsets) == [0, 1, 2, 3], "200 distinct keys should reach every partition"
    for partition, in_input_order in offsets.items():
        first = in_input_order[0]
        assert in_input_order == list(range(first, first + len(in_input_order))), partition
    records = await read_all(bootstrap_servers, partitions_of(topic, 4))
    assert {(r.partition, r.offset): r.value for r in records} == {
        (m.partition, m.offset): m.value for m in written
    }


async def test_keys_values_headers_and_timestamps_are_read_back_as_written(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    when = datetime(2021, 5, 17, 12, 30, 15, 123000, tzinfo=UTC)
    messages = [
        Message(key=None, value=b"no key"),
        Message(key=b"no value", value=None),
        Message(key=b"", value=b""),
        Message(key=b"k", value=b"v", headers=[("b", b"1"), ("a", b"2"), ("b", b"3")]),
        Message(key=b"dated", value=b"d", time=when),
    ]

    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        written = await writer.write_messages(*messages)

    records = await read_all(bootstrap_servers, partitions_of(topic, 1))
    assert [(r.key, r.value) for r in records] == [(m.key, m.value) for m in messages]
    assert [list(r.headers) for r in records] == [
        [],
        [],
        [],
        [("b", b"1"), ("a", b"2"), ("b", b"3")],
        [],
    ]
    assert records[4].timestamp == epoch_ms(when)
    assert written[4].time == when
    assert [r.offset for r in records] == [m.offset for m in written]


async def test_an_explicit_message_time_is_stored_to_the_exact_millisecond(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    # Times whose float timestamp() * 1000 falls just below the whole millisecond.
    times = [
        datetime(2004, 10, 28, 23, 41, 18, 916000, tzinfo=UTC),
        datetime(1987, 4, 2, 13, 35, 29, 943000, tzinfo=UTC),
        datetime(1978, 9, 10, 7, 30, 21, 965000, tzinfo=UTC),
    ]

    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        await writer.write_messages(*(Message(value=b"dated", time=when) for when in times))

    records = await read_all(bootstrap_servers, partitions_of(topic, 1))
    assert [r.timestamp for r in records] == [epoch_ms(when) for when in times]


async def test_keyed_messages_from_concurrent_tasks_keep_each_tasks_order_on_one_partition(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    tasks, calls = 12, 20

    async def write_in_order(writer: Writer, task: int) -> None:
        key = f"task-{task}".encode()
        sequence = 0
        for call in range(calls):
            # One to three messages per call, so calls of several tasks share batches.
            size = 1 + (task + call) % 3
            await writer.write_messages(
                *(Message(key=key, value=b"%d" % (sequence + i)) for i in range(size))
            )
            sequence += size

    async with (
        Writer(brokers=[bootstrap_servers], topic=topic) as writer,
        asyncio.TaskGroup() as group,
    ):
        for task in range(tasks):
            group.create_task(write_in_order(writer, task))

    per_key: defaultdict[bytes | None, list[Record]] = defaultdict(list)
    for record in await read_all(bootstrap_servers, partitions_of(topic, 4)):
        per_key[record.key].append(record)
    assert sorted(per_key, key=str) == sorted((f"task-{t}".encode() for t in range(tasks)), key=str)
    for task in range(tasks):
        records = per_key[f"task-{task}".encode()]
        written = sum(1 + (task + call) % 3 for call in range(calls))
        assert len({r.partition for r in records}) == 1, task
        assert values_of(records) == [b"%d" % i for i in range(written)], task


@pytest.mark.parametrize("codec", list(Compression), ids=lambda c: c.name)
async def test_every_compression_codec_round_trips(
    bootstrap_servers: str, topic: str, codec: Compression
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    messages = [
        Message(key=b"k%d" % i, value=b"compressible " * (1 + i % 7), headers=[("i", b"%d" % i)])
        for i in range(50)
    ]

    async with Writer(brokers=[bootstrap_servers], topic=topic, compression=codec) as writer:
        written = await writer.write_messages(*messages)

    records = await read_all(bootstrap_servers, partitions_of(topic, 1))
    assert [(r.key, r.value, list(r.headers)) for r in records] == [
        (m.key, m.value, list(m.headers)) for m in messages
    ]
    assert [r.offset for r in records] == [m.offset for m in written]


# -- topics and partitions ----------------------------------------------------------------


async def test_a_writer_without_a_topic_writes_each_message_to_the_topic_it_names(
    bootstrap_servers: str, topic: str
) -> None:
    first, second = f"{topic}-a", f"{topic}-b"
    await create_topic(bootstrap_servers, first, 1)
    await create_topic(bootstrap_servers, second, 1)
    messages = [Message(topic=(first, second)[i % 2], value=b"%d" % i) for i in range(10)]

    async with Writer(brokers=[bootstrap_servers]) as writer:
        written = await writer.write_messages(*messages)

    assert [m.topic for m in written] == [m.topic for m in messages]
    records = await read_all(
        bootstrap_servers, [TopicPartition(first, 0), TopicPartition(second, 0)]
    )
    assert [(r.topic, r.value) for r in records] == [
        (first, b"0"),
        (first, b"2"),
        (first, b"4"),
        (first, b"6"),
        (first, b"8"),
        (second, b"1"),
        (second, b"3"),
        (second, b"5"),
        (second, b"7"),
        (second, b"9"),
    ]


async def test_a_message_naming_a_topic_is_refused_by_a_writer_with_a_topic_and_nothing_is_written(
    bootstrap_servers: str, topic: str
) -> None:
    other = f"{topic}-other"
    await create_topic(bootstrap_servers, topic, 1)
    await create_topic(bootstrap_servers, other, 1)

    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        with pytest.raises(InvalidMessageError, match=other):
            await writer.write_messages(Message(value=b"fine"), Message(topic=other, value=b"no"))
        assert writer.stats().writes == 0

    records = await read_all(
        bootstrap_servers, [TopicPartition(topic, 0), TopicPartition(other, 0)]
    )
    assert records == []


async def test_a_message_without_a_topic_is_refused_by_a_writer_without_one_and_nothing_is_written(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)

    async with Writer(brokers=[bootstrap_servers]) as writer:
        with pytest.raises(InvalidMessageError, match="no topic"):
            await writer.write_messages(Message(topic=topic, value=b"fine"), Message(value=b"no"))
        assert writer.stats().writes == 0

    assert await read_all(bootstrap_servers, partitions_of(topic, 1)) == []


async def test_writing_to_a_missing_topic_raises_unknown_topic_naming_it(
    bootstrap_servers: str, topic: str
) -> None:
    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        with pytest.raises(UnknownTopicOrPartitionError) as caught:
            await writer.write_messages(Message(value=b"v"))

    assert caught.value.topic == topic
    assert topic in str(caught.value)


async def test_a_missing_topic_is_created_and_written_when_auto_creation_is_allowed(
    bootstrap_servers: str, topic: str
) -> None:
    async with Writer(
        brokers=[bootstrap_servers], topic=topic, allow_auto_topic_creation=True
    ) as writer:
        (written,) = await writer.write_messages(Message(key=b"k", value=b"created"))

    records = await read_all(bootstrap_servers, [TopicPartition(topic, written.partition)])
    assert [(r.offset, r.value) for r in records] == [(written.offset, b"created")]


async def test_a_message_naming_its_partition_bypasses_the_balancer(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    balanced: list[Message] = []

    def balancer(message: Message, partitions: Sequence[int]) -> int:
        balanced.append(message)
        return partitions[0]

    async with Writer(brokers=[bootstrap_servers], topic=topic, balancer=balancer) as writer:
        written = await writer.write_messages(
            Message(value=b"two", partition=2), Message(value=b"three", partition=3)
        )

    assert balanced == []
    assert [m.partition for m in written] == [2, 3]
    records = await read_all(bootstrap_servers, partitions_of(topic, 4))
    assert [(r.partition, r.value) for r in records] == [(2, b"two"), (3, b"three")]


async def test_writing_to_a_partition_that_does_not_exist_raises_unknown_partition_naming_it(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)

    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        with pytest.raises(UnknownTopicOrPartitionError) as caught:
            await writer.write_messages(Message(value=b"fine"), Message(value=b"no", partition=7))

    assert (caught.value.topic, caught.value.partition) == (topic, 7)
    assert topic in str(caught.value)
    assert "partition 7" in str(caught.value)
    assert await read_all(bootstrap_servers, partitions_of(topic, 4)) == []


@pytest.mark.parametrize("partition", ["1", None, 1.0, True], ids=repr)
async def test_a_message_whose_partition_is_not_an_int_is_refused_naming_it_and_nothing_is_written(
    bootstrap_servers: str, topic: str, partition: object
) -> None:
    await create_topic(bootstrap_servers, topic, 2)

    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        with pytest.raises(InvalidMessageError) as caught:
            await writer.write_messages(
                Message(value=b"fine"),
                Message(value=b"no", partition=partition),  # type: ignore[arg-type]
            )
        assert writer.stats().writes == 0

    assert "message 1" in str(caught.value)
    assert f"partition must be an int, not {partition!r}" in str(caught.value)
    assert await read_all(bootstrap_servers, partitions_of(topic, 2)) == []


# -- message size -------------------------------------------------------------------------


async def test_a_message_larger_than_batch_bytes_is_refused_and_nothing_of_the_call_is_written(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)

    async with Writer(brokers=[bootstrap_servers], topic=topic, batch_bytes=1000) as writer:
        with pytest.raises(MessageTooLargeError) as caught:
            await writer.write_messages(Message(value=b"small"), Message(value=b"x" * 2000))

    error = caught.value
    assert error.limit == 1000
    assert error.size is not None
    assert error.size > 2000
    assert str(error.size) in str(error)
    assert "1000" in str(error)
    assert await read_all(bootstrap_servers, partitions_of(topic, 1)) == []


async def test_a_large_message_under_the_limit_is_written_and_read_back(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    payload = random.Random(7).randbytes(900_000)

    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        await writer.write_messages(Message(key=b"big", value=payload))

    (record,) = await read_all(bootstrap_servers, partitions_of(topic, 1))
    assert record.value == payload


# -- balancers ----------------------------------------------------------------------------


async def test_round_robin_spreads_messages_evenly_over_every_partition(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)

    async with Writer(brokers=[bootstrap_servers], topic=topic, balancer=RoundRobin()) as writer:
        written = await writer.write_messages(*(Message(value=b"%d" % i) for i in range(12)))

    assert [m.partition for m in written] == [0, 1, 2, 3] * 3
    records = await read_all(bootstrap_servers, partitions_of(topic, 4))
    assert Counter(r.partition for r in records) == {0: 3, 1: 3, 2: 3, 3: 3}


async def test_a_function_used_as_balancer_picks_each_partition_from_those_offered(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    offered: list[tuple[int, ...]] = []

    def last_partition(message: Message, partitions: Sequence[int]) -> int:
        offered.append(tuple(partitions))
        return partitions[-1]

    async with Writer(brokers=[bootstrap_servers], topic=topic, balancer=last_partition) as writer:
        written = await writer.write_messages(*(Message(value=b"%d" % i) for i in range(5)))

    assert offered == [(0, 1, 2, 3)] * 5
    assert {m.partition for m in written} == {3}
    records = await read_all(bootstrap_servers, partitions_of(topic, 4))
    assert [(r.partition, r.value) for r in records] == [(3, b"%d" % i) for i in range(5)]


# -- async mode ---------------------------------------------------------------------------


async def test_in_async_mode_write_messages_returns_an_empty_list_before_anything_is_delivered(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    delivered: list[Message] = []

    def completion(messages: list[Message], error: Error | None) -> None:
        delivered.extend(messages)

    async with Writer(
        brokers=[bootstrap_servers], topic=topic, async_mode=True, completion=completion
    ) as writer:
        result = await writer.write_messages(*numbered(20))
        # No await between queueing and returning: nothing can have been sent yet.
        assert result == []
        assert delivered == []
        assert writer.stats().queued == 20

    assert len(delivered) == 20


@pytest.mark.parametrize("kind", ["function", "coroutine"])
async def test_an_async_mode_completion_receives_every_message_once_with_partition_and_offset(
    bootstrap_servers: str, topic: str, kind: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    count = 300
    outcomes: list[tuple[Message, Error | None]] = []

    def record(messages: list[Message], error: Error | None) -> None:
        outcomes.extend((m, error) for m in messages)

    async def record_later(messages: list[Message], error: Error | None) -> None:
        await asyncio.sleep(0)
        record(messages, error)

    completion = record if kind == "function" else record_later
    async with Writer(
        brokers=[bootstrap_servers], topic=topic, async_mode=True, completion=completion
    ) as writer:
        for start in range(0, count, 30):
            await writer.write_messages(*numbered(count)[start : start + 30])

    assert sorted(m.writer_data for m, _ in outcomes) == list(range(count))
    assert [e for _, e in outcomes if e is not None] == []
    assert all(m.topic == topic and m.partition in range(4) for m, _ in outcomes)
    places = {(m.partition, m.offset) for m, _ in outcomes}
    assert len(places) == count
    records = await read_all(bootstrap_servers, partitions_of(topic, 4))
    assert {(r.partition, r.offset): r.value for r in records} == {
        (m.partition, m.offset): m.value for m, _ in outcomes
    }


async def test_a_completion_may_take_the_messages_as_given_instead_of_as_written(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    given = numbered(200)
    received: list[Message] = []

    def count(messages: list[Message], error: Error | None) -> None:
        assert error is None
        received.extend(messages)

    async with Writer(
        brokers=[bootstrap_servers],
        topic=topic,
        async_mode=True,
        completion=count,
        completion_written=False,
    ) as writer:
        await writer.write_messages(*given)
    assert len(received) == 200
    # The very objects given: no partition or offset filled in.
    assert {id(m) for m in received} == {id(m) for m in given}
    assert {m.partition for m in received} == {-1}
    records = await read_all(bootstrap_servers, partitions_of(topic, 4))
    assert sorted(r.value or b"" for r in records) == sorted(m.value or b"" for m in given)


# Back pressure: a write waits while the writer holds `queue_capacity` messages or more, so
# at most one call's messages can take it past the capacity.


async def test_a_loop_of_async_writes_holds_at_most_queue_capacity_plus_one_call(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    capacity, calls, per_call = 10, 40, 10
    delivered: list[Message] = []
    queued_after_call: list[int] = []

    def completion(messages: list[Message], error: Error | None) -> None:
        delivered.extend(messages)

    async with Writer(
        brokers=[bootstrap_servers],
        topic=topic,
        async_mode=True,
        completion=completion,
        queue_capacity=capacity,
    ) as writer:
        for call in range(calls):
            await writer.write_messages(*numbered(per_call, prefix=str(call)))
            queued = writer.stats().queued
            queued_after_call.append(queued)
            # Every accepted message is either still queued or already settled.
            assert len(delivered) == (call + 1) * per_call - queued

    assert max(queued_after_call) <= capacity + per_call
    assert len(delivered) == calls * per_call


async def test_concurrent_async_writes_hold_at_most_queue_capacity_plus_one_call(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    capacity, tasks, per_task = 10, 8, 60
    peak = 0

    async with Writer(
        brokers=[bootstrap_servers], topic=topic, async_mode=True, queue_capacity=capacity
    ) as writer:

        async def watch() -> None:
            # Samples the queue at every turn of the event loop; it is a probe, not a wait.
            nonlocal peak
            while True:
                peak = max(peak, writer.stats().queued)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        try:
            async with asyncio.TaskGroup() as group:
                for task in range(tasks):
                    group.create_task(writer.write_messages(*numbered(per_task, prefix=str(task))))
        finally:
            watcher.cancel()

    # Without back pressure all tasks * per_task messages would be queued at once.
    assert 0 < peak <= capacity + per_task
    assert writer.stats().messages == tasks * per_task
    records = await read_all(bootstrap_servers, partitions_of(topic, 4))
    assert len(records) == tasks * per_task


# -- stats --------------------------------------------------------------------------------


async def test_stats_count_the_writes_messages_and_batches_written(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)

    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        # Sequential calls to one partition: each call's messages leave as one batch.
        for size in (1, 2, 3):
            await writer.write_messages(*numbered(size))
        stats = writer.stats()

    assert (stats.writes, stats.messages, stats.batches) == (3, 6, 3)
    assert (stats.batch_messages_max, stats.batch_messages_avg) == (3, 2.0)
    assert (stats.errors, stats.retries, stats.queued) == (0, 0, 0)
    assert stats.batch_bytes_avg > 0


async def test_stats_bytes_count_the_keys_values_and_headers_written_without_batch_overhead(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    messages = [
        Message(key=b"key", value=b"value" * i, headers=[("header", b"h" * i)]) for i in range(1, 6)
    ]
    content = sum(
        len(m.key or b"") + len(m.value or b"") + sum(len(k) + len(v) for k, v in m.headers)
        for m in messages
    )

    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        await writer.write_messages(*messages)
        stats = writer.stats()

    # The content alone: no length prefixes, no record or batch framing.
    assert stats.bytes == content


# -- closing ------------------------------------------------------------------------------


async def test_closing_an_async_writer_delivers_everything_it_had_queued(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    count = 1000

    async with Writer(brokers=[bootstrap_servers], topic=topic, async_mode=True) as writer:
        for start in range(0, count, 100):
            await writer.write_messages(*numbered(count)[start : start + 100])
        assert writer.stats().queued > 0, "the test needs messages still queued at close"

    assert (writer.stats().messages, writer.stats().errors, writer.stats().queued) == (count, 0, 0)
    records = await read_all(bootstrap_servers, partitions_of(topic, 4))
    assert Counter(values_of(records)) == Counter(m.value for m in numbered(count))


async def test_writing_to_a_closed_writer_raises_closed_error(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        await writer.write_messages(Message(value=b"before"))

    with pytest.raises(ClosedError):
        await writer.write_messages(Message(value=b"after"))
    assert values_of(await read_all(bootstrap_servers, partitions_of(topic, 1))) == [b"before"]


async def test_closing_a_writer_twice_is_harmless(bootstrap_servers: str, topic: str) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        await writer.write_messages(Message(value=b"v"))
        await writer.aclose()
        await writer.aclose()

    await writer.aclose()
    assert writer.stats().messages == 1


async def test_a_closed_writer_cannot_be_opened_again(bootstrap_servers: str, topic: str) -> None:
    writer = Writer(brokers=[bootstrap_servers], topic=topic)
    async with writer:
        pass

    with pytest.raises(ClosedError):
        async with writer:
            pass


async def test_no_task_of_the_writer_is_left_running_when_aclose_returns(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 2)
    started: list[int] = []
    ended: list[int] = []

    async def completion(messages: list[Message], error: Error | None) -> None:
        started.append(len(messages))
        try:
            await asyncio.Event().wait()  # only the writer's closing ends it
        finally:
            # Clean-up that takes a while: aclose() must wait for it, not just cancel.
            await asyncio.sleep(0.2)
            ended.append(len(messages))

    before = asyncio.all_tasks()
    async with Writer(
        brokers=[bootstrap_servers], topic=topic, completion=completion, close_timeout=0.1
    ) as writer:
        await writer.write_messages(*numbered(20))

    assert asyncio.all_tasks() - before == set()
    assert sum(started) == 20
    assert sorted(ended) == sorted(started)


async def test_a_background_task_failing_unexpectedly_is_logged_and_fails_the_next_call_and_aclose(
    bootstrap_servers: str, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    bug = RuntimeError("a bug in the batch builder")

    def build_batch(*args: object) -> None:
        raise bug

    writer = Writer(brokers=[bootstrap_servers], topic=topic)
    with capture_logs() as logs:
        async with writer:
            assert writer._producer is not None
            monkeypatch.setattr(writer._producer, "_build_batch", build_batch)
            with pytest.raises(WriteErrors) as first:
                await writer.write_messages(Message(value=b"lost"))
            with pytest.raises(BackgroundTaskError) as next_call:
                await writer.write_messages(Message(value=b"refused"))
            with pytest.raises(BackgroundTaskError) as closing:
                await writer.aclose()

    (reason,) = first.value.errors
    assert reason is not None and reason.__cause__ is bug
    for caught in (next_call, closing):
        assert not isinstance(caught.value, WriteErrors | ClosedError)
        assert caught.value.__cause__ is bug
        assert repr(topic) in str(caught.value)
    failures = [entry for entry in logs if entry["event"] == "writer_failed"]
    assert [(f["log_level"], f["topic"], f["partition"]) for f in failures] == [("error", topic, 0)]
    assert writer.stats().messages == 0
    assert await read_all(bootstrap_servers, partitions_of(topic, 1)) == []


# -- cancellation -------------------------------------------------------------------------


async def write_until_expired(
    writer: Writer, messages: Sequence[Message], scope: str, expire: list[Callable[[], None]]
) -> None:
    """Write `messages` inside a time limit of kind `scope`, with no deadline of its own.

    Arms `expire` with a function that ends the time limit at once.
    """
    if scope == "asyncio.timeout":
        async with asyncio.timeout(None) as timeout:
            loop = asyncio.get_running_loop()
            expire.append(lambda: timeout.reschedule(loop.time()))
            await writer.write_messages(*messages)
    else:
        with anyio.fail_after(None) as cancel_scope:
            expire.append(lambda: setattr(cancel_scope, "deadline", anyio.current_time()))
            await writer.write_messages(*messages)


@pytest.mark.parametrize("scope", ["asyncio.timeout", "anyio.fail_after"])
async def test_a_write_cut_short_by_a_timeout_delivers_exactly_the_messages_it_had_accepted(
    bootstrap_servers: str, topic: str, scope: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    total, capacity = 1000, 10
    settled: list[int] = []
    # The first settled batch ends the caller's time limit, so the call is cut short while
    # most of its messages still wait for room in the queue.
    expire: list[Callable[[], None]] = []

    def completion(messages: list[Message], error: Error | None) -> None:
        settled.extend(m.writer_data for m in messages)
        if expire:
            expire.pop()()

    messages = [Message(value=b"%d" % i, writer_data=i) for i in range(total)]
    async with Writer(
        brokers=[bootstrap_servers],
        topic=topic,
        balancer=RoundRobin(),
        queue_capacity=capacity,
        batch_size=capacity,
        completion=completion,
    ) as writer:
        with pytest.raises(TimeoutError):
            await write_until_expired(writer, messages, scope, expire)

    stats = writer.stats()
    accepted = len(settled)
    assert 0 < accepted < total, "the timeout should cut the call short"
    assert len(set(settled)) == accepted, "a message was settled twice"
    assert (stats.messages + stats.errors, stats.errors, stats.queued) == (accepted, 0, 0)
    records = await read_all(bootstrap_servers, partitions_of(topic, 4))
    assert sorted(int(v) for v in values_of(records) if v is not None) == sorted(settled)
    for partition in range(4):
        in_partition = [int(r.value or b"") for r in records if r.partition == partition]
        assert in_partition == sorted(in_partition), f"partition {partition} out of input order"


async def test_writes_cancelled_at_random_points_never_lose_or_duplicate_an_accepted_message(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    tasks, calls_per_task, per_call = 30, 10, 3
    attempted: set[bytes] = set()
    returned: list[list[bytes]] = []
    timed_out = 0

    async def write_and_cancel(writer: Writer, task: int) -> None:
        nonlocal timed_out
        for call in range(calls_per_task):
            payloads = [b"t%d-c%d-m%d" % (task, call, i) for i in range(per_call)]
            attempted.update(payloads)
            # None lets a call finish; 0 cancels it before it starts; the rest land
            # anywhere: in metadata, waiting for room, or waiting for the broker.
            limit = rng.choice([None, 0.0, rng.uniform(0, 0.002), rng.uniform(0, 0.01)])
            write = writer.write_messages(*(Message(key=p, value=p) for p in payloads))
            try:
                await asyncio.wait_for(write, timeout=limit)
            except TimeoutError:
                timed_out += 1
            else:
                returned.append(payloads)

    async with (
        Writer(brokers=[bootstrap_servers], topic=topic, queue_capacity=16) as writer,
        asyncio.TaskGroup() as group,
    ):
        for task in range(tasks):
            group.create_task(write_and_cancel(writer, task))

    stats = writer.stats()
    records = await read_all(bootstrap_servers, partitions_of(topic, 4))
    counts = Counter(r.value for r in records)
    context = f"seed={seed}"
    assert returned, context
    assert timed_out, context
    assert [p for p, n in counts.items() if n > 1] == [], context
    assert set(counts) <= attempted, context
    assert len(records) == stats.messages, context
    assert (stats.errors, stats.queued) == (0, 0), context
    missing = [p for payloads in returned for p in payloads if p not in counts]
    assert missing == [], context
