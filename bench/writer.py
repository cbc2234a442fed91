"""Benchmark aiomq's Writer against raw aiokafka and librdkafka, side by side, in one run.

Run it from the repository root::

    .venv/bin/python bench/writer.py                 # about 3 minutes on 2 cores
    .venv/bin/python bench/writer.py --quick         # about 30 seconds
    .venv/bin/python bench/writer.py --bootstrap-servers localhost:9092 --json out.json

The main rows write in async mode over eight workloads: 100-byte and 1-KB values, without
keys and with 1,000 keys, acknowledged by the leader (acks=1) or by every in-sync replica
(acks=all). The contenders are aiomq's Writer, raw aiokafka `send()` (with its default
16 KB batches and with 1 MiB batches) and librdkafka through confluent-kafka's `Producer`,
which runs in a worker thread so that the event loop stays free. Every scenario alternates
the clients run by run (their order rotates from one run to the next), on the same broker,
topic settings and machine state, and reports the median of the runs, in messages per
second and in client CPU time per message. Only ratios from one run mean much: machines
are shared and noisy. See bench/README.md.
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiokafka
import confluent_kafka
from _common import mib, parse_options, rss_bytes, start_report
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

import aiomq
from aiomq import Message, RequiredAcks, Writer
from aiomq.admin import Client, TopicSpec

PARTITIONS = 4  # of every topic the benchmark creates
KEYS = [b"key-%d" % i for i in range(1000)]
CALL_SIZE = 1000
BIG_BATCH = 1_048_576

# The clients under test, as named in the tables.
AIOMQ = "aiomq"
AIOKAFKA = "aiokafka"
AIOKAFKA_BIG = "aiokafka-1MiB"
CONFLUENT = "confluent-kafka"
AIOMQ_ASYNC = "aiomq async mode"  # beside the synchronous calls, for their ratio
CLIENTS = (AIOMQ, AIOKAFKA, AIOKAFKA_BIG)
SYNC_CLIENTS = (AIOMQ, AIOKAFKA, AIOKAFKA_BIG, AIOMQ_ASYNC)
LATENCY_CLIENTS = (AIOMQ, AIOKAFKA, CONFLUENT)
MAIN_CLIENTS = (AIOMQ, AIOKAFKA, AIOKAFKA_BIG, CONFLUENT)


@dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    """What every message of a scenario looks like and how it is acknowledged."""

    size: int
    keyed: bool
    acks: RequiredAcks

    @property
    def label(self) -> str:
        """The workload as the tables name it: "100 B, 1,000 keys, acks=all"."""
        size = f"{self.size} B" if self.size < 1024 else f"{self.size // 1024} KB"
        keys = f"{len(KEYS):,} keys" if self.keyed else "no keys"
        acks = "acks=all" if self.acks is RequiredAcks.ALL else f"acks={int(self.acks)}"
        return f"{size}, {keys}, {acks}"

    @property
    def slug(self) -> str:
        """A short name for topics and the JSON results: "100_keyed_all"."""
        keys = "keyed" if self.keyed else "keyless"
        return f"{self.size}_{keys}_{self.acks.name.lower()}"


# The main rows, and the one workload every other scenario keeps.
WORKLOADS = tuple(
    Workload(size=size, keyed=keyed, acks=acks)
    for size in (100, 1024)
    for keyed in (False, True)
    for acks in (RequiredAcks.ONE, RequiredAcks.ALL)
)
KEYED_100_ALL = Workload(size=100, keyed=True, acks=RequiredAcks.ALL)
KEYED_1K_ALL = Workload(size=1024, keyed=True, acks=RequiredAcks.ALL)


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
    small=200_000,
    large=100_000,
    concurrent=20_000,
    latency=1_000,
    memory=1_000_000,
    warmup=2_000,
)
QUICK_COUNTS = Counts(
    small=50_000,
    large=25_000,
    concurrent=10_000,
    latency=300,
    memory=100_000,
    warmup=1_000,
)


@dataclass(kw_only=True, slots=True)
class Row:
    """One line of the table: a metric per client, one value per run, and, for throughput
    rows, the client CPU time per message of each run."""

    name: str
    unit: str
    higher_is_better: bool
    runs: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    partitions: int | None = None
    workload: str | None = None

    def add(self, client: str, value: float) -> None:
        self.runs.setdefault(client, []).append(value)

    def add_cpu(self, client: str, seconds_per_message: float) -> None:
        self.cpu.setdefault(client, []).append(seconds_per_message)

    def median(self, client: str) -> float | None:
        values = self.runs.get(client)
        return statistics.median(values) if values else None

    def cpu_median(self, client: str) -> float | None:
        values = self.cpu.get(client)
        return statistics.median(values) if values else None


# -- the clients behind one interface -------------------------------------------------------


class Side:
    """One open client writing to one topic; subclasses wrap aiomq, aiokafka and librdkafka.

    Every side writes value i of a run with key `KEYS[(start + i) % 1000]` when its workload
    is keyed, and with no key otherwise.
    """

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
    """`Writer.write_messages` in calls of CALL_SIZE messages, each call's `Message` objects
    built right before it, inside the timed part, as an application builds them."""

    def __init__(self, writer: Writer, keyed: bool) -> None:
        self.name = AIOMQ
        self.writer = writer
        self.keyed = keyed

    async def write_batch(self, values: list[bytes], start: int) -> None:
        write = self.writer.write_messages
        for offset in range(0, len(values), CALL_SIZE):
            chunk = values[offset : offset + CALL_SIZE]
            if self.keyed:
                base = start + offset
                await write(
                    *[Message(key=KEYS[(base + j) % 1000], value=v) for j, v in enumerate(chunk)]
                )
            else:
                await write(*[Message(value=v) for v in chunk])

    async def write_one(self, value: bytes, i: int) -> None:
        key = KEYS[i % 1000] if self.keyed else None
        await self.writer.write_messages(Message(key=key, value=value))

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

    def __init__(
        self, writer: Writer, keyed: bool, deliveries: Deliveries, name: str = AIOMQ
    ) -> None:
        super().__init__(writer, keyed)
        self.deliveries = deliveries
        self.name = name

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

    def __init__(self, name: str, producer: AIOKafkaProducer, topic: str, keyed: bool) -> None:
        self.name = name
        self.producer = producer
        self.topic = topic
        self.keyed = keyed

    async def write_batch(self, values: list[bytes], start: int) -> None:
        producer, topic = self.producer, self.topic
        if self.keyed:
            futures = [
                await producer.send(topic, v, key=KEYS[(start + j) % 1000])
                for j, v in enumerate(values)
            ]
        else:
            futures = [await producer.send(topic, v) for v in values]
        await asyncio.gather(*futures)

    async def write_one(self, value: bytes, i: int) -> None:
        key = KEYS[i % 1000] if self.keyed else None
        await self.producer.send_and_wait(self.topic, value, key=key)

    async def close(self) -> None:
        await self.producer.stop()


class ConfluentSide(Side):
    """librdkafka through `confluent_kafka.Producer`, in a worker thread.

    A run calls `produce()` once per message, `poll(0)` after every CALL_SIZE messages to
    serve the delivery reports (and `poll(0.1)` whenever librdkafka's queue is full), and
    `flush()` at the end, as a synchronous program would. It runs in a thread of its own
    (`asyncio.to_thread`), so the event loop is never blocked; the loop has nothing else
    to do meanwhile, so the thread does not wait for the GIL. A delivery callback counts
    every message's outcome, as aiokafka's futures and aiomq's completion callback do.
    """

    def __init__(self, bootstrap: str, topic: str, workload: Workload) -> None:
        self.name = CONFLUENT
        self.topic = topic
        self.keyed = workload.keyed
        self.delivered = 0
        self.failed = 0
        acks: int | str = "all" if workload.acks is RequiredAcks.ALL else int(workload.acks)
        self.producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "acks": acks, "on_delivery": self._report}
        )

    def _report(self, error: Any, _message: Any) -> None:
        # Called by librdkafka's poll() and flush(), in the thread that calls them.
        if error is None:
            self.delivered += 1
        else:
            self.failed += 1

    def _produce_all(self, values: list[bytes], start: int) -> None:
        producer, topic = self.producer, self.topic
        produce, poll = producer.produce, producer.poll
        settled = self.delivered + self.failed
        for offset in range(0, len(values), CALL_SIZE):
            chunk = values[offset : offset + CALL_SIZE]
            if self.keyed:
                base = start + offset
                for j, v in enumerate(chunk):
                    try:
                        produce(topic, v, KEYS[(base + j) % 1000])
                    except BufferError:
                        self._produce_when_room(v, KEYS[(base + j) % 1000])
            else:
                for v in chunk:
                    try:
                        produce(topic, v)
                    except BufferError:
                        self._produce_when_room(v, None)
            poll(0)
        left = producer.flush(30)
        if left or self.failed:
            raise RuntimeError(f"confluent-kafka: {left} messages left, {self.failed} failed")
        if self.delivered + self.failed - settled != len(values):
            raise RuntimeError("confluent-kafka: a delivery report is missing")

    def _produce_when_room(self, value: bytes, key: bytes | None) -> None:
        # librdkafka's queue is full (100,000 messages by default): serve delivery reports
        # until there is room, as its documentation advises.
        while True:
            self.producer.poll(0.1)
            try:
                self.producer.produce(self.topic, value, key)
            except BufferError:
                continue
            return

    async def write_batch(self, values: list[bytes], start: int) -> None:
        await asyncio.to_thread(self._produce_all, values, start)

    async def write_one(self, value: bytes, i: int) -> None:
        # A synchronous program's one write: produce(), then flush() until it is
        # acknowledged. Called on the event loop itself, which has nothing else to do
        # meanwhile, so that no thread hand-over adds to librdkafka's figure.
        key = KEYS[i % 1000] if self.keyed else None
        settled = self.delivered + self.failed
        self.producer.produce(self.topic, value, key)
        if self.producer.flush(30) or self.failed or self.delivered + self.failed == settled:
            raise RuntimeError("confluent-kafka: a single write was not acknowledged")

    async def close(self) -> None:
        producer = self.producer
        await asyncio.to_thread(producer.close)


async def open_aiomq(
    bootstrap: str, topic: str, workload: Workload = KEYED_100_ALL, **options: Any
) -> AiomqSide:
    writer = Writer(
        brokers=[bootstrap],
        topic=topic,
        required_acks=workload.acks,
        compression=None,
        allow_auto_topic_creation=True,
        **options,
    )
    await writer.__aenter__()
    return AiomqSide(writer, workload.keyed)


async def open_aiokafka(
    bootstrap: str, topic: str, name: str, batch: int, workload: Workload
) -> AiokafkaSide:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all" if workload.acks is RequiredAcks.ALL else int(workload.acks),
        compression_type=None,
        linger_ms=0,
        max_batch_size=batch,
        max_request_size=max(batch, 1_048_576),
        enable_idempotence=False,
    )
    await producer.start()
    return AiokafkaSide(name, producer, topic, workload.keyed)


async def open_aiomq_async(
    bootstrap: str, topic: str, workload: Workload, name: str = AIOMQ
) -> AiomqAsyncSide:
    deliveries = Deliveries()
    side = await open_aiomq(bootstrap, topic, workload, async_mode=True, completion=deliveries)
    return AiomqAsyncSide(side.writer, workload.keyed, deliveries, name)


async def open_side(
    bootstrap: str, topic: str, name: str, workload: Workload, *, aiomq_async: bool = False
) -> Side:
    if name == AIOMQ:
        if aiomq_async:
            return await open_aiomq_async(bootstrap, topic, workload)
        return await open_aiomq(bootstrap, topic, workload)
    if name == AIOMQ_ASYNC:
        return await open_aiomq_async(bootstrap, topic, workload, AIOMQ_ASYNC)
    if name == AIOKAFKA:
        return await open_aiokafka(bootstrap, topic, name, 16_384, workload)
    if name == AIOKAFKA_BIG:
        return await open_aiokafka(bootstrap, topic, name, BIG_BATCH, workload)
    return ConfluentSide(bootstrap, topic, workload)


async def open_sides(
    bootstrap: str, topic: str, names: tuple[str, ...], workload: Workload
) -> list[Side]:
    return [await open_side(bootstrap, topic, name, workload) for name in names]


class Topics:
    """Creates the benchmark's topics, PARTITIONS each, and deletes them after use.

    The embedded broker keeps every message in memory, and it slows down as it holds more:
    writing 1-KB messages to one topic, aiomq's rate fell from about 310,000 msg/s to
    about 205,000 once the topic held 0.6 to 1.5 GB, and stayed there. So each timed run
    of a throughput row writes to a new topic of its own, deleted after the run.
    """

    def __init__(self, admin: Client) -> None:
        self.admin = admin

    async def create(self, scenario: str) -> str:
        name = f"bench-{scenario}-{uuid.uuid4().hex[:8]}"
        await self.admin.create_topics(TopicSpec(name=name, partitions=PARTITIONS))
        return name

    async def delete(self, topic: str) -> None:
        try:
            await self.admin.delete_topics(topic)
        except aiomq.Error as exc:
            print(f"  note: topic {topic} not deleted: {exc}", file=sys.stderr, flush=True)


T = TypeVar("T")


def rotated(items: Sequence[T], run: int) -> list[T]:
    """The order of the clients in a run: rotated, so that no client is always first."""
    shift = run % len(items)
    return [*items[shift:], *items[:shift]]


async def timed(work: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """Run `work` once; return its wall-clock seconds and this process's CPU seconds.

    The CPU time counts every thread of the process (librdkafka's own threads included)
    and leaves out the broker, which runs in a process of its own.
    """
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    await work()
    return time.perf_counter() - start, time.process_time() - cpu


# -- scenarios ------------------------------------------------------------------------------


async def bench_throughput(
    bootstrap: str,
    topics: Topics,
    workload: Workload,
    count: int,
    warmup: int,
    runs: int,
    *,
    aiomq_async: bool,
) -> Row:
    """Write calls of 1,000 (aiomq) against send() + gather (aiokafka) and produce() +
    flush() (confluent-kafka, async mode only), in msg/s and CPU seconds per message.

    Synchronous calls wait for each call's offsets; aiomq in async mode runs beside them
    (as "aiomq async mode") for the ratio of the two. In async mode the calls only queue,
    and the run ends when the completion callback has seen every message acknowledged,
    as aiokafka's run ends when every delivery future has resolved and librdkafka's when
    flush() has served every delivery report.

    Each timed run opens its client on a new, empty topic, warms it up there (connections,
    metadata), and closes it and deletes the topic afterwards, outside the clock.
    """
    mode = "async mode" if aiomq_async else "sync calls"
    row = Row(
        name=f"throughput {workload.label}, {mode}",
        unit="msg/s",
        higher_is_better=True,
        workload=workload.label,
    )
    value = os.urandom(workload.size)
    values = [value] * count
    row.partitions = PARTITIONS
    scenario = f"tp-{workload.slug}-{'a' if aiomq_async else 's'}"
    for run in range(runs):
        for name in rotated(MAIN_CLIENTS if aiomq_async else SYNC_CLIENTS, run):
            topic = await topics.create(scenario)
            side = await open_side(bootstrap, topic, name, workload, aiomq_async=aiomq_async)
            try:
                await side.write_batch(values[:warmup], 0)

                async def work(side: Side = side) -> None:
                    await side.write_batch(values, 0)

                seconds, cpu = await timed(work)
            finally:
                await side.close()
                await topics.delete(topic)
            row.add(name, count / seconds)
            row.add_cpu(name, cpu / count)
    return row


async def bench_concurrent(
    bootstrap: str, topics: Topics, count: int, warmup: int, runs: int
) -> Row:
    """1,000 single-message callers at once, repeated, in msg/s."""
    row = Row(
        name=f"1,000 concurrent 1-msg callers, {KEYED_100_ALL.label}",
        unit="msg/s",
        higher_is_better=True,
    )
    value = os.urandom(100)
    topic = await topics.create("conc")
    sides = await open_sides(bootstrap, topic, CLIENTS, KEYED_100_ALL)

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

                seconds, _cpu = await timed(work)
                row.add(side.name, count / seconds)
    finally:
        for side in sides:
            await side.close()
        await topics.delete(topic)
    return row


async def bench_latency(
    bootstrap: str, topics: Topics, count: int, warmup: int, runs: int
) -> tuple[Row, Row, Row]:
    """One synchronous write at a time: p50 and p99 in ms, and writes/s. aiomq awaits
    `write_messages` of one message, aiokafka `send_and_wait`, and confluent-kafka calls
    `produce()` then `flush()`, as a synchronous program that needs each write acknowledged
    before going on would."""
    label = KEYED_100_ALL.label
    p50 = Row(name=f"1 sync write latency p50, {label}", unit="ms", higher_is_better=False)
    p99 = Row(name=f"1 sync write latency p99, {label}", unit="ms", higher_is_better=False)
    rate = Row(name=f"sequential sync writes, {label}", unit="msg/s", higher_is_better=True)
    value = os.urandom(100)
    topic = await topics.create("lat")
    sides = await open_sides(bootstrap, topic, LATENCY_CLIENTS, KEYED_100_ALL)
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
        await topics.delete(topic)
    return p50, p99, rate


async def bench_memory(bootstrap: str, topics: Topics, count: int) -> dict[str, Any]:
    """aiomq async mode over a long run; RSS sampled every ~50k messages.

    Every message is a new object with a value of its own, as in an application, so the
    queue holds real messages. Run first, before other scenarios have grown the heap.
    """
    every = 50_000 if count >= 500_000 else 10_000
    topic = await topics.create("mem")
    side = await open_aiomq(bootstrap, topic, async_mode=True)
    writer = side.writer
    capacity = writer.config.queue_capacity
    write = writer.write_messages

    def call(base: int) -> list[Message]:
        return [Message(key=KEYS[j], value=b"%0100d" % (base + j)) for j in range(CALL_SIZE)]

    try:
        # The warm-up's messages may still be queued at the start.
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
    await topics.delete(topic)
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


def median_ratio(row: Row, other: str) -> float | None:
    """aiomq's median over `other`'s, or None when either is missing."""
    a, b = row.median(AIOMQ), row.median(other)
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratio(row: Row, other: str, *, spread: bool = False) -> str:
    """aiomq's median over `other`'s; with `spread`, also the lowest and highest ratio of
    one run's figures."""
    value = median_ratio(row, other)
    if value is None:
        return "-"
    text = f"{value:.2f}x"
    if spread:
        low, high = run_ratios(row, other)
        text += f" ({low:.2f}-{high:.2f})"
    return text


def run_ratios(row: Row, other: str) -> tuple[float, float]:
    """The lowest and highest of aiomq's figure over `other`'s within one run."""
    pairs = zip(row.runs[AIOMQ], row.runs[other], strict=True)
    ratios = [a / b for a, b in pairs]
    return min(ratios), max(ratios)


def micros(row: Row, client: str) -> str:
    value = row.cpu_median(client)
    return "-" if value is None else f"{value * 1e6:.2f} µs"


Column = tuple[str, Callable[[Row], str]]


def print_table(
    title: str, rows: list[Row], columns: list[Column], first: Callable[[Row], str] | None = None
) -> None:
    headers = [title, *(header for header, _cell in columns)]
    lines = [
        [first(row) if first else row.name, *(cell(row) for _header, cell in columns)]
        for row in rows
    ]
    widths = [max(len(r[i]) for r in [headers, *lines]) for i in range(len(headers))]

    def render(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    print()
    print(render(headers))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(render(line))


def print_tables(rows: dict[str, Row]) -> None:
    main = [rows[f"async_{w.slug}"] for w in WORKLOADS]
    other = [row for key, row in rows.items() if not key.startswith("async_")]

    def rate(client: str) -> Column:
        return client, lambda row: fmt(row.median(client), row.unit)

    def versus(client: str, *, spread: bool = False) -> Column:
        return f"aiomq/{client}", lambda row: ratio(row, client, spread=spread)

    def cpu(client: str) -> Column:
        return client, lambda row: micros(row, client)

    print_table(
        "async mode, msg/s (median of runs)",
        main,
        [
            rate(AIOMQ),
            rate(AIOKAFKA),
            rate(AIOKAFKA_BIG),
            rate(CONFLUENT),
            versus(AIOKAFKA, spread=True),
            versus(AIOKAFKA_BIG),
            versus(CONFLUENT, spread=True),
        ],
        first=lambda row: row.workload or row.name,
    )
    print(
        "  (ratios: of the medians; in brackets the lowest and highest ratio within one run; "
        f"aiomq writes {CALL_SIZE:,} messages a call)"
    )
    print_table(
        "client CPU time per message (median of runs; lower is better)",
        [row for row in rows.values() if row.cpu],
        [cpu(AIOMQ), cpu(AIOKAFKA), cpu(AIOKAFKA_BIG), cpu(CONFLUENT)],
    )
    print_table(
        "other scenarios (median of runs)",
        [row for row in other if row.unit == "msg/s"] + [r for r in other if r.unit != "msg/s"],
        [
            rate(AIOMQ),
            rate(AIOMQ_ASYNC),
            rate(AIOKAFKA),
            versus(AIOKAFKA),
            rate(AIOKAFKA_BIG),
            versus(AIOKAFKA_BIG),
            rate(CONFLUENT),
            versus(CONFLUENT),
        ],
    )
    print("  (latency rows: lower is better, a ratio below 1 means aiomq answers sooner)")
    for client in (AIOKAFKA, CONFLUENT):
        ratios = [r for r in (median_ratio(row, client) for row in main) if r is not None]
        print(
            f"aiomq/{client} over the {len(main)} async-mode workloads: "
            f"{min(ratios):.2f}x to {max(ratios):.2f}x"
        )


def print_memory(memory: dict[str, Any]) -> None:
    per_message = (memory["rss_peak"] - memory["rss_start"]) / max(memory["queued_max"], 1)
    print()
    print(
        f"memory, aiomq Writer(async_mode=True): {memory['messages']:,} messages of "
        f"{KEYED_100_ALL.label} in calls of {CALL_SIZE:,}, {memory['msg_per_s']:,.0f} msg/s "
        f"(to the end of aclose), queue_capacity {memory['queue_capacity']:,} "
        f"(most queued: {memory['queued_max']:,}), errors {memory['errors']}"
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
    tp = median_ratio(rows[f"async_{KEYED_100_ALL.slug}"], AIOKAFKA) or 0.0
    sync_tp = median_ratio(rows["small"], AIOKAFKA) or 0.0
    p50 = rows["p50"]
    lat = (p50.median(AIOMQ) or 0) / (p50.median(AIOKAFKA) or 1)
    lat_rd = (p50.median(AIOMQ) or 0) / (p50.median(CONFLUENT) or 1)
    main = [rows[f"async_{w.slug}"] for w in WORKLOADS]
    versus_rd = [(row.workload, median_ratio(row, CONFLUENT) or 0.0) for row in main]
    cpu_100 = [
        (row.workload, (row.cpu_median(AIOMQ) or 0.0) * 1e6)
        for row, w in zip(main, WORKLOADS, strict=True)
        if w.size < 1024
    ]
    sync_async = [
        (rows[key].workload, median_ratio(rows[key], AIOMQ_ASYNC) or 0.0)
        for key in ("small", "large")
    ]
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
        *(
            (f"async mode >= 1.0x librdkafka ({label})", _met(r >= 1.0), f"{r:.2f}x")
            for label, r in versus_rd
        ),
        *(
            (
                f"client CPU <= 1.2 µs a message ({label}, async mode)",
                _met(us <= 1.2),
                f"{us:.2f} µs",
            )
            for label, us in cpu_100
        ),
        *(
            (f"sync calls of 1,000 >= 0.8x async mode ({label})", _met(r >= 0.8), f"{r:.2f}x")
            for label, r in sync_async
        ),
        (
            f"1 sync write p50 <= 1.2x confluent-kafka produce()+flush() ({KEYED_100_ALL.label})",
            _met(lat_rd <= 1.2),
            f"{lat_rd:.2f}x",
        ),
        (
            f"throughput >= 5x raw aiokafka send() ({KEYED_100_ALL.label}, async mode)",
            _met(tp >= 5),
            f"{tp:.2f}x (synchronous calls of 1,000: {sync_tp:.2f}x)",
        ),
        (
            f"sync latency p50 <= 2x raw aiokafka send_and_wait ({KEYED_100_ALL.label})",
            _met(lat <= 2),
            f"{lat:.2f}x",
        ),
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


def steps_of(
    bootstrap: str, topics: Topics, counts: Counts, runs: int
) -> list[tuple[str, Callable[[], Any]]]:
    """Every scenario after the memory run, keyed as in the JSON results."""

    def throughput(workload: Workload, *, aiomq_async: bool) -> Callable[[], Awaitable[Row]]:
        count = counts.small if workload.size < 1024 else counts.large
        return lambda: bench_throughput(
            bootstrap, topics, workload, count, counts.warmup, runs, aiomq_async=aiomq_async
        )

    steps: list[tuple[str, Callable[[], Any]]] = [
        (f"async_{w.slug}", throughput(w, aiomq_async=True)) for w in WORKLOADS
    ]
    steps += [
        ("small", throughput(KEYED_100_ALL, aiomq_async=False)),
        ("large", throughput(KEYED_1K_ALL, aiomq_async=False)),
        (
            "concurrent",
            lambda: bench_concurrent(bootstrap, topics, counts.concurrent, counts.warmup, runs),
        ),
        (
            "latency",
            lambda: bench_latency(bootstrap, topics, counts.latency, counts.warmup, runs),
        ),
    ]
    return steps


async def run_all(bootstrap: str, kind: str, counts: Counts, runs: int) -> dict[str, Any]:
    print(f"broker: {bootstrap} ({kind})", flush=True)
    began = time.perf_counter()
    rows: dict[str, Row] = {}
    async with Client(brokers=[bootstrap]) as admin:
        topics = Topics(admin)
        # Memory goes first, while the heap holds nothing from the other scenarios.
        t0 = time.perf_counter()
        memory = await bench_memory(bootstrap, topics, counts.memory)
        print(f"  memory: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        for key, step in steps_of(bootstrap, topics, counts, runs):
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


def print_settings(counts: Counts, runs: int) -> None:
    print(
        f"confluent-kafka {confluent_kafka.__version__}, "
        f"librdkafka {confluent_kafka.libversion()[0]}"
    )
    print(
        f"settings: no compression, no idempotence, {runs} runs per scenario (client order "
        "rotates each run), a warm-up per client; keys b'key-<i % 1000>' when keyed"
    )
    print(
        "  workloads of the async-mode rows: values of 100 B and 1 KB, no keys and 1,000 keys, "
        "acks=1 and acks=all; every other row: 100 B or 1 KB, 1,000 keys, acks=all"
    )
    print(
        f"  aiomq Writer defaults: batch_size 1000, batch_bytes 1 MiB, batch_timeout 0; "
        f"write_messages calls of {CALL_SIZE:,} messages, built inside the timed loop"
    )
    print(
        "  'sync calls': each call returns the written messages; 'async mode': calls queue, "
        "a completion callback counts acknowledgements, the run ends when all are in"
    )
    print(
        "  aiokafka: send() per message then gather of the futures; linger_ms=0 (default), "
        "max_batch_size 16 KB (default); 'aiokafka-1MiB' sets max_batch_size=1 MiB"
    )
    print(
        "  confluent-kafka: Producer with its defaults (linger.ms 5, consistent_random "
        "partitioner) and acks; in a worker thread (asyncio.to_thread): produce() per "
        f"message, poll(0) every {CALL_SIZE:,}, flush() at the end, a delivery callback "
        "counting outcomes"
    )
    print(
        "  CPU per message: time.process_time() over a run, divided by its messages; it "
        "counts every thread of this process (librdkafka's own threads included), not the "
        "broker's process"
    )
    print(
        f"  counts per run: 100 B {counts.small:,}, 1 KB {counts.large:,}, "
        f"concurrent {counts.concurrent:,}, latency {counts.latency:,} sequential writes; "
        f"memory run {counts.memory:,} messages"
    )
    sys.stdout.flush()


def row_document(row: Row) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": row.name,
        "unit": row.unit,
        "partitions": row.partitions,
        "higher_is_better": row.higher_is_better,
        "median": {name: row.median(name) for name in row.runs},
        "runs": row.runs,
    }
    if row.cpu:
        document["cpu_seconds_per_message"] = {
            "median": {name: row.cpu_median(name) for name in row.cpu},
            "runs": row.cpu,
        }
    return document


def main(argv: list[str] | None = None) -> int:
    args, runs = parse_options(
        "bench/writer.py",
        "Benchmark aiomq's Writer against raw aiokafka and librdkafka on one broker.",
        "smaller counts, 3 runs (about 30 s)",
        argv,
    )
    counts = QUICK_COUNTS if args.quick else DEFAULT_COUNTS

    command = start_report()
    print_settings(counts, runs)
    try:
        results = asyncio.run(run(args.bootstrap_servers, counts, runs))
    except (aiomq.Error, KafkaError, OSError) as exc:
        print(f"error: the benchmark could not run: {exc!r}", file=sys.stderr)
        return 1
    rows: dict[str, Row] = results["rows"]
    memory: dict[str, Any] = results["memory"]
    print(
        f"topics: {PARTITIONS} partitions, created before use and deleted after: a new one "
        "for every timed run of a throughput row, one per scenario for the others"
    )
    print_tables(rows)
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
            "confluent_kafka": confluent_kafka.__version__,
            "librdkafka": confluent_kafka.libversion()[0],
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
            "rows": {key: row_document(row) for key, row in rows.items()},
            "memory": memory,
            "targets": [{"name": n, "status": st, "detail": d} for n, st, d in checks],
            "seconds": results["seconds"],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
