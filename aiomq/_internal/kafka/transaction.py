"""The transaction protocol: a transactional producer's requests, one function each.

Each function sends one request, reads the answer by field name and raises the most
specific aiomq error for a refusal (`errors.broker_error`), naming the transactional id
and the step. Nothing here retries or keeps state: the caller (a transactional Writer,
later) decides what a retriable error means.

The requests go out at the newest version both sides know. aiokafka has only version 0
of each; two more are built here with its Struct machinery:

- InitProducerId v3 (API 22): adds the current producer id and epoch (-1 for a producer
  that has none). Some brokers (Tansu) refuse a transactional id in v0.
- TxnOffsetCommit v3 (API 28, KIP-447): adds the group's generation, member id and
  group instance id, so that a consumer that lost its partitions in a rebalance cannot
  commit offsets for them. Older brokers get v0, without them.

FindCoordinator (v1, key type 1), AddPartitionsToTxn, AddOffsetsToTxn and EndTxn (v0)
are aiokafka's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeAlias

from aiokafka import errors as ak
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.transaction import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest_v0,
    TxnOffsetCommitRequest_v0,
)
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

from aiomq._internal.kafka.client import KafkaClient
from aiomq._internal.kafka.errors import ErrorCode, broker_error, map_errors
from aiomq._internal.kafka.requests import KafkaRequest, entries
from aiomq.errors import BrokerConnectionError, BrokerError, RequestTimeoutError

__all__ = [
    "TRANSACTION_COORDINATOR",
    "TransactionalInitProducerIdRequest",
    "TxnOffsetCommitRequest",
    "add_offsets",
    "add_partitions",
    "commit_offsets_in_transaction",
    "end_transaction",
    "find_transaction_coordinator",
    "init_transactional_producer",
]

TRANSACTION_COORDINATOR: Final = 1
"""FindCoordinator's key type of a transactional id (0 is a consumer group)."""

_NO_PRODUCER: Final = -1
"""InitProducerId's producer id and epoch of a producer that has none yet."""

_NO_LEADER_EPOCH: Final = -1
"""TxnOffsetCommit's leader epoch of an offset whose leader epoch is not known."""


# -- requests aiokafka lacks -----------------------------------------------------------------


class InitProducerIdResponse_v3(Response):
    API_KEY = 22
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("tags", TaggedFields),
    )


class InitProducerIdRequest_v3(RequestStruct):
    API_KEY = 22
    API_VERSION = 3
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = InitProducerIdResponse_v3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("transaction_timeout_ms", Int32),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("tags", TaggedFields),
    )


_InitProducerIdStruct: TypeAlias = InitProducerIdRequest_v0 | InitProducerIdRequest_v3


class TransactionalInitProducerIdRequest(Request[_InitProducerIdStruct]):
    """InitProducerId for a transactional id, at v3 when the broker has it, else v0."""

    API_KEY = 22

    def __init__(
        self,
        transactional_id: str,
        transaction_timeout_ms: int,
        producer_id: int = _NO_PRODUCER,
        producer_epoch: int = _NO_PRODUCER,
    ) -> None:
        self._transactional_id = transactional_id
        self._timeout_ms = transaction_timeout_ms
        self._producer = (producer_id, producer_epoch)

    def build(self, request_struct_class: type[_InitProducerIdStruct]) -> _InitProducerIdStruct:
        if request_struct_class is InitProducerIdRequest_v3:
            return InitProducerIdRequest_v3(
                self._transactional_id, self._timeout_ms, *self._producer, {}
            )
        if self._producer[0] != _NO_PRODUCER:
            # v0 cannot say which producer asks: the coordinator would take it for a new
            # one and fence whichever producer holds the transactional id now.
            raise ak.IncompatibleBrokerVersion(
                "renewing a producer's epoch needs InitProducerId v3 or later"
            )
        return request_struct_class(self._transactional_id, self._timeout_ms)


