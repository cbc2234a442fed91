"""The quickstart: write keyed messages, then read them back in a consumer group with explicit
commits.

Shows: a Writer, a group Reader, fetch_message + commit_messages, and that a second reader
in the same group resumes after the last commit.
Run: scripts/quickstart  (or python examples/quickstart.py; uses $AIOMQ_BOOTSTRAP_SERVERS,
else an embedded broker)
"""

from __future__ import annotations

import asyncio
import uuid

import aiomq
from aiomq.testing import env_or_embedded_broker

ORDERS = [
    (b"alice", b"1 coffee"),
    (b"bob", b"2 croissants"),
    (b"alice", b"1 orange juice"),
    (b"carol", b"3 bagels"),
    (b"bob", b"1 tea"),
]


async def main() -> None:
    # A fresh topic and group on every run, so the output is the same each time.
    run = uuid.uuid4().hex[:8]
    topic, group = f"quickstart-orders-{run}", f"quickstart-billing-{run}"
    async with env_or_embedded_broker() as brokers:
        print(f"broker: {', '.join(brokers)}")
        async with aiomq.Writer(brokers=brokers, topic=topic, allow_auto_topic_creation=True) as w:
            written = await w.write_messages(
                *(aiomq.Message(key=key, value=value) for key, value in ORDERS)
            )
        for m in written:
            print(f"wrote   {m.key!r:9} {m.value!r:19} -> partition {m.partition}")

        group_settings = {
            "brokers": brokers,
            "topic": topic,
            "group_id": group,
            # Short timeouts make joining quick on a laptop; the defaults suit production.
            "session_timeout": 2.0,
            "heartbeat_interval": 0.5,
        }
        async with aiomq.Reader(**group_settings) as r:
            for _ in range(3):
                m = await r.fetch_message()
                print(
                    f"read    {m.key!r:9} {m.value!r:19} partition {m.partition} offset {m.offset}"
                )
                await r.commit_messages(m)  # explicit: done with this message
            print(f"committed 3 messages; reader stats: {r.stats().commits} commits")

        # A new member of the same group starts right after the committed messages.
        async with aiomq.Reader(**group_settings) as r:
            rest: list[aiomq.Message] = []
            async with asyncio.timeout(30):
                while len(rest) < len(ORDERS) - 3:
                    rest.append(await r.fetch_message())
            await r.commit_messages(*rest)
            for m in rest:
                print(
                    f"resumed {m.key!r:9} {m.value!r:19} partition {m.partition} offset {m.offset}"
                )
        print(f"done: {len(ORDERS)} written, {3 + len(rest)} read once each")


if __name__ == "__main__":
    asyncio.run(main())
