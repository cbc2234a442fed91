"""Benchmark aiomq's Reader against raw aiokafka, side by side, in one run on one broker.

Run it from the repository root::

    .venv/bin/python bench/reader.py                 # about 2.5 minutes on 2 cores
    .venv/bin/python bench/reader.py --quick         # about 35 seconds
    .venv/bin/python bench/reader.py --bootstrap-servers localhost:9092 --json out.json

One topic is filled once; every measured run then reads it from the beginning with a
fresh consumer group, aiomq and aiokafka taking turns (their order rotates from one run to
the next). The clock starts when the first message has arrived, so group joins are left
out. Each cell is the median of the runs. Only ratios from one run mean much: machines are
shared and noisy. See bench/README.md.
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
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

import aiomq
import aiomq.reader
from aiomq import Message, Reader, RequiredAcks, Writer

PARTITIONS = 4  # what Tansu gives an auto-created topic; other brokers may differ
VALUE_SIZE = 100
KEYS = [b"key-%d" % i for i in range(1000)]
FILL_CALL = 10_000  # messages per write_messages call when filling the topic

# Settings both clients share (aiomq's own defaults, spelled out for aiokafka).
MAX_BYTES = 1_048_576  # max_bytes / max_partition_fetch_bytes
MAX_WAIT = 0.5  # max_wait / fetch_max_wait_ms
SESSION_TIMEOUT = 2.0  # a Tansu group join takes about half of it
HEARTBEAT_INTERVAL = 0.5
QUEUE = 100  # aiomq's default queue_capacity, and aiokafka's max_poll_records to match
BATCH = 500  # fetch_batch / getmany size; queue_capacity and max_poll_records in that row
COMMIT_BATCH = 1000  # row f: a commit after every batch of this many, on both sides
COMMIT_INTERVAL = 1.0
# A read that finds fewer messages than it expects would wait for ever: give up instead.
READ_TIMEOUT = 120.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Counts:
    """How much work each scenario does in one run."""

    messages: int  # read per run in the throughput rows
    sync: int  # read per run with a synchronous commit each
    memory: int  # read once by the memory run
    every: int  # RSS sample interval of the memory run


DEFAULT_COUNTS = Counts(messages=1_000_000, sync=3_000, memory=1_000_000, every=50_000)
QUICK_COUNTS = Counts(messages=100_000, sync=1_000, memory=100_000, every=10_000)


@dataclass(frozen=True, kw_only=True, slots=True)
class Timing:
    """One measured read: messages counted after the clock started, and the time taken."""

    messages: int
    seconds: float
    commits: int = 0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


# -- the contenders: one measured read each -------------------------------------------------
#
# Each opens a fresh reader or consumer in a fresh group, waits for the first message (the
# group join), starts the clock, reads until `count` messages in all, stops the clock and
# closes. Every message's value is touched (its length summed) on both sides, as an
# application would at least do.


def group_id() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


def open_reader(bootstrap: str, topic: str, **options: Any) -> Reader:
    return Reader(
        brokers=[bootstrap],
        topic=topic,
        group_id=group_id(),
        max_bytes=MAX_BYTES,
        max_wait=MAX_WAIT,
        session_timeout=SESSION_TIMEOUT,
        heartbeat_interval=HEARTBEAT_INTERVAL,
        **options,
    )


def open_consumer(bootstrap: str, topic: str, max_poll_records: int) -> AIOKafkaConsumer:
    # The arguments aiomq's Reader passes to aiokafka for the same settings.
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        client_id="aiokafka-bench",
        group_id=group_id(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_min_bytes=1,
        fetch_max_bytes=52_428_800,
        max_partition_fetch_bytes=MAX_BYTES,
        fetch_max_wait_ms=int(MAX_WAIT * 1000),
        max_poll_records=max_poll_records,
        session_timeout_ms=int(SESSION_TIMEOUT * 1000),
        heartbeat_interval_ms=int(HEARTBEAT_INTERVAL * 1000),
        rebalance_timeout_ms=30_000,
    )


async def first_batch(consumer: AIOKafkaConsumer, max_records: int) -> dict[Any, list[Any]]:
    """Call `getmany` until it returns records, that is through the group join."""
    batch: dict[Any, list[Any]] = {}
    while not batch:
        batch = await consumer.getmany(timeout_ms=int(MAX_WAIT * 1000), max_records=max_records)
    return batch


async def aiomq_batch(bootstrap: str, topic: str, count: int) -> Timing:
    """a. `fetch_batch(500)` with `queue_capacity=500`, no commits."""
    size = 0
    async with open_reader(bootstrap, topic, queue_capacity=BATCH) as reader:
        fetch = reader.fetch_batch
        got = len(await fetch(BATCH))
        start = time.perf_counter()
        counted = 0
        while got + counted < count:
            messages = await fetch(BATCH)
            for message in messages:
                size += len(message.value or b"")
            counted += len(messages)
        elapsed = time.perf_counter() - start
    return Timing(messages=counted, seconds=elapsed)


async def aiokafka_batch(bootstrap: str, topic: str, count: int) -> Timing:
    """a. `getmany(max_records=500)` with `max_poll_records=500`, no commits."""
    size = 0
    consumer = open_consumer(bootstrap, topic, BATCH)
    await consumer.start()
    try:
        got = sum(len(records) for records in (await first_batch(consumer, BATCH)).values())
        start = time.perf_counter()
        counted = 0
        while got + counted < count:
            batch = await consumer.getmany(timeout_ms=int(MAX_WAIT * 1000), max_records=BATCH)
            for records in batch.values():
                for record in records:
                    size += len(record.value or b"")
                counted += len(records)
        elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    return Timing(messages=counted, seconds=elapsed)


async def aiomq_batch_commit(bootstrap: str, topic: str, count: int) -> Timing:
    """f. `fetch_batch(1000)` then `commit_messages()` of that batch, waited for each time."""
    size = 0
    commits = 0
    async with open_reader(
        bootstrap, topic, queue_capacity=COMMIT_BATCH, commit_interval=0
    ) as reader:
        fetch, commit = reader.fetch_batch, reader.commit_messages
        first = await fetch(COMMIT_BATCH)
        await commit(*first)
        start = time.perf_counter()
        counted = 0
        while len(first) + counted < count:
            messages = await fetch(COMMIT_BATCH)
            for message in messages:
                size += len(message.value or b"")
            await commit(*messages)
            commits += 1
            counted += len(messages)
        elapsed = time.perf_counter() - start
    return Timing(messages=counted, seconds=elapsed, commits=commits)


async def aiokafka_batch_commit(bootstrap: str, topic: str, count: int) -> Timing:
    """f. `getmany(max_records=1000)` then `commit()` of every consumed position."""
    size = 0
    commits = 0
    consumer = open_consumer(bootstrap, topic, COMMIT_BATCH)
    await consumer.start()
    try:
        first = await first_batch(consumer, COMMIT_BATCH)
        got = sum(len(records) for records in first.values())
        await consumer.commit()
        start = time.perf_counter()
        counted = 0
        while got + counted < count:
            batch = await consumer.getmany(
                timeout_ms=int(MAX_WAIT * 1000), max_records=COMMIT_BATCH
            )
            for records in batch.values():
                for record in records:
                    size += len(record.value or b"")
                counted += len(records)
            if batch:
                await consumer.commit()
                commits += 1
        elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    return Timing(messages=counted, seconds=elapsed, commits=commits)


async def aiomq_each(bootstrap: str, topic: str, count: int) -> Timing:
    """b. `fetch_message()` per message, default `queue_capacity` (100), no commits."""
    size = 0
    async with open_reader(bootstrap, topic) as reader:
        fetch = reader.fetch_message
        await fetch()
        start = time.perf_counter()
        for _ in range(count - 1):
            message = await fetch()
            size += len(message.value or b"")
        elapsed = time.perf_counter() - start
    return Timing(messages=count - 1, seconds=elapsed)


async def aiokafka_each(bootstrap: str, topic: str, count: int) -> Timing:
    """b. `getmany(max_records=100)`, then a loop over its records, no commits."""
    size = 0
    consumer = open_consumer(bootstrap, topic, QUEUE)
    await consumer.start()
    try:
        batch = await first_batch(consumer, QUEUE)
        start = time.perf_counter()
        seen = 0
        while True:
            for records in batch.values():
                for record in records:
                    size += len(record.value or b"")
                seen += len(records)
            if seen >= count:
                break
            batch = await consumer.getmany(timeout_ms=int(MAX_WAIT * 1000), max_records=QUEUE)
        elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    # The first record arrived before the clock started.
    return Timing(messages=seen - 1, seconds=elapsed)


async def aiokafka_getone(bootstrap: str, topic: str, count: int) -> Timing:
    """b2. `getone()` per message, no commits."""
    size = 0
    consumer = open_consumer(bootstrap, topic, QUEUE)
    await consumer.start()
    try:
        await consumer.getone()
        start = time.perf_counter()
        for _ in range(count - 1):
            record = await consumer.getone()
            size += len(record.value or b"")
        elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    return Timing(messages=count - 1, seconds=elapsed)


async def aiomq_commit_1s(bootstrap: str, topic: str, count: int) -> Timing:
    """c, d. `read_message()` per message with `commit_interval=1.0` (stash flushed each s)."""
    size = 0
    async with open_reader(bootstrap, topic, commit_interval=COMMIT_INTERVAL) as reader:
        read = reader.read_message
        await read()
        start = time.perf_counter()
        for _ in range(count - 1):
            message = await read()
            size += len(message.value or b"")
        elapsed = time.perf_counter() - start
    # After aclose(), which flushes the stash (outside the clock).
    return Timing(messages=count - 1, seconds=elapsed, commits=reader.stats().commits)


async def aiokafka_commit_1s(bootstrap: str, topic: str, count: int) -> Timing:
    """d. `getmany(max_records=100)` and its records, with `commit()` once a second."""
    size = 0
    commits = 0
    consumer = open_consumer(bootstrap, topic, QUEUE)
    await consumer.start()
    try:
        batch = await first_batch(consumer, QUEUE)
        start = time.perf_counter()
        due = start + COMMIT_INTERVAL
        seen = 0
        while True:
            for records in batch.values():
                for record in records:
                    size += len(record.value or b"")
                seen += len(records)
            if time.perf_counter() >= due:
                # Every consumed position; the next second starts when the commit is done,
                # as aiomq's flusher sleeps a full interval after each flush.
                await consumer.commit()
                commits += 1
                due = time.perf_counter() + COMMIT_INTERVAL
            if seen >= count:
                break
            batch = await consumer.getmany(timeout_ms=int(MAX_WAIT * 1000), max_records=QUEUE)
        elapsed = time.perf_counter() - start
        # As aiomq's aclose() does, commit what is left, outside the clock.
        await consumer.commit()
        commits += 1
    finally:
        await consumer.stop()
    return Timing(messages=seen - 1, seconds=elapsed, commits=commits)


async def aiomq_sync(bootstrap: str, topic: str, count: int) -> Timing:
    """e. `read_message()` with `commit_interval=0`: a commit before each message returns."""
    size = 0
    async with open_reader(bootstrap, topic) as reader:
        read = reader.read_message
        await read()
        start = time.perf_counter()
        for _ in range(count - 1):
            message = await read()
            size += len(message.value or b"")
        elapsed = time.perf_counter() - start
    return Timing(messages=count - 1, seconds=elapsed, commits=reader.stats().commits)


async def aiokafka_sync(bootstrap: str, topic: str, count: int) -> Timing:
    """e. `getone()`, then `commit({tp: offset + 1})` of that message, one at a time."""
    size = 0
    consumer = open_consumer(bootstrap, topic, QUEUE)
    await consumer.start()
    try:
        record = await consumer.getone()
        await consumer.commit({TopicPartition(record.topic, record.partition): record.offset + 1})
        start = time.perf_counter()
        for _ in range(count - 1):
            record = await consumer.getone()
            size += len(record.value or b"")
            await consumer.commit(
                {TopicPartition(record.topic, record.partition): record.offset + 1}
            )
        elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    return Timing(messages=count - 1, seconds=elapsed, commits=count)


Contender = Callable[[str, str, int], Awaitable[Timing]]

# The contenders of the throughput rows, aiomq and aiokafka mostly alternating.
THROUGHPUT: dict[str, Contender] = {
    "aiomq fetch_batch": aiomq_batch,
    "aiokafka getmany 500": aiokafka_batch,
    "aiomq fetch_message": aiomq_each,
    "aiokafka getmany 100": aiokafka_each,
    "aiomq read_message 1s": aiomq_commit_1s,
    "aiokafka commit 1s": aiokafka_commit_1s,
    "aiokafka getone": aiokafka_getone,
    "aiomq fetch_batch+commit": aiomq_batch_commit,
    "aiokafka getmany+commit": aiokafka_batch_commit,
}
SYNC: dict[str, Contender] = {
    "aiomq read_message sync": aiomq_sync,
    "aiokafka getone+commit": aiokafka_sync,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class RowSpec:
    """A line of the table: aiomq's contender against a baseline, and maybe a target."""

    key: str
    name: str
    aiomq: str
    baseline: str
    legend: str
    target: float | None = None


