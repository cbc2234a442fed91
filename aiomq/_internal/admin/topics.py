"""The admin Client's calls on topics, configs and the cluster, one function each.

`aiomq.admin.Client` checks a call's arguments (with the checks here) and hands it to the
function of the same name, here or in `aiomq._internal.admin.groups`. `call_scope` gives
the call its `AdminCall`, bounds it by the client's timeout and maps its errors; the
function sends the call's requests through it (see `aiomq._internal.admin.protocol`) and
builds the public result types from the answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from aiokafka import errors as ak
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import (
    CreatePartitionsRequest,
    DeleteTopicsRequest,
    DescribeConfigsRequest,
)

from aiomq._internal.admin.protocol import (
    RESOURCE_TOPIC,
    AdminCall,
    CreateTopicsRequest,
    IncrementalAlterConfigsRequest,
    partitions_of,
)
from aiomq._internal.backoff import backoff_delay
from aiomq._internal.config import check_topic_name
from aiomq._internal.errmap import broker_error, translate
from aiomq._internal.security import connection_options
from aiomq.cluster import BrokerInfo, ClusterInfo, OffsetSpec, PartitionInfo, TopicInfo, TopicSpec
from aiomq.errors import ClosedError, ConfigError, Error, RequestTimeoutError
from aiomq.message import FIRST_OFFSET, LAST_OFFSET

if TYPE_CHECKING:
    from aiomq.admin import Client, ClientConfig

__all__ = [
    "about_topics",
    "alter_configs",
    "call_scope",
    "check_group_id",
    "check_offset_spec",
    "check_topic_name",
    "create_partitions",
    "create_topics",
    "delete_topics",
    "describe_cluster",
    "describe_configs",
    "describe_topics",
    "list_offsets",
    "list_topics",
    "new_client",
    "topic_info",
    "unique_topics",
]

_TOPIC_ALREADY_EXISTS: Final = 36


# -- argument checks -------------------------------------------------------------------------


def check_group_id(group_id: object) -> None:
    """Refuse a group id that is not a non-empty string.

    Raises:
        ConfigError: It is not.
    """
    if not isinstance(group_id, str) or not group_id:
        raise ConfigError(f"a group id must be a non-empty string, not {group_id!r}")


def check_offset_spec(name: str, at: object, *, allow_offset: bool) -> None:
    """Refuse anything but FIRST_OFFSET, LAST_OFFSET, an aware time, or (if allowed) an offset.

    Args:
        name: The argument's name, for the message.
        at: The argument.
        allow_offset: Whether an offset (0 or more) is allowed too.

    Raises:
        ConfigError: `at` is none of those.
    """
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ConfigError(
                f"{name} needs a timezone-aware datetime (for example datetime.now(UTC))"
            )
        return
    if (
        isinstance(at, int)
        and not isinstance(at, bool)
        and (at in (FIRST_OFFSET, LAST_OFFSET) or (allow_offset and at >= 0))
    ):
        return
    offsets = (
        "FIRST_OFFSET, LAST_OFFSET, an offset (0 or more)"
        if allow_offset
        else ("FIRST_OFFSET, LAST_OFFSET")
    )
    raise ConfigError(f"{name} must be {offsets} or a timezone-aware datetime, not {at!r}")


def unique_topics(names: Iterable[str]) -> list[str]:
    """Check topic names, and return them without repeats, in the order given.

    Raises:
        ConfigError: A name is not a valid topic name.
    """
    unique = list(dict.fromkeys(names))
    for name in unique:
        check_topic_name(name)
    return unique


# -- running a call --------------------------------------------------------------------------


def new_client(config: ClientConfig) -> AIOKafkaClient:
    """Build, without connecting it, the aiokafka client an admin client sends through.

    Args:
        config: The admin client's settings.
    """
    return AIOKafkaClient(
        bootstrap_servers=list(config.brokers),
        client_id=config.effective_client_id,
        **connection_options(config.dialer),
        # aiokafka's own per-request limit sits just past the call's, so the call's
        # deadline is the one that fires, with a message naming the call.
        request_timeout_ms=int(config.timeout * 1000) + 1000,
    )


@contextlib.asynccontextmanager
async def call_scope(client: Client, operation: str, about: str = "") -> AsyncIterator[AdminCall]:
    """Run one public call: refuse a closed client, bound the time, map errors.

    Args:
        client: The admin client making the call.
        operation: The call's name, as errors name it ("create_topics").
        about: What the call is about, appended to the name (" for topic 'orders'").

    Raises:
        ClosedError: The client is not open, or was closed during the call.
        RequestTimeoutError: The call ran out of the client's timeout; the message names
            the call and its last retried error.
    """
    kafka = client._client
    if client._state != "open" or kafka is None:
        raise ClosedError(f"{operation} on a Client that is {client._state}")
    what = f"{operation}{about}"
    call = AdminCall(kafka, what)
    limit = client.config.timeout
    try:
        async with asyncio.timeout(limit):
            yield call
    except RequestTimeoutError:
        raise
    except (TimeoutError, ak.KafkaTimeoutError, ak.RequestTimedOutError) as exc:
        last = f"; last error: {call.last_error}" if call.last_error is not None else ""
        raise RequestTimeoutError(
            f"{what} did not finish within the client's timeout ({limit:g} s){last}"
        ) from exc
    except Error:
        raise
    except (ak.NodeNotReadyError, ak.KafkaConnectionError) as exc:
        if client._state != "open":
            raise ClosedError(f"{what} failed: the Client was closed meanwhile") from exc
        mapped = translate(exc, brokers=client.config.brokers)
        assert mapped is not None
        raise mapped from exc
    except Exception as exc:
        mapped = translate(exc, brokers=client.config.brokers)
        if mapped is None:
            raise
        raise mapped from exc


def about_topics(names: Iterable[str]) -> str:
    """Name topics for a call's errors: " for topic 'a'" or " for topics ['a', 'b']"."""
    listed = list(names)
    if len(listed) == 1:
        return f" for topic {listed[0]!r}"
    return f" for topics {listed!r}"


