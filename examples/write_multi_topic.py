"""One writer, several topics: each message names its own topic.

Shows: a Writer created without a topic, and a single call writing to two topics.
Run: python examples/write_multi_topic.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded broker)
"""

from __future__ import annotations

import asyncio

import aiomq
from aiomq.testing import env_or_embedded_broker


async def main() -> None:
    async with (
        env_or_embedded_broker() as brokers,
        aiomq.Writer(brokers=brokers, allow_auto_topic_creation=True) as w,
    ):
        written = await w.write_messages(
            aiomq.Message(topic="example-invoices", key=b"inv-1", value=b"issued"),
            aiomq.Message(topic="example-audit", key=b"inv-1", value=b"invoice issued"),
        )
        for m in written:
            print(f"{m.topic}: partition {m.partition}, offset {m.offset}")


if __name__ == "__main__":
    asyncio.run(main())