ROWS = (
    RowSpec(
        key="batch",
        name="a. batch read",
        aiomq="aiomq fetch_batch",
        baseline="aiokafka getmany 500",
        legend=(
            f"aiomq fetch_batch({BATCH}), queue_capacity {BATCH}  vs  "
            f"aiokafka getmany(max_records={BATCH}), max_poll_records {BATCH}"
        ),
        target=1.0,
    ),
    RowSpec(
        key="each",
        name="b. per-message read",
        aiomq="aiomq fetch_message",
        baseline="aiokafka getmany 100",
        legend=(
            f"aiomq fetch_message() per message, queue_capacity {QUEUE}  vs  "
            f"aiokafka getmany(max_records={QUEUE}) and a loop over its records"
        ),
        target=0.7,
    ),
    RowSpec(
        key="each_getone",
        name="b2. per-message read vs getone()",
        aiomq="aiomq fetch_message",
        baseline="aiokafka getone",
        legend="aiomq fetch_message() (row b)  vs  aiokafka getone() per message",
    ),
    RowSpec(
        key="commit_cost",
        name="c. commit_interval=1 s vs no commits",
        aiomq="aiomq read_message 1s",
        baseline="aiomq fetch_message",
        legend=(
            "aiomq read_message(), commit_interval 1.0  vs  aiomq fetch_message(), "
            "no commits (row b's aiomq figure)"
        ),
        target=0.9,
    ),
    RowSpec(
        key="commit_1s",
        name="d. commits every 1 s",
        aiomq="aiomq read_message 1s",
        baseline="aiokafka commit 1s",
        legend=(
            "aiomq read_message(), commit_interval 1.0 (row c)  vs  "
            f"aiokafka getmany(max_records={QUEUE}) with commit() once a second"
        ),
    ),
    RowSpec(
        key="batch_commit",
        name="f. commit after every batch",
        aiomq="aiomq fetch_batch+commit",
        baseline="aiokafka getmany+commit",
        legend=(
            f"aiomq fetch_batch({COMMIT_BATCH}), then commit_messages() of it, commit_interval 0  "
            f"vs  aiokafka getmany(max_records={COMMIT_BATCH}), then commit()"
        ),
        target=1.0,
    ),
    RowSpec(
        key="sync",
        name="e. sync commit per message",
        aiomq="aiomq read_message sync",
        baseline="aiokafka getone+commit",
        legend=(
            "aiomq read_message(), commit_interval 0  vs  "
            "aiokafka getone() then commit({tp: offset + 1})"
        ),
    ),
)


