"""The admin Client: topics, configs, offsets and consumer groups (kafka-go's `Client`).

```python
async with aiomq.Client(brokers=["localhost:9092"]) as c:
    await c.create_topics(aiomq.TopicSpec(name="orders", partitions=3))
    print(await c.list_topics())
    print(await c.group_offsets("billing"))
```

What the calls take and return (`TopicSpec`, `TopicInfo`, `GroupOffset`, ...) is defined
in `aiomq.cluster` and re-exported here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from aiomq._internal.admin import groups
from aiomq._internal.admin import topics as ops
from aiomq._internal.admin.call import KafkaClient, new_client
from aiomq._internal.admin.checks import check_group_id, check_offset_spec, unique_topics
from aiomq._internal.config import (
    ClientSettings,
    build_config,
    check_brokers,
    check_connection,
    check_seconds,
    check_topic_name,
    is_int,
)
from aiomq._internal.lifecycle import AsyncResource, Lifecycle
from aiomq._internal.log import get_logger
from aiomq._internal.shield import finish_shielded
from aiomq.cluster import BrokerInfo as BrokerInfo
from aiomq.cluster import ClusterInfo as ClusterInfo
from aiomq.cluster import GroupInfo as GroupInfo
from aiomq.cluster import GroupListing as GroupListing
from aiomq.cluster import GroupOffset as GroupOffset
from aiomq.cluster import MemberInfo as MemberInfo
from aiomq.cluster import OffsetSpec as OffsetSpec
from aiomq.cluster import PartitionInfo as PartitionInfo
from aiomq.cluster import TopicInfo as TopicInfo
from aiomq.cluster import TopicSpec as TopicSpec
from aiomq.errors import ConfigError
from aiomq.message import LAST_OFFSET

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


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientConfig(ClientSettings):
    """Every setting of an admin `Client`, validated when created.

    Raises:
        ConfigError: A value is invalid; the message names the field.
    """

    brokers: Sequence[str]
    """Bootstrap addresses, as `host:port` strings. Required."""

    timeout: float = 10.0
    """Seconds each call may take, retries included; a call that runs out raises
    `RequestTimeoutError` naming it. Default: 10.0."""

    def __post_init__(self) -> None:
        check_brokers(self.brokers)
        check_seconds("timeout", self.timeout, allow_zero=False)
        check_connection(self.client_id, self.dialer)


# -- the client ----------------------------------------------------------------------------


class Client(AsyncResource):
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
        self.config = build_config(ClientConfig, config, options)
        self._log = get_logger(self.config.logger, client_id=self.config.effective_client_id)
        self._kafka: KafkaClient | None = None
        self._life = Lifecycle("Client")

    def __repr__(self) -> str:
        return f"<Client brokers={','.join(self.config.brokers)} {self._life}>"

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._life.start_opening()
        config = self.config
        client = new_client(config)
        try:
            await client.start()
        except BaseException:
            self._life.open_failed()
            await finish_shielded(client.close())
            raise
        self._kafka = client
        self._life.opened()
        return self

    async def aclose(self) -> None:
        """Disconnect from the cluster. Safe to call more than once.

        Runs to its end even if the calling task is cancelled meanwhile, then re-raises
        the cancellation. Calls still running in other tasks fail.
        """
        await self._life.close_once(self._close)

    async def _close(self) -> None:
        try:
            if self._kafka is not None:
                async with asyncio.timeout(self.config.timeout):
                    await self._kafka.close()
        except TimeoutError:
            self._log.warning("client_close_timed_out")

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
        return await ops.create_topics(self, specs, if_not_exists=if_not_exists)

    async def delete_topics(self, *names: str) -> None:
        """Delete topics, and wait until the cluster's metadata no longer shows them.

        Raises:
            UnknownTopicOrPartitionError: A topic does not exist (the others of the call
                are deleted).
            BrokerError: The broker refused to delete a topic.
        """
        unique = unique_topics(names)
        if unique:
            await ops.delete_topics(self, unique)

    async def list_topics(self, *, include_internal: bool = False) -> list[str]:
        """Return the names of every topic, sorted.

        Args:
            include_internal: Also list Kafka's own topics, such as `__consumer_offsets`.
                Default: False.
        """
        return await ops.list_topics(self, include_internal=include_internal)

    async def describe_topics(self, *names: str) -> list[TopicInfo]:
        """Describe topics: partitions, leaders and replicas.

        Args:
            *names: The topics to describe; with none, every topic except Kafka's own.

        Returns:
            One `TopicInfo` per topic, in the order given (sorted by name when none is).

        Raises:
            UnknownTopicOrPartitionError: A topic does not exist; the message names it.
        """
        return await ops.describe_topics(self, unique_topics(names))

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
        check_topic_name(topic)
        if not is_int(total) or total < 1:
            raise ConfigError(f"total must be 1 or more, not {total!r}")
        await ops.create_partitions(self, topic, total)

    # -- configs --------------------------------------------------------------------------

    async def describe_configs(self, topic: str) -> dict[str, str]:
        """Return the configs of a topic, by name.

        Every config the broker reports is included, defaults too (some brokers report
        only those set on the topic). Sensitive values, which brokers hide, are left out.

        Raises:
            UnknownTopicOrPartitionError: The topic does not exist.
        """
        check_topic_name(topic)
        return await ops.describe_configs(self, topic)

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
        check_topic_name(topic)
        if not isinstance(configs, Mapping) or not all(
            isinstance(k, str) and k and (v is None or isinstance(v, str))
            for k, v in configs.items()
        ):
            raise ConfigError(f"configs must map config names to strings or None, not {configs!r}")
        if not configs:
            return
        await ops.alter_configs(self, topic, configs)

    # -- cluster and offsets --------------------------------------------------------------

    async def describe_cluster(self) -> ClusterInfo:
        """Return the cluster id, the controller and the live brokers."""
        return await ops.describe_cluster(self)

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
        check_topic_name(topic)
        check_offset_spec("at", at, allow_offset=False)
        return await ops.list_offsets(self, topic, at)

    # -- consumer groups ------------------------------------------------------------------

    async def list_groups(self) -> list[GroupListing]:
        """Return every consumer group the brokers coordinate, sorted by group id."""
        return await groups.list_groups(self)

    async def describe_group(self, group_id: str) -> GroupInfo:
        """Describe a consumer group: its state and its members with their partitions.

        A group the coordinator does not know is described with state "Dead" and no
        members (some brokers say "Empty").
        """
        check_group_id(group_id)
        return await groups.describe_group(self, group_id)

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
        check_group_id(group_id)
        if isinstance(topics, str):
            raise ConfigError("topics must be a list of topic names, not a string")
        names = None if topics is None else unique_topics(topics)
        return await groups.group_offsets(self, group_id, names)

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
        check_group_id(group_id)
        check_topic_name(topic)
        check_offset_spec("to", to, allow_offset=True)
        return await groups.reset_group_offsets(self, group_id, topic, to)

    async def delete_groups(self, *group_ids: str) -> None:
        """Delete consumer groups and their committed offsets.

        Raises:
            BrokerError: A group still has members (NON_EMPTY_GROUP) or does not exist
                (GROUP_ID_NOT_FOUND); the message names it. Earlier groups of the call
                are deleted.
        """
        unique = list(dict.fromkeys(group_ids))
        for group_id in unique:
            check_group_id(group_id)
        if unique:
            await groups.delete_groups(self, unique)
