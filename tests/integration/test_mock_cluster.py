"""Plain aiokafka against librdkafka's mock cluster, to prove the harness before aiomq uses it.

These tests pin down what the fault-injection tests of the Writer and Reader rely on:
that a stock aiokafka client works against :class:`MockCluster`, and that each kind of
injected fault is one the client survives without losing or duplicating messages.

Consumers here use manual assignment instead of a consumer group: the mock, like a real
broker, delays a new group's first rebalance by 3 s, which would only slow these tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata

from tests.support.mock_cluster import ApiKey, ErrorCode, MockCluster
from tests.support.waiting import wait_until

# Generous upper bound for any wait: every condition here is met in well under a second
# on the mock, so hitting this means a hang, not a slow machine.
DEADLINE_S = 30.0


@asynccontextmanager
async def started_producer(cluster: MockCluster) -> AsyncIterator[AIOKafkaProducer]:
    """Yield a started producer configured to ride out broker faults.

    ``enable_idempotence`` is what makes aiokafka retry a batch for as long as it takes:
    without it a batch whose leader is unreachable fails with ``NodeNotReadyError`` once
    it is older than ``request_timeout_ms``. Idempotence also implies ``acks="all"``.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=cluster.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=10_000,
        retry_backoff_ms=50,
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def consume(
    cluster: MockCluster, partitions: list[TopicPartition], count: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``count`` records from the start of ``partitions``, in arrival order.

    Raises:
        TimeoutError: If fewer than ``count`` records arrive within the deadline.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        retry_backoff_ms=50,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.assign(partitions)
        async with asyncio.timeout(DEADLINE_S):
            while len(records) < count:
                batches = await consumer.getmany(timeout_ms=100)
                for batch in batches.values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


def message(i: int) -> tuple[bytes, bytes]:
    """The key and value of the ``i``-th test message."""
    return f"key-{i}".encode(), f"value-{i}".encode()


def keys_and_values(records: list[ConsumerRecord[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The ``(key, value)`` pairs of ``records``, in order."""
    pairs: list[tuple[bytes, bytes]] = []
    for record in records:
        assert record.key is not None
        assert record.value is not None
        pairs.append((record.key, record.value))
    return pairs


async def test_messages_round_trip_through_a_topic_with_three_replicated_partitions(
    mock_cluster: MockCluster, topic: str
) -> None:
    mock_cluster.create_topic(topic, partitions=3, replication_factor=3)
    count = 30

    async with started_producer(mock_cluster) as producer:
        sent: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        for i in range(count):
            key, value = message(i)
            metadata: RecordMetadata = await producer.send_and_wait(topic, value, key=key)
            sent[metadata.partition, metadata.offset] = (key, value)

    partitions = [TopicPartition(topic, p) for p in range(3)]
    records = await consume(mock_cluster, partitions, count)

    received = {(r.partition, r.offset): (r.key, r.value) for r in records}
    assert received == sent
    # Keyed messages are hashed over every partition, so all three leaders took writes.
    assert {partition for partition, _ in sent} == {0, 1, 2}


async def test_round_trip_survives_leader_broker_going_down_and_up(
    mock_cluster: MockCluster, topic: str
) -> None:
    mock_cluster.create_topic(topic, partitions=3, replication_factor=3)
    leader = 2
    mock_cluster.set_partition_leader(topic, 0, leader)
    partition = TopicPartition(topic, 0)
    per_phase = 10
    expected = [message(i) for i in range(3 * per_phase)]

    # The consumer runs throughout, so it has to survive the outage too. The task group
    # cancels it should the producing side fail, instead of leaking a pending task.
    async with asyncio.TaskGroup() as tasks, started_producer(mock_cluster) as producer:
        reading = tasks.create_task(consume(mock_cluster, [partition], len(expected)))
        for key, value in expected[:per_phase]:
            await producer.send_and_wait(topic, value, key=key, partition=0)

        mock_cluster.broker_down(leader)
        in_flight = [
            await producer.send(topic, value, key=key, partition=0)
            for key, value in expected[per_phase : 2 * per_phase]
        ]
        # The mock drops a down broker from its metadata answers (while still naming it
        # leader), so this is the moment the producer has seen the outage.
        await wait_until(
            lambda: producer.client.cluster.broker_metadata(leader) is None,
            f"the producer sees broker {leader} gone",
        )
        assert not any(future.done() for future in in_flight), "produced to a down leader"

        mock_cluster.broker_up(leader)
        async with asyncio.timeout(DEADLINE_S):
            await asyncio.gather(*in_flight)
        for key, value in expected[2 * per_phase :]:
            await producer.send_and_wait(topic, value, key=key, partition=0)

    records = reading.result()
    assert keys_and_values(records) == expected
    assert [r.offset for r in records] == list(range(len(expected)))


async def test_produce_retries_injected_not_leader_and_timeout_errors_and_delivers_once(
    mock_cluster: MockCluster, topic: str
) -> None:
    mock_cluster.create_topic(topic, partitions=1, replication_factor=3)
    partition = TopicPartition(topic, 0)
    key, value = message(0)

    async with started_producer(mock_cluster) as producer:
        mock_cluster.start_request_tracking()
        mock_cluster.push_request_errors(
            ApiKey.PRODUCE, ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.REQUEST_TIMED_OUT
        )
        async with asyncio.timeout(DEADLINE_S):
            metadata = await producer.send_and_wait(topic, value, key=key)

    # Two rejected attempts and the one that succeeded: the errors really were retried.
    assert len(mock_cluster.requests(ApiKey.PRODUCE)) == 3
    assert metadata.offset == 0
    records = await consume(mock_cluster, [partition], 1)
    assert keys_and_values(records) == [(key, value)]
    # And nothing after it: the failed attempts appended nothing.
    consumer = AIOKafkaConsumer(bootstrap_servers=mock_cluster.bootstrap_servers)
    await consumer.start()
    try:
        assert await consumer.end_offsets([partition]) == {partition: 1}
    finally:
        await consumer.stop()


async def test_nothing_is_lost_when_the_partition_leader_moves_while_producing(
    mock_cluster: MockCluster, topic: str
) -> None:
    mock_cluster.create_topic(topic, partitions=1, replication_factor=3)
    partition = TopicPartition(topic, 0)
    mock_cluster.set_partition_leader(topic, 0, 1)
    per_leader = 20
    new_leaders = (2, 3)
    expected = [message(i) for i in range(per_leader * (len(new_leaders) + 1))]
    # handed_over[n] is set once the first (n + 1) * per_leader messages are delivered.
    handed_over = [asyncio.Event() for _ in new_leaders]

    async def produce_all(producer: AIOKafkaProducer) -> None:
        for i, (key, value) in enumerate(expected, start=1):
            await producer.send_and_wait(topic, value, key=key)
            if i % per_leader == 0 and i // per_leader <= len(handed_over):
                handed_over[i // per_leader - 1].set()

    mock_cluster.start_request_tracking()
    async with asyncio.TaskGroup() as tasks, started_producer(mock_cluster) as producer:
        reading = tasks.create_task(consume(mock_cluster, [partition], len(expected)))
        # Producing runs in its own task so the leader moves land while sends are live.
        producing = tasks.create_task(produce_all(producer))
        for ready, new_leader in zip(handed_over, new_leaders, strict=True):
            async with asyncio.timeout(DEADLINE_S):
                await ready.wait()
            mock_cluster.set_partition_leader(topic, 0, new_leader)
        # Finish producing before leaving the block stops the producer under it.
        async with asyncio.timeout(DEADLINE_S):
            await producing

    records = reading.result()
    assert keys_and_values(records) == expected
    assert [r.offset for r in records] == list(range(len(expected)))
    # Every leader in turn took writes, so the producer really followed the moves.
    produce_brokers = {r.broker_id for r in mock_cluster.requests(ApiKey.PRODUCE)}
    assert produce_brokers == {1, *new_leaders}
