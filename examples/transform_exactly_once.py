"""Exactly-once processing: read a topic, transform each message, write the results to
another topic, with outputs and input offsets committed in the same transaction.

Shows: aiomq.transform driven by a READ_COMMITTED group reader and a transactional writer;
a transform function that emits one message, several, or none; a downstream READ_COMMITTED
reader that sees the outputs once their batch commits; the TransformStats returned once
the group reader closes, and the group's committed offsets afterwards.
Run: python examples/transform_exactly_once.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an
embedded broker; stops by itself once every input is transformed)
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import structlog

import aiomq
from aiomq.testing import env_or_embedded_broker

PARTITIONS = 3
# Order lines: item and quantity. A quantity of 0 is a cancelled line, and produces nothing.
ORDERS = [
    (b"alice", b"coffee:1"),
    (b"bob", b"croissant:2"),
    (b"carol", b"bagel:0"),
    (b"alice", b"orange juice:1"),
    (b"dave", b"tea:3"),
    (b"bob", b"muffin:0"),
    (b"erin", b"scone:2"),
    (b"carol", b"water:1"),
]


def line_items(message: aiomq.Message) -> list[aiomq.Message]:
    """One output per unit ordered: none for a cancelled line, several for a quantity."""
    assert message.value is not None
    item, _, quantity = message.value.rpartition(b":")
    return [aiomq.Message(key=message.key, value=item) for _ in range(int(quantity))]


async def main() -> None:
    # The library logs through structlog; leave out its debug events here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    run = uuid.uuid4().hex[:8]
    orders, items, group = f"example-orders-{run}", f"example-items-{run}", f"example-picker-{run}"
    expected = sum(int(value.rpartition(b":")[2]) for _, value in ORDERS)

    async with env_or_embedded_broker() as brokers:
        async with aiomq.Client(brokers=brokers) as client:
            await client.create_topics(
                aiomq.TopicSpec(name=orders, partitions=PARTITIONS, replication_factor=1),
                aiomq.TopicSpec(name=items, partitions=1, replication_factor=1),
            )
        async with aiomq.Writer(brokers=brokers, topic=orders) as seed:
            seeded = await seed.write_messages(*(aiomq.Message(key=k, value=v) for k, v in ORDERS))
        per_partition = {p: sum(m.partition == p for m in seeded) for p in range(PARTITIONS)}
        print(f"seeded {len(seeded)} orders on {PARTITIONS} partitions of {orders}")

        async with (
            aiomq.Reader(
                brokers=brokers,
                topic=orders,
                group_id=group,
                # Inputs written by transactions that later abort must not be transformed.
                isolation_level=aiomq.IsolationLevel.READ_COMMITTED,
                # Short group timeouts and fetch wait for a demo: joining takes about half
                # the session timeout on the embedded broker. The defaults suit production.
                session_timeout=1.0,
                heartbeat_interval=0.25,
                max_wait=0.1,
            ) as reader,
            # One transactional id per running instance; a restart reuses it, which
            # fences the instance it replaces (see examples/transactions.py).
            aiomq.Writer(
                brokers=brokers, topic=items, transactional_id=f"picker-{run}-0"
            ) as writer,
            # Downstream: a consumer that sees only committed transactions.
            aiomq.Reader(
                brokers=brokers,
                topic=items,
                partition=0,
                isolation_level=aiomq.IsolationLevel.READ_COMMITTED,
                max_wait=0.1,
            ) as downstream,
        ):
            async with asyncio.timeout(60), asyncio.TaskGroup() as tasks:
                # Each batch is one transaction; small ones here, to show several.
                transforming = tasks.create_task(
                    aiomq.transform(reader, writer, line_items, batch_size=4)
                )
                seen = [await downstream.fetch_message() for _ in range(expected)]
                # Every output is committed, and the inputs' offsets with them: closing the
                # group reader ends transform(), which returns what it did.
                await reader.aclose()
            stats = transforming.result()

        names = ", ".join((m.value or b"").decode() for m in seen)
        print(f"downstream read {len(seen)} items: {names}")
        print(f"transform returned {stats}")
        async with aiomq.Client(brokers=brokers) as client:
            for row in await client.group_offsets(group, topics=[orders]):
                print(
                    f"group {group} committed {orders}[{row.partition}] at {row.committed} "
                    f"(orders seeded there: {per_partition[row.partition]})"
                )


if __name__ == "__main__":
    asyncio.run(main())
