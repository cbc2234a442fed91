"""The parts of aiokafka's consumer that aiomq's Reader relies on beyond its public API.

- `stop_consumer`: aiokafka's `stop()` waits for a group join under way (up to half a
  session timeout) and, when cut short, leaves its fetcher, heartbeat, metadata and
  connection tasks running; this ends them.
- `committed_future`: the group's committed offset of a newly assigned partition, from
  the request aiokafka makes anyway to start fetching (the floor below which the reader
  never commits).
- `last_fetch_answer_ms` and `silent_brokers`: when a fetch response last arrived, and
  which of the brokers a reader depends on do not answer (the outage watch).
- `client_of`: the consumer's cluster client, for metadata look-ups.
- `pause` and `resume`: aiokafka's own, for the partitions still assigned only (its
  methods raise for any other).
- `group_member`: the group generation and member id the consumer holds now, and its
  coordinator, for offsets a transactional writer commits on the group's behalf.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import ApiVersionRequest
from aiokafka.structs import TopicPartition

__all__ = [
    "GroupMember",
    "client_of",
    "committed_future",
    "group_member",
    "pause",
    "resume",
    "last_fetch_answer_ms",
    "silent_brokers",
    "stop_consumer",
]


def client_of(consumer: AIOKafkaConsumer) -> AIOKafkaClient:
    """The cluster client an aiokafka consumer talks through."""
    client: AIOKafkaClient = consumer._client
    return client


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A group consumer's membership as it stands: what a transactional offset commit
    sends so that the coordinator refuses it once the member has lost its partitions."""

    generation: int
    """The group's generation the consumer joined, or -1 while it is not a member."""

    member_id: str
    """The consumer's member id, or "" while it is not a member."""

    group_instance_id: str | None
    """The consumer's static instance id, or None."""

    coordinator: int | None
    """The node id of the group's coordinator, or None while it is not known."""


def group_member(consumer: AIOKafkaConsumer) -> GroupMember:
    """The group membership of a consumer that subscribed to topics."""
    coordinator = consumer._coordinator
    assert coordinator is not None, "a consumer that subscribed has a group coordinator"
    return GroupMember(
        generation=coordinator.generation,
        member_id=coordinator.member_id,
        group_instance_id=coordinator._group_instance_id,
        coordinator=coordinator.coordinator_id,
    )


def pause(consumer: AIOKafkaConsumer, partitions: Iterable[tuple[str, int]]) -> None:
    """Stop fetching the partitions that are still assigned; the others are skipped."""
    owned = _owned(consumer, partitions)
    if owned:
        consumer.pause(*owned)


def resume(consumer: AIOKafkaConsumer, partitions: Iterable[tuple[str, int]]) -> None:
    """Fetch again the partitions that are still assigned; the others are skipped."""
    owned = _owned(consumer, partitions)
    if owned:
        consumer.resume(*owned)


def _owned(consumer: AIOKafkaConsumer, partitions: Iterable[tuple[str, int]]) -> list[Any]:
    assignment = _assignment(consumer)
    if assignment is None:
        return []
    tps = assignment.tps
    return [tp for tp in (TopicPartition(*key) for key in partitions) if tp in tps]


async def stop_consumer(consumer: AIOKafkaConsumer, log: Any, budget: float) -> None:
    """Stop an aiokafka consumer completely within `budget`, even mid-join or mid-outage.

    aiokafka's `stop()` waits for a group join under way to finish, which can take half a
    session timeout, and when cut short it leaves its fetcher, metadata and connection
    tasks running. So the group coordination task is ended first (leaving the group is
    still attempted), `stop()` gets `budget`, and whatever it left is torn down after.

    Args:
        consumer: The consumer to stop.
        log: The reader's logger.
        budget: Seconds `stop()` may take before its tasks are torn down.
    """
    coordinator = consumer._coordinator
    task = getattr(coordinator, "_coordination_task", None)
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=budget)
    try:
        async with asyncio.timeout(budget):
            await consumer.stop()
        return
    except TimeoutError:
        log.warning("reader_close_timed_out", budget=budget)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        # aiokafka re-raises the cancellation of one of its own tasks here.
        log.warning("reader_close_interrupted")
    except Exception as exc:
        log.warning("reader_close_failed", error=repr(exc))
    await _tear_down(consumer)


