"""One call of the admin Client: where its requests go, what is retried, how it ends.

`call_scope` gives each public call of `aiomq.Client` an `AdminCall`, bounds it by the
client's timeout and maps its errors. The `AdminCall` sends requests to any broker, the
controller, a partition's leader or a group's coordinator, and retries what is retriable
(the call's deadline ends the retries).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar

from aiokafka import errors as ak

from aiomq._internal.backoff import backoff_delay
from aiomq._internal.kafka.admin import (
    find_coordinator_request,
    list_offsets_request,
    metadata_request,
    offset_fetch_request,
)
from aiomq._internal.kafka.client import KafkaClient
from aiomq._internal.kafka.errors import ErrorCode, broker_error, translate
from aiomq._internal.kafka.requests import KafkaRequest, entries
from aiomq._internal.lifecycle import Lifecycle
from aiomq.dialer import Dialer
from aiomq.errors import BrokerError, ClosedError, Error, RequestTimeoutError
from aiomq.message import to_millis

__all__ = [
    "AdminCall",
    "AdminClient",
    "AdminSettings",
    "GROUP_ACTIVE_CODES",
    "KafkaClient",
    "about_topics",
    "call_scope",
    "new_client",
]

T = TypeVar("T")

GROUP_ACTIVE_CODES: Final = frozenset(
    {ErrorCode.ILLEGAL_GENERATION, ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.REBALANCE_IN_PROGRESS}
)
"""How a coordinator answers a commit made outside any generation while the group has
members."""

_LATEST: Final = -1

# Retriable on paper, final for an admin call: a missing topic stays missing.
_FINAL_CODES: Final = frozenset({ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}) | GROUP_ACTIVE_CODES
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


class AdminSettings(Protocol):
    """What a call reads of the admin Client's settings (an `aiomq.admin.ClientConfig`)."""

    @property
    def brokers(self) -> Sequence[str]: ...

    @property
    def timeout(self) -> float: ...

    @property
    def dialer(self) -> Dialer | None: ...

    @property
    def effective_client_id(self) -> str: ...


class AdminClient(Protocol):
    """What a call needs of the admin Client making it (an `aiomq.admin.Client`): its
    settings, its state, its cluster client and its logger."""

    _kafka: KafkaClient | None
    _life: Lifecycle
    _log: Any

    @property
    def config(self) -> AdminSettings: ...


def new_client(config: AdminSettings) -> KafkaClient:
    """Build, without connecting it, the cluster client an admin client sends through.

    Args:
        config: The admin client's settings.
    """
    return KafkaClient(
        brokers=config.brokers,
        client_id=config.effective_client_id,
        dialer=config.dialer,
        # aiokafka's own per-request limit sits just past the call's, so the call's
        # deadline is the one that fires, with a message naming the call.
        request_timeout=config.timeout + 1.0,
        # aiokafka's default: a call asks for the metadata it acts on itself, and reads
        # the client's own only for the brokers it may ask.
        metadata_max_age=300.0,
    )


@contextlib.asynccontextmanager
async def call_scope(
    client: AdminClient, operation: str, about: str = ""
) -> AsyncIterator[AdminCall]:
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
    kafka = client._kafka
    if not client._life.is_open or kafka is None:
        raise ClosedError(f"{operation} on a Client that is {client._life}")
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
        if not client._life.is_open:
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


