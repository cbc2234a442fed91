"""An exactly-once transform that is killed part-way, for the crash tests.

Run as ``python -m tests.support.crash_transform BOOTSTRAP TOPIC GROUP_ID TRANSACTIONAL_ID``.
It transforms TOPIC into ``TOPIC.out`` in batches of 10, printing a line for each input it
transforms (before its batch commits), slowly enough that a kill lands mid-stream.
"""

from __future__ import annotations

import asyncio
import sys

import structlog

from aiomq import Message, transform
from tests.support.crash_transaction import clients


def upper(message: Message) -> Message:
    assert message.value is not None
    print(message.offset, flush=True)
    return Message(key=message.key, value=message.value.upper())


async def main(bootstrap_servers: str, topic: str, group_id: str, transactional_id: str) -> None:
    reader, writer = clients(bootstrap_servers, topic, group_id, transactional_id)
    async with reader, writer:

        async def slowly(message: Message) -> Message:
            await asyncio.sleep(0.005)
            return upper(message)

        await transform(reader, writer, slowly, batch_size=10)


if __name__ == "__main__":
    # Stdout carries one line per input transformed; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(*sys.argv[1:5]))
