"""Synchronous writes: each call returns once the broker has stored the messages.

Shows: a Writer for one topic, and the partition and offset of every written message.
Run: python examples/write_sync.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded broker)
"""

from __future__ import annotations

import asyncio

import aiomq
from aiomq.testing import env_or_embedded_broker


async def main() -> None:
    async with (
        env_or_embedded_broker() as brokers,
        # Auto-creation keeps the example self-contained; production topics are usually
        # created ahead of time, and the default (False) turns a typo into a clear error.
        aiomq.Writer(brokers=brokers, topic="example-orders", allow_auto_topic_creation=True) as w,
    ):
        written = await w.write_messages(
            aiomq.Message(key=b"order-1", value=b'{"total": 12.5}'),
            aiomq.Message(key=b"order-2", value=b'{"total": 7.0}', headers=[("source", b"web")]),
        )
        for message in written:
            print(
                f"wrote key={message.key!r} to partition {message.partition} "
                f"at offset {message.offset} ({message.time:%H:%M:%S})"
            )


if __name__ == "__main__":
    asyncio.run(main())
