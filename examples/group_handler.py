"""Sarama's consumer-group handler: each claimed partition consumed in its own task.

Shows: setup / consume_claim / cleanup, partitions processed concurrently with per-partition
order, and mark-then-commit through the session.
Run: python examples/group_handler.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded broker)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict

import aiomq
from aiomq.group import Claim, GroupSession
from aiomq.testing import env_or_embedded_broker

TOTAL = 400


class Totals:
    """Counts messages per partition, marking each one once it is counted."""

    def __init__(self) -> None:
        self.per_partition: dict[int, int] = defaultdict(int)
        self.done = asyncio.Event()

    async def setup(self, session: GroupSession) -> None:
        print(f"generation {session.generation}: claimed {len(session.claims)} partitions")

    async def consume_claim(self, session: GroupSession, claim: Claim) -> None:
        async for message in claim:
            self.per_partition[message.partition] += 1
            session.mark_message(message)
            if sum(self.per_partition.values()) == TOTAL:
                self.done.set()

    async def cleanup(self, session: GroupSession) -> None:
        await session.commit()
        print("cleanup: marks committed")


async def main() -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"example-payments-{run}"
    async with env_or_embedded_broker() as brokers:
        async with aiomq.Writer(brokers=brokers, topic=topic, allow_auto_topic_creation=True) as w:
            await w.write_messages(
                *(
                    aiomq.Message(key=b"account-%d" % (i % 37), value=b"%d" % i)
                    for i in range(TOTAL)
                )
            )
        handler = Totals()
        async with aiomq.Reader(
            brokers=brokers,
            topic=topic,
            group_id=f"example-ledger-{run}",
            commit_interval=1.0,
            session_timeout=2.0,
            heartbeat_interval=0.5,
        ) as reader:
            consuming = asyncio.create_task(reader.consume(handler))
            async with asyncio.timeout(60):
                await handler.done.wait()
            consuming.cancel()  # ends every claim, runs cleanup, then stops
            with contextlib.suppress(asyncio.CancelledError):
                await consuming
        for partition, count in sorted(handler.per_partition.items()):
            print(f"partition {partition}: {count} messages")
        print(f"total {sum(handler.per_partition.values())}")


if __name__ == "__main__":
    asyncio.run(main())
