"""Benchmark aiomq's Writer against raw aiokafka, side by side, in one run on one broker.

Run it from the repository root::

    .venv/bin/python bench/writer.py                 # under 3 minutes on 2 cores
    .venv/bin/python bench/writer.py --quick         # under 40 seconds
    .venv/bin/python bench/writer.py --bootstrap-servers localhost:9092 --json out.json

Every scenario alternates the clients run by run (their order rotates from one run to the
next), on the same broker, topic settings and machine state, and reports the median of the
runs. Only ratios from one run mean much: machines are shared and noisy. See bench/README.md.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiokafka
from _common import mib, parse_options, rss_bytes, start_report
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

import aiomq
from aiomq import Message, RequiredAcks, Writer

PARTITIONS = 4  # what Tansu gives an auto-created topic; other brokers may differ
KEYS = [b"key-%d" % i for i in range(1000)]
CALL_SIZE = 1000
BIG_BATCH = 1_048_576

# The clients under test, as named in the table.
AIOMQ = "aiomq"
AIOKAFKA = "aiokafka"
AIOKAFKA_BIG = "aiokafka-1MiB"
CLIENTS = (AIOMQ, AIOKAFKA, AIOKAFKA_BIG)


@dataclass(frozen=True, kw_only=True, slots=True)
class Counts:
    """How much work each scenario does in one run."""

    small: int
    large: int
    concurrent: int
    latency: int
    memory: int
    warmup: int


DEFAULT_COUNTS = Counts(
    small=100_000,
    large=50_000,
    concurrent=20_000,
    latency=1_000,
    memory=1_000_000,
    warmup=2_000,
)
QUICK_COUNTS = Counts(
    small=30_000,
    large=15_000,
    concurrent=10_000,
    latency=300,
    memory=100_000,
    warmup=1_000,
)


@dataclass(kw_only=True, slots=True)
class Row:
    """One line of the table: a metric per client, one value per run."""

    name: str
    unit: str
    higher_is_better: bool
    runs: dict[str, list[float]] = field(default_factory=dict)
    partitions: int | None = None

    def add(self, client: str, value: float) -> None:
        self.runs.setdefault(client, []).append(value)

    def median(self, client: str) -> float | None:
        values = self.runs.get(client)
        return statistics.median(values) if values else None


# -- the two clients behind one interface ---------------------------------------------------


class Side:
    """One open client writing to one topic; subclasses wrap aiomq and aiokafka."""

    name: str

    async def write_batch(self, values: list[bytes], start: int) -> None:
        """Write len(values) messages and return once the broker has acknowledged all."""
        raise NotImplementedError

    async def write_one(self, value: bytes, i: int) -> None:
        """Write one message and return once the broker has acknowledged it."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class AiomqSide(Side):
    """`Writer.write_messages` in calls of CALL_SIZE messages."""

    def __init__(self, writer: Writer) -> None:
        self.name = AIOMQ
        self.writer = writer

    async def write_batch(self, values: list[bytes], start: int) -> None:
        write = self.writer.write_messages
        for offset in range(0, len(values), CALL_SIZE):
            chunk = values[offset : offset + CALL_SIZE]
            base = start + offset
            await write(
                *[Message(key=KEYS[(base + j) % 1000], value=v) for j, v in enumerate(chunk)]
            )

    async def write_one(self, value: bytes, i: int) -> None:
        await self.writer.write_messages(Message(key=KEYS[i % 1000], value=value))

    async def close(self) -> None:
        await self.writer.aclose()