# -- topics ----------------------------------------------------------------------------------


async def create_topics(
    client: Client, specs: Mapping[str, TopicSpec], *, if_not_exists: bool
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
    # them anyway, so TOPIC_ALREADY_EXISTS on a later attempt counts as created.
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
            for entry in response.topic_errors:
                name, code = entry[0], entry[1]
                message = entry[2] if len(entry) > 2 else None
                if name not in pending:
                    continue
                if code == 0 or (code == _TOPIC_ALREADY_EXISTS and name in retried):
                    created.append(name)
                elif code == _TOPIC_ALREADY_EXISTS and if_not_exists:
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
            lambda name, entry: (
                len(partitions_of(entry)) >= specs[name].partitions
                and all(p[2] >= 0 for p in partitions_of(entry))
            ),
        )
    if created:
        log.info("topics_created", topics=created)
    return [name for name in specs if name in created]


async def delete_topics(client: Client, names: list[str]) -> None:
    """Delete topics, and wait until the cluster's metadata no longer shows them.

    Args:
        client: The admin client.
        names: The topics to delete; at least one, each once.

    Raises:
        BrokerError: The first topic the broker refused to delete; the others are deleted.
    """
    async with call_scope(client, "delete_topics", about_topics(names)) as call:
        request = DeleteTopicsRequest(names, int(client.config.timeout * 1000))
        response = await call.send_to_controller(request)
        failures = [
            broker_error(code, topic=name) for name, code, *_ in response.topic_error_codes if code
        ]
        failed = {f.topic for f in failures}
        deleted = [n for n in names if n not in failed]
        await call.wait_until_gone(deleted)
    if deleted:
        client._log.info("topics_deleted", topics=deleted)
    if failures:
        raise failures[0]


async def list_topics(client: Client, *, include_internal: bool) -> list[str]:
    """Return the names of every topic, sorted.

    Args:
        client: The admin client.
        include_internal: Also list Kafka's own topics, such as `__consumer_offsets`.
    """
    async with call_scope(client, "list_topics") as call:
        response = await call.metadata(None)
    infos = [topic_info(t) for t in response.topics if t[0] == 0]
    return sorted(i.name for i in infos if include_internal or not i.internal)


