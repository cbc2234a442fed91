"""Writing to Kafka: encode a record batch, send it in a produce request, read the answer.

The batch is encoded by aiokafka's record batch builder (its C extension when built),
in Kafka's v2 format; the request is aiokafka's ProduceRequest framed by hand
(`produce_frame`), sent through its client to the partition's leader. Nothing here
retries: the Writer's engine decides.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any, Final

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.transaction import InitProducerIdRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from aiomq._internal.kafka.errors import ErrorCode, broker_error, map_errors
from aiomq._internal.kafka.produce_frame import ProduceAnswer, TransferRequest
from aiomq._internal.kafka.requests import entries
from aiomq.errors import BrokerConnectionError, Error
from aiomq.message import Message, to_millis

__all__ = [
    "BATCH_OVERHEAD",
    "PLAIN_RECORD_OVERHEAD",
    "RECORD_FRAMING",
    "RecordBatch",
    "init_producer_id",
    "record_size",
    "send_batch",
]

_MAGIC: Final = 2
# No transactional id: the broker hands out a producer id for idempotence alone.
_TRANSACTION_TIMEOUT_MS: Final = 60_000

record_size: Final[Callable[[bytes | None, bytes | None, list[Any]], int]] = (
    DefaultRecordBatchBuilder.size_of
)
"""The bytes one record takes in a batch: `record_size(key, value, headers)`. Raises
TypeError, AttributeError or ValueError for headers that are not (str, bytes) pairs."""

BATCH_OVERHEAD: Final[int] = DefaultRecordBatchBuilder.estimate_size_in_bytes(
    None, None, []
) - record_size(None, None, [])
"""What a batch holding a single record adds around it: batch header and record framing."""

PLAIN_RECORD_OVERHEAD: Final = 5 + 5 + 1
"""The most a record without headers adds to its key and value beyond `BATCH_OVERHEAD`:
the length varints of key, value and header count."""

RECORD_FRAMING: Final = 1 + 5 + 10 + 5 + 5 + 5 + 1
"""The most a record without headers adds to its key and value in a batch: attributes,
offset and timestamp deltas, record length, and the key, value and header-count lengths,
each varint at its widest."""

_key_of = itemgetter(4)
_value_of = itemgetter(5)
# Runs an iterator to its end, keeping nothing.
_exhaust: Final[Callable[[Any], None]] = deque[Any](maxlen=0).extend
# Shared by every message without headers; the batch builder only reads it.
_NO_HEADERS: Final[list[tuple[str, bytes]]] = []


class RecordBatch:
    """One record batch being encoded, up to a size limit.

    Args:
        codec: The compression codec (0 for none).
        producer_id: The idempotent producer's id, or -1.
        producer_epoch: Its epoch, or -1.
        base_sequence: The sequence number of the first record, or -1.
        limit: The most bytes the batch may take; a first record larger still fits.
        transactional: Whether the batch belongs to the producer's open transaction.
    """

    __slots__ = ("_append", "_builder", "size")

    def __init__(
        self,
        *,
        codec: int,
        producer_id: int,
        producer_epoch: int,
        base_sequence: int,
        limit: int,
        transactional: bool = False,
    ) -> None:
        builder = DefaultRecordBatchBuilder(
            magic=_MAGIC,
            compression_type=codec,
            is_transactional=int(transactional),
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
            batch_size=limit,
        )
        self._builder = builder
        self._append: Callable[..., Any] = builder.append
        self.size: Callable[[], int] = builder.size
        """The bytes the batch takes so far."""

    def append_plain(self, offset: int, now_ms: int, messages: Sequence[Message]) -> None:
        """Append messages without headers or times of their own, all stamped `now_ms`,
        as records `offset` on, without checking the size: the caller knows they fit."""
        _exhaust(
            map(
                self._append,
                range(offset, offset + len(messages)),
                repeat(now_ms),
                map(_key_of, messages),
                map(_value_of, messages),
                repeat(_NO_HEADERS),
            )
        )

    def append_each(self, offset: int, now_ms: int, messages: Sequence[Message]) -> int:
        """Append messages as records `offset` on, one at a time, until the batch is full.

        A message without a time of its own is stamped `now_ms`.

        Returns:
            How many messages fitted.
        """
        append = self._append
        fitted = 0
        for message in messages:
            when = message[7]
            headers: list[Any] = message[6]  # type: ignore[assignment]
            if headers.__class__ is not list:
                headers = list(headers) if headers else _NO_HEADERS
            if (
                append(
                    offset + fitted,
                    now_ms if when is None else to_millis(when),
                    message[4],
                    message[5],
                    headers,
                )
                is None
            ):
                break
            fitted += 1
        return fitted

    def build(self) -> bytearray:
        """The encoded batch."""
        return self._builder.build()


async def send_batch(
    client: AIOKafkaClient,
    topic: str,
    partition: int,
    data: bytearray,
    *,
    acks: int,
    timeout_ms: int,
    brokers: Sequence[str],
    transactional_id: str | None = None,
) -> tuple[int, int] | Error:
    """Send an encoded batch to the partition's leader once, and read the answer.

    A transactional batch goes with its producer's `transactional_id` (Produce v3 and
    later carry it; brokers refuse a transactional batch without it).

    Returns:
        `(base offset, append time in ms)` when written (the time is -1 unless the topic
        uses LogAppendTime; both are -1 with acks=0, which gets no answer), or the error
        that failed it.
    """
    leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
    if leader is None or leader < 0:
        return broker_error(ErrorCode.LEADER_NOT_AVAILABLE, topic=topic, partition=partition)
    request = TransferRequest(transactional_id, acks, timeout_ms, topic, partition, data)
    try:
        with map_errors(brokers=brokers, topic=topic, partition=partition):
            response = await client.send(leader, request)
    except Error as exc:
        return exc
    if response is None:  # acks=0: the broker sends no answer
        return (-1, -1)
    answer = (
        response
        if response.__class__ is ProduceAnswer
        else entries(response, "topics")[0].partitions[0]  # aiokafka's, before v3
    )
    code = answer.error_code
    # A duplicate is a retry of a batch the broker has already written.
    if code and code != ErrorCode.DUPLICATE_SEQUENCE_NUMBER:
        return broker_error(code, topic=topic, partition=partition)
    # Versions before 2 carry no timestamp.
    return (answer.offset, getattr(answer, "timestamp", -1))


async def init_producer_id(client: AIOKafkaClient, brokers: Sequence[str]) -> tuple[int, int]:
    """Ask the cluster for a producer id and epoch, for idempotent writes.

    Raises:
        BrokerConnectionError: No broker is known, or none could be reached.
        BrokerError: The broker refused.
    """
    request = InitProducerIdRequest(
        transactional_id=None,  # type: ignore[arg-type]
        transaction_timeout_ms=_TRANSACTION_TIMEOUT_MS,
    )
    with map_errors(brokers=brokers):
        node = client.get_random_node()
        if node is None:
            raise BrokerConnectionError(
                "no broker is known to ask for a producer id", brokers=brokers
            )
        response = await client.send(node, request)
    if response.error_code:
        raise broker_error(response.error_code, detail="while asking for a producer id")
    return response.producer_id, response.producer_epoch
