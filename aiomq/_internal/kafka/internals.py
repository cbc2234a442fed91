"""The private or undocumented parts of aiokafka that the seam relies on, and their shapes.

Each `Internal` names one part, says what aiomq uses it for, and lists what must hold of
it: attributes, parameters, attributes its constructor sets, response fields read by
name, or a probe that exercises it. `aiomq._internal.kafka.check` verifies them all when
the seam is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["INTERNALS", "Internal"]


@dataclass(frozen=True, slots=True)
class Internal:
    """One private or undocumented part of aiokafka that aiomq relies on, and its shape."""

    module: str
    """The module that holds it, as imported."""

    name: str
    """Its dotted name in the module ("AIOKafkaClient.send")."""

    used_for: str
    """What aiomq uses it for, named in the error when it is missing."""

    attrs: tuple[str, ...] = ()
    """Attributes (methods included) it must have."""

    params: tuple[str, ...] = ()
    """Parameters its signature must have (a class's are its constructor's)."""

    sets: tuple[str, ...] = ()
    """Instance attributes a class's constructor must set, read from its code."""

    response_fields: tuple[str, ...] = ()
    """Fields, dotted through arrays ("topics.partitions.error_code"), that the response of
    every version of this request aiokafka may send must have."""

    probe: Callable[[Any], object] | None = None
    """Called with it; must return without raising."""

    @property
    def part(self) -> str:
        """Its full dotted name."""
        return f"{self.module}.{self.name}"


def _builds_batches(builder: Any) -> None:
    """The record batch builder takes these keywords, always takes a batch's first record
    even when too large, and then refuses a record that does not fit by returning None."""
    batch = builder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=64,
    )
    if batch.append(0, 0, b"k", b"v" * 100, []) is None:
        raise AssertionError("it refused the first record of a batch")
    if batch.append(1, 0, b"k", b"v" * 100, []) is not None:
        raise AssertionError("it took a record past the batch's size")
    if batch.size() <= 0 or not batch.build():
        raise AssertionError("it built an empty batch")


def _names_fields(schema_class: Any) -> None:
    """A Schema lists its field names and types; an Array of fields holds a Schema."""
    from aiokafka.protocol.types import Array, Int16

    schema = schema_class(("a", Int16), ("b", Array(("c", Int16), ("d", Int16))))
    if schema.names != ("a", "b") or not isinstance(schema.fields[1], Array):
        raise AssertionError("it does not list its fields' names and types")
    if getattr(schema.fields[1].array_of, "names", None) != ("c", "d"):
        raise AssertionError("an Array of fields holds no Schema of them")


def _describes_codes(for_code: Any) -> None:
    """`for_code` gives the class of a code's error, with its code, name and retriability."""
    error = for_code(3)
    if (error.errno, error.message, error.retriable) != (3, "UNKNOWN_TOPIC_OR_PARTITION", True):
        raise AssertionError("it does not describe code 3 as UNKNOWN_TOPIC_OR_PARTITION")


def _picks_versions(request: Any) -> None:
    """A request is built at the newest version both sides know; with none in common it
    raises IncompatibleBrokerVersion (an API the broker lacks) or NotImplementedError (only
    versions aiokafka lacks), which the admin Client reports as UNSUPPORTED_VERSION."""
    from aiokafka.errors import IncompatibleBrokerVersion
    from aiokafka.protocol.api import RequestStruct, Response
    from aiokafka.protocol.types import Schema

    class Answer(Response):
        API_KEY = 9999
        API_VERSION = 0
        SCHEMA = Schema()

    class Ask_v0(RequestStruct):
        API_KEY = 9999
        API_VERSION = 0
        RESPONSE_TYPE = Answer
        SCHEMA = Schema()

    class Ask_v1(Ask_v0):
        API_VERSION = 1

    class Ask(request[Ask_v0 | Ask_v1]):  # type: ignore[misc]
        API_KEY = 9999

        def build(self, request_struct_class: Any) -> Any:
            return request_struct_class()

    if type(Ask().prepare({9999: (0, 5)})) is not Ask_v1:
        raise AssertionError("it does not build the newest version both sides know")
    for versions, error in (({}, IncompatibleBrokerVersion), ({9999: (2, 5)}, NotImplementedError)):
        try:
            Ask().prepare(versions)
        except error:
            continue
        raise AssertionError(f"it raises no {error.__name__} when no version is in common")


