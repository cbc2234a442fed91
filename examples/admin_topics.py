"""Create, inspect and delete topics from code with the admin Client.

Shows: aiomq.Client, TopicSpec with configs, create_topics (and if_not_exists), list_topics,
describe_topics, describe_configs, list_offsets and delete_topics.
Run: python examples/admin_topics.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded broker)
"""

from __future__ import annotations

import asyncio
import uuid

import aiomq
from aiomq.testing import env_or_embedded_broker


async def main() -> None:
    # Fresh names on every run, so the output is the same each time.
    run = uuid.uuid4().hex[:8]
    orders, audit = f"example-orders-{run}", f"example-audit-{run}"
    async with env_or_embedded_broker() as brokers, aiomq.Client(brokers=brokers) as client:
        created = await client.create_topics(
            aiomq.TopicSpec(
                name=orders,
                partitions=3,
                replication_factor=1,
                configs={"retention.ms": "3600000"},
            ),
            aiomq.TopicSpec(name=audit, partitions=1, replication_factor=1),
        )
        print(f"created {len(created)} topics")

        # Safe to run again: topics that exist already are left as they are.
        again = await client.create_topics(aiomq.TopicSpec(name=orders), if_not_exists=True)
        print(f"created again: {len(again)} topics (they exist)")

        listed = await client.list_topics()
        print(f"listed: {orders in listed and audit in listed}")

        for info in await client.describe_topics(orders, audit):
            count = len(info.partitions)
            leaders = sorted({p.leader for p in info.partitions})
            print(
                f"{info.name.removesuffix('-' + run)}: {count} partition{'s' * (count != 1)}, "
                f"replication factor {info.replication_factor}, leaders {leaders}"
            )

        configs = await client.describe_configs(orders)
        print(f"retention.ms = {configs['retention.ms']}")

        async with aiomq.Writer(brokers=brokers, topic=orders) as writer:
            await writer.write_messages(aiomq.Message(value=b"first order", partition=0))
        print(f"end offsets: {await client.list_offsets(orders, at=aiomq.LAST_OFFSET)}")

        await client.delete_topics(orders, audit)
        remaining = await client.list_topics()
        print(f"after delete, still listed: {orders in remaining or audit in remaining}")


if __name__ == "__main__":
    asyncio.run(main())
