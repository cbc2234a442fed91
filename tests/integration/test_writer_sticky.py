"""Keyless messages stick to one partition per batch (KIP-480), against the embedded broker."""

from __future__ import annotations

import itertools

from aiomq import Message, Writer
from tests.integration.test_transactions import brokers, create_topics
from tests.unit.test_balance_all import runs


async def test_keyless_messages_fill_one_partition_a_batch_at_a_time(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic, partitions=4)
    async with Writer(brokers=brokers(bootstrap_servers), topic=topic, batch_size=100) as writer:
        big = await writer.write_messages(*(Message(value=b"%d" % i) for i in range(250)))
        small = []
        for _i in range(20):  # calls of 3, planned one message at a time
            small += await writer.write_messages(*(Message(value=b"s") for _ in range(3)))
        keyed = await writer.write_messages(
            *(Message(key=b"k%d" % (i % 10), value=b"v") for i in range(100))
        )
        stats = writer.stats()
    assert [length for _, length in runs([m.partition for m in big])] == [100, 100, 50]
    # The small calls go on with the run under way, then move on.
    small_runs = runs([m.partition for m in big + small])
    assert [length for _, length in small_runs][2:] == [100, 10]
    assert all(a != b for (a, _), (b, _) in itertools.pairwise(small_runs))
    # Keyed messages keep their hash partition: ten keys over four partitions.
    by_key: dict[bytes | None, set[int]] = {}
    for m in keyed:
        by_key.setdefault(m.key, set()).add(m.partition)
    assert all(len(partitions) == 1 for partitions in by_key.values())
    assert len({p for ps in by_key.values() for p in ps}) > 1
    assert stats.messages == 410


async def test_a_call_larger_than_a_batch_fills_each_batch_to_the_brim_in_order(
    bootstrap_servers: str, topic: str
) -> None:
    """A plain call whose messages overflow `batch_bytes` is encoded in one pass up to what
    surely fits, then one message at a time until the batch is full: batches come out as
    full as the byte limit allows, and the messages in order."""
    await create_topics(bootstrap_servers, topic, partitions=1)
    values = [bytes([65 + i % 26]) * (900 + i % 7 * 20) for i in range(120)]
    async with Writer(
        brokers=brokers(bootstrap_servers), topic=topic, batch_bytes=10_000
    ) as writer:
        written = await writer.write_messages(*Message.many(values))
        stats = writer.stats()
    assert [m.offset for m in written] == list(range(120))
    assert [m.value for m in written] == values
    # Each batch holds as many records as the builder's exact check lets in.
    assert stats.batch_messages_max == 10
    assert stats.batches == 12
