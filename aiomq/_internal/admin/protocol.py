"""The admin Client's requests: how each is sent and retried, and the structs aiokafka lacks.

`AdminCall` carries one public call of `aiomq.Client`: it sends requests to any broker,
the controller, a partition's leader or a group's coordinator, retries what is retriable
(the call's deadline ends the retries), and answers with the raw responses' fields.

The requests aiokafka's protocol package lacks are built with its Struct machinery:

- IncrementalAlterConfigs (API 44, v0): changes only the named configs of a resource.
  aiokafka has the older AlterConfigs, which replaces the whole set (every config not
  named goes back to its default), and which some brokers (Tansu) do not offer.
- CreateTopics v4 (API 19): the first version that lets `replication_factor` be -1 (the
  broker's default). Its layout is v3's; aiokafka stops at v3.
- ListGroups v4 (API 16): adds each group's state to the listing. aiokafka stops at v2;
  this request falls back to those versions on brokers older than Kafka 2.6.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final, TypeAlias, TypeVar

from aiokafka import errors as ak
from aiokafka.client import AIOKafkaClient
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
from aiokafka.protocol.commit import OffsetFetchRequest
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

from aiomq._internal.backoff import backoff_delay
from aiomq._internal.errmap import broker_error
from aiomq.errors import BrokerError, Error
from aiomq.message import to_millis

__all__ = [
    "AdminCall",
    "CONFIG_DELETE",
    "CONFIG_SET",
    "CreateTopicsRequest",
    "GROUP_ACTIVE_CODES",
    "IncrementalAlterConfigsRequest",
    "ListGroupsWithStateRequest",
    "RESOURCE_TOPIC",
    "UNKNOWN_TOPIC",
    "listed_groups",
    "partitions_of",
]

T = TypeVar("T")

UNKNOWN_TOPIC: Final = 3
_LEADER_NOT_AVAILABLE: Final = 5
_UNSUPPORTED_VERSION: Final = 35
_LATEST: Final = -1

GROUP_ACTIVE_CODES: Final = frozenset({22, 25, 27})
"""How a coordinator answers a commit made outside any generation while the group has
members: ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS."""

# Retriable on paper, final for an admin call: a missing topic stays missing.
_FINAL_CODES: Final = frozenset({UNKNOWN_TOPIC}) | GROUP_ACTIVE_CODES
_API_NAMES: Final = {
    2: "ListOffsets",
    3: "Metadata",
    8: "OffsetCommit",
    9: "OffsetFetch",
    10: "FindCoordinator",
    15: "DescribeGroups",
    16: "ListGroups",
    19: "CreateTopics",
    20: "DeleteTopics",
    32: "DescribeConfigs",
    37: "CreatePartitions",
    42: "DeleteGroups",
    44: "IncrementalAlterConfigs",
}

RESOURCE_TOPIC: Final = 2
"""The config resource type of a topic."""

CONFIG_SET: Final = 0
"""IncrementalAlterConfigs operation: set the value."""

CONFIG_DELETE: Final = 1
"""IncrementalAlterConfigs operation: remove the value, reverting to the default."""


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
                ("group_id", CompactString("utf-8")),
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
    """The `(group_id, protocol_type, state or None)` entries of any ListGroups response."""
    if response.API_VERSION >= 4:
        return [(g[0], g[1] or "", g[2]) for g in response.groups]
    return [(g[0], g[1] or "", None) for g in response.groups]


def partitions_of(entry: Any) -> list[Any]:
    """The partition entries of a topic entry of a Metadata response (v0 has no
    is_internal field before them)."""
    partitions: list[Any] = entry[3] if len(entry) > 3 else entry[2]
    return partitions


class AdminCall:
    """One call of the admin Client: its aiokafka client, its name, its last retried error.

    Every method may raise aiokafka's exceptions; the Client maps them when the call ends.
    """

    __slots__ = ("client", "last_error", "operation")

    def __init__(self, client: AIOKafkaClient, operation: str) -> None:
        self.client = client
        self.operation = operation
        self.last_error: Error | None = None

    async def send(self, node: int, request: Request[Any]) -> Any:
        """Send to one broker; an API it lacks is an UNSUPPORTED_VERSION BrokerError."""
        try:
            return await self.client.send(node, request)
        except (ak.IncompatibleBrokerVersion, NotImplementedError) as exc:
            api = _API_NAMES.get(request.API_KEY, f"API {request.API_KEY}")
            raise broker_error(
                _UNSUPPORTED_VERSION,
                detail=(
                    f"broker {node} does not support {api} (Kafka API key {request.API_KEY}) "
                    f"in a version aiomq speaks, and {self.operation} needs it"
                ),
            ) from exc

    async def send_any(self, request: Request[Any]) -> Any:
        """Send to one known broker after another, until one can be reached."""
        nodes: list[int] = [b.nodeId for b in self.client.cluster.brokers()]
        random.shuffle(nodes)
        if not nodes:
            nodes = [self.client.get_random_node()]
        for node in nodes[:-1]:
            with contextlib.suppress(ak.NodeNotReadyError, ak.KafkaConnectionError):
                return await self.send(node, request)
        return await self.send(nodes[-1], request)

    async def send_to_controller(self, request: Request[Any]) -> Any:
        """Send to the controller; to any broker when it is unknown (KRaft brokers forward)."""
        response = await self.metadata([])
        controller = getattr(response, "controller_id", -1)
        if controller in {b[0] for b in response.brokers}:
            with contextlib.suppress(ak.NodeNotReadyError, ak.KafkaConnectionError):
                return await self.send(controller, request)
        return await self.send_any(request)

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until it succeeds or fails for good; the call's deadline ends it."""
        count = 0
        while True:
            count += 1
            try:
                return await attempt()
            except BrokerError as exc:
                if not exc.retriable or exc.code in _FINAL_CODES:
                    raise
                self.last_error = exc
            await asyncio.sleep(backoff_delay(count, 0.05, 1.0))

    async def metadata(self, topics: list[str] | None) -> Any:
        """Ask for the metadata of `topics` (None: every topic), never creating one."""
        return await self.send_any(MetadataRequest(topics, allow_auto_topic_creation=False))

    async def describe(self, names: list[str]) -> dict[str, Any]:
        """The metadata entries of existing topics, waiting out leader elections.

        Raises:
            UnknownTopicOrPartitionError: A topic does not exist; the message names it.
        """

        async def attempt() -> dict[str, Any]:
            response = await self.metadata(names)
            found: dict[str, Any] = {}
            for entry in response.topics:
                if entry[0]:
                    raise broker_error(entry[0], topic=entry[1])
                found[entry[1]] = entry
            for name in names:
                if name not in found:
                    raise broker_error(
                        UNKNOWN_TOPIC, topic=name, detail="the broker's metadata does not list it"
                    )
            return found

        return await self.retrying(attempt)

    async def wait_for_metadata(self, names: list[str], ready: Callable[[str, Any], bool]) -> None:
        """Poll the metadata until `ready(name, entry)` holds for every topic named."""
        count = 0
        while names:
            count += 1
            response = await self.metadata(names)
            entries = {t[1]: t for t in response.topics if t[0] == 0}
            if all(n in entries and ready(n, entries[n]) for n in names):
                return
            await asyncio.sleep(backoff_delay(count, 0.02, 0.5))

    async def wait_until_gone(self, names: list[str]) -> None:
        """Poll the metadata until no topic named is listed any more."""
        count = 0
        while names:
            count += 1
            response = await self.metadata(names)
            if all(t[0] == UNKNOWN_TOPIC for t in response.topics if t[1] in names):
                return
            await asyncio.sleep(backoff_delay(count, 0.02, 0.5))

    async def list_offsets(self, topic: str, at: int | datetime) -> dict[int, int]:
        """The offset at `at` (FIRST_OFFSET, LAST_OFFSET or a time) of every partition.

        For a time after every message of a partition, its end offset.
        """
        entry = (await self.describe([topic]))[topic]
        if isinstance(at, datetime):
            found = await self._offsets_at(topic, entry, to_millis(at))
            missing = [p for p, o in found.items() if o < 0]
            if missing:
                ends = await self._offsets_at(topic, entry, _LATEST)
                found.update({p: ends[p] for p in missing})
            return found
        return await self._offsets_at(topic, entry, at)

    async def _offsets_at(self, topic: str, entry: Any, timestamp: int) -> dict[int, int]:
        by_leader: dict[int, list[int]] = {}
        for p in partitions_of(entry):
            by_leader.setdefault(p[2], []).append(p[1])
        if -1 in by_leader:
            raise broker_error(
                _LEADER_NOT_AVAILABLE,
                topic=topic,
                partition=by_leader[-1][0],
                detail="the partition has no leader",
            )
        answers = await asyncio.gather(
            *(
                self.send(leader, OffsetRequest(-1, 0, [(topic, [(p, timestamp) for p in parts])]))
                for leader, parts in by_leader.items()
            )
        )
        offsets: dict[int, int] = {}
        for answer in answers:
            for _name, partitions in answer.topics:
                for found in partitions:
                    partition, code = found[0], found[1]
                    if code:
                        raise broker_error(code, topic=topic, partition=partition)
                    # v0 answers a list of offsets; later versions one offset.
                    last = found[-1]
                    offsets[partition] = last[0] if isinstance(last, list) else last
        return dict(sorted(offsets.items()))

    async def coordinator(self, group_id: str) -> int:
        """The node id of the group's coordinator."""

        async def attempt() -> int:
            response = await self.send_any(FindCoordinatorRequest(group_id, 0))
            if response.error_code:
                raise broker_error(response.error_code, detail=f"group {group_id!r}")
            node: int = response.coordinator_id
            return node

        return await self.retrying(attempt)

    async def to_coordinator(
        self, group_id: str, request: Request[Any], codes: Callable[[Any], Iterable[int]]
    ) -> Any:
        """Send a group request to the group's coordinator, finding it again if it moved.

        `codes` lists the error codes of a response; retriable ones (a moved or loading
        coordinator) make the request go again, the others are left to the caller.
        """

        async def attempt() -> Any:
            node = await self.coordinator(group_id)
            response = await self.send(node, request)
            for code in codes(response):
                if code:
                    error = broker_error(code, detail=f"group {group_id!r}")
                    if error.retriable and code not in _FINAL_CODES:
                        raise error
            return response

        return await self.retrying(attempt)

    async def committed(
        self, group_id: str, partitions: Mapping[str, list[int]]
    ) -> dict[tuple[str, int], int]:
        """The group's committed offset of each partition named; -1 where it has none."""
        wanted = [(t, ps) for t, ps in sorted(partitions.items()) if ps]
        if not wanted:
            return {}
        response = await self.to_coordinator(
            group_id,
            OffsetFetchRequest(group_id, wanted),
            lambda r: [getattr(r, "error_code", 0)] + [e[3] for _, es in r.topics for e in es],
        )
        if getattr(response, "error_code", 0):
            raise broker_error(response.error_code, detail=f"group {group_id!r}")
        committed: dict[tuple[str, int], int] = {}
        for topic, entries in response.topics:
            for partition, offset, _metadata, code in entries:
                if code:
                    raise broker_error(
                        code, topic=topic, partition=partition, detail=f"group {group_id!r}"
                    )
                committed[(topic, partition)] = offset
        return committed
