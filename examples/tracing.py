"""Tracing with OpenTelemetry: one trace from the service that writes an order, through
Kafka, to the service that handles it.

Shows: aiomq.otel.instrument() with an SDK tracer provider; a `send` span per write and
the W3C trace context it puts in each message's headers; a `process` span per message
handled by Reader.process, child of the writer's span; a failed attempt recorded on its
span. Needs `pip install 'aiomq[otel]' opentelemetry-sdk`.
Run: python examples/tracing.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded broker;
stops by itself)
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aiomq
from aiomq.testing import env_or_embedded_broker


def show(spans: list[ReadableSpan]) -> None:
    """Print the spans as a tree, each under its parent."""
    children: dict[int | None, list[ReadableSpan]] = {}
    ids = {span.context.span_id for span in spans if span.context is not None}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in ids else None, []).append(span)

    def walk(parent: int | None, depth: int) -> None:
        for span in children.get(parent, []):
            attributes = span.attributes or {}
            status = span.status.status_code.name
            print(
                f"{'  ' * depth}{span.name} [{span.kind.name.lower()}] "
                f"offset={attributes.get('messaging.kafka.offset')} status={status}"
            )
            if span.context is not None:
                walk(span.context.span_id, depth + 1)

    walk(None, 0)


async def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    aiomq.otel.instrument(tracer_provider=provider)

    run = uuid.uuid4().hex[:8]
    topic = f"example-orders-{run}"
    async with env_or_embedded_broker() as brokers:
        async with aiomq.Client(brokers=brokers) as admin:
            await admin.create_topics(aiomq.TopicSpec(name=topic, partitions=1))
        async with aiomq.Writer(brokers=brokers, topic=topic) as writer:
            (written,) = await writer.write_messages(aiomq.Message(key=b"order-1", value=b"paid"))
        context = dict(written.headers)
        print(f"the message carries traceparent {context['traceparent'].decode()}")

        attempts = 0
        done = asyncio.Event()

        async def handle(message: aiomq.Message) -> None:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise ConnectionError("the stock service did not answer")
            done.set()

        async with aiomq.Reader(
            brokers=brokers,
            topic=topic,
            group_id=f"example-{run}",
            session_timeout=1.0,
            heartbeat_interval=0.25,
            max_wait=0.1,
        ) as reader:
            retry = aiomq.Retry(attempts=3, backoff_min=0.05, backoff_max=0.1)
            processing = asyncio.create_task(reader.process(handle, retry=retry))
            await asyncio.wait_for(done.wait(), timeout=30)
        await processing

    spans = list(exporter.get_finished_spans())
    traces = {span.context.trace_id for span in spans if span.context is not None}
    print(f"{len(spans)} spans in {len(traces)} trace(s):")
    show(spans)


if __name__ == "__main__":
    asyncio.run(main())