def _decodes_assignments(assignment: Any) -> None:
    """A consumer-protocol assignment decodes to the partitions it was encoded with, and
    bytes that are not one raise ValueError."""
    raw = assignment(0, [("t", [1, 0])], b"").encode()
    if sorted((tp.topic, tp.partition) for tp in assignment.decode(raw).partitions()) != [
        ("t", 0),
        ("t", 1),
    ]:
        raise AssertionError("it does not decode the partitions it encoded")
    try:
        assignment.decode(b"\x00")
    except ValueError:
        return
    raise AssertionError("it decodes a truncated assignment without a ValueError")


_CLIENT: Final = "aiokafka.client"
_TRANSACTION: Final = "aiokafka.protocol.transaction"
_CONNECTION_SETTINGS: Final = (
    "client_id",
    "request_timeout_ms",
    "security_protocol",
    "ssl_context",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "sasl_oauth_token_provider",
)

INTERNALS: Final[tuple[Internal, ...]] = (
    Internal(
        _CLIENT,
        "AIOKafkaClient",
        "the Writer's connection to the cluster (client.KafkaClient)",
        attrs=("bootstrap", "close", "get_random_node", "force_metadata_update"),
        params=("bootstrap_servers", "metadata_max_age_ms", *_CONNECTION_SETTINGS),
        sets=("cluster", "_topics"),
    ),
    Internal(
        _CLIENT,
        "AIOKafkaClient.send",
        "sending the requests aiomq builds itself (produce, metadata, producer id)",
        params=("node_id", "request"),
    ),
    Internal(
        _CLIENT,
        "AIOKafkaClient.add_topic",
        "keeping a written topic's leaders in the metadata (client.KafkaClient.follow)",
        params=("topic",),
    ),
    Internal(
        "aiokafka.cluster",
        "ClusterMetadata",
        "finding a partition's leader, and the brokers to ask for metadata",
        attrs=("brokers", "broker_metadata", "leader_for_partition"),
    ),
    Internal(
        "aiokafka.structs",
        "BrokerMetadata",
        "the node id of each known broker (metadata.ask_any_broker)",
        attrs=("nodeId",),
    ),
    Internal(
        "aiokafka.conn",
        "create_conn",
        "connecting to one broker alone to say why a bootstrap failed (connect)",
        params=("host", "port", *_CONNECTION_SETTINGS),
    ),
    Internal(
        "aiokafka.protocol.types",
        "Schema",
        "reading responses by field name (requests.entries)",
        probe=_names_fields,
    ),
    Internal(
        "aiokafka.protocol.metadata",
        "MetadataRequest",
        "looking a topic's partitions up without creating it (metadata)",
        params=("topics", "allow_auto_topic_creation"),
        response_fields=(
            "topics.error_code",
            "topics.topic",
            "topics.partitions.partition",
        ),
    ),
    Internal(
        "aiokafka.protocol.produce",
        "ProduceRequest",
        "sending a record batch (produce.send_batch)",
        params=("transactional_id", "required_acks", "timeout", "topics"),
        response_fields=(
            "topics.topic",
            "topics.partitions.partition",
            "topics.partitions.error_code",
            "topics.partitions.offset",
        ),
    ),
    Internal(
        "aiokafka.protocol.produce",
        "ProduceRequest",
        "framing Produce requests by hand (produce_frame.TransferRequest): its constructor "
        "keeps what the frame is built from, and prepare() picks the version",
        attrs=("prepare", "required_acks"),
        sets=("_transactional_id", "_required_acks", "_timeout"),
    ),
    Internal(
        "aiokafka.protocol.api",
        "RequestStruct",
        "framing Produce requests by hand (produce_frame.ProduceFrame): aiokafka's "
        "connection frames a request with these and decodes with RESPONSE_TYPE.decode",
        attrs=("build_request_header", "parse_response_header", "encode"),
    ),
    Internal(
        "aiokafka.conn",
        "AIOKafkaConnection",
        "framing Produce requests by hand (produce_frame): send() writes size + "
        "header.encode() + request.encode(), _handle_frame() reads the answer",
        attrs=("send", "_handle_frame"),
        sets=("_versions", "_requests", "_client_id"),
    ),
    Internal(
        "aiokafka.protocol.transaction",
        "InitProducerIdRequest",
        "an idempotent Writer's producer id (produce.init_producer_id)",
        params=("transactional_id", "transaction_timeout_ms"),
        response_fields=("error_code", "producer_id", "producer_epoch"),
    ),
    Internal(
        "aiokafka.record.default_records",
        "DefaultRecordBatchBuilder",
        "encoding record batches (produce.RecordBatch)",
        attrs=("append", "size", "build"),
        probe=_builds_batches,
    ),
    Internal(
        "aiokafka.record.default_records",
        "DefaultRecordBatchBuilder.size_of",
        "sizing each message before it is accepted (produce.record_size)",
        params=("key", "value", "headers"),
    ),
    Internal(
        "aiokafka.record.default_records",
        "DefaultRecordBatchBuilder.estimate_size_in_bytes",
        "the bytes a batch adds around its records (produce.BATCH_OVERHEAD)",
        params=("key", "value", "headers"),
    ),
    Internal(
        "aiokafka.consumer.fetcher",
        "PartitionRecords",
        "building Messages straight from fetched records (record_hook)",
        params=("tp", "key_deserializer"),
        sets=("_tp", "_key_deserializer"),
    ),
    Internal(
        "aiokafka.consumer.fetcher",
        "PartitionRecords._consumer_record",
        "building Messages straight from fetched records (record_hook)",
        params=("tp", "record"),
    ),
    Internal(
        "aiokafka",
        "AIOKafkaConsumer",
        "reaching a Reader's consumer's client, coordinator, fetcher and assignment (consumer)",
        sets=("_client", "_coordinator", "_fetcher", "_subscription"),
    ),
    Internal(
        "aiokafka.consumer.group_coordinator",
        "GroupCoordinator",
        "ending a group consumer's tasks within a time limit, finding its coordinator, and "
        "its generation and member id for offsets committed in a transaction "
        "(consumer.stop_consumer, consumer.silent_brokers, consumer.group_member)",
        sets=(
            "_coordination_task",
            "_heartbeat_task",
            "_commit_refresh_task",
            "coordinator_id",
            "generation",
            "member_id",
            "_group_instance_id",
        ),
    ),
    Internal(
        "aiokafka.consumer.fetcher",
        "Fetcher",
        "ending a consumer's fetch task and its requests within a time limit "
        "(consumer.stop_consumer)",
        sets=("_fetch_task", "_pending_tasks"),
    ),
    Internal(
        "aiokafka.consumer.subscription_state",
        "SubscriptionState",
        "a Reader's assigned partitions (consumer)",
        attrs=("subscription",),
    ),
    Internal(
        "aiokafka.consumer.subscription_state",
        "Subscription",
        "a Reader's assigned partitions (consumer)",
        attrs=("assignment",),
    ),
    Internal(
        "aiokafka.consumer.subscription_state",
        "Assignment",
        "a Reader's assigned partitions (consumer)",
        attrs=("tps", "state_value"),
    ),
    Internal(
        "aiokafka.consumer.subscription_state",
        "TopicPartitionState",
        "an assigned partition's committed offset and last fetch time "
        "(consumer.committed_future, consumer.last_fetch_answer_ms)",
        attrs=("fetch_committed",),
        sets=("timestamp",),
    ),
    Internal(
        "aiokafka.protocol.admin",
        "ApiVersionRequest",
        "asking a broker whether it answers (consumer.silent_brokers)",
    ),
    Internal(
        "aiokafka.errors",
        "for_code",
        "the code, name and retriability of a broker's error (errors.broker_error)",
        params=("error_code",),
        probe=_describes_codes,
    ),
    # The admin Client (admin, client.KafkaClient.send and .ask_any_broker).
    Internal(
        _CLIENT,
        "AIOKafkaClient.send",
        "sending the admin Client's requests (client.KafkaClient.send)",
        params=("node_id", "request"),
    ),
    Internal(
        "aiokafka.protocol.api",
        "Request",
        "building each request at the newest version both sides know, and the requests "
        "aiokafka lacks (admin)",
        attrs=("prepare", "build"),
        probe=_picks_versions,
    ),
    Internal(
        "aiokafka.protocol.api",
        "RequestStruct",
        "the request versions aiokafka lacks (admin)",
        attrs=("FLEXIBLE_VERSION", "encode", "build_request_header"),
    ),
    Internal(
        "aiokafka.protocol.api",
        "Response",
        "the answers of the request versions aiokafka lacks (admin)",
        attrs=("decode",),
    ),
    *(
        Internal(
            "aiokafka.protocol.types",
            name,
            "the schemas of the request versions aiokafka lacks (admin, transaction)",
            attrs=("encode", "decode"),
        )
        for name in (
            "Array",
            "Boolean",
            "CompactArray",
            "CompactString",
            "Int8",
            "Int16",
            "Int32",
            "Int64",
            "String",
            "TaggedFields",
        )
    ),
    Internal(
        "aiokafka.protocol.metadata",
        "MetadataRequest",
        "describing the cluster's brokers and topics, and finding partition leaders "
        "(admin.metadata_request)",
        params=("topics", "allow_auto_topic_creation"),
        response_fields=(
            "brokers.node_id",
            "brokers.host",
            "brokers.port",
            "topics.error_code",
            "topics.topic",
            "topics.partitions.partition",
            "topics.partitions.leader",
            "topics.partitions.replicas",
            "topics.partitions.isr",
        ),
    ),
    Internal(
        "aiokafka.protocol.admin",
        "CreateTopicsRequest",
        "creating topics at versions 1 to 3, and the layout of version 4 "
        "(admin.CreateTopicsRequest)",
        response_fields=("topic_errors.topic", "topic_errors.error_code"),
    ),
    *(
        Internal(
            "aiokafka.protocol.admin",
            name,
            "creating topics (admin.CreateTopicsRequest)",
            attrs=("API_VERSION", "SCHEMA"),
        )
        for name in (
            "CreateTopicsRequest_v1",
            "CreateTopicsRequest_v2",
            "CreateTopicsRequest_v3",
            "CreateTopicsResponse_v3",
        )
    ),
    Internal(
        "aiokafka.protocol.admin",
        "ListGroupsRequest",
        "listing consumer groups before version 4 (admin.ListGroupsWithStateRequest)",
        response_fields=("error_code", "groups.group", "groups.protocol_type"),
    ),
    *(
        Internal(
            "aiokafka.protocol.admin",
            name,
            "listing consumer groups before version 4 (admin.ListGroupsWithStateRequest)",
            attrs=("API_VERSION", "SCHEMA"),
        )
        for name in ("ListGroupsRequest_v0", "ListGroupsRequest_v1", "ListGroupsRequest_v2")
    ),
    Internal(
        "aiokafka.protocol.admin",
        "DeleteTopicsRequest",
        "deleting topics (admin.delete_topics_request)",
        params=("topics", "timeout"),
        response_fields=("topic_error_codes.topic", "topic_error_codes.error_code"),
    ),
    Internal(
        "aiokafka.protocol.admin",
        "CreatePartitionsRequest",
        "adding partitions to a topic (admin.create_partitions_request)",
        params=("topic_partitions", "timeout", "validate_only"),
        response_fields=(
            "topic_errors.topic",
            "topic_errors.error_code",
            "topic_errors.error_message",
        ),
    ),
    Internal(
        "aiokafka.protocol.admin",
        "DescribeConfigsRequest",
        "reading a topic's configs (admin.describe_configs_request)",
        params=("resources", "include_synonyms"),
        response_fields=(
            "resources.error_code",
            "resources.error_message",
            "resources.config_entries.config_names",
            "resources.config_entries.config_value",
        ),
    ),
    Internal(
        "aiokafka.protocol.admin",
        "DescribeGroupsRequest",
        "describing a consumer group and its members (admin.describe_groups_request)",
        params=("groups",),
        response_fields=(
            "groups.error_code",
            "groups.group",
            "groups.state",
            "groups.protocol_type",
            "groups.protocol",
            "groups.members.member_id",
            "groups.members.client_id",
            "groups.members.client_host",
            "groups.members.member_assignment",
        ),
    ),
    Internal(
        "aiokafka.protocol.admin",
        "DeleteGroupsRequest",
        "deleting consumer groups (admin.delete_groups_request)",
        params=("group_names",),
        response_fields=("results.group_id", "results.error_code"),
    ),
    Internal(
        "aiokafka.protocol.coordination",
        "FindCoordinatorRequest",
        "finding a consumer group's coordinator (admin.find_coordinator_request)",
        params=("coordinator_key", "coordinator_type"),
        response_fields=("error_code", "coordinator_id"),
    ),
    Internal(
        "aiokafka.protocol.offset",
        "OffsetRequest",
        "the offsets of a topic's partitions at a time, first or last (admin.list_offsets_request)",
        params=("replica_id", "isolation_level", "topics"),
        response_fields=("topics.partitions.partition", "topics.partitions.error_code"),
    ),
    Internal(
        "aiokafka.protocol.commit",
        "OffsetFetchRequest",
        "a consumer group's committed offsets (admin.offset_fetch_request)",
        params=("consumer_group", "partitions"),
        response_fields=(
            "topics.topic",
            "topics.partitions.partition",
            "topics.partitions.offset",
            "topics.partitions.error_code",
        ),
    ),
    Internal(
        "aiokafka.protocol.commit",
        "OffsetCommitRequest",
        "resetting a consumer group's offsets (admin.offset_commit_request)",
        attrs=("DEFAULT_GENERATION_ID", "DEFAULT_RETENTION_TIME"),
        params=(
            "consumer_group",
            "consumer_group_generation_id",
            "consumer_id",
            "retention_time",
            "topics",
        ),
        response_fields=(
            "topics.topic",
            "topics.partitions.partition",
            "topics.partitions.error_code",
        ),
    ),
    # The transaction protocol (transaction).
    Internal(
        "aiokafka.protocol.coordination",
        "FindCoordinatorRequest",
        "finding a transactional id's coordinator (transaction.find_transaction_coordinator)",
        params=("coordinator_key", "coordinator_type"),
        response_fields=("error_code", "coordinator_id"),
    ),
    *(
        Internal(
            _TRANSACTION,
            name,
            "the versions before v3 of the requests whose v3 aiokafka lacks "
            "(transaction.TransactionalInitProducerIdRequest, transaction.TxnOffsetCommitRequest)",
            attrs=("API_VERSION", "SCHEMA"),
        )
        for name in ("InitProducerIdRequest_v0", "TxnOffsetCommitRequest_v0")
    ),
    Internal(
        _TRANSACTION,
        "InitProducerIdRequest",
        "a transactional producer's id and epoch before v3 "
        "(transaction.init_transactional_producer)",
        response_fields=("error_code", "producer_id", "producer_epoch"),
    ),
    Internal(
        _TRANSACTION,
        "TxnOffsetCommitRequest",
        "committing a group's offsets in a transaction before v3 "
        "(transaction.commit_offsets_in_transaction)",
        response_fields=(
            "errors.topic",
            "errors.partition_errors.partition",
            "errors.partition_errors.error_code",
        ),
    ),
    Internal(
        _TRANSACTION,
        "AddPartitionsToTxnRequest",
        "adding partitions to a transaction (transaction.add_partitions)",
        params=("transactional_id", "producer_id", "producer_epoch", "topics"),
        response_fields=(
            "errors.topic",
            "errors.partition_errors.partition",
            "errors.partition_errors.error_code",
        ),
    ),
    Internal(
        _TRANSACTION,
        "AddOffsetsToTxnRequest",
        "adding a group's offsets to a transaction (transaction.add_offsets)",
        params=("transactional_id", "producer_id", "producer_epoch", "group_id"),
        response_fields=("error_code",),
    ),
    Internal(
        _TRANSACTION,
        "EndTxnRequest",
        "committing or aborting a transaction (transaction.end_transaction)",
        params=("transactional_id", "producer_id", "producer_epoch", "transaction_result"),
        response_fields=("error_code",),
    ),
    Internal(
        "aiokafka.coordinator.protocol",
        "ConsumerProtocolMemberAssignment",
        "the partitions assigned to each member of a consumer group (admin.consumer_assignment)",
        attrs=("decode", "partitions"),
        probe=_decodes_assignments,
    ),
)
"""Every private or undocumented part of aiokafka the seam relies on, and what for."""
