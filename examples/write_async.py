"""Asynchronous writes: queue messages and learn each batch's outcome in a callback.

Shows: async_mode with a completion callback handling successes and failures, and
aclose() delivering whatever is still queued before the program exits.
Run: python examples/write_async.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded broker)
"""

from __future__ import annotations

import asyncio

import aiomq
from aiomq.testing import env_or_embedded_broker

delivered = 0
failed = 0


def on_batch(messages: list[aiomq.Message], error: aiomq.Error | None) -> None:
    """Called on the event loop for every batch, once it is written or has failed."""
    global delivered, failed
    if error is None:
        delivered += len(messages)
    else:
        failed += len(messages)
        print(f"{len(messages)} messages failed: {error}")


async def main() -> None:
    async with env_or_embedded_broker() as brokers:
        async with aiomq.Writer(
            brokers=brokers,
            topic="example-clicks",
            allow_auto_topic_creation=True,
            async_mode=True,
            completion=on_batch,
        ) as w:
            for i in range(10_000):
                # Returns as soon as the message is queued; waits only when the queue is
                # full (queue_capacity), so a fast producer cannot exhaust memory.
                await w.write_messages(aiomq.Message(key=b"user-%d" % (i % 50), value=b"click"))
        # Leaving the block flushed the queue: every outcome has been reported.
        stats = w.stats()
        print(f"delivered {delivered}, failed {failed}, in {stats.batches} batches")


if __name__ == "__main__":
    asyncio.run(main())
