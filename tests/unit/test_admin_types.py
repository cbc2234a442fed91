"""The admin Client's request and result types, its settings, the requests it builds and how
it sends them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest
from aiokafka import errors as ak
from aiokafka.client import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.protocol.metadata import MetadataResponse_v0, MetadataResponse_v1
from aiokafka.structs import BrokerMetadata

from aiomq import (
    FIRST_OFFSET,
    BrokerError,
    Client,
    ClientConfig,
    ClosedError,
    ConfigError,
    PartitionInfo,
    TopicInfo,
    TopicSpec,
)
from aiomq._internal.admin.call import AdminCall, new_client
from aiomq._internal.admin.topics import topic_info
from aiomq._internal.kafka.admin import (
    CreateTopicsRequest,
    IncrementalAlterConfigsRequest,
    ListGroupsWithStateRequest,
    consumer_assignment,
    listed_groups,
    metadata_request,
)
from aiomq._internal.kafka.errors import ErrorCode
from aiomq._internal.kafka.requests import entries

# -- TopicSpec ----------------------------------------------------------------------------


def test_a_topic_spec_defaults_to_one_partition_and_the_broker_s_replication() -> None:
    spec = TopicSpec(name="orders")
    assert (spec.partitions, spec.replication_factor, dict(spec.configs)) == (1, -1, {})


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "has space", "slash/ed", "é", "x" * 250, None, 7],
)
def test_a_topic_spec_refuses_an_invalid_name(name: Any) -> None:
    with pytest.raises(ConfigError, match="topic name"):
        TopicSpec(name=name)


@pytest.mark.parametrize("name", ["orders", "a.b_c-D9", "x" * 249, "..."])
def test_a_topic_spec_accepts_every_valid_name(name: str) -> None:
    assert TopicSpec(name=name).name == name


@pytest.mark.parametrize("partitions", [0, -1, True, 1.5, "3"])
def test_a_topic_spec_refuses_a_partition_count_below_one(partitions: Any) -> None:
    with pytest.raises(ConfigError, match="'orders': partitions must be 1 or more"):
        TopicSpec(name="orders", partitions=partitions)


@pytest.mark.parametrize("replication_factor", [0, -2, False, 2.0])
def test_a_topic_spec_refuses_a_replication_factor_that_is_not_positive_or_minus_one(
    replication_factor: Any,
) -> None:
    with pytest.raises(ConfigError, match="replication_factor must be 1 or more, or -1"):
        TopicSpec(name="orders", replication_factor=replication_factor)


@pytest.mark.parametrize("configs", [{"retention.ms": 1000}, {"": "x"}, [("a", "b")], None])
def test_a_topic_spec_refuses_configs_that_are_not_strings(configs: Any) -> None:
    with pytest.raises(ConfigError, match="configs must map config names to string values"):
        TopicSpec(name="orders", configs=configs)


def test_a_topic_spec_keeps_its_own_read_only_copy_of_the_configs() -> None:
    configs = {"retention.ms": "1000"}
    spec = TopicSpec(name="orders", configs=configs)
    configs["retention.ms"] = "2000"
    assert spec.configs["retention.ms"] == "1000"
    with pytest.raises(TypeError):
        spec.configs["retention.ms"] = "3000"  # type: ignore[index]


def test_a_topic_spec_is_frozen() -> None:
    spec = TopicSpec(name="orders")
    with pytest.raises(AttributeError):
        spec.partitions = 2  # type: ignore[misc]


# -- results ------------------------------------------------------------------------------


def test_a_topic_s_replication_factor_is_that_of_its_first_partition() -> None:
    partitions = tuple(
        PartitionInfo(partition=p, leader=1, replicas=(1, 2, 3), isr=(1, 2)) for p in range(2)
    )
    assert TopicInfo(name="t", internal=False, partitions=partitions).replication_factor == 3
    assert TopicInfo(name="t", internal=False, partitions=()).replication_factor == 0


# -- ClientConfig and Client --------------------------------------------------------------


def test_client_config_defaults() -> None:
    config = ClientConfig(brokers=["localhost:9092"])
    assert config.timeout == 10.0
    assert config.effective_client_id == "aiomq"
    assert ClientConfig(brokers=["b:1"], client_id="ops").effective_client_id == "ops"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"brokers": "localhost:9092"}, "brokers must be a non-empty list"),
        ({"brokers": []}, "brokers must be a non-empty list"),
        ({"brokers": ["b:1"], "timeout": 0}, "timeout must be a number of seconds"),
        ({"brokers": ["b:1"], "timeout": -1.0}, "timeout must be a number of seconds"),
        ({"brokers": ["b:1"], "timeout": float("inf")}, "timeout must be a number of seconds"),
        ({"brokers": ["b:1"], "timeout": float("nan")}, "timeout must be a number of seconds"),
        ({"brokers": ["b:1"], "timeout": True}, "timeout must be a number of seconds"),
        ({"brokers": ["b:1"], "client_id": ""}, "client_id must be a non-empty string"),
        ({"brokers": ["b:1"], "dialer": "tls"}, "dialer must be an aiomq.Dialer"),
    ],
)
def test_client_config_refuses_invalid_settings(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClientConfig(**options)


def test_a_client_takes_a_config_or_options_but_not_both() -> None:
    config = ClientConfig(brokers=["b:1"])
    assert Client(config).config is config
    assert Client(brokers=["b:1"], timeout=2.0).config.timeout == 2.0
    with pytest.raises(ConfigError, match="not both"):
        Client(config, timeout=2.0)


async def test_a_client_never_opened_checks_arguments_first_then_refuses() -> None:
    client = Client(brokers=["localhost:1"])
    with pytest.raises(ConfigError, match="timezone-aware"):
        await client.list_offsets("orders", at=datetime(2024, 1, 1))
    with pytest.raises(ConfigError, match="to must be FIRST_OFFSET, LAST_OFFSET, an offset"):
        await client.reset_group_offsets("g", "orders", to=True)
    with pytest.raises(ConfigError, match="at must be FIRST_OFFSET, LAST_OFFSET or"):
        await client.list_offsets("orders", at=5)
    with pytest.raises(ConfigError, match="group id"):
        await client.describe_group("")
    with pytest.raises(ConfigError, match="TopicSpec"):
        await client.create_topics("orders")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="strings or None"):
        await client.alter_configs("orders", {"retention.ms": 5})  # type: ignore[dict-item]
    with pytest.raises(ClosedError, match="reset_group_offsets on a Client that is new"):
        await client.reset_group_offsets("g", "orders", to=FIRST_OFFSET)
    assert "new" in repr(client)


# -- requests -----------------------------------------------------------------------------


def test_create_topics_uses_v4_when_the_broker_has_it_so_minus_one_is_allowed() -> None:
    request = CreateTopicsRequest([("t", 3, -1, [], [("retention.ms", "1")])], 5000)
    assert request.prepare({19: (0, 7)}).API_VERSION == 4
    assert request.prepare({19: (0, 3)}).API_VERSION == 3


def test_list_groups_asks_for_states_when_the_broker_knows_them() -> None:
    request = ListGroupsWithStateRequest()
    v4 = request.prepare({16: (0, 5)})
    assert v4.API_VERSION == 4
    assert v4.FLEXIBLE_VERSION
    # An empty compact array of state filters, then no tagged fields.
    assert v4.encode() == b"\x01\x00"
    assert request.prepare({16: (0, 2)}).API_VERSION < 4


def test_list_groups_responses_of_every_version_read_the_same() -> None:
    v4 = ListGroupsWithStateRequest().prepare({16: (0, 4)}).RESPONSE_TYPE
    raw = b"".join(
        [
            b"\x00\x00\x00\x00",  # throttle time
            b"\x00\x00",  # error code
            b"\x02",  # one group (compact array length + 1)
            b"\x02g",  # group id "g"
            b"\x09consumer",  # protocol type
            b"\x06Empty",  # state
            b"\x00",  # tagged fields of the group
            b"\x00",  # tagged fields of the response
        ]
    )
    assert listed_groups(v4.decode(raw)) == [("g", "consumer", "Empty")]
    old = ListGroupsWithStateRequest().prepare({16: (0, 1)}).RESPONSE_TYPE
    raw_old = b"\x00\x00\x00\x00" + b"\x00\x00" + b"\x00\x00\x00\x01" + b"\x00\x01g" + b"\xff\xff"
    assert listed_groups(old.decode(raw_old)) == [("g", "", None)]


def test_incremental_alter_configs_sets_values_and_deletes_none() -> None:
    request = IncrementalAlterConfigsRequest("t", {"retention.ms": "1000", "cleanup.policy": None})
    built = request.prepare({44: (0, 1)})
    assert built.API_VERSION == 0
    assert built.get_item("resources") == [
        (2, "t", [("retention.ms", 0, "1000"), ("cleanup.policy", 1, None)])
    ]
    assert built.encode()  # every field has the type its schema says


def test_metadata_topics_read_by_field_name_alike_in_every_version() -> None:
    v0 = MetadataResponse_v0([(1, "h", 9092)], [(0, "t", [(0, 0, 1, [1, 2], [1])])])
    v1 = MetadataResponse_v1([(1, "h", 9092, None)], 1, [(0, "t", True, [(0, 0, 1, [1, 2], [1])])])
    partition = PartitionInfo(partition=0, leader=1, replicas=(1, 2), isr=(1,))
    (old,) = entries(v0, "topics")
    (new,) = entries(v1, "topics")
    assert topic_info(old) == TopicInfo(name="t", internal=False, partitions=(partition,))
    assert topic_info(new) == TopicInfo(name="t", internal=True, partitions=(partition,))
    assert entries(MetadataResponse_v0([], None), "topics") == []


def test_a_consumer_group_member_s_assignment_decodes_to_sorted_partitions() -> None:
    raw = ConsumerProtocolMemberAssignment(0, [("b", [1, 0]), ("a", [2])], b"").encode()
    assert consumer_assignment(raw) == (("a", 2), ("b", 0), ("b", 1))
    assert consumer_assignment(b"\x00") == ()  # not the consumer protocol's layout


# -- sending ------------------------------------------------------------------------------


class Brokers:
    """Stands in for the brokers a client knows and how each answers a request."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: Mapping[int, Exception]) -> None:
        self.asked: list[int] = []
        self.failures = failures
        known = [BrokerMetadata(node, "localhost", 9092 + node, None) for node in (1, 2)]
        monkeypatch.setattr(ClusterMetadata, "brokers", lambda _: set(known))
        monkeypatch.setattr(AIOKafkaClient, "send", self.send)

    async def send(self, node: int, request: object) -> str:
        self.asked.append(node)
        if node in self.failures:
            raise self.failures[node]
        return f"answer of {node}"


