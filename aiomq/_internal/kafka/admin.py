"""The admin Client's requests: aiokafka's, built from what a call knows, and those it lacks.

aiokafka's protocol package has most of the requests the admin Client sends, each taking
its fields as tuples in the layout of its schema. The functions here build them from what
a call knows (a topic, a group, offsets), so that no layout leaves the seam. The requests
aiokafka lacks are built with its Struct machinery:

- IncrementalAlterConfigs (API 44, v0): changes only the named configs of a resource.
  aiokafka has the older AlterConfigs, which replaces the whole set (every config not
  named goes back to its default), and which some brokers (Tansu) do not offer.
- CreateTopics v4 (API 19): the first version that lets `replication_factor` be -1 (the
  broker's default). Its layout is v3's; aiokafka stops at v3.
- ListGroups v4 (API 16): adds each group's state to the listing. aiokafka stops at v2;
  this request falls back to those versions on brokers older than Kafka 2.6.

Every request goes out at the newest version both sides know. The answers are read by
field name with `aiomq._internal.kafka.requests.entries`; the fields the admin reads of
each are checked at import (`INTERNALS`). `consumer_assignment` decodes a group member's
assignment, in the layout of the consumer protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeAlias

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.protocol.admin import (
    CreatePartitionsRequest,
    CreateTopicsRequest_v1,
    CreateTopicsRequest_v2,
    CreateTopicsRequest_v3,
    CreateTopicsResponse_v3,
    DeleteGroupsRequest,
    DeleteTopicsRequest,
    DescribeConfigsRequest,
    DescribeGroupsRequest,
    ListGroupsRequest_v0,
    ListGroupsRequest_v1,
    ListGroupsRequest_v2,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.commit import OffsetCommitRequest, OffsetFetchRequest
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.protocol.types import (
    Array,
    Boolean,
    CompactArray,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    String,
    TaggedFields,
)

from aiomq._internal.kafka.requests import KafkaRequest, entries

__all__ = [
    "CONFIG_DELETE",
    "CONFIG_SET",
    "RESOURCE_TOPIC",
    "CreateTopicsRequest",
    "IncrementalAlterConfigsRequest",
    "ListGroupsWithStateRequest",
    "consumer_assignment",
    "create_partitions_request",
    "delete_groups_request",
    "delete_topics_request",
    "describe_configs_request",
    "describe_groups_request",
    "find_coordinator_request",
    "list_offsets_request",
    "listed_groups",
    "metadata_request",
    "offset_commit_request",
    "offset_fetch_request",
]

RESOURCE_TOPIC: Final = 2
"""The config resource type of a topic."""

CONFIG_SET: Final = 0
"""IncrementalAlterConfigs operation: set the value."""

CONFIG_DELETE: Final = 1
"""IncrementalAlterConfigs operation: remove the value, reverting to the default."""

_GROUP_COORDINATOR: Final = 0
"""FindCoordinator's key type of a consumer group (1 is a transactional id)."""

_CLIENT_REPLICA: Final = -1
"""ListOffsets' replica id of a client, as opposed to a follower broker."""

_READ_UNCOMMITTED: Final = 0
"""ListOffsets' isolation level that counts every message, committed or not."""


# -- aiokafka's requests, from what a call knows ---------------------------------------------


def metadata_request(topics: list[str] | None) -> KafkaRequest:
    """Metadata of `topics` (None: every topic; []: only the brokers), never creating one."""
    return MetadataRequest(topics, allow_auto_topic_creation=False)


def list_offsets_request(topic: str, partitions: Iterable[int], timestamp: int) -> KafkaRequest:
    """ListOffsets: the offset at `timestamp` (milliseconds; -1 the end, -2 the start) of
    partitions of one topic, all led by the broker it goes to."""
    return OffsetRequest(
        _CLIENT_REPLICA, _READ_UNCOMMITTED, [(topic, [(p, timestamp) for p in partitions])]
    )


def find_coordinator_request(group_id: str) -> KafkaRequest:
    """FindCoordinator for a consumer group."""
    return FindCoordinatorRequest(group_id, _GROUP_COORDINATOR)


def offset_fetch_request(group_id: str, partitions: list[tuple[str, list[int]]]) -> KafkaRequest:
    """OffsetFetch: the group's committed offsets of `(topic, [partition, ...])` pairs."""
    return OffsetFetchRequest(group_id, partitions)


def offset_commit_request(group_id: str, topic: str, offsets: Mapping[int, int]) -> KafkaRequest:
    """OffsetCommit of offsets (by partition) of one topic, outside any generation and by no
    member, as a group with no members accepts it; kept for the broker's retention time."""
    return OffsetCommitRequest(
        group_id,
        OffsetCommitRequest.DEFAULT_GENERATION_ID,
        "",
        OffsetCommitRequest.DEFAULT_RETENTION_TIME,
        [(topic, [(p, o, "") for p, o in sorted(offsets.items())])],
    )


def delete_topics_request(names: list[str], timeout_ms: int) -> KafkaRequest:
    """DeleteTopics, the controller waiting up to `timeout_ms` for the deletions."""
    return DeleteTopicsRequest(names, timeout_ms)


