"""OpenTelemetry traces and metrics (`aiomq.otel`, `tracing=`), with the SDK's in-memory span
exporter and metric reader, against the embedded broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import aiomq
from aiomq import IsolationLevel, Message, Reader, UnknownTopicOrPartitionError, Writer
from aiomq.group import Claim, GroupSession
from tests.integration.test_reader import DEADLINE, group_reader
from tests.integration.test_transactions import brokers, create_topics, transactional, unique
from tests.support.waiting import wait_until


class Telemetry:
    """The in-memory exporter and metric reader aiomq reports to during a test."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metric_reader = InMemoryMetricReader()
        self.tracer_provider = tracer_provider
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]

    def metrics(self) -> dict[str, list[Any]]:
        """Every data point collected now, by metric name."""
        found: dict[str, list[Any]] = {}
        data = self.metric_reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    aiomq.otel.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        yield telemetry
    finally:
        aiomq.otel.uninstrument()


async def write_one(bootstrap_servers: str, topic: str, **options: Any) -> Message:
    async with Writer(brokers=brokers(bootstrap_servers), topic=topic, **options) as writer:
        (written,) = await writer.write_messages(Message(key=b"order-7", value=b"paid"))
    return written


def check_child(child: ReadableSpan, parent: ReadableSpan) -> None:
    assert child.context is not None and parent.context is not None
    assert child.context.trace_id == parent.context.trace_id
    assert child.parent is not None and child.parent.span_id == parent.context.span_id


def traceparents(message: Message) -> list[bytes]:
    return [value for name, value in message.headers if name == "traceparent"]


