"""Read one partition from a chosen offset, without a consumer group.

Shows: a single-partition Reader, set_offset, and the offset and lag it reports.
Run: python examples/read_partition.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded broker)
"""

from __future__ import annotations

import asyncio
import uuid

import aiomq
from aiomq.testing import env_or_embedded_broker


async def main() -> None:
    topic = f"example-sensor-{uuid.uuid4().hex[:8]}"
    async with env_or_embedded_broker() as brokers:
        async with aiomq.Writer(brokers=brokers, topic=topic, allow_auto_topic_creation=True) as w:
            await w.write_messages(
                *(aiomq.Message(value=b"reading %d" % i, partition=0) for i in range(10))
            )
        async with aiomq.Reader(brokers=brokers, topic=topic, partition=0) as r:
            r.set_offset(6)  # or aiomq.FIRST_OFFSET / aiomq.LAST_OFFSET
            for _ in range(4):
                m = await r.fetch_message()
                print(f"offset {m.offset}: {m.value!r} (next {r.offset}, lag {r.lag})")


if __name__ == "__main__":
    asyncio.run(main())