async def test_a_request_for_any_broker_moves_past_one_that_cannot_be_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    brokers = Brokers(monkeypatch, {1: ak.NodeNotReadyError("down")})
    kafka = new_client(ClientConfig(brokers=["localhost:9093"]))
    try:
        for _ in range(8):  # the brokers are asked in random order
            assert await AdminCall(kafka, "list_topics").send_any(metadata_request([])) == (
                "answer of 2"
            )
    finally:
        await kafka.close()
    assert set(brokers.asked) == {1, 2}


async def test_a_request_no_broker_can_answer_fails_with_the_last_broker_s_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = {1: ak.KafkaConnectionError("one"), 2: ak.KafkaConnectionError("two")}
    brokers = Brokers(monkeypatch, down)
    kafka = new_client(ClientConfig(brokers=["localhost:9093"]))
    try:
        with pytest.raises(ak.KafkaConnectionError) as caught:
            await AdminCall(kafka, "list_topics").send_any(metadata_request([]))
    finally:
        await kafka.close()
    assert len(brokers.asked) == 2
    assert caught.value is down[brokers.asked[-1]]


async def test_an_api_the_broker_lacks_fails_at_once_naming_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lacking = ak.IncompatibleBrokerVersion("no version in common")
    brokers = Brokers(monkeypatch, {1: lacking, 2: lacking})
    kafka = new_client(ClientConfig(brokers=["localhost:9093"]))
    try:
        with pytest.raises(BrokerError, match="does not support Metadata") as caught:
            await AdminCall(kafka, "describe_cluster").send_any(metadata_request([]))
    finally:
        await kafka.close()
    assert caught.value.code == ErrorCode.UNSUPPORTED_VERSION
    assert "describe_cluster needs it" in str(caught.value)
    assert len(brokers.asked) == 1
