"""A group member that processes and commits one message at a time, for the crash test.

Run as ``python -m tests.support.crash_reader BOOTSTRAP TOPIC GROUP_ID``. For each message
it "processes" it (prints its offset on a line of its own and flushes stdout), then commits
it. A test kills it with SIGKILL part-way and checks where the next member resumes.
"""

from __future__ import annotations

import asyncio
import sys

import structlog

from aiomq import Reader


async def main(bootstrap_servers: str, topic: str, group_id: str) -> None:
    async with Reader(
        brokers=bootstrap_servers.split(","),
        topic=topic,
        group_id=group_id,
        session_timeout=1.0,
        heartbeat_interval=0.25,
        max_wait=0.1,
        commit_interval=0,
    ) as reader:
        while True:
            message = await reader.fetch_message()
            # Some work, so that the kill lands part-way through the stream.
            await asyncio.sleep(0.002)
            print(message.offset, flush=True)
            await reader.commit_messages(message)


if __name__ == "__main__":
    # Stdout carries the processed offsets only; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(*sys.argv[1:4]))