@dataclass(kw_only=True, slots=True)
class Results:
    """Every measured read, by contender, in run order."""

    timings: dict[str, list[Timing]] = field(default_factory=dict)

    def add(self, name: str, timing: Timing) -> None:
        self.timings.setdefault(name, []).append(timing)

    def median(self, name: str) -> float | None:
        runs = self.timings.get(name)
        return statistics.median(t.rate for t in runs) if runs else None

    def run_ratios(self, spec: RowSpec) -> list[float]:
        """aiomq over baseline within each run: the spread shows how noisy the run was."""
        pairs = zip(
            self.timings.get(spec.aiomq, []), self.timings.get(spec.baseline, []), strict=False
        )
        return [a.rate / b.rate for a, b in pairs]

    def ratio(self, spec: RowSpec) -> float | None:
        a, b = self.median(spec.aiomq), self.median(spec.baseline)
        return None if a is None or b is None or b == 0 else a / b


def rotated(names: list[str], run: int) -> list[str]:
    """The order of the contenders in a run: rotated, so that none is always first."""
    shift = run % len(names)
    return names[shift:] + names[:shift]


async def bench(
    bootstrap: str,
    topic: str,
    contenders: dict[str, Contender],
    count: int,
    runs: int,
    results: Results,
) -> None:
    for run in range(runs):
        for name in rotated(list(contenders), run):
            gc.collect()
            async with asyncio.timeout(READ_TIMEOUT):
                results.add(name, await contenders[name](bootstrap, topic, count))


