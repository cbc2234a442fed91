"""The admin Client: topics, configs, offsets and consumer groups (kafka-go's `Client`).

::

    async with aiomq.Client(brokers=["localhost:9092"]) as c:
        await c.create_topics(aiomq.TopicSpec(name="orders", partitions=3))
        print(await c.list_topics())
        print(await c.group_offsets("billing"))
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self

from aiokafka import errors as ak
from aiokafka.client import AIOKafkaClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.protocol.admin import (
    CreatePartitionsRequest,
    DeleteGroupsRequest,
    DeleteTopicsRequest,
    DescribeConfigsRequest,
    DescribeGroupsRequest,
)
from aiokafka.protocol.commit import OffsetCommitRequest

from aiomq._internal.admin_protocol import (
    GROUP_ACTIVE_CODES,
    RESOURCE_TOPIC,
    AdminCall,
    CreateTopicsRequest,
    IncrementalAlterConfigsRequest,
    ListGroupsWithStateRequest,
    listed_groups,
    partitions_of,
)
from aiomq._internal.backoff import backoff_delay
from aiomq._internal.config import (
    check_brokers,
    check_connection,
    check_seconds,
    resolve_client_id,
)
from aiomq._internal.errmap import broker_error, translate
from aiomq._internal.log import get_logger
from aiomq._internal.security import connection_options, open_client
from aiomq._internal.shield import finish_shielded
from aiomq.dialer import Dialer
from aiomq.errors import (
    ClosedError,
    ConfigError,
    Error,
    GroupNotEmptyError,
    RequestTimeoutError,
)
from aiomq.reader import FIRST_OFFSET, LAST_OFFSET

__all__ = [
    "BrokerInfo",
    "Client",
    "ClientConfig",
    "ClusterInfo",
    "GroupInfo",
    "GroupListing",
    "GroupOffset",
    "MemberInfo",
    "PartitionInfo",
    "TopicInfo",
    "TopicSpec",
]

_TOPIC_NAME: Final = re.compile(r"[a-zA-Z0-9._-]+")
_TOPIC_NAME_MAX: Final = 249
_TOPIC_ALREADY_EXISTS: Final = 36
_INACTIVE_STATES: Final = frozenset({"Empty", "Dead"})

OffsetSpec = int | datetime
"""Where to look in a partition: FIRST_OFFSET, LAST_OFFSET, or a timezone-aware time."""


# -- request and result types ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicSpec:
    """A topic to create (kafka-go's `TopicConfig`).

    Raises:
        ConfigError: The name is not a valid Kafka topic name, or a number is out of range.
    """

    name: str
    """The topic name: 1 to 249 of the characters a-z, A-Z, 0-9, '.', '_' and '-'. Required."""

    partitions: int = 1
    """How many partitions the topic has; 1 or more. Default: 1."""

    replication_factor: int = -1
    """Copies of each partition, 1 or more, or -1 for the broker's
    `default.replication.factor` (needs Kafka 2.4 or later). Default: -1."""

    configs: Mapping[str, str] = field(default_factory=dict)
    """Topic configs to set at creation, such as `{"retention.ms": "60000"}`; the others
    take the broker's defaults. Default: {} (none)."""

    def __post_init__(self) -> None:
        _check_topic_name(self.name)
        if not _is_int(self.partitions) or self.partitions < 1:
            raise ConfigError(
                f"topic {self.name!r}: partitions must be 1 or more, not {self.partitions!r}"
            )
        if not _is_int(self.replication_factor) or (
            self.replication_factor < 1 and self.replication_factor != -1
        ):
            raise ConfigError(
                f"topic {self.name!r}: replication_factor must be 1 or more, or -1 for the "
                f"broker's default, not {self.replication_factor!r}"
            )
        if not isinstance(self.configs, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in self.configs.items()
        ):
            raise ConfigError(
                f"topic {self.name!r}: configs must map config names to string values, "
                f"not {self.configs!r}"
            )
        # A private read-only copy: later changes to the caller's dict cannot leak in.
        object.__setattr__(self, "configs", MappingProxyType(dict(self.configs)))


@dataclass(frozen=True, kw_only=True, slots=True)
class PartitionInfo:
    """One partition of a topic, as the cluster's metadata describes it."""

    partition: int
    """The partition id."""

    leader: int
    """The node id of the leader broker; -1 while the partition has none."""

    replicas: tuple[int, ...]
    """The node ids of every replica."""

    isr: tuple[int, ...]
    """The node ids of the in-sync replicas."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicInfo:
    """A topic and its partitions."""

    name: str
    """The topic name."""

    internal: bool
    """Whether the topic is one of Kafka's own, such as `__consumer_offsets`."""

    partitions: tuple[PartitionInfo, ...]
    """The partitions, by ascending id."""

    @property
    def replication_factor(self) -> int:
        """The number of replicas of the first partition (0 for a topic without any)."""
        return len(self.partitions[0].replicas) if self.partitions else 0


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerInfo:
    """One broker of the cluster."""

    node_id: int
    """The broker's node id."""

    host: str
    """The host name clients connect to."""

    port: int
    """The port clients connect to."""

    rack: str | None
    """The broker's rack, when it has one."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ClusterInfo:
    """The cluster as its metadata describes it."""

    cluster_id: str | None
    """The cluster id, when the broker reports one."""

    controller_id: int
    """The node id of the controller; -1 when unknown."""

    brokers: tuple[BrokerInfo, ...]
    """The live brokers, by ascending node id."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupListing:
    """A consumer group, as `list_groups` finds it."""

    group_id: str
    """The group id."""

    protocol_type: str
    """"consumer" for consumer groups; empty for groups that only store offsets."""

    state: str | None
    """The group state ("Stable", "Empty", ...), or None when the broker does not say
    (brokers older than Kafka 2.6)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MemberInfo:
    """One member of a consumer group."""

    member_id: str
    """The id the coordinator gave the member."""

    client_id: str
    """The member's client id (empty when the broker does not report it)."""

    host: str
    """The member's host, as the coordinator saw it (empty when not reported)."""

    assignment: tuple[tuple[str, int], ...]
    """The `(topic, partition)` pairs assigned to the member, sorted; empty when the
    group does not use the consumer protocol or the broker does not report it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupInfo:
    """A consumer group and its members."""

    group_id: str
    """The group id."""

    state: str
    """The group state: "Stable", "PreparingRebalance", "CompletingRebalance", "Empty"
    (no members; offsets may remain), or "Dead" (unknown to the coordinator)."""

    protocol_type: str
    """"consumer" for consumer groups; empty when the group has no members."""

    protocol: str
    """The partition assignment strategy in use, such as "roundrobin"."""

    members: tuple[MemberInfo, ...]
    """The members, by member id."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupOffset:
    """A consumer group's position in one partition, and how far behind it is."""

    topic: str
    """The topic."""

    partition: int
    """The partition."""

    committed: int
    """The committed offset: the next message the group will read; -1 when none."""

    end: int
    """The partition's end offset: where the next message written will go."""

    lag: int
    """Messages between `committed` and `end`; -1 when nothing is committed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientConfig:
    """Every setting of an admin `Client`, validated when created.

    Raises:
        ConfigError: A value is invalid; the message names the field.
    """

    brokers: Sequence[str]
    """Bootstrap addresses, as `host:port` strings. Required."""

    timeout: float = 10.0
    """Seconds each call may take, retries included; a call that runs out raises
    `RequestTimeoutError` naming it. Default: 10.0."""

    client_id: str | None = None
    """The client id sent to brokers. Default: None (the dialer's client_id, else
    "aiomq")."""

    dialer: Dialer | None = None
    """TLS and SASL settings (see `aiomq.Dialer`). Default: None (plaintext, no
    authentication)."""

    logger: Any = None
    """A structlog logger to log through instead of `structlog.get_logger("aiomq")`.
    Default: None."""

    @property
    def effective_client_id(self) -> str:
        """The client id actually sent: this one, else the dialer's, else "aiomq"."""
        return resolve_client_id(self.client_id, self.dialer)

    def __post_init__(self) -> None:
        check_brokers(self.brokers)
        check_seconds("timeout", self.timeout, allow_zero=False)
        check_connection(self.client_id, self.dialer)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_topic_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a topic name must be a non-empty string, not {name!r}")
    if name in (".", "..") or len(name) > _TOPIC_NAME_MAX or not _TOPIC_NAME.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not a valid topic name: use 1 to {_TOPIC_NAME_MAX} of the "
            "characters a-z, A-Z, 0-9, '.', '_' and '-' (and not '.' or '..')"
        )


