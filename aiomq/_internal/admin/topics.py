"""The admin Client's calls on topics, configs and the cluster, one function each.

`aiomq.admin.Client` checks a call's arguments and hands it to the function of the same
name, here or in `groups`. Each runs in a `call_scope`, sends its requests through the
call's `AdminCall`, and builds the result types of `aiomq.cluster` from the answers, read
by field name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiomq._internal.admin.call import AdminClient, about_topics, call_scope
from aiomq._internal.backoff import backoff_delay
from aiomq._internal.kafka.admin import (
    CreateTopicsRequest,
    IncrementalAlterConfigsRequest,
    create_partitions_request,
    delete_topics_request,
    describe_configs_request,
)
from aiomq._internal.kafka.errors import ErrorCode, broker_error
from aiomq._internal.kafka.requests import entries
from aiomq.cluster import BrokerInfo, ClusterInfo, OffsetSpec, PartitionInfo, TopicInfo, TopicSpec

__all__ = [
    "alter_configs",
    "create_partitions",
    "create_topics",
    "delete_topics",
    "describe_cluster",
    "describe_configs",
    "describe_topics",
    "list_offsets",
    "list_topics",
    "topic_info",
]


# -- topics ----------------------------------------------------------------------------------


async def create_topics(
    client: AdminClient, specs: Mapping[str, TopicSpec], *, if_not_exists: bool
) -> list[str]:
    """Create topics, and wait until the cluster's metadata shows them.

    Args:
        client: The admin client.
        specs: The topics to create, by name; at least one.
        if_not_exists: Leave a topic that exists already as it is, instead of failing.

    Returns:
        The names of the topics this call created, in the order of `specs`.

    Raises:
        BrokerError: The broker refused a topic for good; retriable refusals are retried
            until the call's timeout.
    """
    log = client._log
    created: list[str] = []
    # Topics a retriable error held back: a broker that timed out may have created
    # them anyway, so ErrorCode.TOPIC_ALREADY_EXISTS on a later attempt counts as created.
    retried: set[str] = set()
    async with call_scope(client, "create_topics", about_topics(specs)) as call:
        pending = dict(specs)
        attempt = 0
        while pending:
            attempt += 1
            request = CreateTopicsRequest(
                [
                    (s.name, s.partitions, s.replication_factor, [], list(s.configs.items()))
                    for s in pending.values()
                ],
                int(client.config.timeout * 1000),
            )
            response = await call.send_to_controller(request)
            for entry in entries(response, "topic_errors"):
                name, code = entry.topic, entry.error_code
                message = getattr(entry, "error_message", None)  # v1 and later
                if name not in pending:
                    continue
                if code == ErrorCode.NONE or (
                    code == ErrorCode.TOPIC_ALREADY_EXISTS and name in retried
                ):
                    created.append(name)
                elif code == ErrorCode.TOPIC_ALREADY_EXISTS and if_not_exists:
                    pass
                else:
                    error = broker_error(code, topic=name, detail=message or None)
                    if not error.retriable:
                        if created:
                            log.info("topics_created", topics=created)
                        raise error
                    call.last_error = error
                    retried.add(name)
                    continue
                del pending[name]
            if pending:
                await asyncio.sleep(backoff_delay(attempt, 0.05, 1.0))
        # Creation is asynchronous in Kafka: wait until every partition has a leader,
        # so the topics can be written to as soon as this returns.
        await call.wait_for_metadata(
            created,
            lambda name, topic: (
                len(topic.partitions) >= specs[name].partitions
                and all(p.leader >= 0 for p in topic.partitions)
            ),
        )
    if created:
        log.info("topics_created", topics=created)
    return [name for name in specs if name in created]


async def delete_topics(client: AdminClient, names: list[str]) -> None:
    """Delete topics, and wait until the cluster's metadata no longer shows them.

    Args:
        client: The admin client.
        names: The topics to delete; at least one, each once.

    Raises:
        BrokerError: The first topic the broker refused to delete; the others are deleted.
    """
    async with call_scope(client, "delete_topics", about_topics(names)) as call:
        request = delete_topics_request(names, int(client.config.timeout * 1000))
        response = await call.send_to_controller(request)
        failures = [
            broker_error(t.error_code, topic=t.topic)
            for t in entries(response, "topic_error_codes")
            if t.error_code
        ]
        failed = {f.topic for f in failures}
        deleted = [n for n in names if n not in failed]
        await call.wait_until_gone(deleted)
    if deleted:
        client._log.info("topics_deleted", topics=deleted)
    if failures:
        raise failures[0]


async def list_topics(client: AdminClient, *, include_internal: bool) -> list[str]:
    """Return the names of every topic, sorted.

    Args:
        client: The admin client.
        include_internal: Also list Kafka's own topics, such as `__consumer_offsets`.
    """
    async with call_scope(client, "list_topics") as call:
        response = await call.metadata(None)
    infos = [topic_info(t) for t in entries(response, "topics") if t.error_code == ErrorCode.NONE]
    return sorted(i.name for i in infos if include_internal or not i.internal)


async def describe_topics(client: AdminClient, names: list[str]) -> list[TopicInfo]:
    """Describe topics: partitions, leaders and replicas.

    Args:
        client: The admin client.
        names: The topics (checked, each once), described in that order; with none,
            every topic but Kafka's own, sorted by name.
    """
    async with call_scope(client, "describe_topics", about_topics(names)) as call:
        if names:
            found = await call.describe(names)
            return [topic_info(found[n]) for n in names]
        response = await call.metadata(None)
    infos = [topic_info(t) for t in entries(response, "topics") if t.error_code == ErrorCode.NONE]
    return sorted((i for i in infos if not i.internal), key=lambda i: i.name)


async def create_partitions(client: AdminClient, topic: str, total: int) -> None:
    """Grow a topic to `total` partitions, and wait until the metadata shows them.

    Args:
        client: The admin client.
        topic: The topic.
        total: The partition count wanted, 1 or more.
    """
    async with call_scope(client, "create_partitions", f" for topic {topic!r}") as call:
        request = create_partitions_request(topic, total, int(client.config.timeout * 1000))
        response = await call.send_to_controller(request)
        for entry in entries(response, "topic_errors"):
            if entry.error_code:
                raise broker_error(
                    entry.error_code, topic=entry.topic, detail=entry.error_message or None
                )
        await call.wait_for_metadata([topic], lambda _, found: len(found.partitions) >= total)
    client._log.info("partitions_created", topic=topic, total=total)


def topic_info(entry: Any) -> TopicInfo:
    """Build a `TopicInfo` from a topic entry of a Metadata response, read by field name.

    Args:
        entry: The entry, of any Metadata version (v0 has no `is_internal`).
    """
    return TopicInfo(
        name=entry.topic,
        internal=bool(getattr(entry, "is_internal", False)),
        partitions=tuple(
            sorted(
                (
                    PartitionInfo(
                        partition=p.partition,
                        leader=p.leader,
                        replicas=tuple(p.replicas),
                        isr=tuple(p.isr),
                    )
                    for p in entry.partitions
                ),
                key=lambda p: p.partition,
            )
        ),
    )


# -- configs and cluster ---------------------------------------------------------------------


async def describe_configs(client: AdminClient, topic: str) -> dict[str, str]:
    """Return every config of a topic the broker reports, by name; hidden ones left out.

    Args:
        client: The admin client.
        topic: The topic.
    """
    async with call_scope(client, "describe_configs", f" for topic {topic!r}") as call:
        # Not every broker refuses a missing topic here; the metadata always does.
        await call.describe([topic])
        response = await call.send_any(describe_configs_request(topic))
    configs: dict[str, str] = {}
    for resource in entries(response, "resources"):
        if resource.error_code:
            raise broker_error(
                resource.error_code, topic=topic, detail=resource.error_message or None
            )
        for entry in resource.config_entries:
            # "config_names" (sic): aiokafka's name for each entry's config name.
            if entry.config_value is not None:
                configs[entry.config_names] = entry.config_value
    return configs


async def alter_configs(client: AdminClient, topic: str, configs: Mapping[str, str | None]) -> None:
    """Set configs of a topic, leaving the others as they are.

    Args:
        client: The admin client.
        topic: The topic.
        configs: Config names and their new values (None removes one); at least one.
    """
    async with call_scope(client, "alter_configs", f" for topic {topic!r}") as call:
        await call.describe([topic])
        response = await call.send_any(IncrementalAlterConfigsRequest(topic, configs))
    for entry in entries(response, "responses"):
        if entry.error_code:
            raise broker_error(entry.error_code, topic=topic, detail=entry.error_message or None)
    client._log.info("configs_altered", topic=topic, configs=sorted(configs))


async def describe_cluster(client: AdminClient) -> ClusterInfo:
    """Return the cluster id, the controller and the live brokers."""
    async with call_scope(client, "describe_cluster") as call:
        response = await call.metadata([])
    brokers = sorted(
        (
            # Metadata v0 names no rack.
            BrokerInfo(node_id=b.node_id, host=b.host, port=b.port, rack=getattr(b, "rack", None))
            for b in entries(response, "brokers")
        ),
        key=lambda b: b.node_id,
    )
    return ClusterInfo(
        cluster_id=getattr(response, "cluster_id", None),
        controller_id=getattr(response, "controller_id", -1),
        brokers=tuple(brokers),
    )


async def list_offsets(client: AdminClient, topic: str, at: OffsetSpec) -> dict[int, int]:
    """Look up an offset in every partition of a topic.

    Args:
        client: The admin client.
        topic: The topic.
        at: FIRST_OFFSET, LAST_OFFSET or a timezone-aware time.

    Returns:
        The offset of each partition, by partition id.
    """
    async with call_scope(client, "list_offsets", f" for topic {topic!r}") as call:
        return await call.list_offsets(topic, at)
