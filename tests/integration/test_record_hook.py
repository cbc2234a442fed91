"""Readers build messages straight from fetched batches without changing other consumers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

import aiomq
from aiomq._internal.kafka.record_hook import install


async def write(bootstrap_servers: str, topic: str) -> list[aiomq.Message]:
    when = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    async with aiomq.Writer(
        brokers=[bootstrap_servers], topic=topic, allow_auto_topic_creation=True
    ) as w:
        return await w.write_messages(
            aiomq.Message(key=b"k", value=b"v1", headers=[("h", b"1")], partition=0, time=when),
            aiomq.Message(key=None, value=None, partition=0, time=when),
        )


async def test_a_reader_gets_messages_equal_to_what_was_written(
    bootstrap_servers: str, topic: str
) -> None:
    assert install()
    written = await write(bootstrap_servers, topic)
    async with aiomq.Reader(brokers=[bootstrap_servers], topic=topic, partition=0) as r:
        async with asyncio.timeout(20):
            read = [await r.fetch_message(), await r.fetch_message()]
        stats = r.stats()
    assert [type(m) for m in read] == [aiomq.Message, aiomq.Message]
    for got, sent in zip(read, written, strict=True):
        assert (got.topic, got.partition, got.offset) == (sent.topic, sent.partition, sent.offset)
        assert (got.key, got.value, list(got.headers), got.time) == (
            sent.key,
            sent.value,
            list(sent.headers),
            sent.time,
        )
        assert got.high_water_mark == 2
    assert (stats.messages, stats.bytes) == (2, 3)


async def test_a_plain_aiokafka_consumer_in_the_same_process_still_gets_consumer_records(
    bootstrap_servers: str, topic: str
) -> None:
    assert install()
    await write(bootstrap_servers, topic)
    async with aiomq.Reader(brokers=[bootstrap_servers], topic=topic, partition=0) as r:
        async with asyncio.timeout(20):
            await r.fetch_message()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        async with asyncio.timeout(20):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    assert isinstance(record, ConsumerRecord)
    assert (record.key, record.value, record.offset) == (b"k", b"v1", 0)