async def describe_topics(client: Client, names: list[str]) -> list[TopicInfo]:
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
    infos = [topic_info(t) for t in response.topics if t[0] == 0]
    return sorted((i for i in infos if not i.internal), key=lambda i: i.name)


async def create_partitions(client: Client, topic: str, total: int) -> None:
    """Grow a topic to `total` partitions, and wait until the metadata shows them.

    Args:
        client: The admin client.
        topic: The topic.
        total: The partition count wanted, 1 or more.
    """
    async with call_scope(client, "create_partitions", f" for topic {topic!r}") as call:
        # A null assignment lets the controller place the new partitions.
        growth: list[Any] = [(topic, (total, None))]
        request = CreatePartitionsRequest(growth, int(client.config.timeout * 1000), False)
        response = await call.send_to_controller(request)
        for name, code, message in response.topic_errors:
            if code:
                raise broker_error(code, topic=name, detail=message or None)
        await call.wait_for_metadata([topic], lambda _, entry: len(partitions_of(entry)) >= total)
    client._log.info("partitions_created", topic=topic, total=total)


def topic_info(entry: Any) -> TopicInfo:
    """Build a `TopicInfo` from a topic entry of a Metadata response.

    Args:
        entry: The entry, of any Metadata version: `(error, name, [is_internal,]
            partitions)`.
    """
    # Metadata v0 has no is_internal field.
    internal = bool(entry[2]) if len(entry) > 3 else False
    partitions = partitions_of(entry)
    return TopicInfo(
        name=entry[1],
        internal=internal,
        partitions=tuple(
            sorted(
                (
                    PartitionInfo(
                        partition=p[1], leader=p[2], replicas=tuple(p[3]), isr=tuple(p[4])
                    )
                    for p in partitions
                ),
                key=lambda p: p.partition,
            )
        ),
    )


# -- configs and cluster ---------------------------------------------------------------------


async def describe_configs(client: Client, topic: str) -> dict[str, str]:
    """Return every config of a topic the broker reports, by name; hidden ones left out.

    Args:
        client: The admin client.
        topic: The topic.
    """
    async with call_scope(client, "describe_configs", f" for topic {topic!r}") as call:
        # Not every broker refuses a missing topic here; the metadata always does.
        await call.describe([topic])
        request = DescribeConfigsRequest([(RESOURCE_TOPIC, topic, None)], False)
        response = await call.send_any(request)
    configs: dict[str, str] = {}
    for resource in response.resources:
        code, message = resource[0], resource[1]
        if code:
            raise broker_error(code, topic=topic, detail=message or None)
        for entry in resource[4]:
            name, value = entry[0], entry[1]
            if value is not None:
                configs[name] = value
    return configs


async def alter_configs(client: Client, topic: str, configs: Mapping[str, str | None]) -> None:
    """Set configs of a topic, leaving the others as they are.

    Args:
        client: The admin client.
        topic: The topic.
        configs: Config names and their new values (None removes one); at least one.
    """
    async with call_scope(client, "alter_configs", f" for topic {topic!r}") as call:
        await call.describe([topic])
        response = await call.send_any(IncrementalAlterConfigsRequest(topic, configs))
    for code, message, *_ in response.responses:
        if code:
            raise broker_error(code, topic=topic, detail=message or None)
    client._log.info("configs_altered", topic=topic, configs=sorted(configs))


async def describe_cluster(client: Client) -> ClusterInfo:
    """Return the cluster id, the controller and the live brokers."""
    async with call_scope(client, "describe_cluster") as call:
        response = await call.metadata([])
    brokers = sorted(
        (
            BrokerInfo(node_id=b[0], host=b[1], port=b[2], rack=b[3] if len(b) > 3 else None)
            for b in response.brokers
        ),
        key=lambda b: b.node_id,
    )
    return ClusterInfo(
        cluster_id=getattr(response, "cluster_id", None),
        controller_id=getattr(response, "controller_id", -1),
        brokers=tuple(brokers),
    )


async def list_offsets(client: Client, topic: str, at: OffsetSpec) -> dict[int, int]:
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
