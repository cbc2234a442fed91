"""A group member processing concurrently, killed part-way, for the crash test.

Run as ``python -m tests.support.crash_process BOOTSTRAP TOPIC GROUP_ID``. Its handler
prints ``partition offset`` for each message it finishes, slowly enough that a kill lands
mid-stream; commits are made as the finished watermarks move (``commit_interval=0``).
"""

from __future__ import annotations

import asyncio
import random
import sys

import structlog

from aiomq import Message, Reader


async def main(bootstrap_servers: str, topic: str, group_id: str) -> None:
    rng = random.Random(3)

    async def handler(message: Message) -> None:
        await asyncio.sleep(rng.random() * 0.02)
        print(message.partition, message.offset, flush=True)

    async with Reader(
        brokers=bootstrap_servers.split(","),
        topic=topic,
        group_id=group_id,
        session_timeout=1.0,
        heartbeat_interval=0.25,
        max_wait=0.1,
    ) as reader:
        await reader.process(handler, concurrency=16)


if __name__ == "__main__":
    # Stdout carries the finished messages; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(*sys.argv[1:4]))
