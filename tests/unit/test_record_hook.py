"""The record hook builds messages per fetch response, and only for readers' consumers."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord, TopicPartition

import aiomq
from aiomq._internal.consumer.fetch import fill
from aiomq._internal.kafka.record_hook import MessageFactory, install, message_bytes

T0 = 1_777_000_000_000  # milliseconds

RECORDS: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
    (T0, b"k1", b"value-1", [("h", b"1"), ("g", b"")]),
    (T0, None, b"v2", []),
    (T0 + 5, b"key-3", None, []),
    (T0 + 5, None, None, [("h", b"")]),
]


def fetched(*, base_offset: int = 0) -> Any:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1_000_000,
    )
    for delta, (ts, key, value, headers) in enumerate(RECORDS):
        builder.append(delta, timestamp=ts, key=key, value=value, headers=[*headers])
    data = builder.build()
    data[0:8] = base_offset.to_bytes(8, "big")
    return MemoryRecords(bytes(data))


def partition_records(tp: TopicPartition, key_deserializer: Any) -> PartitionRecords:
    return PartitionRecords(
        tp, fetched(base_offset=10), None, 10, key_deserializer, None, True, READ_UNCOMMITTED
    )


def test_a_readers_fetch_response_yields_messages_with_that_responses_high_water_mark() -> None:
    assert install()
    asked: list[TopicPartition] = []
    high_water = {"now": 14}

    def look_up(tp: TopicPartition) -> int | None:
        asked.append(tp)
        return high_water["now"]

    factory = MessageFactory(look_up)
    tp = TopicPartition("orders", 3)
    records = partition_records(tp, factory)
    high_water["now"] = 99  # a later fetch of another partition changes nothing here
    messages = list(records)

    assert asked == [tp]
    assert [type(m) for m in messages] == [aiomq.Message] * len(RECORDS)
    for offset, (message, (ts, key, value, headers)) in enumerate(
        zip(messages, RECORDS, strict=True), start=10
    ):
        assert message == aiomq.Message(
            topic="orders",
            partition=3,
            offset=offset,
            high_water_mark=14,
            key=key,
            value=value,
            headers=tuple(headers),
            time=datetime.fromtimestamp(ts / 1000, UTC),
        )
        assert type(message.headers) is tuple
    assert factory.bytes == message_bytes(messages) == 2 + 7 + 2 + 5
    assert records.next_fetch_offset == 14


def test_an_unknown_high_water_mark_is_minus_one() -> None:
    assert install()
    messages = list(partition_records(TopicPartition("t", 0), MessageFactory(lambda tp: None)))
    assert {m.high_water_mark for m in messages} == {-1}


def test_other_consumers_keep_aiokafkas_records_and_pay_nothing_per_record() -> None:
    assert install()
    records = partition_records(TopicPartition("t", 0), None)
    assert "_consumer_record" not in vars(records)
    got = list(records)
    assert [type(r) for r in got] == [ConsumerRecord] * len(RECORDS)
    assert [(r.offset, r.key, r.value) for r in got] == [
        (10 + i, key, value) for i, (_, key, value, _) in enumerate(RECORDS)
    ]


def test_installing_twice_wraps_aiokafka_once() -> None:
    assert install()
    init = PartitionRecords.__init__
    assert install()
    assert PartitionRecords.__init__ is init


def third_party_wrapper(
    wrapped: Callable[..., None], calls: list[str], *, wraps: bool = True
) -> Any:
    """Wrap `wrapped` the way an instrumentation library would: record, then call it."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        calls.append("third party")
        wrapped(self, *args, **kwargs)

    return functools.wraps(wrapped)(__init__) if wraps else __init__


def builds_messages() -> bool:
    factory = MessageFactory(lambda tp: 14)
    messages = list(partition_records(TopicPartition("t", 0), factory))
    return [type(m) for m in messages] == [aiomq.Message] * len(RECORDS)


def test_installing_again_after_a_library_wrapped_the_hook_keeps_its_wrapper_and_never_recurses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert install()
    calls: list[str] = []
    wrapper = third_party_wrapper(PartitionRecords.__init__, calls)
    monkeypatch.setattr(PartitionRecords, "__init__", wrapper)

    assert install()

    assert PartitionRecords.__init__ is wrapper
    assert builds_messages()
    assert calls == ["third party"]