async def _tear_down(consumer: AIOKafkaConsumer) -> None:
    """End every task an aiokafka consumer runs, and close its connections."""
    tasks: list[asyncio.Task[Any]] = []
    coordinator = consumer._coordinator
    if coordinator is not None:
        for name in (
            "_coordination_task",
            "_heartbeat_task",
            "_commit_refresh_task",
            "_reset_committed_task",
        ):
            task = getattr(coordinator, name, None)
            if task is not None:
                tasks.append(task)
    fetcher = consumer._fetcher
    if fetcher is not None:
        tasks.append(fetcher._fetch_task)
        # The fetch routine leaves its requests running when cancelled; only the
        # fetcher's close() ends them, and a stop() cut short never reached it.
        tasks.extend(fetcher._pending_tasks)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1.0)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await consumer._client.close()


def committed_future(consumer: AIOKafkaConsumer, tp: Any) -> asyncio.Future[Any] | None:
    """Ask aiokafka for the group's committed offset of an assigned partition.

    aiokafka asks the coordinator once for every partition that waits (it does so anyway
    to start fetching), so this costs no request of its own.

    Returns:
        A future of the `OffsetAndMetadata` (offset -1 when nothing is committed), or None
        when the partition is not assigned in aiokafka's view.
    """
    assignment = _assignment(consumer)
    if assignment is None or tp not in assignment.tps:
        return None
    future: asyncio.Future[Any] = assignment.state_value(tp).fetch_committed()
    return future


def _assignment(consumer: AIOKafkaConsumer) -> Any:
    subscription = consumer._subscription.subscription
    return None if subscription is None else subscription.assignment


def last_fetch_answer_ms(consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition]) -> int:
    """When a fetch response last arrived for any of `tps`, in Unix milliseconds; 0: never.

    aiokafka stamps each assigned partition with the wall-clock time of its last fetch
    response, records or not.
    """
    assignment = _assignment(consumer)
    if assignment is None:
        return 0
    newest = 0
    for tp in tps:
        if tp in assignment.tps:
            stamp = assignment.state_value(tp).timestamp
            if stamp is not None and stamp > newest:
                newest = stamp
    return newest


async def silent_brokers(
    consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition], within: float
) -> list[str] | None:
    """Ask the brokers a reader depends on for their API versions; name those that fail.

    The brokers are the leaders of `tps` and the group coordinator, or every known broker
    when none of those is known. Each gets `within` seconds.

    Returns:
        The `host:port` of each broker that did not answer (empty when all did), or None
        when no broker is known at all.
    """
    client = client_of(consumer)
    cluster = client.cluster
    nodes: set[int] = set()
    for tp in tps:
        leader = cluster.leader_for_partition(tp)
        if leader is not None and leader >= 0:
            nodes.add(leader)
    coordinator_id = getattr(consumer._coordinator, "coordinator_id", None)
    if coordinator_id is not None:
        nodes.add(coordinator_id)
    if not nodes:
        nodes = {broker.nodeId for broker in cluster.brokers()}
    if not nodes:
        return None
    ordered = sorted(nodes)
    answers = await asyncio.gather(*(_answers(client, node, within) for node in ordered))
    failed = []
    for node, ok in zip(ordered, answers, strict=True):
        if not ok:
            broker = cluster.broker_metadata(node)
            failed.append(f"{broker.host}:{broker.port}" if broker else f"node {node}")
    return failed


async def _answers(client: AIOKafkaClient, node: int, within: float) -> bool:
    try:
        async with asyncio.timeout(within):
            await client.send(node, ApiVersionRequest())
    except Exception:
        return False
    return True
