"""The few Kafka messages the SASL front reads and writes before a client has logged in.

The front answers SaslHandshake (key 17, v0-1) and SaslAuthenticate (key 36, v0-1) itself,
and forwards ApiVersions (key 18) to the broker, rewriting only the two entries it answers
for. Both SASL requests use the non-flexible request header (v1) at these versions, so
nothing here decodes tagged fields except in an ApiVersions answer of v3 and later.

Nothing here is public API.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "API_VERSIONS",
    "AUTHENTICATE_VERSIONS",
    "HANDSHAKE_VERSIONS",
    "SASL_AUTHENTICATE",
    "SASL_HANDSHAKE",
    "Header",
    "WireError",
    "authenticate_response",
    "frame",
    "handshake_response",
    "parse_header",
    "read_bytes",
    "read_string",
    "rewrite_api_versions",
]

SASL_HANDSHAKE: Final = 17
API_VERSIONS: Final = 18
SASL_AUTHENTICATE: Final = 36

HANDSHAKE_VERSIONS: Final = (0, 1)
"""SaslHandshake versions the front answers: v0 (raw tokens follow), v1 (SaslAuthenticate)."""

AUTHENTICATE_VERSIONS: Final = (0, 1)
"""SaslAuthenticate versions the front answers; v2 is flexible and no client here needs it."""

_UNSUPPORTED_VERSION: Final = 35
_FIRST_FLEXIBLE_API_VERSIONS: Final = 3


class WireError(Exception):
    """A frame is too short or malformed; the front closes the connection."""


@dataclass(frozen=True, slots=True)
class Header:
    """A request header: its api key, version, correlation id, and where its body starts."""

    api_key: int
    api_version: int
    correlation_id: int
    body: int


def frame(payload: bytes) -> bytes:
    """Prefix `payload` with its size, as every Kafka message and raw SASL token is."""
    return struct.pack(">i", len(payload)) + payload


def _unpack(fmt: str, data: bytes, offset: int) -> tuple[int, ...]:
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error as exc:
        raise WireError(f"a request ends early: {exc}") from None


def parse_header(request: bytes) -> Header:
    """Read the api key, version and correlation id of a request (its size removed).

    The client id that follows is skipped, as request header v1 lays it out; only use
    `body` for requests whose header is v1 (SaslHandshake, SaslAuthenticate v0-1).
    """
    api_key, api_version, correlation_id, client_id_size = _unpack(">hhih", request, 0)
    body = 10 + max(client_id_size, 0)
    if body > len(request):
        raise WireError("a request's client id runs past its end")
    return Header(api_key, api_version, correlation_id, body)


def read_string(data: bytes, offset: int) -> str:
    """Read a non-null STRING (int16 size, then UTF-8) at `offset`."""
    (size,) = _unpack(">h", data, offset)
    if size < 0 or offset + 2 + size > len(data):
        raise WireError("a string runs past the end of its request")
    try:
        return data[offset + 2 : offset + 2 + size].decode()
    except UnicodeDecodeError:
        raise WireError("a string is not UTF-8") from None


def read_bytes(data: bytes, offset: int) -> bytes:
    """Read a non-null BYTES (int32 size, then the bytes) at `offset`."""
    (size,) = _unpack(">i", data, offset)
    if size < 0 or offset + 4 + size > len(data):
        raise WireError("a byte string runs past the end of its request")
    return data[offset + 4 : offset + 4 + size]


def _string(value: str) -> bytes:
    encoded = value.encode()
    return struct.pack(">h", len(encoded)) + encoded


def handshake_response(correlation_id: int, error_code: int, mechanisms: list[str]) -> bytes:
    """A SaslHandshake answer (the same layout at v0 and v1), framed."""
    body = struct.pack(">ihi", correlation_id, error_code, len(mechanisms))
    return frame(body + b"".join(_string(m) for m in mechanisms))


def authenticate_response(
    correlation_id: int,
    version: int,
    error_code: int,
    error_message: str | None,
    auth_bytes: bytes,
) -> bytes:
    """A SaslAuthenticate answer at `version` (0 or 1), framed.

    v1 adds the session lifetime; 0 tells the client not to log in again on this
    connection, which suits a front that hands the connection over for good.
    """
    body = struct.pack(">ih", correlation_id, error_code)
    body += struct.pack(">h", -1) if error_message is None else _string(error_message)
    body += struct.pack(">i", len(auth_bytes)) + auth_bytes
    if version >= 1:
        body += struct.pack(">q", 0)
    return frame(body)


def _read_uvarint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data) or shift > 28:
            raise WireError("a varint runs past the end of an ApiVersions answer")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _skip_tags(data: bytes, offset: int) -> int:
    count, offset = _read_uvarint(data, offset)
    for _ in range(count):
        _tag, offset = _read_uvarint(data, offset)
        size, offset = _read_uvarint(data, offset)
        offset += size
    if offset > len(data):
        raise WireError("tagged fields run past the end of an ApiVersions answer")
    return offset


def rewrite_api_versions(request_version: int, answer: bytes) -> bytes:
    """Put the front's SaslHandshake and SaslAuthenticate versions in the broker's answer.

    Args:
        request_version: The version of the client's ApiVersions request, which decides
            the answer's layout (compact arrays with tagged fields from v3 on).
        answer: The broker's answer, its size removed: correlation id, then body.

    Returns:
        The answer to send to the client, framed. Every other entry, and everything after
        the list (throttle time, tagged fields such as features), is kept byte for byte.
    """
    (error_code,) = _unpack(">h", answer, 4)
    # A broker answers an ApiVersions version it does not know with error 35 in the v0
    # layout, so that any client can read it and retry with a version from the list.
    flexible = request_version >= _FIRST_FLEXIBLE_API_VERSIONS and error_code == 0
    offset = 6
    entries: list[tuple[int, bytes]] = []
    if flexible:
        count, offset = _read_uvarint(answer, offset)
        count -= 1
    else:
        (count,) = _unpack(">i", answer, offset)
        offset += 4
    for _ in range(max(count, 0)):
        start = offset
        api_key = _unpack(">hhh", answer, offset)[0]
        offset += 6
        if flexible:
            offset = _skip_tags(answer, offset)
        entries.append((api_key, answer[start:offset]))
    if error_code == _UNSUPPORTED_VERSION and not entries:
        # Nothing listed to amend: pass the refusal on as it came.
        return frame(answer)
    rest = answer[offset:]
    tags = b"\x00" if flexible else b""
    ours = {
        SASL_HANDSHAKE: struct.pack(">hhh", SASL_HANDSHAKE, *HANDSHAKE_VERSIONS) + tags,
        SASL_AUTHENTICATE: struct.pack(">hhh", SASL_AUTHENTICATE, *AUTHENTICATE_VERSIONS) + tags,
    }
    listed = [ours.pop(key, entry) for key, entry in entries]
    listed.extend(ours.values())
    size = _uvarint(len(listed) + 1) if flexible else struct.pack(">i", len(listed))
    return frame(answer[:6] + size + b"".join(listed) + rest)
