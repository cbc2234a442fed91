"""Broadcast: every consumer group receives every message of a topic.

Shows: two Readers with different group_ids on the same topic, running at once; each group
keeps its own committed offsets, so each reads all the messages (one topic, many
independent subscribers, such as billing and shipping).
Run: python examples/group_broadcast.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded
broker; stops by itself once both groups have read everything)
"""

from __future__ import annotations

import asyncio
import uuid

import aiomq
from aiomq.testing import env_or_embedded_broker

TOTAL = 50


async def subscriber(name: str, brokers: list[str], topic: str, group_id: str) -> list[str]:
    """Read TOTAL messages as the one member of `group_id`; return the values read."""
    seen: list[str] = []
    async with aiomq.Reader(
        brokers=brokers,
        topic=topic,
        group_id=group_id,
        # Short timeouts make joining quick for a demo; the defaults suit production.
        session_timeout=2.0,
        heartbeat_interval=0.5,
    ) as r:
        async for m in r:  # commits each message it returns, for this group only
            seen.append((m.value or b"").decode())
            if len(seen) == TOTAL:
                break
    print(f"group {name}: read {len(seen)} of {TOTAL} messages")
    return seen


async def main() -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"example-shipments-{run}"
    async with env_or_embedded_broker() as brokers:
        async with aiomq.Writer(brokers=brokers, topic=topic, allow_auto_topic_creation=True) as w:
            await w.write_messages(
                *(
                    aiomq.Message(key=b"order-%d" % i, value=b"shipment %d" % i)
                    for i in range(TOTAL)
                )
            )
        print(f"wrote {TOTAL} messages")

        async with asyncio.timeout(60):
            billing, shipping = await asyncio.gather(
                subscriber("billing", brokers, topic, f"example-billing-{run}"),
                subscriber("shipping", brokers, topic, f"example-shipping-{run}"),
            )
        everything = sorted(f"shipment {i}" for i in range(TOTAL))
        once_each = sorted(billing) == sorted(shipping) == everything
        print(f"both groups got every message once: {once_each}")


if __name__ == "__main__":
    asyncio.run(main())