def test_installing_after_a_library_wrapped_aiokafkas_method_wraps_its_wrapper_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert install()
    calls: list[str] = []
    pristine = inspect.unwrap(PartitionRecords.__init__)
    wrapper = third_party_wrapper(pristine, calls)
    monkeypatch.setattr(PartitionRecords, "__init__", wrapper)

    assert install()
    hooked = PartitionRecords.__init__
    assert install()

    assert hooked is not wrapper
    assert PartitionRecords.__init__ is hooked
    assert builds_messages()
    assert calls == ["third party"]


def test_a_wrapper_that_hides_what_it_wraps_is_wrapped_without_recursing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert install()
    calls: list[str] = []
    wrapper = third_party_wrapper(PartitionRecords.__init__, calls, wraps=False)
    monkeypatch.setattr(PartitionRecords, "__init__", wrapper)

    assert install()

    assert builds_messages()
    assert calls == ["third party"]


class _Consumer:
    """Answers getmany with records of the given partitions, built there as aiokafka does."""

    def __init__(self, factory: MessageFactory, *partitions: int) -> None:
        self.factory = factory
        self.partitions = partitions

    async def getmany(self, *partitions: Any, **options: Any) -> dict[TopicPartition, list[Any]]:
        return {
            TopicPartition("t", p): list(partition_records(TopicPartition("t", p), self.factory))
            for p in self.partitions
        }

    def highwater(self, tp: TopicPartition) -> int:
        return 20


def open_reader(*partitions: int) -> aiomq.Reader:
    reader = aiomq.Reader(brokers=["localhost:9092"], topic="t", group_id="g")
    reader._core.factory = MessageFactory(lambda tp: 20)
    reader._core.consumer = _Consumer(reader._core.factory, *partitions)  # type: ignore[assignment]
    reader._core.life.opened()
    reader._core.assigned = {("t", 0), ("t", 1)}
    return reader


async def test_fill_counts_the_bytes_of_kept_partitions_only() -> None:
    assert install()
    reader = open_reader(1, 0)
    reader._core.assigned = {("t", 0)}  # partition 1 was just revoked

    await fill(reader._core)

    kept = list(partition_records(TopicPartition("t", 0), MessageFactory(lambda tp: 20)))
    assert list(reader._core.buffer) == kept
    assert reader._core.factory is not None and reader._core.factory.bytes == 0
    assert reader._core.counts["bytes"] == message_bytes(kept)
    assert reader._core.counts["messages"] == len(kept)
    assert reader._core.fetched_next == {("t", 0): 14}
    stats = reader.stats()
    assert (stats.messages, stats.bytes, stats.queued) == (0, 0, len(kept))
    reader._core.buffer.clear()
    stats = reader.stats()
    assert (stats.messages, stats.bytes) == (len(kept), message_bytes(kept))


async def test_a_batch_read_takes_one_partitions_fetch_without_buffering_it() -> None:
    assert install()
    reader = open_reader(0)
    fetched_messages = list(
        partition_records(TopicPartition("t", 0), MessageFactory(lambda tp: 20))
    )

    assert await reader.fetch_batch(len(RECORDS)) == fetched_messages
    assert not reader._core.buffer
    stats = reader.stats()
    assert (stats.messages, stats.bytes) == (len(RECORDS), message_bytes(fetched_messages))
    assert reader._core.fetched_next == {("t", 0): 14}


async def test_a_batch_read_buffers_what_it_cannot_take_whole() -> None:
    assert install()
    factory = MessageFactory(lambda tp: 20)
    first = list(partition_records(TopicPartition("t", 0), factory))
    second = list(partition_records(TopicPartition("t", 1), factory))
    reader = open_reader(0)

    # More than asked for: the rest waits in the buffer, in order.
    assert await reader.fetch_batch(3) == first[:3]
    assert list(reader._core.buffer) == first[3:]
    # The buffer goes first; a fetch is not needed while it holds messages.
    assert await reader.fetch_batch(10) == first[3:]

    # Two partitions in one fetch: both are buffered, then returned together.
    reader._core.consumer = _Consumer(reader._core.factory, 0, 1)  # type: ignore[arg-type, assignment]
    assert await reader.fetch_batch(100) == first + second
    assert not reader._core.buffer
    stats = reader.stats()
    assert (stats.messages, stats.bytes) == (3 * len(RECORDS), message_bytes(first) * 3)
