"""The admin Client's wire protocol: the requests aiokafka lacks.

The requests aiokafka's protocol package lacks are built with its Struct machinery:

- IncrementalAlterConfigs (API 44, v0): changes only the named configs of a resource.
  aiokafka has the older AlterConfigs, which replaces the whole set (every config not
  named goes back to its default), and which some brokers (Tansu) do not offer.
- CreateTopics v4 (API 19): the first version that lets `replication_factor` be -1 (the
  broker's default). Its layout is v3's; aiokafka stops at v3.
- ListGroups v4 (API 16): adds each group's state to the listing. aiokafka stops at v2;
  this request falls back to those versions on brokers older than Kafka 2.6.

Their answers, like every other, are read by field name with
`aiomq._internal.kafka.requests.entries`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeAlias

from aiokafka.protocol.admin import (
    CreateTopicsRequest_v1,
    CreateTopicsRequest_v2,
    CreateTopicsRequest_v3,
    CreateTopicsResponse_v3,
    ListGroupsRequest_v0,
    ListGroupsRequest_v1,
    ListGroupsRequest_v2,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
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

from aiomq._internal.kafka.errors import ErrorCode
from aiomq._internal.kafka.requests import entries

__all__ = [
    "CONFIG_DELETE",
    "CONFIG_SET",
    "CreateTopicsRequest",
    "GROUP_ACTIVE_CODES",
    "IncrementalAlterConfigsRequest",
    "ListGroupsWithStateRequest",
    "RESOURCE_TOPIC",
    "listed_groups",
]

GROUP_ACTIVE_CODES: Final = frozenset(
    {ErrorCode.ILLEGAL_GENERATION, ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.REBALANCE_IN_PROGRESS}
)
"""How a coordinator answers a commit made outside any generation while the group has
members."""

RESOURCE_TOPIC: Final = 2
"""The config resource type of a topic."""

CONFIG_SET: Final = 0
"""IncrementalAlterConfigs operation: set the value."""

CONFIG_DELETE: Final = 1
"""IncrementalAlterConfigs operation: remove the value, reverting to the default."""


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
