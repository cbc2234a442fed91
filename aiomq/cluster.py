"""What the admin `Client` takes and returns: topics to create, and descriptions of topics,
brokers, consumer groups and their offsets.

These are plain frozen dataclasses, importable without the client itself (and re-exported
by `aiomq` and `aiomq.admin`):

```python
from aiomq.cluster import TopicInfo, TopicSpec
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from aiomq._internal.config import check_topic_name, is_int
from aiomq.errors import ConfigError

__all__ = [
    "BrokerInfo",
    "ClusterInfo",
    "GroupInfo",
    "GroupListing",
    "GroupOffset",
    "MemberInfo",
    "PartitionInfo",
    "TopicInfo",
    "TopicSpec",
]


OffsetSpec = int | datetime
"""Where to look in a partition: FIRST_OFFSET, LAST_OFFSET, or a timezone-aware time."""


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
        check_topic_name(self.name)
        if not is_int(self.partitions) or self.partitions < 1:
            raise ConfigError(
                f"topic {self.name!r}: partitions must be 1 or more, not {self.partitions!r}"
            )
        if not is_int(self.replication_factor) or (
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
