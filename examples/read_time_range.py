"""Read the messages of one partition written within a time range.

Shows: set_offset_at(start) to jump to the first message at or after a time, then reading
until the first message at or after the end. Brokers without timestamp look-ups answer
with an earlier offset, so messages before `start` are skipped too.
Run: python examples/read_time_range.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded broker)
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import aiomq
from aiomq.testing import env_or_embedded_broker

BASE = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def main() -> None:
    topic = f"example-audit-{uuid.uuid4().hex[:8]}"
    async with env_or_embedded_broker() as brokers:
        async with aiomq.Writer(brokers=brokers, topic=topic, allow_auto_topic_creation=True) as w:
            # One message a minute from 12:00 to 12:09, with explicit timestamps.
            await w.write_messages(
                *(
                    aiomq.Message(
                        value=b"entry %d" % i, partition=0, time=BASE + timedelta(minutes=i)
                    )
                    for i in range(10)
                )
            )
            # And one recent message, so the range below always ends within the partition.
            await w.write_messages(aiomq.Message(value=b"latest", partition=0))

        start, end = BASE + timedelta(minutes=3), BASE + timedelta(minutes=6)
        async with aiomq.Reader(brokers=brokers, topic=topic, partition=0) as r:
            await r.set_offset_at(start)
            while True:
                m = await r.fetch_message()
                assert m.time is not None
                if m.time >= end:
                    break
                if m.time >= start:
                    print(f"{m.time:%H:%M} offset {m.offset}: {m.value!r}")


if __name__ == "__main__":
    asyncio.run(main())
