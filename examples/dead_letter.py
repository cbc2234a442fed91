"""Retries and a dead-letter topic: a message its handler cannot process is retried, then
parked in a dead-letter topic with headers that say where it came from and why.

Shows: Reader.process with Retry and dead_letter; the dead-lettered message read back with
its origin headers; processing going on past it, and its offset committed.
Run: python examples/dead_letter.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded
broker; stops by itself)
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import structlog

import aiomq
from aiomq.testing import env_or_embedded_broker

ORDERS = [b'{"id": 1, "total": 12}', b'{"id": 2, "total": ', b'{"id": 3, "total": 7}']


async def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    run = uuid.uuid4().hex[:8]
    topic, dlq, group = f"example-orders-{run}", f"example-orders-{run}.dlq", f"example-{run}"
    async with env_or_embedded_broker() as brokers:
        async with aiomq.Client(brokers=brokers) as admin:
            await admin.create_topics(
                aiomq.TopicSpec(name=topic, partitions=1), aiomq.TopicSpec(name=dlq, partitions=1)
            )
        async with aiomq.Writer(brokers=brokers, topic=topic) as writer:
            await writer.write_messages(*(aiomq.Message(key=b"shop", value=v) for v in ORDERS))

        totals: list[int] = []
        good_ones_done = asyncio.Event()
        attempts = 0

        async def handle(message: aiomq.Message) -> None:
            nonlocal attempts
            try:
                order = json.loads(message.value or b"")
            except json.JSONDecodeError:
                attempts += 1
                raise
            totals.append(order["total"])
            if len(totals) == 2:
                good_ones_done.set()

        async with (
            aiomq.Reader(
                brokers=brokers,
                topic=topic,
                group_id=group,
                session_timeout=1.0,
                heartbeat_interval=0.25,
                max_wait=0.1,
            ) as reader,
            aiomq.Reader(brokers=brokers, topic=dlq, partition=0) as letters,
        ):
            processing = asyncio.create_task(
                reader.process(
                    handle,
                    retry=aiomq.Retry(attempts=3, backoff_min=0.05, backoff_max=0.2),
                    dead_letter=dlq,
                )
            )
            # The bad order arrives in the dead-letter topic; the good ones are handled.
            letter = await asyncio.wait_for(letters.fetch_message(), timeout=30)
            await asyncio.wait_for(good_ones_done.wait(), timeout=30)
            print(f"handled totals {totals}")
            print(f"the bad order was tried {attempts} times")
        await processing

        origin = {name: value.decode() for name, value in letter.headers}
        print(f"dead letter: {letter.value!r}")
        print(
            f"  from {origin['aiomq.dlq.topic']}[{origin['aiomq.dlq.partition']}]"
            f"@{origin['aiomq.dlq.offset']} after {origin['aiomq.dlq.attempts']} attempts"
        )
        print(f"  error: {origin['aiomq.dlq.error.type']}: {origin['aiomq.dlq.error.message']}")
        async with aiomq.Client(brokers=brokers) as admin:
            (offset,) = await admin.group_offsets(group, topics=[topic])
        print(f"committed offset {offset.committed}: the bad order does not block the others")


if __name__ == "__main__":
    asyncio.run(main())