# -- filling the topic, and the memory run --------------------------------------------------


async def fill(bootstrap: str, topic: str, count: int) -> float:
    """Write `count` messages of VALUE_SIZE bytes in calls of FILL_CALL; return msg/s."""
    value = os.urandom(VALUE_SIZE)
    start = time.perf_counter()
    async with Writer(
        brokers=[bootstrap],
        topic=topic,
        required_acks=RequiredAcks.ALL,
        allow_auto_topic_creation=True,
    ) as writer:
        for base in range(0, count, FILL_CALL):
            calls = min(FILL_CALL, count - base)
            await writer.write_messages(
                *[Message(key=KEYS[(base + j) % 1000], value=value) for j in range(calls)]
            )
    return count / (time.perf_counter() - start)


async def bench_memory(bootstrap: str, topic: str, count: int, every: int) -> dict[str, Any]:
    """One group reader, commit_interval=1.0, read_message() over `count` messages.

    RSS is sampled every `every` messages. Each partition's offsets are checked to follow
    one another, so the figures come from a complete, in-order read. Runs first, before
    the other scenarios have grown the heap.
    """
    gc.collect()
    expected: dict[int, int] = {}
    out_of_order = 0
    async with open_reader(bootstrap, topic, commit_interval=COMMIT_INTERVAL) as reader:
        samples: list[tuple[int, int]] = [(0, rss_bytes())]
        read = reader.read_message
        start = 0.0
        for i in range(1, count + 1):
            message = await read()
            if i == 1:
                start = time.perf_counter()  # after the join
            if expected.get(message.partition, message.offset) != message.offset:
                out_of_order += 1
            expected[message.partition] = message.offset + 1
            if i % every == 0:
                samples.append((i, rss_bytes()))
        elapsed = time.perf_counter() - start
        partitions = len(reader.assignment())
    stats = reader.stats()  # after aclose() flushed the stash
    gc.collect()
    end = rss_bytes()
    rss = [s[1] for s in samples]
    # The first samples include the fetch buffers filling up; from a tenth of the run on,
    # memory should stay level.
    pivot = next(i for i, s in enumerate(samples) if s[0] >= count // 10)
    return {
        "messages": count,
        "seconds": elapsed,
        "msg_per_s": (count - 1) / elapsed,
        "commits": stats.commits,
        "errors": stats.errors,
        "out_of_order": out_of_order,
        "partitions": partitions,
        "per_partition": [expected[p] for p in sorted(expected)],
        "rss_start": rss[0],
        "rss_peak": max([*rss, end]),
        "rss_end": end,
        "pivot_messages": samples[pivot][0],
        "rss_at_pivot": rss[pivot],
        "rss_peak_after_pivot": max([*rss[pivot:], end]),
        "samples_after_pivot": len(samples) - pivot - 1,
        "samples": [{"messages": m, "rss": r} for m, r in samples],
    }


# -- reporting ------------------------------------------------------------------------------


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} msg/s"