class AdminCall:
    """One call of the admin Client: its cluster client, its name, its last retried error.

    Every method may raise aiokafka's exceptions; `call_scope` maps them when the call
    ends. Answers are read by field name (`aiomq._internal.kafka.requests.entries`).
    """

    __slots__ = ("client", "last_error", "operation")

    def __init__(self, client: KafkaClient, operation: str) -> None:
        self.client = client
        self.operation = operation
        self.last_error: Error | None = None

    async def send(self, node: int, request: KafkaRequest) -> Any:
        """Send to one broker; an API it lacks is an UNSUPPORTED_VERSION BrokerError."""
        try:
            return await self.client.send(node, request)
        except (ak.IncompatibleBrokerVersion, NotImplementedError) as exc:
            api = _API_NAMES.get(request.API_KEY, f"API {request.API_KEY}")
            raise broker_error(
                ErrorCode.UNSUPPORTED_VERSION,
                detail=(
                    f"broker {node} does not support {api} (Kafka API key {request.API_KEY}) "
                    f"in a version aiomq speaks, and {self.operation} needs it"
                ),
            ) from exc

    async def send_any(self, request: KafkaRequest) -> Any:
        """Send to one known broker after another, until one can be reached."""

        async def send(node: int) -> Any:
            return await self.send(node, request)

        return await self.client.ask_any_broker(send, skip=_unreachable)

    async def send_to_controller(self, request: KafkaRequest) -> Any:
        """Send to the controller; to any broker when it is unknown (KRaft brokers forward)."""
        response = await self.metadata([])
        controller = getattr(response, "controller_id", -1)
        if controller in {b.node_id for b in entries(response, "brokers")}:
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
        return await self.send_any(metadata_request(topics))

    async def describe(self, names: list[str]) -> dict[str, Any]:
        """The metadata topic entries of existing topics, waiting out leader elections.

        Raises:
            UnknownTopicOrPartitionError: A topic does not exist; the message names it.
        """

        async def attempt() -> dict[str, Any]:
            response = await self.metadata(names)
            found: dict[str, Any] = {}
            for topic in entries(response, "topics"):
                if topic.error_code:
                    raise broker_error(topic.error_code, topic=topic.topic)
                found[topic.topic] = topic
            for name in names:
                if name not in found:
                    raise broker_error(
                        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                        topic=name,
                        detail="the broker's metadata does not list it",
                    )
            return found

        return await self.retrying(attempt)

    async def wait_for_metadata(self, names: list[str], ready: Callable[[str, Any], bool]) -> None:
        """Poll the metadata until `ready(name, topic entry)` holds for every topic named."""
        count = 0
        while names:
            count += 1
            response = await self.metadata(names)
            found = {
                t.topic: t for t in entries(response, "topics") if t.error_code == ErrorCode.NONE
            }
            if all(n in found and ready(n, found[n]) for n in names):
                return
            await asyncio.sleep(backoff_delay(count, 0.02, 0.5))

    async def wait_until_gone(self, names: list[str]) -> None:
        """Poll the metadata until no topic named is listed any more."""
        count = 0
        while names:
            count += 1
            response = await self.metadata(names)
            if all(
                t.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                for t in entries(response, "topics")
                if t.topic in names
            ):
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
        for p in entry.partitions:
            by_leader.setdefault(p.leader, []).append(p.partition)
        if -1 in by_leader:
            raise broker_error(
                ErrorCode.LEADER_NOT_AVAILABLE,
                topic=topic,
                partition=by_leader[-1][0],
                detail="the partition has no leader",
            )
        answers = await asyncio.gather(
            *(
                self.send(leader, list_offsets_request(topic, parts, timestamp))
                for leader, parts in by_leader.items()
            )
        )
        offsets: dict[int, int] = {}
        for answer in answers:
            for found in entries(answer, "topics"):
                for p in found.partitions:
                    if p.error_code:
                        raise broker_error(p.error_code, topic=topic, partition=p.partition)
                    # v0 answers a list of offsets; later versions one offset.
                    offsets[p.partition] = p.offsets[0] if hasattr(p, "offsets") else p.offset
        return dict(sorted(offsets.items()))

    async def coordinator(self, group_id: str) -> int:
        """The node id of the group's coordinator."""

        async def attempt() -> int:
            response = await self.send_any(find_coordinator_request(group_id))
            if response.error_code:
                raise broker_error(response.error_code, detail=f"group {group_id!r}")
            node: int = response.coordinator_id
            return node

        return await self.retrying(attempt)

    async def to_coordinator(
        self, group_id: str, request: KafkaRequest, codes: Callable[[Any], Iterable[int]]
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

        def codes(response: Any) -> list[int]:
            # The top-level error code came with v2.
            found = [getattr(response, "error_code", 0)]
            found += [p.error_code for t in entries(response, "topics") for p in t.partitions]
            return found

        request = offset_fetch_request(group_id, wanted)
        response = await self.to_coordinator(group_id, request, codes)
        if getattr(response, "error_code", 0):
            raise broker_error(response.error_code, detail=f"group {group_id!r}")
        committed: dict[tuple[str, int], int] = {}
        for topic in entries(response, "topics"):
            for p in topic.partitions:
                if p.error_code:
                    raise broker_error(
                        p.error_code,
                        topic=topic.topic,
                        partition=p.partition,
                        detail=f"group {group_id!r}",
                    )
                committed[(topic.topic, p.partition)] = p.offset
        return committed


def _unreachable(exc: Exception) -> bool:
    """Tell whether a failure to send is the broker's being out of reach, so that another
    broker may answer."""
    return isinstance(exc, ak.NodeNotReadyError | ak.KafkaConnectionError)
