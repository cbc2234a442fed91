"""The SASL front's encoding, read back with aiokafka's own response classes."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aiokafka.protocol.admin import (
    ApiVersionResponse_v0,
    ApiVersionResponse_v1,
    SaslAuthenticateResponse_v0,
    SaslAuthenticateResponse_v1,
    SaslHandShakeResponse_v1,
)

from aiomq._internal import sasl_wire as wire


def unframe(data: bytes) -> tuple[int, bytes]:
    """The correlation id and body of a framed answer, checking its size."""
    (size,) = struct.unpack(">i", data[:4])
    assert size == len(data) - 4
    (correlation,) = struct.unpack(">i", data[4:8])
    return correlation, data[8:]


def decode(response: type[Any], body: bytes) -> Any:
    return response.decode(body)


def test_a_handshake_answer_lists_the_mechanisms() -> None:
    correlation, body = unframe(wire.handshake_response(7, 33, ["PLAIN", "SCRAM-SHA-512"]))
    decoded = decode(SaslHandShakeResponse_v1, body)
    assert (correlation, decoded.error_code) == (7, 33)
    assert decoded.enabled_mechanisms == ["PLAIN", "SCRAM-SHA-512"]


@pytest.mark.parametrize("version", [0, 1])
def test_an_authenticate_answer_carries_the_error_and_the_token(version: int) -> None:
    data = wire.authenticate_response(9, version, 58, "Authentication failed", b"tok")
    correlation, body = unframe(data)
    response = [SaslAuthenticateResponse_v0, SaslAuthenticateResponse_v1][version]
    decoded = decode(response, body)
    assert correlation == 9
    assert (decoded.error_code, decoded.error_message) == (58, "Authentication failed")
    assert decoded.sasl_auth_bytes == b"tok"
    if version == 1:
        assert decoded.session_lifetime_ms == 0


def test_an_authenticate_answer_without_error_has_a_null_message() -> None:
    _, body = unframe(wire.authenticate_response(1, 1, 0, None, b""))
    assert decode(SaslAuthenticateResponse_v1, body).error_message is None


def broker_answer_v1(entries: list[tuple[int, int, int]]) -> bytes:
    body = struct.pack(">ihi", 5, 0, len(entries))
    body += b"".join(struct.pack(">hhh", *entry) for entry in entries)
    return body + struct.pack(">i", 0)  # throttle time


def test_a_v1_answer_gets_the_fronts_sasl_versions_and_keeps_the_rest() -> None:
    answer = broker_answer_v1([(0, 0, 11), (36, 0, 2), (3, 0, 12)])
    correlation, body = unframe(wire.rewrite_api_versions(1, answer))
    decoded = decode(ApiVersionResponse_v1, body)
    assert correlation == 5
    assert decoded.api_versions == [(0, 0, 11), (36, 0, 1), (3, 0, 12), (17, 0, 1)]


def test_a_v0_answer_is_rewritten_in_the_v0_layout() -> None:
    answer = struct.pack(">ihi", 5, 0, 1) + struct.pack(">hhh", 17, 0, 1)
    _, body = unframe(wire.rewrite_api_versions(0, answer))
    assert decode(ApiVersionResponse_v0, body).api_versions == [(17, 0, 1), (36, 0, 1)]


def flexible_answer(entries: list[tuple[int, int, int, bytes]], rest: bytes) -> bytes:
    body = struct.pack(">ih", 5, 0) + bytes([len(entries) + 1])
    body += b"".join(struct.pack(">hhh", k, lo, hi) + tags for k, lo, hi, tags in entries)
    return body + rest


def test_a_v3_answer_keeps_each_entrys_tagged_fields_and_what_follows_the_list() -> None:
    tagged = b"\x01\x00\x02ab"  # one tagged field: tag 0, two bytes
    rest = struct.pack(">i", 0) + b"\x01\x01\x03xyz"  # throttle time, then a tagged field
    answer = flexible_answer([(0, 0, 11, tagged), (36, 0, 2, b"\x00")], rest)
    rewritten = wire.rewrite_api_versions(3, answer)
    expected = flexible_answer([(0, 0, 11, tagged), (36, 0, 1, b"\x00"), (17, 0, 1, b"\x00")], rest)
    assert rewritten == wire.frame(expected)


def test_a_refused_version_with_nothing_listed_passes_as_it_came() -> None:
    answer = struct.pack(">ihi", 5, 35, 0)
    assert wire.rewrite_api_versions(9, answer) == wire.frame(answer)


def test_a_refused_version_is_read_in_the_v0_layout() -> None:
    answer = struct.pack(">ihi", 5, 35, 1) + struct.pack(">hhh", 18, 0, 4)
    _, body = unframe(wire.rewrite_api_versions(9, answer))
    decoded = decode(ApiVersionResponse_v0, body)
    assert decoded.error_code == 35
    assert decoded.api_versions == [(18, 0, 4), (17, 0, 1), (36, 0, 1)]


@pytest.mark.parametrize(
    "answer",
    [b"\0\0\0\5\0", struct.pack(">ihi", 5, 0, 3) + b"\0\0"],
    ids=["no-error-code", "list-runs-past-the-end"],
)
def test_a_truncated_answer_is_a_wire_error(answer: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.rewrite_api_versions(1, answer)


def test_a_header_reads_key_version_correlation_and_skips_the_client_id() -> None:
    request = struct.pack(">hhih", 17, 1, 42, 4) + b"test" + b"body"
    header = wire.parse_header(request)
    assert (header.api_key, header.api_version, header.correlation_id) == (17, 1, 42)
    assert request[header.body :] == b"body"


@pytest.mark.parametrize(
    ("data", "read"),
    [
        (struct.pack(">h", 10) + b"short", wire.read_string),
        (struct.pack(">i", 10) + b"short", wire.read_bytes),
        (b"\x00", wire.read_string),
    ],
)
def test_a_field_running_past_the_end_is_a_wire_error(data: bytes, read: Any) -> None:
    with pytest.raises(wire.WireError):
        read(data, 0)
