"""A transactional writer that dies with its transaction open, for the successor test.

Run as ``python -m tests.support.crash_transaction BOOTSTRAP TOPIC GROUP_ID TRANSACTIONAL_ID``.
It reads every message of partition 0 of TOPIC in the group, opens a transaction, writes
one output per input to ``TOPIC.out`` and sends the inputs' offsets, then prints ``open``
and waits to be killed, the transaction still open.
"""

from __future__ import annotations

import asyncio
import sys

import structlog

from aiomq import IsolationLevel, Message, Reader, Writer


def clients(
    bootstrap_servers: str, topic: str, group_id: str, transactional_id: str
) -> tuple[Reader, Writer]:
    """A READ_COMMITTED group reader of `topic` (short group timings, for the embedded
    broker) and a transactional writer to `topic.out`."""
    brokers = bootstrap_servers.split(",")
    reader = Reader(
        brokers=brokers,
        topic=topic,
        group_id=group_id,
        isolation_level=IsolationLevel.READ_COMMITTED,
        session_timeout=1.0,
        heartbeat_interval=0.25,
        max_wait=0.1,
    )
    writer = Writer(brokers=brokers, topic=f"{topic}.out", transactional_id=transactional_id)
    return reader, writer


async def main(bootstrap_servers: str, topic: str, group_id: str, transactional_id: str) -> None:
    reader, writer = clients(bootstrap_servers, topic, group_id, transactional_id)
    async with reader, writer:
        inputs = await reader.fetch_batch(1000)
        async with writer.transaction():
            await writer.write_messages(*(Message(value=m.value, partition=0) for m in inputs))
            await writer.send_offsets(reader, inputs)
            print("open", flush=True)
            await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    # Stdout says when the transaction is open; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(*sys.argv[1:5]))
