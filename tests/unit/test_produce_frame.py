"""Produce requests framed by hand: byte for byte what aiokafka's own structs send, and
their answers read as aiokafka's connection hands them over."""

from __future__ import annotations

import asyncio
import struct
from io import BytesIO
from typing import Any

import pytest
from aiokafka.conn import AIOKafkaConnection
from aiokafka.protocol import produce as aiokafka_produce
from aiokafka.protocol.produce import ProduceRequest

from aiomq._internal.kafka.produce_frame import (
    FIRST_FRAMED,
    LAST_FRAMED,
    ProduceAnswer,
    ProduceFrame,
    TransferRequest,
)

BATCH = bytearray(b"\x00\x01batch-bytes\xff" * 40)
FRAMED = range(FIRST_FRAMED, LAST_FRAMED + 1)


def aiokafka_bytes(version: int, transactional_id: str | None, client_id: str | None) -> bytes:
    request = ProduceRequest(
        transactional_id=transactional_id,
        required_acks=-1,
        timeout=30_000,
        topics=[("orders-ü", [(7, bytes(BATCH))])],
    ).prepare({0: (version, version)})
    header = request.build_request_header(correlation_id=1234, client_id=client_id)  # type: ignore[arg-type]
    return header.encode() + request.encode()


def framed(version: int, transactional_id: str | None) -> Any:
    return TransferRequest(transactional_id, -1, 30_000, "orders-ü", 7, BATCH).prepare(
        {0: (version, version)}
    )


def test_the_newest_version_aiokafka_builds_is_framed() -> None:
    assert framed(LAST_FRAMED, None).API_VERSION == LAST_FRAMED
    newest = TransferRequest(None, 1, 30_000, "orders", 0, BATCH).prepare({0: (0, 99)})
    assert isinstance(newest, ProduceFrame)
    assert newest.API_VERSION == LAST_FRAMED


@pytest.mark.parametrize("version", FRAMED)
@pytest.mark.parametrize("transactional_id", [None, "billing-tx"])
@pytest.mark.parametrize("client_id", ["aiomq-client", None])
def test_a_framed_request_is_byte_for_byte_aiokafkas(
    version: int, transactional_id: str | None, client_id: str | None
) -> None:
    frame = framed(version, transactional_id)
    assert isinstance(frame, ProduceFrame)
    sent_version = frame.API_VERSION
    assert sent_version == version
    ours = frame.build_request_header(1234, client_id).encode() + frame.encode()
    assert ours == aiokafka_bytes(version, transactional_id, client_id)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_older_versions_go_through_aiokafkas_structs(version: int) -> None:
    request = TransferRequest(None, 1, 30_000, "orders", 0, BATCH).prepare({0: (0, version)})
    assert not isinstance(request, ProduceFrame)
    built_version = request.API_VERSION
    assert built_version == version


def answer_bytes(version: int, error_code: int, offset: int, timestamp: int) -> bytes:
    response_class = getattr(aiokafka_produce, f"ProduceResponse_v{version}")
    partition: tuple[Any, ...] = (7, error_code, offset, timestamp)
    if version >= 5:
        partition += (3,)  # log start offset
    return bytes(response_class([("orders-ü", [partition])], 0).encode())


@pytest.mark.parametrize("version", FRAMED)
@pytest.mark.parametrize(
    ("error_code", "offset", "timestamp"),
    [(0, 41, -1), (0, 2**40, 1_700_000_000_123), (6, -1, -1)],
)
async def test_an_answer_is_read_through_aiokafkas_connection(
    version: int, error_code: int, offset: int, timestamp: int
) -> None:
    # aiokafka's own connection frames the request and reads the answer: what goes out is
    # the size and aiokafka's bytes, and what comes back is the first partition's answer.
    connection = AIOKafkaConnection("127.0.0.1", 9, client_id="aiomq-client")
    sent: list[bytes] = []

    class Wire:
        def write(self, data: bytes) -> None:
            sent.append(bytes(data))

    connection._writer = Wire()
    connection._versions = {0: (0, version)}
    waiting = connection.send(TransferRequest("billing-tx", -1, 30_000, "orders-ü", 7, BATCH))
    expected = aiokafka_bytes(version, "billing-tx", "aiomq-client")
    (frame_bytes,) = sent
    assert struct.unpack_from(">i", frame_bytes)[0] == len(frame_bytes) - 4
    # The correlation id is the connection's own: compare around it.
    (sent_id,) = struct.unpack_from(">i", frame_bytes, 8)
    assert frame_bytes[4:8] + frame_bytes[12:] == expected[:4] + expected[8:]
    connection._handle_frame(
        struct.pack(">i", sent_id) + answer_bytes(version, error_code, offset, timestamp)
    )
    answer = await asyncio.wait_for(waiting, 1)
    assert answer == ProduceAnswer(error_code, offset, timestamp)


def test_an_answer_without_the_partition_is_an_error() -> None:
    frame = framed(LAST_FRAMED, None)
    empty = bytes(aiokafka_produce.ProduceResponse_v7([("orders", [])], 0).encode())
    with pytest.raises(ValueError, match="without the partition"):
        frame.RESPONSE_TYPE.decode(BytesIO(empty))