class TxnOffsetCommitResponse_v3(Response):
    API_KEY = 28
    API_VERSION = 3
    # The fields are named as in aiokafka's v0, so that both read alike.
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "errors",
            CompactArray(
                ("topic", CompactString("utf-8")),
                (
                    "partition_errors",
                    CompactArray(
                        ("partition", Int32), ("error_code", Int16), ("tags", TaggedFields)
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class TxnOffsetCommitRequest_v3(RequestStruct):
    API_KEY = 28
    API_VERSION = 3
    FLEXIBLE_VERSION = True
    RESPONSE_TYPE = TxnOffsetCommitResponse_v3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("group_id", CompactString("utf-8")),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", CompactString("utf-8")),
        ("group_instance_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("topic", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition", Int32),
                        ("offset", Int64),
                        ("leader_epoch", Int32),
                        ("metadata", CompactString("utf-8")),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


_TxnOffsetCommitStruct: TypeAlias = TxnOffsetCommitRequest_v0 | TxnOffsetCommitRequest_v3


class TxnOffsetCommitRequest(Request[_TxnOffsetCommitStruct]):
    """TxnOffsetCommit at v3 when the broker has it (with the group's generation, member
    id and group instance id), else v0 (without them)."""

    API_KEY = 28

    def __init__(
        self,
        transactional_id: str,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        offsets: Mapping[str, Mapping[int, int]],
        *,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
    ) -> None:
        self._ids = (transactional_id, group_id, producer_id, producer_epoch)
        self._member = (generation_id, member_id, group_instance_id)
        self._offsets = {
            topic: sorted(by_partition.items()) for topic, by_partition in offsets.items()
        }

    def build(self, request_struct_class: type[_TxnOffsetCommitStruct]) -> _TxnOffsetCommitStruct:
        if request_struct_class is TxnOffsetCommitRequest_v3:
            topics: list[Any] = [
                (topic, [(p, o, _NO_LEADER_EPOCH, "", {}) for p, o in partitions], {})
                for topic, partitions in self._offsets.items()
            ]
            return TxnOffsetCommitRequest_v3(*self._ids, *self._member, topics, {})
        return request_struct_class(
            *self._ids,
            [
                (topic, [(p, o, "") for p, o in partitions])
                for topic, partitions in self._offsets.items()
            ],
        )


# -- the steps of a transaction --------------------------------------------------------------


async def find_transaction_coordinator(client: KafkaClient, transactional_id: str) -> int:
    """Find the node id of the broker that coordinates `transactional_id`'s transactions.

    Args:
        client: The connection to the cluster.
        transactional_id: The producer's transactional id.

    Returns:
        The coordinator's node id.

    Raises:
        BrokerConnectionError: No known broker could be reached.
        BrokerError: The broker refused (COORDINATOR_NOT_AVAILABLE is retriable).
    """
    request = FindCoordinatorRequest(transactional_id, TRANSACTION_COORDINATOR)
    step = "finding the transaction coordinator"

    async def send(node: int) -> Any:
        return await _send(client, node, request, transactional_id, step)

    response = await client.ask_any_broker(send, skip=_unreachable)
    _check(response.error_code, transactional_id, step)
    node: int = response.coordinator_id
    return node


async def init_transactional_producer(
    client: KafkaClient,
    node: int,
    transactional_id: str,
    transaction_timeout: float,
    current: tuple[int, int] = (_NO_PRODUCER, _NO_PRODUCER),
) -> tuple[int, int]:
    """Get the producer id and a new epoch for `transactional_id` from its coordinator.

    A new producer (`current` left out) fences every older producer with the same
    transactional id (their epoch is now stale) and gets a transaction one of them left
    open aborted. A producer that has an id already passes it with its epoch (KIP-360,
    InitProducerId v3): the coordinator then bumps the epoch only if it is still the
    latest, and answers PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before Kafka 2.7) if a
    newer producer took the transactional id meanwhile.

    Args:
        client: The connection to the cluster.
        node: The transaction coordinator's node id.
        transactional_id: The producer's transactional id.
        transaction_timeout: Seconds after which the coordinator aborts an open
            transaction of this producer.
        current: The producer's id and epoch, if it has them. Sent only with v3.

    Returns:
        `(producer_id, producer_epoch)`.

    Raises:
        BrokerConnectionError: The coordinator could not be reached.
        BrokerError: The coordinator refused (NOT_COORDINATOR and
            CONCURRENT_TRANSACTIONS among others).
    """
    step = "initializing the transactional producer"
    request = TransactionalInitProducerIdRequest(
        transactional_id, int(transaction_timeout * 1000), *current
    )
    response = await _send(client, node, request, transactional_id, step)
    _check(response.error_code, transactional_id, step)
    return response.producer_id, response.producer_epoch


async def add_partitions(
    client: KafkaClient,
    node: int,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    partitions: Mapping[str, Sequence[int]],
) -> None:
    """Add partitions to the producer's open transaction, before writing to them.

    Args:
        client: The connection to the cluster.
        node: The transaction coordinator's node id.
        transactional_id: The producer's transactional id.
        producer_id: Its producer id.
        producer_epoch: Its epoch.
        partitions: The partitions, by topic.

    Raises:
        BrokerConnectionError: The coordinator could not be reached.
        BrokerError: The coordinator refused a partition (the first one refused is named;
            OPERATION_NOT_ATTEMPTED, the others' answer when one fails, never is).
    """
    step = "adding partitions to the transaction"
    request = AddPartitionsToTxnRequest(
        transactional_id,
        producer_id,
        producer_epoch,
        [(topic, list(ids)) for topic, ids in partitions.items()],
    )
    response = await _send(client, node, request, transactional_id, step)
    _check_partitions(response, transactional_id, step)


async def add_offsets(
    client: KafkaClient,
    node: int,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    group_id: str,
) -> None:
    """Add a consumer group's offsets to the producer's open transaction, before they are
    committed in it (`commit_offsets_in_transaction`).

    Raises:
        BrokerConnectionError: The coordinator could not be reached.
        BrokerError: The coordinator refused.
    """
    step = f"adding the offsets of group {group_id!r} to the transaction"
    request = AddOffsetsToTxnRequest(transactional_id, producer_id, producer_epoch, group_id)
    response = await _send(client, node, request, transactional_id, step)
    _check(response.error_code, transactional_id, step)


async def commit_offsets_in_transaction(
    client: KafkaClient,
    group_coordinator_node: int,
    transactional_id: str,
    group_id: str,
    producer_id: int,
    producer_epoch: int,
    offsets: Mapping[str, Mapping[int, int]],
    generation_id: int = -1,
    member_id: str = "",
    group_instance_id: str | None = None,
) -> None:
    """Commit a group's offsets as part of the producer's open transaction: the group sees
    them when the transaction commits, and never if it aborts.

    Args:
        client: The connection to the cluster.
        group_coordinator_node: The node id of the group's coordinator (not the
            transaction's).
        transactional_id: The producer's transactional id.
        group_id: The consumer group.
        producer_id: The producer's id.
        producer_epoch: Its epoch.
        offsets: The offsets to commit (the next offset to read), by topic and partition.
        generation_id: The group's generation the offsets were read in, or -1. Sent only
            to brokers with TxnOffsetCommit v3 (Kafka 2.5 and later).
        member_id: The group member that read them, or "". Sent only with v3.
        group_instance_id: The member's static instance id, or None. Sent only with v3.

    Raises:
        BrokerConnectionError: The group coordinator could not be reached.
        BrokerError: The coordinator refused a partition (the first one refused is
            named), as ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID after a rebalance.
    """
    step = f"committing the offsets of group {group_id!r} in the transaction"
    request = TxnOffsetCommitRequest(
        transactional_id,
        group_id,
        producer_id,
        producer_epoch,
        offsets,
        generation_id=generation_id,
        member_id=member_id,
        group_instance_id=group_instance_id,
    )
    response = await _send(client, group_coordinator_node, request, transactional_id, step)
    _check_partitions(response, transactional_id, step)


async def end_transaction(
    client: KafkaClient,
    node: int,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    commit: bool,
) -> None:
    """Commit (`commit=True`) or abort the producer's open transaction.

    Raises:
        BrokerConnectionError: The coordinator could not be reached.
        BrokerError: The coordinator refused: PRODUCER_FENCED or INVALID_PRODUCER_EPOCH
            when a newer producer with the same transactional id has fenced this one.
    """
    step = "committing the transaction" if commit else "aborting the transaction"
    request = EndTxnRequest(transactional_id, producer_id, producer_epoch, commit)
    response = await _send(client, node, request, transactional_id, step)
    _check(response.error_code, transactional_id, step)


# -- sending and reading ---------------------------------------------------------------------


async def _send(
    client: KafkaClient, node: int, request: KafkaRequest, transactional_id: str, step: str
) -> Any:
    """Send `request` to `node`; an API the broker lacks in every version aiokafka (or
    this module) speaks is an UNSUPPORTED_VERSION naming the step."""
    with map_errors(brokers=client.brokers):
        try:
            return await client.send(node, request)
        except (ak.IncompatibleBrokerVersion, NotImplementedError) as exc:
            raise _refused(ErrorCode.UNSUPPORTED_VERSION, transactional_id, step) from exc


def _unreachable(exc: Exception) -> bool:
    """Tell whether another broker may answer after this failure of one."""
    return isinstance(exc, BrokerConnectionError | RequestTimeoutError)


def _refused(
    code: int,
    transactional_id: str,
    step: str,
    *,
    topic: str | None = None,
    partition: int | None = None,
) -> BrokerError:
    """The error for a refusal, naming the transactional id and the step."""
    return broker_error(
        code,
        topic=topic,
        partition=partition,
        detail=f"transactional id {transactional_id!r}, while {step}",
    )


def _check(code: int, transactional_id: str, step: str) -> None:
    if code:
        raise _refused(code, transactional_id, step)


_OPERATION_NOT_ATTEMPTED: Final = 55
"""The answer for the other partitions of a request that one partition failed."""


def _check_partitions(response: Any, transactional_id: str, step: str) -> None:
    """Raise for the first partition refused in an answer with per-partition errors."""
    refused = [
        (entry.topic, answer.partition, answer.error_code)
        for entry in entries(response, "errors")
        for answer in entry.partition_errors
        if answer.error_code
    ]
    refused.sort(key=lambda item: item[2] == _OPERATION_NOT_ATTEMPTED)
    if refused:
        topic, partition, code = refused[0]
        raise _refused(code, transactional_id, step, topic=topic, partition=partition)
