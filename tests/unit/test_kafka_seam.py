"""The seam over aiokafka's private parts: its import check, its error codes, reading
responses by field name, and asking any broker."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from aiokafka import errors as ak
from aiokafka.client import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.metadata import MetadataResponse_v0, MetadataResponse_v1
from aiokafka.protocol.produce import ProduceRequest, ProduceResponse_v0, ProduceResponse_v2
from aiokafka.protocol.types import Array, Int16, Int32, Schema, String

from aiomq._internal import kafka
from aiomq._internal.kafka.client import KafkaClient
from aiomq._internal.kafka.errors import ErrorCode, broker_error
from aiomq._internal.kafka.metadata import _partitions_in
from aiomq._internal.kafka.requests import entries
from aiomq._internal.kafka.transaction import (
    TransactionalInitProducerIdRequest,
    TxnOffsetCommitRequest,
)

INSTALLED = version("aiokafka")


def test_the_installed_aiokafka_has_every_part_the_seam_relies_on() -> None:
    kafka.check()


def test_a_missing_method_fails_the_check_naming_the_version_and_the_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(AIOKafkaClient, "add_topic")

    with pytest.raises(ImportError) as caught:
        kafka.check()

    message = str(caught.value)
    assert f"aiokafka {INSTALLED}" in message
    assert "aiokafka.client.AIOKafkaClient.add_topic is missing" in message
    assert "keeping a written topic's leaders in the metadata" in message
    assert kafka.SUPPORTED_AIOKAFKA in message


def test_a_missing_module_fails_the_check() -> None:
    missing = kafka.Internal("aiokafka.gone", "Thing", "a test")

    with pytest.raises(ImportError, match=r"aiokafka\.gone\.Thing is missing: its module"):
        kafka.check([missing])


def test_a_renamed_parameter_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def create_conn(host: str, address: int, **options: Any) -> None: ...

    monkeypatch.setattr("aiokafka.conn.create_conn", create_conn)

    with pytest.raises(ImportError, match=r"aiokafka\.conn\.create_conn takes no parameter port"):
        kafka.check()


def test_a_constructor_that_no_longer_sets_an_attribute_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def __init__(self: Any, tp: Any, key_deserializer: Any) -> None:
        self._partition = tp

    monkeypatch.setattr(PartitionRecords, "__init__", __init__)

    with pytest.raises(
        ImportError,
        match=r"PartitionRecords no longer sets _tp, _key_deserializer \(aiomq uses it for "
        r"building Messages",
    ):
        kafka.check()


def test_a_response_version_without_a_field_read_by_name_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class ProduceResponse_v9(Response):
        API_KEY = 0
        API_VERSION = 9
        SCHEMA = Schema(
            (
                "topics",
                Array(
                    ("topic", String("utf-8")),
                    ("partitions", Array(("partition", Int32), ("error_code", Int16))),
                ),
            ),
        )

    class ProduceRequest_v9(RequestStruct):
        API_KEY = 0
        API_VERSION = 9
        RESPONSE_TYPE = ProduceResponse_v9
        SCHEMA = Schema()

    monkeypatch.setattr(ProduceRequest, "_CLASSES", (*ProduceRequest._CLASSES, ProduceRequest_v9))

    with pytest.raises(
        ImportError, match=r"ProduceRequest v9 answers without topics\.partitions\.offset"
    ):
        kafka.check()


def test_a_record_encoder_that_takes_a_record_past_the_batch_size_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Builder:
        def __init__(self, **settings: Any) -> None: ...

        def append(self, *record: Any) -> object:
            return object()

        def size(self) -> int:
            return 1

        def build(self) -> bytearray:
            return bytearray(b"x")

    monkeypatch.setattr("aiokafka.record.default_records.DefaultRecordBatchBuilder", Builder)

    with pytest.raises(ImportError, match="it took a record past the batch's size"):
        kafka.check()


def test_a_request_base_that_no_longer_picks_the_newest_common_version_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def prepare(self: Any, versions: dict[int, tuple[int, int]]) -> Any:
        return self.build(self._CLASSES[0])

    monkeypatch.setattr(Request, "prepare", prepare)

    with pytest.raises(
        ImportError,
        match=r"aiokafka\.protocol\.api\.Request does not behave as expected: it does not build "
        r"the newest version both sides know",
    ):
        kafka.check()


def test_an_assignment_decoder_that_loses_partitions_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Decoded:
        def partitions(self) -> list[Any]:
            return []

    monkeypatch.setattr(ConsumerProtocolMemberAssignment, "decode", lambda _: Decoded())

    with pytest.raises(
        ImportError,
        match=r"ConsumerProtocolMemberAssignment does not behave as expected: it does not decode "
        r"the partitions it encoded \(aiomq uses it for the partitions assigned",
    ):
        kafka.check()


def test_the_supported_range_is_the_one_the_package_requires() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert f"aiokafka{kafka.SUPPORTED_AIOKAFKA}" in pyproject["project"]["dependencies"]


# Codes newer than aiokafka's table: aiomq names them itself (errors.broker_error).
NEWER_THAN_AIOKAFKA = {ErrorCode.PRODUCER_FENCED}


@pytest.mark.parametrize(
    "code", sorted(set(ErrorCode) - NEWER_THAN_AIOKAFKA), ids=lambda code: code.name
)
def test_each_error_code_is_the_one_aiokafka_knows_by_that_number(code: ErrorCode) -> None:
    known = ak.for_code(code)
    assert known.errno == code
    if code is not ErrorCode.UNKNOWN_SERVER_ERROR:
        assert known is not ak.UnknownError


@pytest.mark.parametrize("code", sorted(NEWER_THAN_AIOKAFKA), ids=lambda code: code.name)
def test_a_code_newer_than_aiokafka_is_named_by_aiomq(code: ErrorCode) -> None:
    assert ak.for_code(code) is ak.UnknownError  # else: move it out of NEWER_THAN_AIOKAFKA

    error = broker_error(code, detail="transactional id 't'")

    assert (error.code, error.name, error.retriable) == (code, code.name, False)
    assert str(error) == f"{code.name} (Kafka error {code}, not retriable): transactional id 't'"


@pytest.mark.parametrize(
    ("request_class", "api_key", "newest"),
    [(TransactionalInitProducerIdRequest, 22, 5), (TxnOffsetCommitRequest, 28, 4)],
)
def test_transaction_requests_go_out_at_v3_when_the_broker_has_it_and_v0_otherwise(
    request_class: Any, api_key: int, newest: int
) -> None:
    if request_class is TxnOffsetCommitRequest:
        request = request_class(
            "t", "g", 1, 0, {"a": {0: 1}}, generation_id=3, member_id="m", group_instance_id=None
        )
    else:
        request = request_class("t", 1000)

    assert request.prepare({api_key: (0, newest)}).API_VERSION == 3
    assert request.prepare({api_key: (0, 2)}).API_VERSION == 0


def test_a_txn_offset_commit_v3_carries_the_generation_and_member_and_encodes() -> None:
    request = TxnOffsetCommitRequest(
        "t", "g", 1, 0, {"a": {1: 7, 0: 5}}, generation_id=3, member_id="m", group_instance_id=None
    )

    struct: Any = request.prepare({28: (0, 3)})

    assert (struct.generation_id, struct.member_id, struct.group_instance_id) == (3, "m", None)
    assert [p[:2] for p in struct.topics[0][1]] == [(0, 5), (1, 7)]
    assert struct.encode()


def test_a_v0_metadata_answer_gives_the_partitions_it_lists_like_later_versions() -> None:
    # v0 topic entries have no is_internal field: the partitions come one place earlier.
    v0 = MetadataResponse_v0([], [(0, "t", [(0, 1, 0, [0], [0]), (0, 0, 0, [0], [0])])])
    v1 = MetadataResponse_v1([], 0, [(0, "t", False, [(0, 1, 0, [0], [0]), (0, 0, 0, [0], [0])])])

    assert _partitions_in(v0, "t") == _partitions_in(v1, "t") == (0, 1)


def test_entries_read_nested_arrays_by_field_name_whatever_the_version() -> None:
    v0 = ProduceResponse_v0([("t", [(3, 0, 41)])])
    v2 = ProduceResponse_v2([("t", [(3, 0, 41, 1_700_000_000_000)])], 0)

    old, new = (entries(response, "topics")[0].partitions[0] for response in (v0, v2))

    assert (old.partition, old.error_code, old.offset) == (3, 0, 41)
    assert (new.partition, new.error_code, new.offset, new.timestamp) == (3, 0, 41, 1.7e12)
    assert getattr(old, "timestamp", -1) == -1


def test_an_absent_array_has_no_entries() -> None:
    assert entries(MetadataResponse_v1([], 0, None), "topics") == []


def a_client() -> KafkaClient:
    return KafkaClient(
        brokers=["localhost:9093"],
        client_id="test",
        dialer=None,
        request_timeout=1.0,
        metadata_max_age=300.0,
    )


async def test_with_no_broker_known_any_broker_is_the_one_aiokafka_picks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ClusterMetadata, "brokers", lambda _: set())
    monkeypatch.setattr(AIOKafkaClient, "get_random_node", lambda _: 7)
    asked: list[int] = []

    async def send(node: int) -> str:
        asked.append(node)
        return "answer"

    client = a_client()
    try:
        assert await client.ask_any_broker(send, skip=lambda _: True) == "answer"
    finally:
        await client.close()
    assert asked == [7]


async def test_with_no_broker_known_or_picked_any_broker_raises_the_error_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ClusterMetadata, "brokers", lambda _: set())
    monkeypatch.setattr(AIOKafkaClient, "get_random_node", lambda _: None)

    async def send(node: int) -> str:
        raise AssertionError(f"sent to {node}")

    client = a_client()
    try:
        with pytest.raises(LookupError, match="no broker"):
            await client.ask_any_broker(
                send, skip=lambda _: True, none_known=lambda: LookupError("no broker")
            )
    finally:
        await client.close()
