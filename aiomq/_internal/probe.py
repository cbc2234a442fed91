"""The smallest request every Kafka broker answers, to tell whether one is listening.

An ApiVersions v0 request needs no client library, no TLS and no authentication, so the
embedded broker's start-up wait and the diagnosis of a failed bootstrap both send it on a
plain socket and only check that the answer carries their correlation id.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["ANSWER_PREFIX", "answers", "api_versions_request"]

ANSWER_PREFIX: Final = 8
"""Bytes of an answer to read: its size, then its correlation id."""

_API_VERSIONS: Final = 18


def api_versions_request(correlation_id: int, client_id: bytes) -> bytes:
    """Encode an ApiVersions v0 request: size, api key, version, correlation id, client id."""
    return struct.pack(
        f">ihhih{len(client_id)}s",
        10 + len(client_id),
        _API_VERSIONS,
        0,
        correlation_id,
        len(client_id),
        client_id,
    )


def answers(prefix: bytes, correlation_id: int) -> bool:
    """Tell whether the first `ANSWER_PREFIX` bytes of an answer are those of our request."""
    if len(prefix) < ANSWER_PREFIX:
        return False
    _size, received = struct.unpack(">ii", prefix[:ANSWER_PREFIX])
    return bool(received == correlation_id)
