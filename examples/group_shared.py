"""Two members of one consumer group share its partitions and read each message once.

Shows: two Readers with the same group_id running at once (two tasks in one process); the
group splits the topic's partitions between them, on_assigned / on_revoked report who owns
what, and together the members read every message exactly once.
Run: python examples/group_shared.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded
broker; stops by itself once every message is read)
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiomq
from aiomq.testing import env_or_embedded_broker

PARTITIONS = 4
TOTAL = 100


class Membership:
    """Who owns which partitions, as each member's rebalance callbacks report it."""

    def __init__(self, topic: str, names: list[str]) -> None:
        self.partitions = {(topic, p) for p in range(PARTITIONS)}
        self.owned: dict[str, set[aiomq.TopicPartition]] = {name: set() for name in names}
        self.balanced = asyncio.Event()
        """Set while every member owns some partitions, and each partition has one owner."""

    def callbacks(self, name: str) -> dict[str, Callable[[set[aiomq.TopicPartition]], None]]:
        """The on_assigned and on_revoked callbacks of one member."""

        def assigned(partitions: set[aiomq.TopicPartition]) -> None:
            self.owned[name] = set(partitions)
            print(f"member {name} assigned partitions {sorted(p for _, p in partitions)}")
            self._check()

        def revoked(partitions: set[aiomq.TopicPartition]) -> None:
            self.owned[name] -= partitions
            self._check()

        return {"on_assigned": assigned, "on_revoked": revoked}

    def _check(self) -> None:
        owned = list(self.owned.values())
        covered = set().union(*owned) == self.partitions
        disjoint = sum(map(len, owned)) == len(self.partitions)
        if all(owned) and covered and disjoint:
            self.balanced.set()
        else:
            self.balanced.clear()


async def member(
    name: str,
    settings: dict[str, Any],
    membership: Membership,
    written: asyncio.Future[Counter[int]],
    leave_together: asyncio.Barrier,
) -> tuple[set[aiomq.TopicPartition], list[aiomq.Message]]:
    """Read the messages of the partitions the group gives this member."""
    async with aiomq.Reader(**settings, **membership.callbacks(name)) as r:
        per_partition = await written  # how many messages each partition received
        mine = r.assignment()
        expected = sum(per_partition[p] for _, p in mine)
        got = [await r.read_message() for _ in range(expected)]  # each one committed
        print(f"member {name}: partitions {sorted(p for _, p in mine)}, read {len(got)} messages")
        # Leaving the group starts a rebalance: stay until both members are done.
        await leave_together.wait()
    return mine, got


async def main() -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"example-tasks-{run}"
    async with env_or_embedded_broker() as brokers:
        async with aiomq.Client(brokers=brokers) as client:
            await client.create_topics(
                aiomq.TopicSpec(name=topic, partitions=PARTITIONS, replication_factor=1)
            )
        settings: dict[str, Any] = {
            "brokers": brokers,
            "topic": topic,
            "group_id": f"example-workers-{run}",
            # Short timeouts make joins and rebalances quick for a demo; the defaults suit
            # production.
            "session_timeout": 2.0,
            "heartbeat_interval": 0.5,
        }
        membership = Membership(topic, ["a", "b"])
        written: asyncio.Future[Counter[int]] = asyncio.get_running_loop().create_future()
        leave_together = asyncio.Barrier(2)

        async with asyncio.timeout(90), asyncio.TaskGroup() as members:
            a = members.create_task(member("a", settings, membership, written, leave_together))
            b = members.create_task(member("b", settings, membership, written, leave_together))
            # The first member to join may own every partition until the second one arrives:
            # write once the group has settled, so that no partition changes hands while
            # it is read.
            await membership.balanced.wait()
            async with aiomq.Writer(brokers=brokers, topic=topic) as w:
                sent = await w.write_messages(
                    *(aiomq.Message(key=b"job-%d" % i, value=b"task %d" % i) for i in range(TOTAL))
                )
            written.set_result(Counter(m.partition for m in sent))
        (owned_a, read_a), (owned_b, read_b) = a.result(), b.result()

        offsets = [(m.partition, m.offset) for m in read_a + read_b]
        once = len(offsets) == len(set(offsets)) == TOTAL
        print(f"together: {len(offsets)} of {TOTAL} messages, each read once: {once}")
        split = not (owned_a & owned_b) and owned_a | owned_b == membership.partitions
        print(f"assignments cover all {PARTITIONS} partitions with no overlap: {split}")


if __name__ == "__main__":
    asyncio.run(main())
