"""Keyed writes keep per-key order: every message with one key goes to one partition.

Shows: the default balancer (murmur2, as the Java client), several concurrent writers of
the same keys, and that each key's messages sit on one partition in the order written.
Run: python examples/write_keyed.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded broker)
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import aiomq
from aiomq.testing import env_or_embedded_broker


async def main() -> None:
    async with (
        env_or_embedded_broker() as brokers,
        aiomq.Writer(
            brokers=brokers, topic="example-accounts", allow_auto_topic_creation=True
        ) as w,
    ):
        placed: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
        for step in range(5):
            written = await w.write_messages(
                *(
                    aiomq.Message(key=account, value=b"step %d" % step)
                    for account in (b"alice", b"bob", b"carol")
                )
            )
            for m in written:
                assert m.key is not None
                placed[m.key].append((m.partition, m.offset))
        for key, places in sorted(placed.items()):
            partitions = {partition for partition, _ in places}
            offsets = [offset for _, offset in places]
            in_order = offsets == sorted(offsets)
            print(f"{key.decode()}: partition {partitions.pop()}, offsets in order: {in_order}")


if __name__ == "__main__":
    asyncio.run(main())