def _check_group_id(group_id: object) -> None:
    if not isinstance(group_id, str) or not group_id:
        raise ConfigError(f"a group id must be a non-empty string, not {group_id!r}")


def _check_offset_spec(name: str, at: object, *, allow_offset: bool) -> None:
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


# -- the client ----------------------------------------------------------------------------


class Client:
    """Administers a Kafka cluster: topics, configs, offsets and consumer groups.

    Open it with `async with`. The arguments are those of `ClientConfig` (pass `config=`
    instead to reuse one). Calls may run from several tasks at once. Each call is bounded
    by `timeout`, retries included, and raises `RequestTimeoutError` naming the call when
    it runs out. A call the broker does not support raises `BrokerError` with code 35
    (UNSUPPORTED_VERSION) naming the missing Kafka API, at once.

    Cancellation: a cancelled call stops waiting; a request already sent may still take
    effect on the broker. Every call that changes something is safe to repeat (creating
    with `if_not_exists=True`, deleting, resetting to the same offsets).

    Args:
        config: A complete configuration; when given, no other argument is allowed.
        **options: `ClientConfig` fields.

    Raises:
        ConfigError: An option is invalid.
    """

    def __init__(self, config: ClientConfig | None = None, /, **options: Any) -> None:
        if config is not None and options:
            raise ConfigError("pass either a ClientConfig or keyword options, not both")
        self.config = config if config is not None else ClientConfig(**options)
        self._log = get_logger(self.config.logger, client_id=self.config.effective_client_id)
        self._client: AIOKafkaClient | None = None
        self._state = "new"

    def __repr__(self) -> str:
        return f"<Client brokers={','.join(self.config.brokers)} {self._state}>"

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise ClosedError(f"a Client is opened once; this one is {self._state}")
        self._state = "opening"
        config = self.config
        client = AIOKafkaClient(
            bootstrap_servers=list(config.brokers),
            client_id=config.effective_client_id,
            **connection_options(config.dialer),
            # aiokafka's own per-request limit sits just past the call's, so the call's
            # deadline is the one that fires, with a message naming the call.
            request_timeout_ms=int(config.timeout * 1000) + 1000,
        )
        try:
            try:
                await open_client(client.bootstrap, config.brokers, config.dialer)
            except Exception as exc:
                mapped = translate(exc, brokers=config.brokers)
                if mapped is None:
                    raise
                raise mapped from exc
        except BaseException:
            self._state = "closed"
            await finish_shielded(client.close())
            raise
        self._client = client
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Disconnect from the cluster. Safe to call more than once.

        Runs to its end even if the calling task is cancelled meanwhile, then re-raises
        the cancellation. Calls still running in other tasks fail.
        """
        if self._state in ("closing", "closed"):
            return
        self._state = "closing"
        await finish_shielded(self._close())

    async def _close(self) -> None:
        try:
            if self._client is not None:
                async with asyncio.timeout(self.config.timeout):
                    await self._client.close()
        except TimeoutError:
            self._log.warning("client_close_timed_out")
        finally:
            self._state = "closed"

    @contextlib.asynccontextmanager
    async def _call(self, operation: str, about: str = "") -> AsyncIterator[AdminCall]:
        """Run one public call: refuse a closed client, bound the time, map errors."""
        client = self._client
        if self._state != "open" or client is None:
            raise ClosedError(f"{operation} on a Client that is {self._state}")
        what = f"{operation}{about}"
        call = AdminCall(client, what)
        limit = self.config.timeout
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
            if self._state != "open":
                raise ClosedError(f"{what} failed: the Client was closed meanwhile") from exc
            mapped = translate(exc, brokers=self.config.brokers)
            assert mapped is not None
            raise mapped from exc
        except Exception as exc:
            mapped = translate(exc, brokers=self.config.brokers)
            if mapped is None:
                raise
            raise mapped from exc

    # -- topics ---------------------------------------------------------------------------

    async def create_topics(self, *topics: TopicSpec, if_not_exists: bool = False) -> list[str]:
        """Create topics, and wait until the cluster's metadata shows them.

        Args:
            *topics: The topics to create.
            if_not_exists: Leave a topic that exists already as it is, instead of failing.
                Default: False.

        Returns:
            The names of the topics this call created, in the order given.

        Raises:
            BrokerError: A topic exists already (code 36, TOPIC_ALREADY_EXISTS, naming it;
                only when `if_not_exists` is False), or the broker refused a topic (for
                example INVALID_REPLICATION_FACTOR); other topics of the call may have
                been created.
            ConfigError: An argument is not a `TopicSpec`, or a name appears twice.
        """
        specs = {}
        for spec in topics:
            if not isinstance(spec, TopicSpec):
                raise ConfigError(f"create_topics takes TopicSpec objects, not {spec!r}")
            if spec.name in specs:
                raise ConfigError(f"topic {spec.name!r} appears twice in one create_topics")
            specs[spec.name] = spec
        if not specs:
            return []
        created: list[str] = []
        # Topics a retriable error held back: a broker that timed out may have created
        # them anyway, so TOPIC_ALREADY_EXISTS on a later attempt counts as created.
        retried: set[str] = set()
        async with self._call("create_topics", _about_topics(specs)) as call:
            pending = dict(specs)
            attempt = 0
            while pending:
                attempt += 1
                request = CreateTopicsRequest(
                    [
                        (s.name, s.partitions, s.replication_factor, [], list(s.configs.items()))
                        for s in pending.values()
                    ],
                    int(self.config.timeout * 1000),
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
                                self._log.info("topics_created", topics=created)
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
            self._log.info("topics_created", topics=created)
        return [name for name in specs if name in created]

    async def delete_topics(self, *names: str) -> None:
        """Delete topics, and wait until the cluster's metadata no longer shows them.

        Raises:
            UnknownTopicOrPartitionError: A topic does not exist (the others of the call
                are deleted).
            BrokerError: The broker refused to delete a topic.
        """
        unique = _unique_topics(names)
        if not unique:
            return
        async with self._call("delete_topics", _about_topics(unique)) as call:
            request = DeleteTopicsRequest(unique, int(self.config.timeout * 1000))
            response = await call.send_to_controller(request)
            failures = [
                broker_error(code, topic=name)
                for name, code, *_ in response.topic_error_codes
                if code
            ]
            failed = {f.topic for f in failures}
            deleted = [n for n in unique if n not in failed]
            await call.wait_until_gone(deleted)
        if deleted:
            self._log.info("topics_deleted", topics=deleted)
        if failures:
            raise failures[0]

    async def list_topics(self, *, include_internal: bool = False) -> list[str]:
        """Return the names of every topic, sorted.

        Args:
            include_internal: Also list Kafka's own topics, such as `__consumer_offsets`.
                Default: False.
        """
        async with self._call("list_topics") as call:
            response = await call.metadata(None)
        infos = [_topic_info(t) for t in response.topics if t[0] == 0]
        return sorted(i.name for i in infos if include_internal or not i.internal)

    async def describe_topics(self, *names: str) -> list[TopicInfo]:
        """Describe topics: partitions, leaders and replicas.

        Args:
            *names: The topics to describe; with none, every topic except Kafka's own.

        Returns:
            One `TopicInfo` per topic, in the order given (sorted by name when none is).

        Raises:
            UnknownTopicOrPartitionError: A topic does not exist; the message names it.
        """
        unique = _unique_topics(names)
        async with self._call("describe_topics", _about_topics(unique)) as call:
            if unique:
                found = await call.describe(unique)
                return [_topic_info(found[n]) for n in unique]
            response = await call.metadata(None)
        infos = [_topic_info(t) for t in response.topics if t[0] == 0]
        return sorted((i for i in infos if not i.internal), key=lambda i: i.name)

    async def create_partitions(self, topic: str, *, total: int) -> None:
        """Grow a topic to `total` partitions, and wait until the metadata shows them.

        Partitions can only be added: keys that hashed to one partition may hash to
        another afterwards.

        Raises:
            ConfigError: `total` is less than 1.
            UnknownTopicOrPartitionError: The topic does not exist.
            BrokerError: The broker refused (INVALID_PARTITIONS when `total` is not more
                than the current count), or lacks the CreatePartitions API (code 35).
        """
        _check_topic_name(topic)
        if not _is_int(total) or total < 1:
            raise ConfigError(f"total must be 1 or more, not {total!r}")
        async with self._call("create_partitions", f" for topic {topic!r}") as call:
            # A null assignment lets the controller place the new partitions.
            growth: list[Any] = [(topic, (total, None))]
            request = CreatePartitionsRequest(growth, int(self.config.timeout * 1000), False)
            response = await call.send_to_controller(request)
            for name, code, message in response.topic_errors:
                if code:
                    raise broker_error(code, topic=name, detail=message or None)
            await call.wait_for_metadata(
                [topic], lambda _, entry: len(partitions_of(entry)) >= total
            )
        self._log.info("partitions_created", topic=topic, total=total)

    # -- configs --------------------------------------------------------------------------

    async def describe_configs(self, topic: str) -> dict[str, str]:
        """Return the configs of a topic, by name.

        Every config the broker reports is included, defaults too (some brokers report
        only those set on the topic). Sensitive values, which brokers hide, are left out.

        Raises:
            UnknownTopicOrPartitionError: The topic does not exist.
        """
        _check_topic_name(topic)
        async with self._call("describe_configs", f" for topic {topic!r}") as call:
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

    async def alter_configs(self, topic: str, configs: Mapping[str, str | None]) -> None:
        """Set configs of a topic, leaving the others as they are.

        Args:
            topic: The topic.
            configs: Config names and their new values; None removes a value set on the
                topic, so the broker's default applies again.

        Raises:
            UnknownTopicOrPartitionError: The topic does not exist.
            BrokerError: The broker refused a config (INVALID_CONFIG names it), or lacks
                the IncrementalAlterConfigs API (code 35; Kafka 2.3 or later has it).
            ConfigError: `configs` does not map names to strings or None.
        """
        _check_topic_name(topic)
        if not isinstance(configs, Mapping) or not all(
            isinstance(k, str) and k and (v is None or isinstance(v, str))
            for k, v in configs.items()
        ):
            raise ConfigError(f"configs must map config names to strings or None, not {configs!r}")
        if not configs:
            return
        async with self._call("alter_configs", f" for topic {topic!r}") as call:
            await call.describe([topic])
            response = await call.send_any(IncrementalAlterConfigsRequest(topic, configs))
        for code, message, *_ in response.responses:
            if code:
                raise broker_error(code, topic=topic, detail=message or None)
        self._log.info("configs_altered", topic=topic, configs=sorted(configs))

    # -- cluster and offsets --------------------------------------------------------------

    async def describe_cluster(self) -> ClusterInfo:
        """Return the cluster id, the controller and the live brokers."""
        async with self._call("describe_cluster") as call:
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

    async def list_offsets(self, topic: str, *, at: OffsetSpec = LAST_OFFSET) -> dict[int, int]:
        """Look up an offset in every partition of a topic.

        Args:
            topic: The topic.
            at: FIRST_OFFSET for the oldest message still kept, LAST_OFFSET for the end
                (where the next message will go), or a timezone-aware time for the first
                message at or after it (the end when every message is older).
                Default: LAST_OFFSET.

        Returns:
            The offset of each partition, by partition id.

        Raises:
            UnknownTopicOrPartitionError: The topic does not exist.
            ConfigError: `at` is not one of the above.
        """
        _check_topic_name(topic)
        _check_offset_spec("at", at, allow_offset=False)
        async with self._call("list_offsets", f" for topic {topic!r}") as call:
            return await call.list_offsets(topic, at)

    # -- consumer groups ------------------------------------------------------------------

    async def list_groups(self) -> list[GroupListing]:
        """Return every consumer group the brokers coordinate, sorted by group id."""
        async with self._call("list_groups") as call:
            response = await call.metadata([])
            nodes = sorted({b[0] for b in response.brokers})
            answers = await asyncio.gather(
                *(call.send(node, ListGroupsWithStateRequest()) for node in nodes)
            )
        groups: dict[str, GroupListing] = {}
        for answer in answers:
            if answer.error_code:
                raise broker_error(answer.error_code, detail="listing the consumer groups")
            for group_id, protocol_type, state in listed_groups(answer):
                groups[group_id] = GroupListing(
                    group_id=group_id, protocol_type=protocol_type, state=state
                )
        return [groups[g] for g in sorted(groups)]

    async def describe_group(self, group_id: str) -> GroupInfo:
        """Describe a consumer group: its state and its members with their partitions.

        A group the coordinator does not know is described with state "Dead" and no
        members (some brokers say "Empty").
        """
        _check_group_id(group_id)
        async with self._call("describe_group", f" for group {group_id!r}") as call:
            return await _describe_group(call, group_id)

    async def group_offsets(
        self, group_id: str, *, topics: Sequence[str] | None = None
    ) -> list[GroupOffset]:
        """Return a group's committed offsets and its lag behind each partition's end.

        Args:
            group_id: The consumer group.
            topics: Only these topics, with every partition of each (committed -1 where
                the group has not committed). With None, every partition where the group
                has a committed offset. Default: None.

        Returns:
            One entry per partition, sorted by topic and partition.

        Raises:
            UnknownTopicOrPartitionError: A topic named in `topics` does not exist.
        """
        _check_group_id(group_id)
        if isinstance(topics, str):
            raise ConfigError("topics must be a list of topic names, not a string")
        names = None if topics is None else _unique_topics(topics)
        async with self._call("group_offsets", f" for group {group_id!r}") as call:
            if names is None:
                # Ask about every partition of the cluster, not with a null topic list:
                # not every broker answers that form (Tansu drops the connection).
                response = await call.metadata(None)
                partitions = {
                    t[1]: [p[1] for p in partitions_of(t)] for t in response.topics if t[0] == 0
                }
            else:
                described = await call.describe(names)
                partitions = {n: [p[1] for p in partitions_of(described[n])] for n in names}
            committed = await call.committed(group_id, partitions)
            if names is None:
                committed = {tp: off for tp, off in committed.items() if off >= 0}
            ends: dict[str, dict[int, int]] = {}
            for topic in sorted({t for t, _ in committed}):
                ends[topic] = await call.list_offsets(topic, LAST_OFFSET)
        result = []
        for (topic, partition), offset in sorted(committed.items()):
            end = ends[topic].get(partition, -1)
            lag = max(0, end - offset) if offset >= 0 and end >= 0 else -1
            result.append(
                GroupOffset(topic=topic, partition=partition, committed=offset, end=end, lag=lag)
            )
        return result

    async def reset_group_offsets(
        self, group_id: str, topic: str, *, to: OffsetSpec
    ) -> dict[tuple[str, int], int]:
        """Set a group's committed offsets for every partition of a topic.

        Only for a group without members (state "Empty" or "Dead"): a running member
        would overwrite the offsets with its own commits. Stop its readers first.

        Args:
            group_id: The consumer group.
            topic: The topic whose partitions to reset.
            to: FIRST_OFFSET, LAST_OFFSET, an offset (moved into each partition's range
                of kept messages, as kafka-consumer-groups does), or a timezone-aware time
                (the first message at or after it, else the end).

        Returns:
            The new committed offset of each `(topic, partition)`.

        Raises:
            Error: The group has members; the message names the group and its state.
            UnknownTopicOrPartitionError: The topic does not exist.
            ConfigError: `to` is not one of the above.
        """
        _check_group_id(group_id)
        _check_topic_name(topic)
        _check_offset_spec("to", to, allow_offset=True)
        about = f" for group {group_id!r} and topic {topic!r}"
        async with self._call("reset_group_offsets", about) as call:
            group = await _describe_group(call, group_id)
            if group.state not in _INACTIVE_STATES:
                raise _group_active(group_id, group.state, len(group.members))
            if isinstance(to, int) and to >= 0:
                first = await call.list_offsets(topic, FIRST_OFFSET)
                last = await call.list_offsets(topic, LAST_OFFSET)
                offsets = {p: min(max(to, first[p]), last.get(p, to)) for p in first}
            else:
                offsets = await call.list_offsets(topic, to)
            request = OffsetCommitRequest(
                group_id,
                OffsetCommitRequest.DEFAULT_GENERATION_ID,
                "",
                OffsetCommitRequest.DEFAULT_RETENTION_TIME,
                [(topic, [(p, o, "") for p, o in sorted(offsets.items())])],
            )
            response = await call.to_coordinator(
                group_id, request, lambda r: (c for _, ps in r.topics for _, c in ps)
            )
        for name, partitions in response.topics:
            for partition, code in partitions:
                if code in GROUP_ACTIVE_CODES:
                    raise _group_active(group_id, "active", None)
                if code:
                    raise broker_error(
                        code, topic=name, partition=partition, detail=f"group {group_id!r}"
                    )
        result = {(topic, p): o for p, o in sorted(offsets.items())}
        self._log.info(
            "group_offsets_reset",
            group_id=group_id,
            topic=topic,
            offsets=dict(sorted(offsets.items())),
        )
        return result

    async def delete_groups(self, *group_ids: str) -> None:
        """Delete consumer groups and their committed offsets.

        Raises:
            BrokerError: A group still has members (NON_EMPTY_GROUP) or does not exist
                (GROUP_ID_NOT_FOUND); the message names it. Earlier groups of the call
                are deleted.
        """
        unique = list(dict.fromkeys(group_ids))
        for group_id in unique:
            _check_group_id(group_id)
        if not unique:
            return
        async with self._call("delete_groups", f" for groups {unique!r}") as call:
            for group_id in unique:
                response = await call.to_coordinator(
                    group_id,
                    DeleteGroupsRequest([group_id]),
                    lambda r: (e[1] for e in r.results),
                )
                for name, code in response.results:
                    if code:
                        raise broker_error(code, detail=f"group {name!r}")
                self._log.info("group_deleted", group_id=group_id)


async def _describe_group(call: AdminCall, group_id: str) -> GroupInfo:
    response = await call.to_coordinator(
        group_id, DescribeGroupsRequest([group_id]), lambda r: (g[0] for g in r.groups)
    )
    for entry in response.groups:
        code, name, state, protocol_type, protocol, members = entry[:6]
        if name != group_id:
            continue
        if code:
            raise broker_error(code, detail=f"group {group_id!r}")
        return GroupInfo(
            group_id=name,
            state=state,
            protocol_type=protocol_type or "",
            protocol=protocol or "",
            members=tuple(
                sorted((_member_info(m, protocol_type) for m in members), key=lambda m: m.member_id)
            ),
        )
    return GroupInfo(group_id=group_id, state="Dead", protocol_type="", protocol="", members=())


# -- helpers ---------------------------------------------------------------------------------


def _unique_topics(names: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(names))
    for name in unique:
        _check_topic_name(name)
    return unique


def _about_topics(names: Iterable[str]) -> str:
    listed = list(names)
    if len(listed) == 1:
        return f" for topic {listed[0]!r}"
    return f" for topics {listed!r}"


def _topic_info(entry: Any) -> TopicInfo:
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


def _member_info(entry: Any, protocol_type: str | None) -> MemberInfo:
    member_id, client_id, host = entry[0], entry[1], entry[2]
    raw = entry[4]
    assignment: tuple[tuple[str, int], ...] = ()
    if protocol_type == "consumer" and raw:
        try:
            decoded = ConsumerProtocolMemberAssignment.decode(raw)
            assignment = tuple(sorted((tp.topic, tp.partition) for tp in decoded.partitions()))
        except (ValueError, TypeError):
            assignment = ()  # not the consumer protocol's layout after all
    return MemberInfo(
        member_id=member_id, client_id=client_id or "", host=host or "", assignment=assignment
    )


def _group_active(group_id: str, state: str, members: int | None) -> GroupNotEmptyError:
    count = "" if members is None else f" with {members} member{'s' if members != 1 else ''}"
    return GroupNotEmptyError(
        f"group {group_id!r} is {state}{count}: stop its consumers (and wait for it to become "
        "Empty) before resetting its offsets",
        group_id=group_id,
        state=state,
    )
