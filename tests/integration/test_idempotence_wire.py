"""Idempotent writes, proven on the wire.

No broker that runs here drops duplicate batches (the librdkafka mock appends whatever
it is sent, the embedded broker refuses idempotent producers), so the proof is what the
Writer sends: the mock cluster answers some produce requests after `write_timeout`, the
Writer gives up waiting and sends the batch again, and every Produce request is captured
as the bytes written to the broker's socket and decoded here, independently of the
encoder. An idempotent Writer must resend each batch with the producer id, epoch and base
sequence of its first try, which is what a Kafka broker drops a duplicate by; the same
script without idempotence leaves the duplicates in the log, and the same check fails on
it.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.conn import AIOKafkaConnection

from aiomq import Message, Writer
from tests.integration.test_writer import read_all
from tests.support.mock_cluster import ApiKey, MockCluster

WRITE_TIMEOUT = 0.5
LATE_MS = 1500
"""How late the delayed answers come: past `WRITE_TIMEOUT`, so the Writer tries again."""

PARTITIONS = 2
LEADER = 1
CALLS = 6
# The answer to each produce request in turn, 0 for prompt, LATE_MS for late: call 1 is
# tried twice, call 2 three times, call 4 twice; the others once.
ANSWERS = [0, LATE_MS, 0, LATE_MS, LATE_MS, 0, 0, LATE_MS, 0, 0]
RETRIED = {1: 2, 2: 3, 4: 2}
"""Calls whose batch is sent more than once, and how many times."""


@dataclass(frozen=True)
class ProducedBatch:
    """One record batch of a Produce request, as it crossed the wire."""

    topic: str
    partition: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    values: tuple[bytes | None, ...]


# -- decoding the wire ---------------------------------------------------------------------


class _Cursor:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def bytes(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def string(self) -> str | None:
        size = self.take(">h")
        return None if size < 0 else self.bytes(size).decode()

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)  # zigzag
            shift += 7


def decode_produce(frame: bytes) -> list[ProducedBatch]:
    """The record batches of a Produce request frame (v3 to v8), else nothing."""
    cursor = _Cursor(frame)
    cursor.take(">i")  # frame size
    api_key, version = cursor.take(">h"), cursor.take(">h")
    if api_key != ApiKey.PRODUCE:
        return []
    assert 3 <= version <= 8, f"Produce v{version}: not decoded here"
    cursor.take(">i")  # correlation id
    cursor.string()  # client id
    cursor.string()  # transactional id
    cursor.take(">h")  # acks
    cursor.take(">i")  # timeout
    batches = []
    for _ in range(cursor.take(">i")):
        topic = cursor.string()
        assert topic is not None
        for _ in range(cursor.take(">i")):
            partition = cursor.take(">i")
            batch = _Cursor(cursor.bytes(cursor.take(">i")))
            batch.take(">q")  # base offset
            batch.take(">i")  # batch length
            batch.take(">i")  # partition leader epoch
            assert batch.take(">b") == 2, "not a v2 record batch"
            batch.take(">I")  # crc
            assert batch.take(">h") & 0x07 == 0, "compressed batches are not decoded here"
            batch.take(">i")  # last offset delta
            batch.take(">q")  # first timestamp
            batch.take(">q")  # max timestamp
            producer_id, epoch, sequence = batch.take(">q"), batch.take(">h"), batch.take(">i")
            values = []
            for _ in range(batch.take(">i")):
                batch.varint()  # record length
                batch.take(">b")  # attributes
                batch.varint()  # timestamp delta
                batch.varint()  # offset delta
                key_size = batch.varint()
                batch.bytes(max(key_size, 0))
                value_size = batch.varint()
                values.append(None if value_size < 0 else batch.bytes(value_size))
                for _ in range(batch.varint()):
                    batch.bytes(batch.varint())
                    batch.bytes(max(batch.varint(), 0))
            batches.append(
                ProducedBatch(topic, partition, producer_id, epoch, sequence, tuple(values))
            )
    return batches


@pytest.fixture
def produced(monkeypatch: pytest.MonkeyPatch) -> list[ProducedBatch]:
    """Every record batch sent in a Produce request while the test runs, in order: the
    bytes each request writes to its connection, decoded."""
    sent: list[ProducedBatch] = []
    send: Any = AIOKafkaConnection.send

    def capturing_send(
        self: AIOKafkaConnection, request: object, expect_response: bool = True
    ) -> object:
        writer: Any = self._writer
        if writer is None:
            return send(self, request, expect_response)
        write = writer.write

        def capture(data: bytes) -> None:
            sent.extend(decode_produce(bytes(data)))
            write(data)

        writer.write = capture
        try:
            return send(self, request, expect_response)
        finally:
            writer.write = write

    monkeypatch.setattr(AIOKafkaConnection, "send", capturing_send)
    return sent


# -- the script and the check --------------------------------------------------------------


async def run_script(cluster: MockCluster, topic: str, *, idempotent: bool) -> int:
    """Write `CALLS` calls of three messages, one call at a time, while the broker answers
    the produce requests as `ANSWERS` says; return the writer's retry count."""
    cluster.create_topic(topic, partitions=PARTITIONS, replication_factor=1)
    for partition in range(PARTITIONS):
        cluster.set_partition_leader(topic, partition, LEADER)
    async with Writer(
        brokers=cluster.bootstrap_servers.split(","),
        topic=topic,
        idempotent=idempotent,
        write_timeout=WRITE_TIMEOUT,
        write_backoff_min=0.01,
        write_backoff_max=0.05,
    ) as writer:
        cluster.broker_push_request_error_rtts(
            LEADER, ApiKey.PRODUCE, *((0, rtt) for rtt in ANSWERS)
        )
        for call in range(CALLS):
            batch = [
                Message(value=b"%d-%d" % (call, i), partition=call % PARTITIONS) for i in range(3)
            ]
            written = await writer.write_messages(*batch)
            assert all(m.offset >= 0 for m in written)
        return writer.stats().retries