async def test_a_message_written_and_processed_is_one_trace_with_the_conventions_attributes(
    bootstrap_servers: str, topic: str, otel: Telemetry
) -> None:
    await create_topics(bootstrap_servers, topic, partitions=1)
    written = await write_one(bootstrap_servers, topic)
    group_id = unique("traced")
    handled: list[Message] = []

    async def handle(message: Message) -> None:
        handled.append(message)

    async with group_reader(bootstrap_servers, topic, group_id) as reader:
        task = asyncio.create_task(reader.process(handle))
        await wait_until(lambda: bool(handled), "the message was handled")
        await reader.aclose()
        await task

    (send,) = otel.finished(f"send {topic}")
    (process,) = otel.finished(f"process {topic}")
    assert (send.kind, process.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    check_child(process, send)
    assert len(traceparents(handled[0])) == 1
    assert send.attributes is not None and process.attributes is not None
    assert {
        key: send.attributes[key]
        for key in (
            "messaging.system",
            "messaging.operation.name",
            "messaging.operation.type",
            "messaging.destination.name",
            "messaging.destination.partition.id",
            "messaging.kafka.offset",
            "messaging.kafka.message.key",
            "messaging.client.id",
        )
    } == {
        "messaging.system": "kafka",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": "0",
        "messaging.kafka.offset": written.offset,
        "messaging.kafka.message.key": "order-7",
        "messaging.client.id": "aiomq",
    }
    assert process.attributes["messaging.consumer.group.name"] == group_id
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.kafka.offset"] == written.offset


async def test_read_message_and_the_group_handler_continue_the_trace(
    bootstrap_servers: str, topic: str, otel: Telemetry
) -> None:
    await create_topics(bootstrap_servers, topic, partitions=1)
    await write_one(bootstrap_servers, topic)
    async with group_reader(bootstrap_servers, topic, unique("read")) as reader:
        async with asyncio.timeout(DEADLINE):
            await reader.read_message()

    class Handler:
        def __init__(self) -> None:
            self.seen = asyncio.Event()

        async def setup(self, session: GroupSession) -> None:
            pass

        async def consume_claim(self, session: GroupSession, claim: Claim) -> None:
            async for message in claim:
                session.mark_message(message)
                self.seen.set()

        async def cleanup(self, session: GroupSession) -> None:
            pass

    handler = Handler()
    async with group_reader(bootstrap_servers, topic, unique("handler")) as reader:
        task = asyncio.create_task(reader.consume(handler))
        async with asyncio.timeout(DEADLINE):
            await handler.seen.wait()
        await reader.aclose()
        await task

    (send,) = otel.finished(f"send {topic}")
    (receive,) = otel.finished(f"receive {topic}")
    (process,) = otel.finished(f"process {topic}")
    assert receive.kind is SpanKind.CONSUMER
    check_child(receive, send)
    check_child(process, send)


async def test_transform_carries_the_trace_from_the_input_to_the_output_topic(
    bootstrap_servers: str, topic: str, otel: Telemetry
) -> None:
    out = f"{topic}.out"
    await create_topics(bootstrap_servers, topic, out, partitions=1)
    await write_one(bootstrap_servers, topic)
    group_id = unique("transform")
    async with (
        transactional(bootstrap_servers, topic=out) as writer,
        group_reader(
            bootstrap_servers, topic, group_id, isolation_level=IsolationLevel.READ_COMMITTED
        ) as reader,
    ):
        task = asyncio.create_task(
            aiomq.transform(reader, writer, lambda m: m._replace(topic="", partition=-1))
        )
        await wait_until(lambda: bool(otel.finished(f"process {topic}")), "the input processed")
        async with group_reader(bootstrap_servers, out, unique("downstream")) as downstream:
            async with asyncio.timeout(DEADLINE):
                output = await downstream.read_message()
        await reader.aclose()
        await task

    (send,) = otel.finished(f"send {topic}")
    (process,) = otel.finished(f"process {topic}")
    (receive,) = otel.finished(f"receive {out}")
    check_child(process, send)
    check_child(receive, process)  # the output carries the processing's context
    assert len(traceparents(output)) == 1


async def test_errors_set_the_span_status_and_are_recorded(
    bootstrap_servers: str, topic: str, otel: Telemetry
) -> None:
    await create_topics(bootstrap_servers, topic, partitions=1)
    with pytest.raises(UnknownTopicOrPartitionError):
        await write_one(bootstrap_servers, f"{topic}.missing")
    (failed_send,) = otel.finished(f"send {topic}.missing")
    assert failed_send.status.status_code is StatusCode.ERROR
    assert failed_send.attributes is not None
    assert failed_send.attributes["error.type"] == "UnknownTopicOrPartitionError"
    assert [event.name for event in failed_send.events] == ["exception"]

    await write_one(bootstrap_servers, topic)

    async def fail(message: Message) -> None:
        raise ValueError("cannot parse")

    async with group_reader(bootstrap_servers, topic, unique("failing")) as reader:
        with pytest.raises(aiomq.ProcessingError):
            await reader.process(
                fail, retry=aiomq.Retry(attempts=2, backoff_min=0.0, backoff_max=0.0)
            )
    attempts = otel.finished(f"process {topic}")
    assert len(attempts) == 2  # one span per attempt
    for span in attempts:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None and span.attributes["error.type"] == "ValueError"
        assert span.events[0].attributes is not None
        assert span.events[0].attributes["exception.message"] == "cannot parse"


async def test_a_message_that_carries_a_trace_context_keeps_it_and_gets_no_second_one(
    bootstrap_servers: str, topic: str, otel: Telemetry
) -> None:
    await create_topics(bootstrap_servers, topic, partitions=1)
    upstream = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with Writer(brokers=brokers(bootstrap_servers), topic=topic) as writer:
        await writer.write_messages(Message(value=b"x", headers=[("traceparent", upstream)]))
    async with group_reader(bootstrap_servers, topic, unique("read")) as reader:
        async with asyncio.timeout(DEADLINE):
            message = await reader.read_message()
    assert traceparents(message) == [upstream]
    (receive,) = otel.finished(f"receive {topic}")
    assert receive.context is not None and receive.parent is not None
    assert receive.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert receive.parent.span_id == 0xB7AD6B7169203331


async def test_tracing_is_off_by_default_and_each_object_may_choose(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic, partitions=1)
    telemetry = Telemetry()
    aiomq.otel.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    aiomq.otel.uninstrument()  # the providers stay for objects that choose to trace
    plain = await write_one(bootstrap_servers, topic)
    assert traceparents(plain) == [] and telemetry.finished() == []
    traced = await write_one(bootstrap_servers, topic, tracing=True)
    assert len(traceparents(traced)) == 1 and len(telemetry.finished()) == 1

    aiomq.otel.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        opted_out = await write_one(bootstrap_servers, topic, tracing=False)
    finally:
        aiomq.otel.uninstrument()
    assert traceparents(opted_out) == [] and len(telemetry.finished()) == 1


async def test_metrics_agree_with_the_stats(
    bootstrap_servers: str, topic: str, otel: Telemetry
) -> None:
    await create_topics(bootstrap_servers, topic, partitions=2)
    group_id = unique("metrics")
    async with Writer(brokers=brokers(bootstrap_servers), topic=topic) as writer:
        await writer.write_messages(*(Message(value=b"%d" % i, partition=i % 2) for i in range(20)))
        written = writer.stats()
        metrics = otel.metrics()
    sent = metrics["messaging.client.sent.messages"]
    assert sum(point.value for point in sent) == written.messages == 20
    assert {point.attributes["messaging.destination.partition.id"] for point in sent} == {"0", "1"}
    assert sum(p.value for p in metrics["aiomq.client.sent.bytes"]) == written.bytes
    assert sum(p.count for p in metrics["aiomq.client.batch.messages"]) == written.batches

    async with group_reader(bootstrap_servers, topic, group_id) as reader:
        async with asyncio.timeout(DEADLINE):
            for _ in range(15):
                await reader.read_message()
        stats = reader.stats()
        metrics = otel.metrics()
        # The SDK collects from threads of its own: the reader's stats are then read on
        # its event loop, which this await leaves free.
        from_thread = await asyncio.to_thread(otel.metrics)
    (consumed,) = metrics["messaging.client.consumed.messages"]
    assert [p.value for p in from_thread["messaging.client.consumed.messages"]] == [15]
    assert consumed.value == stats.messages == 15
    assert consumed.attributes["messaging.consumer.group.name"] == group_id
    lag = {
        p.attributes["messaging.destination.partition.id"]: p.value
        for p in metrics["aiomq.consumer.lag"]
    }
    assert lag == {str(p.partition): p.lag for p in stats.partitions}
    commits = [
        p
        for p in metrics["messaging.client.operation.duration"]
        if p.attributes["messaging.operation.name"] == "commit"
    ]
    assert sum(p.count for p in commits) == stats.commits == 15
    # A closed reader is no longer observed.
    after = otel.metrics().get("messaging.client.consumed.messages", [])
    assert [p for p in after if p.attributes["messaging.consumer.group.name"] == group_id] == []


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_otel(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("opentelemetry"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    with pytest.raises(aiomq.ConfigError, match=r"pip install 'aiomq\[otel\]'"):
        aiomq.otel.instrument()


async def test_reader_tracing_can_be_chosen_per_reader(bootstrap_servers: str, topic: str) -> None:
    await create_topics(bootstrap_servers, topic, partitions=1)
    await write_one(bootstrap_servers, topic)
    async with Reader(
        brokers=brokers(bootstrap_servers), topic=topic, partition=0, tracing=False
    ) as r:
        async with asyncio.timeout(DEADLINE):
            await r.read_message()
        assert r._telemetry is None
