"""The hash balancers pick the partitions librdkafka picks, checked against a live broker.

confluent-kafka's `Producer` (librdkafka) writes keyed records without naming a partition;
its delivery reports say where each one went, and aiomq's balancer must name the same
partition for the same key when offered the topic's partitions.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka import Message as DeliveredMessage
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from aiomq.balancer import Balancer, CRC32Balancer, Hash, Murmur2Balancer
from aiomq.message import Message

# Not a power of two, so a signed and an unsigned remainder would disagree.
PARTITION_COUNT = 7
DEADLINE = 30.0


def generated_keys() -> list[bytes]:
    """About 200 keys: readable ones and random bytes of every length from 1 to 40."""
    rng = random.Random(20240521)
    readable = [f"order-{i:05d}".encode() for i in range(100)]
    arbitrary = [rng.randbytes(1 + i % 40) for i in range(100)]
    return readable + arbitrary


def create_topic(bootstrap_servers: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=PARTITION_COUNT, replication_factor=1)]
    )
    futures[topic].result(timeout=DEADLINE)
    deadline = time.monotonic() + DEADLINE
    while True:
        metadata = admin.list_topics(topic, timeout=DEADLINE).topics.get(topic)
        if metadata is not None and len(metadata.partitions) == PARTITION_COUNT:
            return
        assert time.monotonic() < deadline, f"{topic} never showed {PARTITION_COUNT} partitions"
        time.sleep(0.1)


def librdkafka_partitions(
    bootstrap_servers: str, topic: str, partitioner: str, keys: Sequence[bytes | None]
) -> list[int]:
    """Produce one record per key with librdkafka's `partitioner`; return where each went."""
    producer = Producer(
        {"bootstrap.servers": bootstrap_servers, "partitioner": partitioner, "linger.ms": 5}
    )
    delivered: dict[int, int] = {}
    failed: list[KafkaError] = []

    def on_delivery(index: int, error: KafkaError | None, message: DeliveredMessage) -> None:
        partition = message.partition()
        if error is not None:
            failed.append(error)
        elif partition is not None:
            delivered[index] = partition

    for index, key in enumerate(keys):
        producer.produce(
            topic, value=b"v", key=key, on_delivery=functools.partial(on_delivery, index)
        )
    undelivered = producer.flush(DEADLINE)
    assert undelivered == 0, f"{undelivered} records still queued for {topic} after flush"
    assert failed == []
    assert sorted(delivered) == list(range(len(keys))), "a delivery report is missing"
    return [delivered[index] for index in range(len(keys))]


CONSISTENT = {"consistent": True}

# A random partitioner puts a None key anywhere, and librdkafka's consistent_random does
# the same with an empty key: those keys can be compared only with the consistent variants.
CASES = [
    pytest.param("consistent_random", CRC32Balancer, {}, [], id="crc32-consistent_random"),
    pytest.param("consistent", CRC32Balancer, CONSISTENT, [None, b""], id="crc32-consistent"),
    pytest.param("murmur2_random", Murmur2Balancer, {}, [b""], id="murmur2-murmur2_random"),
    pytest.param("murmur2", Murmur2Balancer, CONSISTENT, [None, b""], id="murmur2-murmur2"),
    pytest.param("fnv1a_random", Hash, {}, [b""], id="hash-fnv1a_random"),
    pytest.param("fnv1a", Hash, CONSISTENT, [None, b""], id="hash-fnv1a"),
]


@pytest.mark.parametrize(("partitioner", "make_balancer", "options", "extra_keys"), CASES)
def test_a_hash_balancer_picks_the_partition_librdkafka_picks_for_every_key(
    bootstrap_servers: str,
    topic: str,
    partitioner: str,
    make_balancer: Callable[..., Balancer],
    options: dict[str, bool],
    extra_keys: list[bytes | None],
) -> None:
    keys = [*generated_keys(), *extra_keys]
    create_topic(bootstrap_servers, topic)

    chosen_by_librdkafka = librdkafka_partitions(bootstrap_servers, topic, partitioner, keys)
    offered = tuple(range(PARTITION_COUNT))
    balancer = make_balancer(**options)
    chosen_by_aiomq = [balancer.balance(Message(key=key), offered) for key in keys]

    assert set(chosen_by_librdkafka) == set(offered), "the keys should reach every partition"
    mismatches = [
        (key, theirs, ours)
        for key, theirs, ours in zip(keys, chosen_by_librdkafka, chosen_by_aiomq, strict=True)
        if theirs != ours
    ]
    assert mismatches == []
