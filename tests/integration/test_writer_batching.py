"""How the Writer cuts calls into record batches and requests, checked on a real broker.

A call's messages are checked and balanced in a few passes when they have the usual
shape (one topic, no headers), and one by one otherwise; batches take whole calls or
parts of them, and each goes to its partition's leader. Whatever the path, what is read
back must be exactly what was written, in order, and a bad message must be named by its
place in the call.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from aiomq import (
    ConfigError,
    InvalidMessageError,
    Message,
    MessageTooLargeError,
    RoundRobin,
    Writer,
)
from tests.integration.test_writer import create_topic, epoch_ms, partitions_of, read_all
from tests.integration.test_writer_faults import brokers
from tests.integration.test_writer_faults import create_topic as create_mock_topic
from tests.support.mock_cluster import ApiKey, MockCluster

MANY = 100  # large enough for a call to be checked in passes rather than one by one


def numbered(count: int, **fields: object) -> list[Message]:
    return [
        Message(key=b"k%d" % (i % 7), value=b"value-%d" % i, **fields)  # type: ignore[arg-type]
        for i in range(count)
    ]


async def test_a_call_larger_than_batch_size_is_split_into_batches_in_order(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    messages = numbered(50)

    async with Writer(brokers=[bootstrap_servers], topic=topic, batch_size=7) as writer:
        written = await writer.write_messages(*messages)
        stats = writer.stats()

    assert [m.offset for m in written] == list(range(50))
    assert (stats.batches, stats.batch_messages_max) == (math.ceil(50 / 7), 7)
    records = await read_all(bootstrap_servers, partitions_of(topic, 1))
    assert [r.value for r in records] == [m.value for m in messages]


async def test_a_call_larger_than_batch_bytes_is_split_where_the_bytes_run_out(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    messages = [Message(value=bytes([i]) * 100) for i in range(60)]

    async with Writer(brokers=[bootstrap_servers], topic=topic, batch_bytes=2_000) as writer:
        written = await writer.write_messages(*messages)
        stats = writer.stats()

    assert [m.offset for m in written] == list(range(60))
    assert stats.batches > 60 * 100 // 2_000
    assert stats.batch_bytes_avg <= 2_000
    records = await read_all(bootstrap_servers, partitions_of(topic, 1))
    assert [r.value for r in records] == [m.value for m in messages]


async def test_calls_of_every_shape_are_written_and_aligned_with_their_input(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 4)
    when = datetime(2026, 5, 4, 3, 2, 1, 123_000, tzinfo=UTC)
    calls = [
        numbered(MANY),  # checked in passes
        numbered(3),  # one by one: too few
        numbered(MANY, time=when),  # in passes, with times of their own
        numbered(MANY, headers=[("h", b"1")]),  # one by one: headers
        [Message(key=None, value=None)] * MANY,  # nothing but None
        [Message(key=b"", value=b"x"), Message(key=None, value=b"")] * (MANY // 2),
    ]
    flat = [message for call in calls for message in call]

    async with Writer(brokers=[bootstrap_servers], topic=topic, balancer=RoundRobin()) as writer:
        results = [await writer.write_messages(*call) for call in calls]
        stats = writer.stats()

    for call, written in zip(calls, results, strict=True):
        assert [(m.key, m.value, tuple(m.headers)) for m in written] == [
            (m.key, m.value, tuple(m.headers)) for m in call
        ]
    written_flat = [m for written in results for m in written]
    assert all(m.time == when for m in written_flat[MANY + 3 : 2 * MANY + 3])
    records = await read_all(bootstrap_servers, partitions_of(topic, 4))
    by_place = {(r.partition, r.offset): r for r in records}
    assert len(by_place) == len(flat)
    for message in written_flat:
        record = by_place[(message.partition, message.offset)]
        assert (record.key, record.value) == (message.key, message.value)
        assert record.timestamp == epoch_ms(message.time)  # type: ignore[arg-type]
    content = sum(len(m.key or b"") + len(m.value or b"") for m in flat)
    content += sum(len(k) + len(v) for m in flat for k, v in m.headers)
    assert stats.bytes == content


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        (Message(value="text"), InvalidMessageError, "must be bytes"),  # type: ignore[arg-type]
        (Message(value=b"x", time=datetime(2026, 1, 1)), InvalidMessageError, "timezone"),
        (Message(value=b"x", headers=[("h", 1)]), InvalidMessageError, "headers"),  # type: ignore[list-item]
        (Message(value=b"x" * 5_000), MessageTooLargeError, "batch_bytes"),
        (Message(topic="elsewhere", value=b"x"), InvalidMessageError, "names topic"),
        (Message(value=b"x", partition="1"), InvalidMessageError, "partition"),  # type: ignore[arg-type]
        (Message(value=b"x", partition=None), InvalidMessageError, "partition"),  # type: ignore[arg-type]
    ],
    ids=[
        "str-value",
        "naive-time",
        "bad-header",
        "too-large",
        "other-topic",
        "str-partition",
        "none-partition",
    ],
)
async def test_a_bad_message_deep_in_a_large_call_is_named_by_its_place_and_nothing_is_written(
    bootstrap_servers: str, topic: str, bad: Message, error: type[Exception], words: str
) -> None:
    await create_topic(bootstrap_servers, topic, 2)
    messages = numbered(MANY)
    messages[57] = bad

    async with Writer(brokers=[bootstrap_servers], topic=topic, batch_bytes=4_000) as writer:
        with pytest.raises(error) as caught:
            await writer.write_messages(*messages)
        stats = writer.stats()

    assert "message 57" in str(caught.value)
    assert words in str(caught.value)
    assert (stats.writes, stats.messages, stats.queued) == (0, 0, 0)
    assert await read_all(bootstrap_servers, partitions_of(topic, 2)) == []


async def test_each_partitions_batch_goes_to_that_partitions_leader(
    mock_cluster: MockCluster, topic: str
) -> None:
    partitions = create_mock_topic(mock_cluster, topic)

    async with Writer(brokers=brokers(mock_cluster), topic=topic, balancer=RoundRobin()) as writer:
        await writer.write_messages(*numbered(3))
        mock_cluster.start_request_tracking()
        written = await writer.write_messages(*numbered(MANY))

    assert sorted(r.broker_id for r in mock_cluster.requests(ApiKey.PRODUCE)) == [1, 2, 3]
    records = await read_all(mock_cluster.bootstrap_servers, partitions)
    assert sorted((r.partition, r.offset) for r in records) == sorted(
        [(m.partition, m.offset) for m in written] + [(p, 0) for p in range(3)]
    )


async def test_a_call_with_times_in_passes_keeps_each_messages_own_time(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    messages = [
        Message(value=b"%d" % i, time=None if i % 3 == 0 else start + timedelta(seconds=i))
        for i in range(MANY)
    ]

    async with Writer(brokers=[bootstrap_servers], topic=topic) as writer:
        written = await writer.write_messages(*messages)

    for message, result in zip(messages, written, strict=True):
        if message.time is not None:
            assert result.time == message.time
    records = await read_all(bootstrap_servers, partitions_of(topic, 1))
    assert [r.timestamp for r in records] == [epoch_ms(m.time) for m in written]  # type: ignore[arg-type]


@pytest.mark.parametrize("answer", [[0], 99, "0"], ids=["unhashable", "absent", "not-an-int"])
async def test_a_balancer_answer_outside_the_partitions_fails_a_large_call_and_writes_nothing(
    bootstrap_servers: str, topic: str, answer: object
) -> None:
    await create_topic(bootstrap_servers, topic, 2)

    async with Writer(
        brokers=[bootstrap_servers], topic=topic, balancer=lambda message, partitions: answer
    ) as writer:
        with pytest.raises(ConfigError) as caught:
            await writer.write_messages(*numbered(MANY))

    assert "the balancer chose partition" in str(caught.value)
    assert await read_all(bootstrap_servers, partitions_of(topic, 2)) == []


async def test_a_large_call_in_batches_of_one_message_keeps_order_and_counts(
    bootstrap_servers: str, topic: str
) -> None:
    # Every batch splits one message off the call's chunk: the rest must neither be lost
    # nor copied whole at each split.
    await create_topic(bootstrap_servers, topic, 1)
    messages = numbered(2_000)

    async with Writer(brokers=[bootstrap_servers], topic=topic, batch_size=1) as writer:
        written = await writer.write_messages(*messages)
        stats = writer.stats()

    assert [m.offset for m in written] == list(range(2_000))
    assert (stats.batches, stats.batch_messages_max, stats.queued) == (2_000, 1, 0)
    assert stats.bytes == sum(len(m.key or b"") + len(m.value or b"") for m in messages)
    records = await read_all(bootstrap_servers, partitions_of(topic, 1))
    assert [r.value for r in records] == [m.value for m in messages]