def by_batch(sent: list[ProducedBatch]) -> dict[tuple[bytes | None, ...], list[ProducedBatch]]:
    """The sends of each batch (told apart by its records), in the order sent."""
    tries: defaultdict[tuple[bytes | None, ...], list[ProducedBatch]] = defaultdict(list)
    for batch in sent:
        tries[batch.values].append(batch)
    return dict(tries)


def identity_problems(sent: list[ProducedBatch]) -> list[str]:
    """What would keep a broker from dropping the resent batches as duplicates: a resend
    without a producer id, or with another producer id, epoch or base sequence than its
    first try, or sequences that skip or repeat from one batch to the next."""
    problems = []
    next_sequence: dict[int, int] = {}
    for values, tries in by_batch(sent).items():
        first = tries[0]
        identity = (first.producer_id, first.producer_epoch, first.base_sequence)
        if len(tries) > 1 and min(identity) < 0:
            problems.append(f"{values[0]!r}: resent without a producer identity {identity}")
        for again in tries[1:]:
            seen = (again.producer_id, again.producer_epoch, again.base_sequence)
            if seen != identity:
                problems.append(f"{values[0]!r}: first sent as {identity}, resent as {seen}")
        expected = next_sequence.get(first.partition, 0)
        if first.producer_id >= 0 and first.base_sequence != expected:
            problems.append(
                f"{values[0]!r}: base sequence {first.base_sequence}, expected {expected}"
            )
        next_sequence[first.partition] = first.base_sequence + len(values)
    return problems


def resends(sent: list[ProducedBatch]) -> dict[int, int]:
    """For each call sent more than once, how many times it was sent."""
    return {
        int(values[0].split(b"-")[0]): len(tries)  # type: ignore[union-attr]
        for values, tries in by_batch(sent).items()
        if len(tries) > 1
    }


async def test_an_idempotent_writer_resends_a_late_batch_with_its_first_id_epoch_and_sequence(
    mock_cluster: MockCluster, topic: str, produced: list[ProducedBatch]
) -> None:
    retries = await run_script(mock_cluster, topic, idempotent=True)
    assert resends(produced) == RETRIED
    assert retries == sum(RETRIED.values()) - len(RETRIED)
    assert identity_problems(produced) == []
    assert all(batch.producer_id >= 0 for batch in produced)
    assert len({(b.producer_id, b.producer_epoch) for b in produced}) == 1


async def test_the_same_script_without_idempotence_leaves_duplicates_the_check_catches(
    mock_cluster: MockCluster, topic: str, produced: list[ProducedBatch]
) -> None:
    await run_script(mock_cluster, topic, idempotent=False)
    assert resends(produced) == RETRIED
    problems = identity_problems(produced)
    assert len(problems) == len(RETRIED)
    assert all("resent without a producer identity" in p for p in problems)
    # Each late answer's batch was appended, and appended again when resent.
    records = await read_all(
        mock_cluster.bootstrap_servers, [TopicPartition(topic, p) for p in range(PARTITIONS)]
    )
    copies: defaultdict[bytes | None, int] = defaultdict(int)
    for record in records:
        copies[record.value] += 1
    assert {
        int(value.split(b"-")[0])  # type: ignore[union-attr]
        for value, n in copies.items()
        if n > 1
    } == set(RETRIED)
    assert len(records) == 3 * CALLS + 3 * (sum(RETRIED.values()) - len(RETRIED))


def test_a_resend_under_another_sequence_or_producer_id_is_caught() -> None:
    first = ProducedBatch("t", 0, 7, 0, 0, (b"0-0", b"0-1"))
    second = ProducedBatch("t", 0, 7, 0, 2, (b"1-0",))
    assert identity_problems([first, second, second]) == []
    assert identity_problems([first, second, ProducedBatch("t", 0, 7, 0, 3, (b"1-0",))]) == [
        "b'1-0': first sent as (7, 0, 2), resent as (7, 0, 3)"
    ]
    assert identity_problems([first, second, ProducedBatch("t", 0, 8, 0, 2, (b"1-0",))]) == [
        "b'1-0': first sent as (7, 0, 2), resent as (8, 0, 2)"
    ]
    assert identity_problems([first, ProducedBatch("t", 0, 7, 0, 3, (b"1-0",))]) == [
        "b'1-0': base sequence 3, expected 2"
    ]