def target_status(ratio: float | None, target: float | None) -> str:
    if target is None:
        return "(none)"
    if ratio is None:
        return f">= {target:.1f}x UNCLEAR"
    return f">= {target:.1f}x {'MET' if ratio >= target else 'MISSED'}"


def print_table(results: Results, runs: int) -> None:
    headers = [
        f"scenario (median of {runs} runs)",
        "aiomq",
        "baseline",
        "aiomq/baseline",
        "per-run ratios",
        "target",
    ]
    lines = []
    for spec in ROWS:
        ratio = results.ratio(spec)
        per_run = results.run_ratios(spec)
        lines.append(
            [
                spec.name,
                fmt_rate(results.median(spec.aiomq)),
                fmt_rate(results.median(spec.baseline)),
                "-" if ratio is None else f"{ratio:.2f}x",
                f"{min(per_run):.2f}-{max(per_run):.2f}" if per_run else "-",
                target_status(ratio, spec.target),
            ]
        )
    widths = [max(len(r[i]) for r in [headers, *lines]) for i in range(len(headers))]

    def render(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        return "  ".join([first, *rest, cells[-1]])

    print(render(headers))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(render(line))
    print()
    for spec in ROWS:
        print(f"  {spec.name}: {spec.legend}")
    commits = {
        name: statistics.median(t.commits for t in results.timings[name])
        for name in ("aiomq read_message 1s", "aiokafka commit 1s")
        if name in results.timings
    }
    if commits:
        print(
            "  commits per read with commit_interval 1 s (median): "
            + ", ".join(f"{name} {n:g}" for name, n in commits.items())
        )


def print_memory(memory: dict[str, Any]) -> None:
    print()
    print(
        f"memory, aiomq group Reader, commit_interval {COMMIT_INTERVAL:g}, read_message(): "
        f"{memory['messages']:,} x {VALUE_SIZE} B messages, {memory['msg_per_s']:,.0f} msg/s "
        f"(after the join), {memory['commits']} commits, errors {memory['errors']}, "
        f"offsets out of order {memory['out_of_order']}"
    )
    print(
        f"  RSS start (reader open) {mib(memory['rss_start'])}, peak {mib(memory['rss_peak'])}, "
        f"end (after aclose) {mib(memory['rss_end'])}"
    )
    trace = ", ".join(
        f"{s['messages'] // 1000}k:{s['rss'] / 1_048_576:.0f}" for s in memory["samples"]
    )
    print(f"  RSS (MiB) by messages read: {trace}")


def targets(results: Results, memory: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Each target with its status (MET, MISSED or UNCLEAR) and the figure behind it."""
    checks = []
    for spec in ROWS:
        if spec.target is None:
            continue
        ratio = results.ratio(spec)
        status = "UNCLEAR" if ratio is None else ("MET" if ratio >= spec.target else "MISSED")
        detail = "-" if ratio is None else f"{ratio:.2f}x"
        checks.append((f"{spec.name} >= {spec.target:.1f}x", status, detail))
    # Flat: past the pivot, RSS rises no more than 10% (at least 8 MiB) above it.
    growth = memory["rss_peak_after_pivot"] - memory["rss_at_pivot"]
    allowance = max(8 * 1_048_576, memory["rss_at_pivot"] // 10)
    if memory["errors"] or memory["out_of_order"] or growth > allowance:
        flat = "MISSED"
    elif memory["samples_after_pivot"] < 3:
        flat = "UNCLEAR"  # too few samples to show a plateau
    else:
        flat = "MET"
    checks.append(
        (
            f"memory flat over {memory['messages']:,} messages",
            flat,
            f"RSS grew {growth / 1_048_576:+.1f} MiB after {memory['pivot_messages']:,} messages "
            f"(allowed {allowance / 1_048_576:.0f} MiB)",
        )
    )
    return checks


# -- main -----------------------------------------------------------------------------------


async def run(bootstrap: str | None, counts: Counts, runs: int) -> dict[str, Any]:
    if bootstrap is None:
        from aiomq.testing import EmbeddedBroker

        async with EmbeddedBroker() as broker:
            return await run_all(broker.bootstrap_servers, "embedded Tansu", counts, runs)
    return await run_all(bootstrap, "external", counts, runs)


def step(name: str, began: float) -> None:
    print(f"  {name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)


async def run_all(bootstrap: str, kind: str, counts: Counts, runs: int) -> dict[str, Any]:
    print(f"broker: {bootstrap} ({kind})", flush=True)
    began = time.perf_counter()
    topic = f"bench-read-{uuid.uuid4().hex[:8]}"
    total = max(counts.messages, counts.memory)
    t0 = time.perf_counter()
    fill_rate = await fill(bootstrap, topic, total)
    step("fill", t0)
    # Memory goes first, while the heap holds nothing from the other scenarios.
    t0 = time.perf_counter()
    async with asyncio.timeout(READ_TIMEOUT * 5):
        memory = await bench_memory(bootstrap, topic, counts.memory, counts.every)
    step("memory", t0)
    results = Results()
    t0 = time.perf_counter()
    await bench(bootstrap, topic, THROUGHPUT, counts.messages, runs, results)
    step("throughput", t0)
    t0 = time.perf_counter()
    await bench(bootstrap, topic, SYNC, counts.sync, runs, results)
    step("sync commits", t0)
    return {
        "broker": {"bootstrap_servers": bootstrap, "kind": kind},
        "topic": {"name": topic, "fill_msg_per_s": fill_rate},
        "results": results,
        "memory": memory,
        "seconds": time.perf_counter() - began,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # What the record hook buys: the same run with aiokafka building ConsumerRecords and
    # aiomq converting them, as it does when the hook cannot be installed.
    without_hook = "--without-record-hook" in argv
    if without_hook:
        argv.remove("--without-record-hook")
        aiomq.reader.install_record_hook = lambda: False  # type: ignore[attr-defined]
    args, runs = parse_options(
        "bench/reader.py",
        "Benchmark aiomq's Reader against raw aiokafka on one broker "
        "(--without-record-hook: with the fallback record conversion).",
        "smaller counts, 3 runs (~35 s)",
        argv,
    )
    counts = QUICK_COUNTS if args.quick else DEFAULT_COUNTS

    command = start_report()
    if without_hook:
        print("record hook: off (aiokafka builds ConsumerRecords; aiomq converts them)")
    print(
        f"settings: one topic of {max(counts.messages, counts.memory):,} x {VALUE_SIZE} B "
        f"messages, written once; {runs} runs per scenario (order rotates each run), each read "
        "from offset 0 by a fresh consumer group; the clock starts after the first message"
    )
    print(
        f"  both clients: max_bytes / max_partition_fetch_bytes {MAX_BYTES // 1024} KiB, "
        f"max_wait / fetch_max_wait {MAX_WAIT:g} s, session timeout {SESSION_TIMEOUT:g} s, "
        f"heartbeat {HEARTBEAT_INTERVAL:g} s, max_poll_records = queue_capacity "
        f"({QUEUE}; {BATCH} in row a, {COMMIT_BATCH} in row f), every value's length summed"
    )
    print(
        f"  counts per run: {counts.messages:,} messages in rows a-d and f, {counts.sync:,} in "
        f"row e; memory run {counts.memory:,} messages, RSS every {counts.every:,}"
    )
    sys.stdout.flush()

    try:
        outcome = asyncio.run(run(args.bootstrap_servers, counts, runs))
    except (aiomq.Error, KafkaError, OSError) as exc:
        print(f"error: the benchmark could not run: {exc!r}", file=sys.stderr)
        return 1
    results: Results = outcome["results"]
    memory: dict[str, Any] = outcome["memory"]
    topic = outcome["topic"]
    print(
        f"topic: {memory['partitions']} partitions holding "
        f"{', '.join(f'{n:,}' for n in memory['per_partition'])} messages "
        f"(as the memory run read them), written at {topic['fill_msg_per_s']:,.0f} msg/s"
    )
    if memory["partitions"] != PARTITIONS:
        print(f"  note: not the {PARTITIONS} partitions the figures are usually quoted with")
    print()
    print_table(results, runs)
    print_memory(memory)
    print()
    checks = targets(results, memory)
    for name, status, detail in checks:
        print(f"target {status:<7} {name}: {detail}")
    print(f"total {outcome['seconds']:.0f} s")

    if args.json is not None:
        document = {
            "command": command,
            "python": platform.python_version(),
            "aiokafka": aiokafka.__version__,
            "aiomq": aiomq.__version__,
            "broker": outcome["broker"],
            "topic": topic,
            "runs": runs,
            "counts": {
                "messages": counts.messages,
                "sync": counts.sync,
                "memory": counts.memory,
            },
            "rows": {
                spec.key: {
                    "name": spec.name,
                    "legend": spec.legend,
                    "aiomq": spec.aiomq,
                    "baseline": spec.baseline,
                    "ratio": results.ratio(spec),
                    "run_ratios": results.run_ratios(spec),
                    "target": spec.target,
                }
                for spec in ROWS
            },
            "contenders": {
                name: {
                    "median_msg_per_s": results.median(name),
                    "runs": [
                        {"messages": t.messages, "seconds": t.seconds, "commits": t.commits}
                        for t in timings
                    ],
                }
                for name, timings in results.timings.items()
            },
            "memory": memory,
            "targets": [{"name": n, "status": st, "detail": d} for n, st, d in checks],
            "seconds": outcome["seconds"],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
