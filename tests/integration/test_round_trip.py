"""Plain aiokafka against the test broker: the harness itself works end to end."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def test_plain_aiokafka_round_trip_keeps_keys_values_headers_and_order(
    bootstrap_servers: str, topic: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i in range(20):
            await producer.send(
                topic, f"v{i}".encode(), key=b"same-key", partition=0, headers=[("n", b"%d" % i)]
            )
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    try:
        async with asyncio.timeout(20):
            while len(seen) < 20:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    seen.extend((r.key, r.value, list(r.headers)) for r in records)
    finally:
        await consumer.stop()
    assert seen == [(b"same-key", f"v{i}".encode(), [("n", b"%d" % i)]) for i in range(20)]
