"""Produce requests framed by hand, and their answers read by hand.

aiokafka encodes a request through its generic `Struct` types and decodes the answer the
same way: about 11 µs and 12 µs for a Produce request of one batch, and the batch's bytes
copied on each level of the struct. One batch to one partition has a fixed shape, so here
it is written with two `struct` calls, and its answer read with a few more.

It still travels through aiokafka's connection, which frames any request as
`size + header.encode() + request.encode()` and decodes the answer with
`request.RESPONSE_TYPE.decode(...)` after `request.parse_response_header(...)`: `ProduceFrame`
gives the whole request but the batch as the "header", and the batch itself as the body,
so the batch is copied twice (by that concatenation and the size prefix) instead of four
times. aiokafka still picks the version, the newest both sides know; versions 3 to 7 (those
with a transactional id, up to the newest aiokafka builds) are framed here, the older
ones go through aiokafka's own structs.
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any, Final, NamedTuple

from aiokafka.protocol.api import RequestStruct
from aiokafka.protocol.produce import ProduceRequest

__all__ = ["FIRST_FRAMED", "LAST_FRAMED", "ProduceAnswer", "ProduceFrame", "TransferRequest"]

FIRST_FRAMED: Final = 3
LAST_FRAMED: Final = 7  # the newest aiokafka builds
_API_KEY: Final = 0

_HEADER: Final = struct.Struct(">hhih")  # api key, version, correlation id, client id length
_SETTINGS: Final = struct.Struct(">hii")  # acks, timeout, topic count
_PLACE: Final = struct.Struct(">iii")  # partition count, partition, batch length
_INT16: Final = struct.Struct(">h")
_INT32: Final = struct.Struct(">i")
_PARTITION: Final = struct.Struct(">ihqq")  # partition, error code, base offset, append time


class ProduceAnswer(NamedTuple):
    """The answer for the one partition of a framed Produce request."""

    error_code: int
    offset: int
    """The base offset the broker gave the batch."""
    timestamp: int
    """The append time in ms, -1 unless the topic uses LogAppendTime."""


class _Header(NamedTuple):
    correlation_id: int


def _string(value: str | None) -> bytes:
    """A Kafka nullable string: int16 length (-1 for null), then UTF-8."""
    if value is None:
        return _INT16.pack(-1)
    raw = value.encode()
    return _INT16.pack(len(raw)) + raw


class _Answer:
    """The RESPONSE_TYPE of a framed request: reads the first partition's answer."""

    @staticmethod
    def decode(data: BytesIO) -> ProduceAnswer:
        # Every version from 3 on starts the same: topics, the topic's name, its
        # partitions, then each partition's index, error code, base offset and append
        # time. What follows (start offset, throttle time) is not read.
        view = data.getbuffer()
        try:
            at = data.tell()
            (topics,) = _INT32.unpack_from(view, at)
            (name_length,) = _INT16.unpack_from(view, at + 4)
            at += 6 + max(name_length, 0)
            (partitions,) = _INT32.unpack_from(view, at)
            if topics < 1 or partitions < 1:
                raise ValueError("a Produce answer without the partition it was asked for")
            _partition, error_code, offset, timestamp = _PARTITION.unpack_from(view, at + 4)
        finally:
            view.release()
        return ProduceAnswer(error_code, offset, timestamp)


class ProduceFrame:
    """A Produce request of one batch at one version, as aiokafka's connection sends it."""

    __slots__ = ("API_VERSION", "RESPONSE_TYPE", "_data", "_partition", "_topic", "prefix")

    API_KEY: Final = _API_KEY
    FLEXIBLE_VERSION: Final = False

    def __init__(
        self, version: int, prefix: bytes, data: bytearray | bytes, topic: str, partition: int
    ) -> None:
        self.API_VERSION = version
        self.RESPONSE_TYPE = _Answer
        self.prefix = prefix
        """The request after its header, up to the batch's bytes."""
        self._data = data
        self._topic = topic
        self._partition = partition

    def build_request_header(self, correlation_id: int, client_id: str | None) -> Any:
        return _Prefix(self, correlation_id, client_id)

    def encode(self) -> bytearray | bytes:
        return self._data

    @staticmethod
    def parse_response_header(data: BytesIO) -> _Header:
        return _Header(_INT32.unpack(data.read(4))[0])

    def __repr__(self) -> str:
        return (
            f"ProduceFrame(v{self.API_VERSION}, {self._topic}[{self._partition}], "
            f"{len(self._data)} bytes)"
        )


class _Prefix:
    """The request header followed by the request up to the batch's bytes."""

    __slots__ = ("_client_id", "_correlation_id", "_frame")

    def __init__(self, frame: ProduceFrame, correlation_id: int, client_id: str | None) -> None:
        self._frame = frame
        self._correlation_id = correlation_id
        self._client_id = client_id

    def encode(self) -> bytes:
        frame = self._frame
        client = self._client_id
        if client is None:
            head = _HEADER.pack(_API_KEY, frame.API_VERSION, self._correlation_id, -1)
            return head + frame.prefix
        raw = client.encode()
        head = _HEADER.pack(_API_KEY, frame.API_VERSION, self._correlation_id, len(raw))
        return b"".join((head, raw, frame.prefix))


class TransferRequest(ProduceRequest):
    """aiokafka's ProduceRequest of one batch for one partition, framed by hand at the
    versions `ProduceFrame` knows (aiokafka's structs at the others)."""

    def __init__(
        self,
        transactional_id: str | None,
        required_acks: int,
        timeout: int,
        topic: str,
        partition: int,
        data: bytearray,
    ) -> None:
        topics: Any = [(topic, [(partition, data)])]
        super().__init__(transactional_id, required_acks, timeout, topics)
        self._topic_name = topic
        self._partition_id = partition
        self._data = data

    def prepare(self, versions: dict[int, tuple[int, int]]) -> Any:
        chosen: RequestStruct = super().prepare(versions)
        version = chosen.API_VERSION
        if not FIRST_FRAMED <= version <= LAST_FRAMED:
            return chosen
        topic = self._topic_name.encode()
        prefix = b"".join(
            (
                _string(self._transactional_id),
                _SETTINGS.pack(self._required_acks, self._timeout, 1),
                _INT16.pack(len(topic)),
                topic,
                _PLACE.pack(1, self._partition_id, len(self._data)),
            )
        )
        return ProduceFrame(version, prefix, self._data, self._topic_name, self._partition_id)