def create_partitions_request(topic: str, total: int, timeout_ms: int) -> KafkaRequest:
    """CreatePartitions growing `topic` to `total`, the controller placing the new ones."""
    # A null assignment lets the controller place the new partitions.
    growth: list[Any] = [(topic, (total, None))]
    return CreatePartitionsRequest(growth, timeout_ms, False)


def describe_configs_request(topic: str) -> KafkaRequest:
    """DescribeConfigs of every config of one topic, without synonyms."""
    return DescribeConfigsRequest([(RESOURCE_TOPIC, topic, None)], False)


def describe_groups_request(group_id: str) -> KafkaRequest:
    """DescribeGroups of one group."""
    return DescribeGroupsRequest([group_id])


def delete_groups_request(group_id: str) -> KafkaRequest:
    """DeleteGroups of one group."""
    return DeleteGroupsRequest([group_id])


# -- requests aiokafka lacks -----------------------------------------------------------------


class CreateTopicsResponse_v4(Response):
    API_KEY = 19
    API_VERSION = 4
    SCHEMA = CreateTopicsResponse_v3.SCHEMA


class CreateTopicsRequest_v4(RequestStruct):
    API_KEY = 19
    API_VERSION = 4
    RESPONSE_TYPE = CreateTopicsResponse_v4
    SCHEMA = CreateTopicsRequest_v3.SCHEMA


_CreateTopicsStruct: TypeAlias = (
    CreateTopicsRequest_v1
    | CreateTopicsRequest_v2
    | CreateTopicsRequest_v3
    | CreateTopicsRequest_v4
)


class CreateTopicsRequest(Request[_CreateTopicsStruct]):
    """CreateTopics at the newest version both sides know, up to v4.

    Each topic is `(name, partitions, replication_factor, [], [(config, value), ...])`.
    """

    API_KEY = 19

    def __init__(self, topics: list[tuple[Any, ...]], timeout_ms: int) -> None:
        self._topics = topics
        self._timeout_ms = timeout_ms

    def build(self, request_struct_class: type[_CreateTopicsStruct]) -> _CreateTopicsStruct:
        return request_struct_class(self._topics, self._timeout_ms, False)


class IncrementalAlterConfigsResponse_v0(Response):
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "responses",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
            ),
        ),
    )


class IncrementalAlterConfigsRequest_v0(RequestStruct):
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = IncrementalAlterConfigsResponse_v0
    SCHEMA = Schema(
        (
            "resources",
            Array(
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
                (
                    "configs",
                    Array(
                        ("name", String("utf-8")),
                        ("config_operation", Int8),
                        ("value", String("utf-8")),
                    ),
                ),
            ),
        ),
        ("validate_only", Boolean),
    )


class IncrementalAlterConfigsRequest(Request[IncrementalAlterConfigsRequest_v0]):
    """Set (or, for a None value, delete) the named configs of one topic."""

    API_KEY = 44

    def __init__(self, topic: str, configs: Mapping[str, str | None]) -> None:
        self._topic = topic
        self._configs = [
            (name, CONFIG_DELETE if value is None else CONFIG_SET, value)
            for name, value in configs.items()
        ]

    def build(
        self, request_struct_class: type[IncrementalAlterConfigsRequest_v0]
    ) -> IncrementalAlterConfigsRequest_v0:
        return request_struct_class([(RESOURCE_TOPIC, self._topic, self._configs)], False)


class ListGroupsResponse_v4(Response):
    API_KEY = 16
    API_VERSION = 4
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        (
            "groups",
            CompactArray(
                # "group", as aiokafka names it in the older versions.
                ("group", CompactString("utf-8")),
                ("protocol_type", CompactString("utf-8")),
                ("group_state", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class ListGroupsRequest_v4(RequestStruct):
    API_KEY = 16
    API_VERSION = 4
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = ListGroupsResponse_v4
    SCHEMA = Schema(
        ("states_filter", CompactArray(CompactString("utf-8"))),
        ("tags", TaggedFields),
    )


_ListGroupsStruct: TypeAlias = (
    ListGroupsRequest_v0 | ListGroupsRequest_v1 | ListGroupsRequest_v2 | ListGroupsRequest_v4
)


class ListGroupsWithStateRequest(Request[_ListGroupsStruct]):
    """ListGroups at the newest version both sides know; v4 and later name group states."""

    API_KEY = 16

    def build(self, request_struct_class: type[_ListGroupsStruct]) -> _ListGroupsStruct:
        if request_struct_class is ListGroupsRequest_v4:
            return ListGroupsRequest_v4([], {})
        return request_struct_class()


def listed_groups(response: Any) -> list[tuple[str, str, str | None]]:
    """The `(group_id, protocol_type, state or None)` entries of any ListGroups response
    (only v4 and later name the state)."""
    return [
        (g.group, g.protocol_type or "", getattr(g, "group_state", None))
        for g in entries(response, "groups")
    ]


def consumer_assignment(raw: bytes) -> tuple[tuple[str, int], ...]:
    """The `(topic, partition)` pairs, sorted, of a member assignment in the layout of the
    consumer protocol; none when `raw` does not decode as one."""
    try:
        decoded = ConsumerProtocolMemberAssignment.decode(raw)
        return tuple(sorted((tp.topic, tp.partition) for tp in decoded.partitions()))
    except (ValueError, TypeError):
        return ()  # not the consumer protocol's layout after all