class Deliveries:
    """An async-mode completion callback that counts what the broker has acknowledged."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.expected = 0
        self.reached = asyncio.Event()

    def __call__(self, messages: list[Message], error: aiomq.Error | None) -> None:
        if error is not None:
            self.failed += len(messages)
        self.delivered += len(messages)
        if self.delivered >= self.expected:
            self.reached.set()

    def expect(self, count: int) -> None:
        """Wait, from now on, for `count` more messages than have been settled."""
        self.expected = self.delivered + count
        self.reached.clear()

    async def wait(self) -> None:
        if self.delivered < self.expected:
            await self.reached.wait()
        if self.failed:
            raise RuntimeError(f"{self.failed} messages failed")


class AiomqAsyncSide(AiomqSide):
    """`Writer(async_mode=True)`: calls of CALL_SIZE messages return once queued, and a run
    ends when the completion callback has seen every message acknowledged."""

    def __init__(self, writer: Writer, deliveries: Deliveries) -> None:
        super().__init__(writer)
        self.deliveries = deliveries

    async def write_batch(self, values: list[bytes], start: int) -> None:
        self.deliveries.expect(len(values))
        await super().write_batch(values, start)
        await self.deliveries.wait()

    async def write_one(self, value: bytes, i: int) -> None:
        self.deliveries.expect(1)
        await super().write_one(value, i)
        await self.deliveries.wait()


class AiokafkaSide(Side):
    """`AIOKafkaProducer.send()` per message, then awaiting every delivery future."""

    def __init__(self, name: str, producer: AIOKafkaProducer, topic: str) -> None:
        self.name = name
        self.producer = producer
        self.topic = topic

    async def write_batch(self, values: list[bytes], start: int) -> None:
        producer, topic = self.producer, self.topic
        futures = [
            await producer.send(topic, v, key=KEYS[(start + j) % 1000])
            for j, v in enumerate(values)
        ]
        await asyncio.gather(*futures)

    async def write_one(self, value: bytes, i: int) -> None:
        await self.producer.send_and_wait(self.topic, value, key=KEYS[i % 1000])

    async def close(self) -> None:
        await self.producer.stop()


async def open_aiomq(bootstrap: str, topic: str, **options: Any) -> AiomqSide:
    writer = Writer(
        brokers=[bootstrap],
        topic=topic,
        required_acks=RequiredAcks.ALL,
        compression=None,
        allow_auto_topic_creation=True,
        **options,
    )
    await writer.__aenter__()
    return AiomqSide(writer)


async def open_aiokafka(bootstrap: str, topic: str, name: str, batch: int) -> AiokafkaSide:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=None,
        linger_ms=0,
        max_batch_size=batch,
        max_request_size=max(batch, 1_048_576),
        enable_idempotence=False,
    )
    await producer.start()
    return AiokafkaSide(name, producer, topic)


async def open_aiomq_async(bootstrap: str, topic: str) -> AiomqAsyncSide:
    deliveries = Deliveries()
    side = await open_aiomq(bootstrap, topic, async_mode=True, completion=deliveries)
    return AiomqAsyncSide(side.writer, deliveries)


async def open_sides(
    bootstrap: str, topic: str, names: tuple[str, ...], *, aiomq_async: bool = False
) -> list[Side]:
    # aiomq goes first: it creates the topic (the broker's default partition count).
    sides: list[Side] = []
    for name in names:
        if name == AIOMQ:
            opener = open_aiomq_async if aiomq_async else open_aiomq
            sides.append(await opener(bootstrap, topic))
        elif name == AIOKAFKA:
            sides.append(await open_aiokafka(bootstrap, topic, name, 16_384))
        else:
            sides.append(await open_aiokafka(bootstrap, topic, name, BIG_BATCH))
    return sides


async def partition_count(sides: list[Side]) -> int | None:
    """The number of partitions of the topic the sides write to, as aiokafka sees it."""
    for side in sides:
        if isinstance(side, AiokafkaSide):
            return len(await side.producer.partitions_for(side.topic))
    return None


def rotated(sides: list[Side], run: int) -> list[Side]:
    """The order of the clients in a run: rotated, so that no client is always first."""
    shift = run % len(sides)
    return sides[shift:] + sides[:shift]


async def timed(work: Callable[[], Awaitable[None]]) -> float:
    gc.collect()
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


def topic_name(scenario: str) -> str:
    return f"bench-{scenario}-{uuid.uuid4().hex[:8]}"


# -- scenarios ------------------------------------------------------------------------------


async def bench_throughput(
    bootstrap: str,
    label: str,
    size: int,
    count: int,
    warmup: int,
    runs: int,
    *,
    aiomq_async: bool = False,
) -> Row:
    """Scenarios 1 and 2: write_messages calls of 1,000 vs send()+gather, in msg/s.

    Synchronous calls wait for each call's offsets; in async mode the calls only queue,
    and the run ends when the completion callback has seen every message acknowledged,
    as aiokafka's run ends when every delivery future has resolved.
    """
    mode = "async mode" if aiomq_async else "sync calls"
    row = Row(name=f"throughput {label} values, {mode}", unit="msg/s", higher_is_better=True)
    value = os.urandom(size)
    values = [value] * count
    topic = topic_name(f"tp{size}{'a' if aiomq_async else 's'}")
    sides = await open_sides(bootstrap, topic, CLIENTS, aiomq_async=aiomq_async)
    try:
        for side in sides:
            await side.write_batch(values[:warmup], 0)
        row.partitions = await partition_count(sides)
        for run in range(runs):
            for side in rotated(sides, run):

                async def work(side: Side = side) -> None:
                    await side.write_batch(values, 0)

                row.add(side.name, count / await timed(work))
    finally:
        for side in sides:
            await side.close()
    return row


async def bench_concurrent(bootstrap: str, count: int, warmup: int, runs: int) -> Row:
    """Scenario 3: 1,000 single-message callers at once, repeated, in msg/s."""
    row = Row(name="1,000 concurrent 1-msg callers", unit="msg/s", higher_is_better=True)
    value = os.urandom(100)
    sides = await open_sides(bootstrap, topic_name("conc"), CLIENTS)

    async def waves(side: Side, total: int) -> None:
        for start in range(0, total, CALL_SIZE):
            await asyncio.gather(*(side.write_one(value, start + j) for j in range(CALL_SIZE)))

    try:
        for side in sides:
            await waves(side, warmup)
        for run in range(runs):
            for side in rotated(sides, run):

                async def work(side: Side = side) -> None:
                    await waves(side, count)

                row.add(side.name, count / await timed(work))
    finally:
        for side in sides:
            await side.close()
    return row


async def bench_latency(bootstrap: str, count: int, warmup: int, runs: int) -> tuple[Row, Row, Row]:
    """Scenario 4: one synchronous write at a time: p50 and p99 in ms, and writes/s."""
    p50 = Row(name="1 sync write latency p50", unit="ms", higher_is_better=False)
    p99 = Row(name="1 sync write latency p99", unit="ms", higher_is_better=False)
    rate = Row(name="sequential sync writes", unit="msg/s", higher_is_better=True)
    value = os.urandom(100)
    sides = await open_sides(bootstrap, topic_name("lat"), (AIOMQ, AIOKAFKA))
    try:
        for side in sides:
            for i in range(warmup // 10):
                await side.write_one(value, i)
        for run in range(runs):
            for side in rotated(sides, run):
                samples: list[float] = []
                gc.collect()
                for i in range(count):
                    start = time.perf_counter()
                    await side.write_one(value, i)
                    samples.append((time.perf_counter() - start) * 1000)
                cuts = statistics.quantiles(samples, n=100, method="inclusive")
                p50.add(side.name, cuts[49])
                p99.add(side.name, cuts[98])
                rate.add(side.name, count / (sum(samples) / 1000))
    finally:
        for side in sides:
            await side.close()
    return p50, p99, rate


async def bench_memory(bootstrap: str, count: int) -> dict[str, Any]:
    """Scenario 5: aiomq async mode over a long run; RSS sampled every ~50k messages.

    Every message is a new object with a value of its own, as in an application, so the
    queue holds real messages. Run first, before other scenarios have grown the heap.
    """
    every = 50_000 if count >= 500_000 else 10_000
    side = await open_aiomq(bootstrap, topic_name("mem"), async_mode=True)
    writer = side.writer
    capacity = writer.config.queue_capacity
    write = writer.write_messages

    def call(base: int) -> list[Message]:
        return [Message(key=KEYS[j], value=b"%0100d" % (base + j)) for j in range(CALL_SIZE)]

    try:
        # The warm-up creates the topic; its messages may still be queued at the start.
        await write(*call(0))
        gc.collect()
        samples: list[tuple[int, int, int]] = [(0, rss_bytes(), writer.stats().queued)]
        queued_max = 0
        filled_at: int | None = None  # messages written when the queue first filled
        start = time.perf_counter()
        for sent in range(CALL_SIZE, count + 1, CALL_SIZE):
            await write(*call(sent))
            queued = writer.stats().queued
            queued_max = max(queued_max, queued)
            if filled_at is None and queued > capacity - CALL_SIZE:
                filled_at = sent
            if sent % every == 0:
                samples.append((sent, rss_bytes(), queued))
    finally:
        # A Writer has no flush of its own: aclose() delivers everything still queued.
        await side.close()
    elapsed = time.perf_counter() - start
    gc.collect()
    end = rss_bytes()
    stats = writer.stats()
    rss = [s[1] for s in samples]
    # Once the queue is full, memory should stop growing: compare the first sample taken
    # with a full queue to the peak after it. If it never filled, compare the halves.
    if filled_at is not None and filled_at <= samples[-1][0]:
        pivot = next(i for i, s in enumerate(samples) if s[0] >= filled_at)
        basis = f"after the queue filled at {filled_at:,} messages"
    else:
        pivot = len(rss) // 2
        basis = "second half over first half (the queue never filled)"
    return {
        "messages": count,
        "seconds": elapsed,
        "msg_per_s": count / elapsed,
        "queue_capacity": capacity,
        "queued_max": queued_max,
        "queue_filled_at": filled_at,
        "errors": stats.errors,
        "delivered": stats.messages,
        "batches": stats.batches,
        "batch_messages_avg": stats.batch_messages_avg,
        "rss_start": rss[0],
        "rss_peak": max([*rss, end]),
        "rss_end": end,
        "rss_at_pivot": max(rss[: pivot + 1]),
        "rss_peak_after_pivot": max([*rss[pivot:], end]),
        "flat_basis": basis,
        "samples": [{"messages": m, "rss": r, "queued": q} for m, r, q in samples],
    }


# -- reporting ------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:,.0f} {unit}"


def ratio(row: Row, other: str) -> str:
    a, b = row.median(AIOMQ), row.median(other)
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def print_table(rows: list[Row]) -> None:
    headers = [
        "scenario (median of runs)",
        "aiomq",
        "aiokafka",
        "aiomq/aiokafka",
        "aiokafka 1MiB",
        "aiomq/aiokafka 1MiB",
    ]
    lines = [
        [
            f"{row.name} ({'higher' if row.higher_is_better else 'lower'} is better)",
            fmt(row.median(AIOMQ), row.unit),
            fmt(row.median(AIOKAFKA), row.unit),
            ratio(row, AIOKAFKA),
            fmt(row.median(AIOKAFKA_BIG), row.unit),
            ratio(row, AIOKAFKA_BIG),
        ]
        for row in rows
    ]
    widths = [max(len(r[i]) for r in [headers, *lines]) for i in range(len(headers))]

    def render(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    print(render(headers))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(render(line))


def print_memory(memory: dict[str, Any]) -> None:
    per_message = (memory["rss_peak"] - memory["rss_start"]) / max(memory["queued_max"], 1)
    print()
    print(
        f"memory, aiomq Writer(async_mode=True): {memory['messages']:,} x 100 B messages in "
        f"calls of {CALL_SIZE:,}, {memory['msg_per_s']:,.0f} msg/s (to the end of aclose), "
        f"queue_capacity {memory['queue_capacity']:,} (most queued: {memory['queued_max']:,}), "
        f"errors {memory['errors']}"
    )
    print(
        f"  RSS start {mib(memory['rss_start'])}, peak {mib(memory['rss_peak'])}, "
        f"end (after aclose) {mib(memory['rss_end'])}; delivered {memory['delivered']:,}; "
        f"about {per_message:,.0f} bytes per queued message"
    )
    trace = ", ".join(
        f"{s['messages'] // 1000}k:{s['rss'] / 1_048_576:.0f}" for s in memory["samples"]
    )
    print(f"  RSS (MiB) by messages written: {trace}")


def targets(rows: dict[str, Row], memory: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Each target with its status (MET, MISSED or UNCLEAR) and the figure behind it."""
    # aiokafka's send() only queues and hands back a future, and the run waits for all of
    # them at the end: the like-for-like aiomq run is async mode, waiting at the end for
    # the completion callback to have seen every acknowledgement. Synchronous calls also
    # wait for each call's offsets before the next call; their ratio is reported beside.
    small = rows["small_async"]
    tp = (small.median(AIOMQ) or 0) / (small.median(AIOKAFKA) or 1)
    sync = rows["small"]
    sync_tp = (sync.median(AIOMQ) or 0) / (sync.median(AIOKAFKA) or 1)
    p50 = rows["p50"]
    lat = (p50.median(AIOMQ) or 0) / (p50.median(AIOKAFKA) or 1)
    # Flat: past the pivot, RSS rises no more than 10% (at least 8 MiB) above it.
    growth = memory["rss_peak_after_pivot"] - memory["rss_at_pivot"]
    allowance = max(8 * 1_048_576, memory["rss_at_pivot"] // 10)
    after = sum(1 for s in memory["samples"] if s["messages"] >= (memory["queue_filled_at"] or 0))
    if memory["errors"] or growth > allowance:
        flat = "MISSED"
    elif memory["queue_filled_at"] is None and len(memory["samples"]) >= 6:
        flat = "MET"  # the queue never filled: the senders kept up, and RSS is judged by halves
    elif after < 3:
        flat = "UNCLEAR"  # too short a run past the queue's filling to show a plateau
    else:
        flat = "MET"
    return [
        (
            "100-byte throughput >= 5x raw aiokafka send() (async mode, like send() + futures)",
            _met(tp >= 5),
            f"{tp:.2f}x (synchronous calls of 1,000: {sync_tp:.2f}x)",
        ),
        ("sync latency p50 <= 2x raw aiokafka send_and_wait", _met(lat <= 2), f"{lat:.2f}x"),
        (
            "memory flat over the long async run",
            flat,
            f"RSS grew {growth / 1_048_576:+.1f} MiB {memory['flat_basis']}",
        ),
    ]


def _met(ok: bool) -> str:
    return "MET" if ok else "MISSED"


# -- main -----------------------------------------------------------------------------------


async def run(bootstrap: str | None, counts: Counts, runs: int) -> dict[str, Any]:
    if bootstrap is None:
        from aiomq.testing import EmbeddedBroker

        async with EmbeddedBroker() as broker:
            return await run_all(broker.bootstrap_servers, "embedded Tansu", counts, runs)
    return await run_all(bootstrap, "external", counts, runs)


async def run_all(bootstrap: str, kind: str, counts: Counts, runs: int) -> dict[str, Any]:
    print(f"broker: {bootstrap} ({kind})", flush=True)
    began = time.perf_counter()
    rows: dict[str, Row] = {}
    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        (
            "small",
            lambda: bench_throughput(bootstrap, "100 B", 100, counts.small, counts.warmup, runs),
        ),
        (
            "small_async",
            lambda: bench_throughput(
                bootstrap, "100 B", 100, counts.small, counts.warmup, runs, aiomq_async=True
            ),
        ),
        (
            "large",
            lambda: bench_throughput(bootstrap, "1 KB", 1024, counts.large, counts.warmup, runs),
        ),
        (
            "large_async",
            lambda: bench_throughput(
                bootstrap, "1 KB", 1024, counts.large, counts.warmup, runs, aiomq_async=True
            ),
        ),
        ("concurrent", lambda: bench_concurrent(bootstrap, counts.concurrent, counts.warmup, runs)),
        ("latency", lambda: bench_latency(bootstrap, counts.latency, counts.warmup, runs)),
    ]
    # Memory goes first, while the heap holds nothing from the other scenarios.
    t0 = time.perf_counter()
    memory = await bench_memory(bootstrap, counts.memory)
    print(f"  memory: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    for key, step in steps:
        t0 = time.perf_counter()
        result = await step()
        if key == "latency":
            rows["p50"], rows["p99"], rows["sync_rate"] = result
        else:
            rows[key] = result
        print(f"  {key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return {
        "broker": {"bootstrap_servers": bootstrap, "kind": kind},
        "rows": rows,
        "memory": memory,
        "seconds": time.perf_counter() - began,
    }


def main(argv: list[str] | None = None) -> int:
    args, runs = parse_options(
        "bench/writer.py",
        "Benchmark aiomq's Writer against raw aiokafka on one broker.",
        "smaller counts, 3 runs (~30 s)",
        argv,
    )
    counts = QUICK_COUNTS if args.quick else DEFAULT_COUNTS

    command = start_report()
    print(
        f"settings: acks=all, no compression, keys b'key-<i % 1000>', {runs} runs per scenario "
        "(client order rotates each run), warm-up per client"
    )
    print(
        f"  aiomq Writer defaults: batch_size 1000, batch_bytes 1 MiB, batch_timeout 0; "
        f"throughput rows use write_messages calls of {CALL_SIZE:,} messages"
    )
    print(
        "  'sync calls': each call returns the written messages; 'async mode': calls queue, "
        "a completion callback counts acknowledgements, the run ends when all are in"
    )
    print(
        "  aiokafka: send() per message then gather of the futures; linger_ms=0 (default), "
        "max_batch_size 16 KB (default); 'aiokafka 1MiB' sets max_batch_size=1 MiB"
    )
    print(
        f"  counts per run: 100 B {counts.small:,}, 1 KB {counts.large:,}, "
        f"concurrent {counts.concurrent:,}, latency {counts.latency:,} sequential writes; "
        f"memory run {counts.memory:,} messages"
    )
    sys.stdout.flush()

    try:
        results = asyncio.run(run(args.bootstrap_servers, counts, runs))
    except (aiomq.Error, KafkaError, OSError) as exc:
        print(f"error: the benchmark could not run: {exc!r}", file=sys.stderr)
        return 1
    rows: dict[str, Row] = results["rows"]
    memory: dict[str, Any] = results["memory"]
    partitions = rows["small"].partitions
    print(f"topics: one per scenario, {partitions} partitions (created on first write)")
    if partitions != PARTITIONS:
        print(f"  note: not the {PARTITIONS} partitions the figures are usually quoted with")
    print()
    print_table(list(rows.values()))
    print_memory(memory)
    print()
    checks = targets(rows, memory)
    for name, status, detail in checks:
        print(f"target {status:<6} {name}: {detail}")
    print(f"total {results['seconds']:.0f} s")

    if args.json is not None:
        document = {
            "command": command,
            "python": platform.python_version(),
            "aiokafka": aiokafka.__version__,
            "aiomq": aiomq.__version__,
            "broker": results["broker"],
            "runs": runs,
            "counts": {
                "small": counts.small,
                "large": counts.large,
                "concurrent": counts.concurrent,
                "latency": counts.latency,
                "memory": counts.memory,
            },
            "rows": {
                key: {
                    "name": row.name,
                    "unit": row.unit,
                    "partitions": row.partitions,
                    "higher_is_better": row.higher_is_better,
                    "median": {name: row.median(name) for name in row.runs},
                    "runs": row.runs,
                }
                for key, row in rows.items()
            },
            "memory": memory,
            "targets": [{"name": n, "status": st, "detail": d} for n, st, d in checks],
            "seconds": results["seconds"],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
