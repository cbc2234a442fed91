"""What OpenTelemetry tracing costs a Writer and a Reader, side by side in one run.

Run it from the repository root::

    .venv/bin/python bench/tracing_cost.py            # about a minute on 2 cores
    .venv/bin/python bench/tracing_cost.py --quick    # about 20 seconds

Each scenario runs the same work with `tracing=False` and `tracing=True`, alternating run
by run (the order rotates), and reports the median throughput of each and the cost of
tracing per message in microseconds (1/traced - 1/untraced). Tracing goes to the
OpenTelemetry SDK with a batch span processor and an exporter that drops the spans, and a
meter provider whose reader is never collected: the cost measured is aiomq's and the
SDK's recording, not an exporter's network. Workload: 100-byte values, 1,000 keys,
4 partitions, acks from all replicas, on the embedded broker.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from _common import parse_options, start_report
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import aiomq
from aiomq import Message, Reader, Writer
from aiomq.testing import EmbeddedBroker

PARTITIONS = 4
KEYS = [b"key-%d" % i for i in range(1000)]
VALUE = b"x" * 100
CALL_SIZE = 1000
GROUP = {"session_timeout": 1.0, "heartbeat_interval": 0.25, "max_wait": 0.1}


class DroppingExporter(SpanExporter):
    """Takes spans and does nothing with them."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def messages(count: int) -> list[Message]:
    return [Message(key=KEYS[i % len(KEYS)], value=VALUE) for i in range(count)]


async def create_topic(brokers: list[str], topic: str) -> None:
    async with aiomq.Client(brokers=brokers) as admin:
        await admin.create_topics(aiomq.TopicSpec(name=topic, partitions=PARTITIONS))


async def write_async(brokers: list[str], topic: str, count: int, tracing: bool) -> float:
    """Async-mode writes of 1,000 messages per call; seconds until all are acknowledged."""
    done = asyncio.Event()
    acknowledged = 0

    def completion(batch: list[Message], error: aiomq.Error | None) -> None:
        nonlocal acknowledged
        acknowledged += len(batch)
        if acknowledged >= count:
            done.set()

    batch = messages(CALL_SIZE)
    async with Writer(
        brokers=brokers, topic=topic, async_mode=True, completion=completion, tracing=tracing
    ) as writer:
        started = time.perf_counter()
        for _ in range(count // CALL_SIZE):
            await writer.write_messages(*batch)
        await done.wait()
        return time.perf_counter() - started


async def read_messages(brokers: list[str], topic: str, count: int, tracing: bool) -> float:
    """`read_message` in a group with `commit_interval=1`; seconds for `count` messages."""
    async with Reader(
        brokers=brokers,
        topic=topic,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        commit_interval=1.0,
        tracing=tracing,
        **GROUP,
    ) as reader:
        await reader.fetch_batch(1)  # the join, outside the clock
        started = time.perf_counter()
        for _ in range(count - 1):
            await reader.read_message()
        return time.perf_counter() - started


async def process(brokers: list[str], topic: str, count: int, tracing: bool) -> float:
    """`Reader.process` with a handler that returns at once; seconds for `count`."""
    handled = 0
    done = asyncio.Event()

    async def handle(message: Message) -> None:
        nonlocal handled
        handled += 1
        if handled >= count:
            done.set()

    async with Reader(
        brokers=brokers,
        topic=topic,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        commit_interval=1.0,
        tracing=tracing,
        **GROUP,
    ) as reader:
        task = asyncio.create_task(reader.process(handle, concurrency=64))
        started = time.perf_counter()
        await done.wait()
        elapsed = time.perf_counter() - started
        await reader.aclose()
        await task
        return elapsed


Scenario = Callable[[list[str], str, int, bool], Awaitable[float]]


async def measure(
    name: str, scenario: Scenario, brokers: list[str], topic: str, count: int, runs: int
) -> dict[str, Any]:
    rates: dict[bool, list[float]] = {False: [], True: []}
    for run in range(runs):
        for tracing in (False, True) if run % 2 == 0 else (True, False):
            gc.collect()
            seconds = await scenario(brokers, topic, count, tracing)
            rates[tracing].append(count / seconds)
    off = statistics.median(rates[False])
    on = statistics.median(rates[True])
    cost_us = (1 / on - 1 / off) * 1e6
    print(f"{name:<44} {off:>12,.0f} {on:>12,.0f} {on / off:>8.2f}x {cost_us:>10.2f} µs")
    return {"scenario": name, "off": off, "on": on, "ratio": on / off, "cost_us": cost_us}


async def run(bootstrap: str | None, runs: int, quick: bool) -> list[dict[str, Any]]:
    count = 30_000 if quick else 100_000
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    aiomq.otel.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    aiomq.otel.uninstrument()  # tracing= decides, with these providers
    results = []
    async with EmbeddedBroker() if bootstrap is None else _External(bootstrap) as broker:
        brokers = [broker.bootstrap_servers]
        topic = f"bench-tracing-{uuid.uuid4().hex[:8]}"
        await create_topic(brokers, topic)
        print(
            f"workload: {count:,} messages of 100 B, 1,000 keys, {PARTITIONS} partitions, acks all"
        )
        print(f"{'scenario':<44} {'off msg/s':>12} {'on msg/s':>12} {'on/off':>9} {'cost/msg':>13}")
        results.append(
            await measure(
                "write, async mode, 1,000 per call", write_async, brokers, topic, count, runs
            )
        )
        results.append(
            await measure(
                "read_message, commit_interval=1", read_messages, brokers, topic, count, runs
            )
        )
        results.append(
            await measure(
                "process(concurrency=64), handler returns", process, brokers, topic, count, runs
            )
        )
    tracer_provider.shutdown()
    return results


class _External:
    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers

    async def __aenter__(self) -> _External:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    args, runs = parse_options(
        "bench/tracing_cost.py",
        "What OpenTelemetry tracing costs aiomq per message.",
        "fewer messages and runs",
        argv,
    )
    command = start_report()
    results = asyncio.run(run(args.bootstrap_servers, runs, args.quick))
    if args.json is not None:
        args.json.write_text(
            json.dumps({"command": command, "runs": runs, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
