"""Benchmark `Reader.process` against the group handler and a `read_message` loop, for a
handler that waits 10 ms per message.

Run it from the repository root::

    .venv/bin/python bench/process.py                 # about 3 minutes on 2 cores
    .venv/bin/python bench/process.py --quick         # about 40 seconds
    .venv/bin/python bench/process.py --memory        # the memory run; under a minute
    .venv/bin/python bench/process.py --runs 9 --json out.json

Each contender reads a topic of its own from offset 0, in a consumer group of its own, and
handles every message with `await asyncio.sleep(0.01)`. Its rate is messages per second
from the group's assignment (the join is left out) until the group's committed offsets,
as the broker reports them, cover every message. The contenders take turns, their order
rotating from run to run, and each cell is the median of the runs.

`--memory` runs only the memory run, under tracemalloc, over one topic of 1,000,000
messages (100,000 with `--quick`): first a `fetch_batch` loop, the reader alone for
comparison, then `process()` with a handler that awaits `asyncio.sleep(0)`. Both sample
RSS, the traced memory, the small objects Python has allocated and, for `process()`, the
messages pending and the finished messages not yet committed, as they go.

Only ratios from one run mean much. See bench/README.md.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiokafka
from _common import RunTimings, mib, parse_options, rss_bytes, start_report
from aiokafka.errors import KafkaError

import aiomq
from aiomq import Client, Message, Murmur2Balancer, Reader, RequiredAcks, TopicSpec, Writer
from aiomq.group import Claim, GroupSession

PARTITIONS = 6
KEY_COUNT = 64
VALUE_SIZE = 100
FILL_CALL = 10_000  # messages per write_messages call when filling a topic
HANDLER_SECONDS = 0.01  # what the handler awaits per message
CONCURRENCY = 64
# Group settings for the embedded broker, where a join takes about half the session timeout.
SESSION_TIMEOUT = 1.0
HEARTBEAT_INTERVAL = 0.25
MAX_WAIT = 0.1
# How often the group's committed offsets are asked for, once every message is handled.
COMMIT_POLL = 0.005
# A run that never sees its last message would wait for ever: give up instead.
RUN_TIMEOUT = 120.0
CLOSE_TIMEOUT = 15.0

# The contenders, as named in the output.
PROCESS = "process(concurrency=64)"
PROCESS_ROOMY = "process(concurrency=64), max_pending = the run"
GROUP = "group handler, task per partition"
LOOP = "read_message loop"
CONTENDERS = (PROCESS, PROCESS_ROOMY, GROUP, LOOP)


@dataclass(frozen=True, kw_only=True, slots=True)
class Counts:
    """How many messages each contender handles in one run."""

    process: int  # both process() contenders
    group: int
    loop: int
    warmup: int  # handled once by each contender before the measured runs
    memory: int  # the memory run
    every: int  # its sample interval

    def of(self, name: str) -> int:
        if name in (PROCESS, PROCESS_ROOMY):
            return self.process
        return self.group if name == GROUP else self.loop


# At 10 ms a message: process() could take 3 s for 20,000 (64 at a time), the group handler
# about 5 s for 3,000 (6 partitions) and the loop 5 s for 500.
DEFAULT_COUNTS = Counts(
    process=20_000, group=3_000, loop=500, warmup=128, memory=1_000_000, every=50_000
)
QUICK_COUNTS = Counts(process=5_000, group=1_000, loop=200, warmup=64, memory=100_000, every=10_000)


def pick_keys() -> list[bytes]:
    """64 keys that the writer's default balancer (murmur2) spreads over the partitions as
    evenly as 64 keys can go (11 or 10 a partition), so that no partition of the group
    handler carries more than its share.

    Taken in order from `b"key-0"`, `b"key-1"`, ..., skipping a key whose partition already
    has its quota.
    """
    balancer = Murmur2Balancer()
    partitions = list(range(PARTITIONS))
    quota = [KEY_COUNT // PARTITIONS + (p < KEY_COUNT % PARTITIONS) for p in partitions]
    keys: list[bytes] = []
    n = 0
    while len(keys) < KEY_COUNT:
        key = b"key-%d" % n
        partition = balancer.balance(Message(key=key), partitions)
        if quota[partition]:
            quota[partition] -= 1
            keys.append(key)
        n += 1
    return keys


def naive_spread() -> list[int]:
    """Keys per partition for `b"key-0"` to `b"key-63"`, for the report."""
    balancer = Murmur2Balancer()
    partitions = list(range(PARTITIONS))
    spread = Counter(
        balancer.balance(Message(key=b"key-%d" % n), partitions) for n in range(KEY_COUNT)
    )
    return [spread[p] for p in partitions]


KEYS = pick_keys()


@dataclass(frozen=True, kw_only=True, slots=True)
class Topic:
    """A filled topic: its name and each partition's end offset."""

    name: str
    messages: int
    ends: dict[int, int]

    def ceiling(self, name: str) -> float:
        """The rate of a run if each handler call took exactly HANDLER_SECONDS and nothing
        else took any time: per key (and `concurrency` at once) for process(), per
        partition for the group handler, one at a time for the loop."""
        n = self.messages
        if name in (PROCESS, PROCESS_ROOMY):
            per_key = math.ceil(n / KEY_COUNT)
            calls = max(per_key, n / CONCURRENCY)
        elif name == GROUP:
            calls = max(self.ends.values())
        else:
            calls = n
        return n / (calls * HANDLER_SECONDS)


@dataclass(frozen=True, kw_only=True, slots=True)
class Timing:
    """One measured run."""

    messages: int  # in the topic, every one handled and committed by the stop
    seconds: float  # from the assignment to the commit that covered every message
    handled_seconds: float  # from the assignment to the end of the last handler
    busy: float  # handler seconds, summed over the handler calls
    commits: int  # the reader's commits up to the stop
    out_of_order: int  # messages handled before an earlier one of their key
    handled_after: int  # messages handled in all, once the reader had closed

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def running(self) -> float:
        """Handlers running at once, on average over the run (Little's law)."""
        return self.busy / self.handled_seconds

    @property
    def commit_lag(self) -> float:
        """Seconds from the end of the last handler to the commit seen covering it."""
        return self.seconds - self.handled_seconds


def group_id() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


# -- the handler, and what it counts ------------------------------------------------------


class Work:
    """The handler every contender runs, and the clock of one run.

    The handler awaits `delay` seconds, then checks that its message comes after the last
    one handled of the same key in the same partition (the order every contender keeps),
    counts it, and sets `done` at the `count`-th.
    """

    def __init__(self, count: int, delay: float) -> None:
        self.count = count
        self.delay = delay
        self.handled = 0
        self.busy = 0.0
        self.out_of_order = 0
        self.last: dict[tuple[int, bytes | None], int] = {}
        self.started: float | None = None
        self.handled_at: float | None = None
        self.done = asyncio.Event()

    def assigned(self, partitions: set[tuple[str, int]]) -> None:
        if self.started is None and partitions:
            self.started = time.perf_counter()

    async def handle(self, message: Message) -> None:
        began = time.perf_counter()
        await asyncio.sleep(self.delay)
        ended = time.perf_counter()
        self.busy += ended - began
        self.note(message)
        if self.handled == self.count:
            self.handled_at = ended
            self.done.set()

    def note(self, message: Message) -> None:
        lane = (message.partition, message.key)
        if self.last.get(lane, -1) >= message.offset:
            self.out_of_order += 1
        self.last[lane] = message.offset
        self.handled += 1


class Claims:
    """The group handler: each claimed partition in its own task, one message at a time,
    each message marked and committed once handled."""

    def __init__(self, work: Work) -> None:
        self.work = work

    async def setup(self, session: GroupSession) -> None:
        pass

    async def consume_claim(self, session: GroupSession, claim: Claim) -> None:
        handle = self.work.handle
        async for message in claim:
            await handle(message)
            session.mark_message(message)
            await session.commit()

    async def cleanup(self, session: GroupSession) -> None:
        pass


# -- the contenders -------------------------------------------------------------------------

Start = Callable[[Reader, Work], Coroutine[Any, Any, None]]


async def with_process(reader: Reader, work: Work) -> None:
    """`reader.process(handle, concurrency=64)`, with its defaults otherwise."""
    await reader.process(work.handle, concurrency=CONCURRENCY)


async def with_process_roomy(reader: Reader, work: Work) -> None:
    """The same, with room for every message of the run (`max_pending`)."""
    await reader.process(work.handle, concurrency=CONCURRENCY, max_pending=work.count)


async def with_group(reader: Reader, work: Work) -> None:
    """`reader.consume(Claims(...))`: one task per claimed partition."""
    await reader.consume(Claims(work))


async def with_loop(reader: Reader, work: Work) -> None:
    """`read_message()` and the handler, one message at a time. `read_message` commits
    each message before it returns it."""
    read, handle = reader.read_message, work.handle
    for _ in range(work.count):
        await handle(await read())


STARTS: dict[str, Start] = {
    PROCESS: with_process,
    PROCESS_ROOMY: with_process_roomy,
    GROUP: with_group,
    LOOP: with_loop,
}


def open_reader(bootstrap: str, topic: str, group: str, work: Work) -> Reader:
    return Reader(
        brokers=[bootstrap],
        topic=topic,
        group_id=group,
        max_wait=MAX_WAIT,
        session_timeout=SESSION_TIMEOUT,
        heartbeat_interval=HEARTBEAT_INTERVAL,
        on_assigned=work.assigned,
    )


async def wait_handled(work: Work, task: asyncio.Task[None]) -> None:
    """Wait until `work` has handled its count; raise what ended `task` if it ends first."""
    done = asyncio.create_task(work.done.wait())
    try:
        await asyncio.wait({task, done}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        done.cancel()
    if not work.done.is_set():
        task.result()  # raises what ended it
        raise RuntimeError(f"the contender returned after {work.handled} of {work.count}")


async def wait_committed(admin: Client, group: str, topic: Topic) -> float:
    """Ask the broker for the group's offsets until they reach every partition's end;
    return when the answer that showed it arrived."""
    while True:
        offsets = await admin.group_offsets(group, topics=[topic.name])
        if all(o.committed >= topic.ends[o.partition] for o in offsets):
            return time.perf_counter()
        await asyncio.sleep(COMMIT_POLL)


async def measure(
    admin: Client, bootstrap: str, topic: Topic, start: Start, *, delay: float
) -> Timing:
    """One run: open a reader in a new group, start the contender, wait until every
    message is handled and committed, then close the reader (outside the clock)."""
    work = Work(topic.messages, delay)
    group = group_id()
    reader = open_reader(bootstrap, topic.name, group, work)
    async with reader:
        task = asyncio.create_task(start(reader, work))
        try:
            await wait_handled(work, task)
            committed_at = await wait_committed(admin, group, topic)
            commits = reader.stats().commits
        finally:
            # Closing ends process() and consume(); the loop has returned already.
            await reader.aclose()
            _, pending = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
            for late in pending:
                late.cancel()
            await asyncio.wait({task})
        if pending:
            raise RuntimeError(f"the contender did not return within {CLOSE_TIMEOUT:g} s of close")
        if not task.cancelled():
            task.result()  # raises a failure it ended with
    assert work.started is not None and work.handled_at is not None
    return Timing(
        messages=topic.messages,
        seconds=committed_at - work.started,
        handled_seconds=work.handled_at - work.started,
        busy=work.busy,
        commits=commits,
        out_of_order=work.out_of_order,
        handled_after=work.handled,
    )


# -- filling the topics ---------------------------------------------------------------------


async def fill(admin: Client, bootstrap: str, name: str, count: int) -> tuple[Topic, float]:
    """Create a topic of PARTITIONS partitions and write `count` messages to it, message i
    with key KEYS[i % 64], in calls of FILL_CALL with acks from all replicas; return it
    and the write rate."""
    await admin.create_topics(TopicSpec(name=name, partitions=PARTITIONS, replication_factor=1))
    value = os.urandom(VALUE_SIZE)
    ends: dict[int, int] = {}
    start = time.perf_counter()
    async with Writer(brokers=[bootstrap], topic=name, required_acks=RequiredAcks.ALL) as writer:
        for base in range(0, count, FILL_CALL):
            calls = min(FILL_CALL, count - base)
            written = await writer.write_messages(
                *[Message(key=KEYS[(base + j) % KEY_COUNT], value=value) for j in range(calls)]
            )
            for message in written:
                if ends.get(message.partition, 0) <= message.offset:
                    ends[message.partition] = message.offset + 1
    rate = count / (time.perf_counter() - start)
    if sum(ends.values()) != count:
        raise RuntimeError(f"{name}: wrote {count} messages, the offsets say {sum(ends.values())}")
    return Topic(name=name, messages=count, ends=ends), rate


# -- the throughput runs ----------------------------------------------------------------------


@dataclass(kw_only=True, slots=True)
class Results(RunTimings[Timing]):
    """Every measured run, by contender, in run order."""

    topics: dict[str, Topic]


def rotated(names: list[str], run: int) -> list[str]:
    """The order of the contenders in a run: rotated, so that none is always first."""
    shift = run % len(names)
    return names[shift:] + names[:shift]


def step(name: str, began: float) -> None:
    print(f"  {name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)


async def bench_throughput(
    admin: Client, bootstrap: str, counts: Counts, runs: int
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    t0 = time.perf_counter()
    topics: dict[str, Topic] = {}
    fill_rates = []
    sizes = {counts.process, counts.group, counts.loop, counts.warmup}
    by_size: dict[int, Topic] = {}
    for size in sorted(sizes):
        by_size[size], rate = await fill(admin, bootstrap, f"bench-process-{size}-{tag}", size)
        fill_rates.append(rate)
    for name in CONTENDERS:
        topics[name] = by_size[counts.of(name)]
    step("fill", t0)
    t0 = time.perf_counter()
    for name in CONTENDERS:
        async with asyncio.timeout(RUN_TIMEOUT):
            await measure(
                admin, bootstrap, by_size[counts.warmup], STARTS[name], delay=HANDLER_SECONDS
            )
    step("warm-up", t0)
    results = Results(topics=topics)
    t0 = time.perf_counter()
    for run in range(runs):
        for name in rotated(list(CONTENDERS), run):
            gc.collect()
            async with asyncio.timeout(RUN_TIMEOUT):
                timing = await measure(
                    admin, bootstrap, topics[name], STARTS[name], delay=HANDLER_SECONDS
                )
            results.add(name, timing)
    step("runs", t0)
    return {"results": results, "fill_msg_per_s": statistics.median(fill_rates)}


# -- the memory run -------------------------------------------------------------------------


class Sampled(Work):
    """A handler that awaits `asyncio.sleep(0)` and samples the process every `every`
    messages: RSS, the memory tracemalloc traces (now, and its peak since the last sample),
    the small-object blocks Python has allocated, and process()'s own figures."""

    def __init__(self, count: int, every: int) -> None:
        super().__init__(count, 0.0)
        self.every = every
        self.reader: Reader | None = None
        self.samples: list[dict[str, int]] = []

    async def handle(self, message: Message) -> None:
        await asyncio.sleep(0)
        self.take(message)

    def take(self, message: Message) -> None:
        self.note(message)
        if self.handled % self.every == 0:
            self.sample()
        if self.handled == self.count:
            self.handled_at = time.perf_counter()
            self.done.set()

    def sample(self) -> None:
        assert self.reader is not None
        stats = self.reader.stats()
        processing = stats.processing
        pending = uncommitted = 0
        if processing is not None:
            pending = processing.running + processing.waiting
            uncommitted = sum(
                p.finished - max(p.committed, 0)
                for p in processing.partitions
                if p.finished >= 0 and p.finished > p.committed
            )
        traced, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        self.samples.append(
            {
                "messages": self.handled,
                "rss": rss_bytes(),
                "traced": traced,
                "traced_peak": traced_peak,
                # Every object below 512 bytes, tracked by the collector or not: messages,
                # their keys and values, lanes, tasks.
                "blocks": sys.getallocatedblocks(),
                "pending": pending,
                "uncommitted": uncommitted,
                "commits": stats.commits,
            }
        )


def summary(work: Sampled, *, rss_open: int, rss_end: int, seconds: float) -> dict[str, Any]:
    """The figures of one memory run, from its samples."""
    samples = work.samples
    rss = [s["rss"] for s in samples]
    traced = [s["traced_peak"] for s in samples]
    # The first tenth covers the fetch buffers filling up; from there on, memory should
    # stay level.
    pivot = next(i for i, s in enumerate(samples) if s["messages"] >= work.count // 10)
    assert work.started is not None and work.handled_at is not None
    return {
        "messages": work.count,
        "seconds": seconds,
        "handled_msg_per_s": work.count / (work.handled_at - work.started),
        "out_of_order": work.out_of_order,
        "handled_after": work.handled,
        "rss_open": rss_open,
        "rss_peak": max([*rss, rss_end]),
        "rss_end": rss_end,
        "pivot_messages": samples[pivot]["messages"],
        "rss_at_pivot": rss[pivot],
        "rss_peak_after_pivot": max(rss[pivot:]),
        "traced_at_pivot": traced[pivot],
        "traced_peak": max(traced),
        "traced_peak_after_pivot": max(traced[pivot:]),
        "blocks_at_pivot": samples[pivot]["blocks"],
        "blocks_peak_after_pivot": max(s["blocks"] for s in samples[pivot:]),
        "samples_after_pivot": len(samples) - pivot - 1,
        "samples": samples,
    }


async def memory_process(admin: Client, bootstrap: str, topic: Topic, every: int) -> dict[str, Any]:
    """process(concurrency=64) over the whole topic, until every message is committed."""
    gc.collect()
    work = Sampled(topic.messages, every)
    group = group_id()
    t0 = time.perf_counter()
    reader = open_reader(bootstrap, topic.name, group, work)
    work.reader = reader
    async with reader:
        rss_open = rss_bytes()
        task = asyncio.create_task(reader.process(work.handle, concurrency=CONCURRENCY))
        try:
            async with asyncio.timeout(RUN_TIMEOUT * 5):
                await wait_handled(work, task)
                committed_at = await wait_committed(admin, group, topic)
            commits = reader.stats().commits
        finally:
            await reader.aclose()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        task.result()
    seconds = time.perf_counter() - t0
    gc.collect()
    figures = summary(work, rss_open=rss_open, rss_end=rss_bytes(), seconds=seconds)
    assert work.started is not None and work.handled_at is not None
    samples = work.samples
    figures.update(
        {
            "msg_per_s": topic.messages / (committed_at - work.started),
            "commit_lag_s": committed_at - work.handled_at,
            "commits": commits,
            "pending_max": max(s["pending"] for s in samples),
            "uncommitted_max": max(s["uncommitted"] for s in samples),
        }
    )
    return figures


async def memory_fetch_batch(bootstrap: str, topic: Topic, every: int) -> dict[str, Any]:
    """The reader alone, for comparison: a `fetch_batch(500)` loop over the same topic in a
    group of its own, no handler and no commits, sampled the same way."""
    gc.collect()
    work = Sampled(topic.messages, every)
    t0 = time.perf_counter()
    reader = open_reader(bootstrap, topic.name, group_id(), work)
    work.reader = reader
    async with reader:
        rss_open = rss_bytes()
        take, fetch = work.take, reader.fetch_batch
        async with asyncio.timeout(RUN_TIMEOUT * 5):
            while work.handled < work.count:
                for message in await fetch(500):
                    take(message)
    seconds = time.perf_counter() - t0
    gc.collect()
    return summary(work, rss_open=rss_open, rss_end=rss_bytes(), seconds=seconds)


async def bench_memory(admin: Client, bootstrap: str, counts: Counts) -> dict[str, Any]:
    """Fill one topic, then read it with the fetch_batch loop, then with process()."""
    t0 = time.perf_counter()
    topic, fill_rate = await fill(
        admin, bootstrap, f"bench-process-memory-{uuid.uuid4().hex[:8]}", counts.memory
    )
    step("fill", t0)
    # One frame per allocation: enough for the totals. process() runs about 5 times slower
    # under it, the fetch_batch loop about 10 times.
    tracemalloc.start(1)
    try:
        # The reader alone first: process() may then reuse what it freed, so that its RSS
        # rises only by what it holds beyond.
        t0 = time.perf_counter()
        tracemalloc.reset_peak()
        fetched = await memory_fetch_batch(bootstrap, topic, counts.every)
        step("fetch_batch", t0)
        t0 = time.perf_counter()
        tracemalloc.reset_peak()
        processed = await memory_process(admin, bootstrap, topic, counts.every)
        step("process", t0)
    finally:
        tracemalloc.stop()
    return {
        "topic": topic.name,
        "partition_ends": topic.ends,
        "fill_msg_per_s": fill_rate,
        "process": processed,
        "fetch_batch": fetched,
    }


# -- reporting ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class RowSpec:
    """A line of the ratio table: one contender against another, maybe with a target."""

    key: str
    name: str
    a: str
    b: str
    target: float | None = None


ROWS = (
    RowSpec(
        key="process_vs_group", name="1. process vs group handler", a=PROCESS, b=GROUP, target=5.0
    ),
    RowSpec(key="process_vs_loop", name="2. process vs read_message loop", a=PROCESS, b=LOOP),
    RowSpec(key="group_vs_loop", name="3. group handler vs read_message loop", a=GROUP, b=LOOP),
    RowSpec(
        key="roomy_vs_group",
        name="4. process, max_pending = the run, vs group handler",
        a=PROCESS_ROOMY,
        b=GROUP,
    ),
)


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} msg/s"


def render_table(headers: list[str], lines: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [headers, *lines]) for i in range(len(headers))]

    def render(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    print(render(headers))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(render(line))


def print_contenders(results: Results, runs: int) -> None:
    lines = []
    for name in CONTENDERS:
        timings = results.timings.get(name, [])
        if not timings:
            continue
        topic = results.topics[name]
        rate = results.median(name)
        ceiling = topic.ceiling(name)
        lines.append(
            [
                name,
                f"{topic.messages:,}",
                fmt_rate(rate),
                f"{min(t.rate for t in timings):,.0f}-{max(t.rate for t in timings):,.0f}",
                fmt_rate(ceiling),
                "-" if rate is None else f"{rate / ceiling:.0%}",
                f"{statistics.median(t.running for t in timings):.1f}",
                f"{statistics.median(t.commits for t in timings):,.0f}",
                f"{statistics.median(t.commit_lag for t in timings) * 1000:.0f} ms",
            ]
        )
    render_table(
        [
            f"contender (median of {runs} runs)",
            "messages",
            "rate",
            "runs",
            "ceiling",
            "of ceiling",
            "handlers at once",
            "commits",
            "last commit",
        ],
        lines,
    )
    print()
    print(
        "  rate: messages per second from the group's assignment to the broker's answer "
        "showing every message committed"
    )
    print(
        f"  ceiling: the rate if each handler call took exactly {HANDLER_SECONDS * 1000:g} ms "
        "and nothing else took time (per key and 64 at once for process(), per partition for "
        "the group handler, one at a time for the loop)"
    )
    print(
        "  handlers at once: handler seconds over the run's seconds up to the last handler; "
        "last commit: from the end of the last handler to the answer showing it committed"
    )
    flawed = [
        (name, t)
        for name, timings in results.timings.items()
        for t in timings
        if t.out_of_order or t.handled_after != t.messages
    ]
    for name, t in flawed:
        print(
            f"  {name}: a run handled {t.handled_after:,} messages of {t.messages:,}, "
            f"{t.out_of_order} out of order"
        )


def status(ratio: float | None, target: float, quick: bool) -> str:
    """MET or MISSED; UNCLEAR without a figure, or with --quick, whose topics are too
    small to show the backlog the target is set for (see bench/README.md)."""
    if ratio is None or quick:
        return "UNCLEAR"
    return "MET" if ratio >= target else "MISSED"


def print_ratios(results: Results, quick: bool) -> None:
    lines = []
    for spec in ROWS:
        ratio = results.ratio(spec.a, spec.b)
        per_run = results.run_ratios(spec.a, spec.b)
        lines.append(
            [
                spec.name,
                "-" if ratio is None else f"{ratio:.2f}x",
                f"{min(per_run):.2f}-{max(per_run):.2f}" if per_run else "-",
                "(none)"
                if spec.target is None
                else f">= {spec.target:g}x {status(ratio, spec.target, quick)}",
            ]
        )
    render_table(
        ["ratio of medians (first over second)", "ratio", "per-run ratios", "target"], lines
    )


def print_memory(memory: dict[str, Any]) -> None:
    processed, fetched = memory["process"], memory["fetch_batch"]
    print(
        f"topic of {processed['messages']:,} x {VALUE_SIZE} B messages, written at "
        f"{memory['fill_msg_per_s']:,.0f} msg/s; both runs under tracemalloc (1 frame), "
        "which slows them several times over"
    )
    print()
    print(
        "the reader alone: a fetch_batch(500) loop, no handler, no commits: "
        f"{fetched['handled_msg_per_s']:,.0f} msg/s, {fetched['seconds']:.0f} s with the join "
        f"and close; out of order {fetched['out_of_order']}"
    )
    print_trace(fetched)
    print()
    print(
        f"process(concurrency={CONCURRENCY}), handler awaiting asyncio.sleep(0): "
        f"{processed['msg_per_s']:,.0f} msg/s from the assignment to the last commit "
        f"({processed['handled_msg_per_s']:,.0f} msg/s to the last handler), "
        f"{processed['commits']:,} commits, the last {processed['commit_lag_s'] * 1000:.0f} ms "
        f"after the last handler; {processed['seconds']:.0f} s with the join and close"
    )
    print(
        f"  handled {processed['handled_after']:,}, out of order {processed['out_of_order']}; "
        f"pending (running + waiting) at most {processed['pending_max']:,}, finished and not "
        f"yet committed at most {processed['uncommitted_max']:,} (in the samples)"
    )
    print_trace(processed)


def print_trace(figures: dict[str, Any]) -> None:
    samples = figures["samples"]
    print(
        f"  RSS with the reader open {mib(figures['rss_open'])}, peak {mib(figures['rss_peak'])}, "
        f"end (after aclose) {mib(figures['rss_end'])}; traced peak "
        f"{mib(figures['traced_peak'])}"
    )
    traces = {
        "RSS (MiB)": [f"{s['rss'] / 1_048_576:.0f}" for s in samples],
        "traced peak since the sample before (MiB)": [
            f"{s['traced_peak'] / 1_048_576:.0f}" for s in samples
        ],
        "small-object blocks (sys.getallocatedblocks)": [
            f"{s['blocks'] / 1000:.0f}k" for s in samples
        ],
    }
    for name, values in traces.items():
        trace = ", ".join(
            f"{s['messages'] // 1000}k:{value}" for s, value in zip(samples, values, strict=True)
        )
        print(f"  {name} by messages handled: {trace}")


def memory_target(memory: dict[str, Any]) -> tuple[str, str, str]:
    figures = memory["process"]
    # Flat: past the pivot, the traced peak rises no more than 10% (at least 8 MiB) above
    # it. RSS also holds what the allocator keeps after a peak, so it is shown, not judged.
    growth = figures["traced_peak_after_pivot"] - figures["traced_at_pivot"]
    allowance = max(8 * 1_048_576, figures["traced_at_pivot"] // 10)
    wrong = figures["out_of_order"] or figures["handled_after"] != figures["messages"]
    if wrong or growth > allowance:
        status = "MISSED"
    elif figures["samples_after_pivot"] < 3:
        status = "UNCLEAR"  # too few samples to show a plateau
    else:
        status = "MET"
    blocks = figures["blocks_peak_after_pivot"] - figures["blocks_at_pivot"]
    rss = figures["rss_peak_after_pivot"] - figures["rss_at_pivot"]
    return (
        f"process() memory flat over {figures['messages']:,} messages",
        status,
        f"traced memory grew {growth / 1_048_576:+.1f} MiB after {figures['pivot_messages']:,} "
        f"messages (allowed {allowance / 1_048_576:.0f} MiB), small-object blocks {blocks:+,}, "
        f"RSS {rss / 1_048_576:+.1f} MiB; traced peak {mib(figures['traced_peak'])} against "
        f"{mib(memory['fetch_batch']['traced_peak'])} for the fetch_batch loop",
    )


def throughput_targets(results: Results, quick: bool) -> list[tuple[str, str, str]]:
    checks = []
    for spec in ROWS:
        if spec.target is None:
            continue
        ratio = results.ratio(spec.a, spec.b)
        detail = "-" if ratio is None else f"{ratio:.2f}x"
        if quick:
            detail += " (--quick: not judged; run without it)"
        checks.append(
            (f"{spec.name} >= {spec.target:g}x", status(ratio, spec.target, quick), detail)
        )
    return checks


# -- main -----------------------------------------------------------------------------------


async def run(bootstrap: str | None, counts: Counts, runs: int, memory: bool) -> dict[str, Any]:
    if bootstrap is None:
        from aiomq.testing import EmbeddedBroker

        async with EmbeddedBroker() as broker:
            return await run_all(broker.bootstrap_servers, "embedded Tansu", counts, runs, memory)
    return await run_all(bootstrap, "external", counts, runs, memory)


async def run_all(
    bootstrap: str, kind: str, counts: Counts, runs: int, memory: bool
) -> dict[str, Any]:
    print(f"broker: {bootstrap} ({kind})", flush=True)
    began = time.perf_counter()
    outcome: dict[str, Any] = {"broker": {"bootstrap_servers": bootstrap, "kind": kind}}
    async with Client(brokers=[bootstrap]) as admin:
        if memory:
            outcome["memory"] = await bench_memory(admin, bootstrap, counts)
        else:
            outcome.update(await bench_throughput(admin, bootstrap, counts, runs))
    outcome["seconds"] = time.perf_counter() - began
    return outcome


def timing_json(t: Timing) -> dict[str, Any]:
    return {
        "messages": t.messages,
        "seconds": t.seconds,
        "msg_per_s": t.rate,
        "handled_seconds": t.handled_seconds,
        "handlers_at_once": t.running,
        "commits": t.commits,
        "commit_lag_s": t.commit_lag,
        "out_of_order": t.out_of_order,
        "handled_after": t.handled_after,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    memory = "--memory" in argv
    if memory:
        argv.remove("--memory")
    args, runs = parse_options(
        "bench/process.py",
        "Benchmark Reader.process against the group handler and a read_message loop, for a "
        "handler that waits 10 ms (--memory: process() alone over 1,000,000 messages, "
        "memory sampled).",
        "smaller counts, 3 runs (~40 s; with --memory 100,000 messages)",
        argv,
    )
    counts = QUICK_COUNTS if args.quick else DEFAULT_COUNTS

    command = start_report()
    spread = Counter(
        Murmur2Balancer().balance(Message(key=key), list(range(PARTITIONS))) for key in KEYS
    )
    keys_line = (
        f"{KEY_COUNT} keys, message i has key i % {KEY_COUNT}; the keys are picked so that "
        f"murmur2 puts {'/'.join(str(spread[p]) for p in range(PARTITIONS))} on the "
        f"{PARTITIONS} partitions (b'key-0'..b'key-63' would put "
        f"{'/'.join(map(str, naive_spread()))})"
    )
    if memory:
        print(
            f"settings: memory run only: one topic of {counts.memory:,} x {VALUE_SIZE} B "
            f"messages, {PARTITIONS} partitions, acks=all; {keys_line}"
        )
        print(
            f"  a fetch_batch(500) loop, then process(handler, concurrency={CONCURRENCY}) with a "
            f"handler that awaits asyncio.sleep(0); samples every {counts.every:,} messages: "
            "RSS, memory traced by tracemalloc, small-object blocks, and process()'s pending "
            "and finished but uncommitted messages"
        )
    else:
        print(
            f"settings: handler awaits asyncio.sleep({HANDLER_SECONDS:g}) per message; "
            f"{VALUE_SIZE} B values, {PARTITIONS} partitions, acks=all; {keys_line}"
        )
        print(
            f"  messages per run: {counts.process:,} for process(), {counts.group:,} for the "
            f"group handler, {counts.loop:,} for the loop, each reading a topic that holds "
            f"exactly that many; {runs} runs (order rotates each run) after a warm-up of "
            f"{counts.warmup} messages each; every run a fresh group from offset 0"
        )
        print(
            f"  every reader: commit_interval 0 (the default), session timeout "
            f"{SESSION_TIMEOUT:g} s, heartbeat {HEARTBEAT_INTERVAL:g} s, max_wait {MAX_WAIT:g} s, "
            "queue_capacity 100 and max_bytes 1 MiB (the defaults); the group handler marks "
            "and commits each message once handled, read_message commits each before it "
            "returns it"
        )
    sys.stdout.flush()

    try:
        outcome = asyncio.run(run(args.bootstrap_servers, counts, runs, memory))
    except (aiomq.Error, KafkaError, OSError, RuntimeError, TimeoutError) as exc:
        print(f"error: the benchmark could not run: {exc!r}", file=sys.stderr)
        return 1

    print()
    document: dict[str, Any] = {
        "command": command,
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        "aiomq": aiomq.__version__,
        "broker": outcome["broker"],
        "keys": [key.decode() for key in KEYS],
        "handler_seconds": HANDLER_SECONDS,
    }
    if memory:
        memory_result: dict[str, Any] = outcome["memory"]
        print_memory(memory_result)
        checks = [memory_target(memory_result)]
        document["memory"] = memory_result
    else:
        results: Results = outcome["results"]
        print(f"topics written at {outcome['fill_msg_per_s']:,.0f} msg/s (median of the fills)")
        for size, topic in sorted({t.messages: t for t in results.topics.values()}.items()):
            ends = ", ".join(f"{topic.ends[p]:,}" for p in sorted(topic.ends))
            print(f"  {size:,} messages: {ends} a partition")
        print()
        print_contenders(results, runs)
        print()
        print_ratios(results, args.quick)
        checks = throughput_targets(results, args.quick)
        document.update(
            {
                "runs": runs,
                "counts": {"process": counts.process, "group": counts.group, "loop": counts.loop},
                "rows": {
                    spec.key: {
                        "name": spec.name,
                        "first": spec.a,
                        "second": spec.b,
                        "ratio": results.ratio(spec.a, spec.b),
                        "run_ratios": results.run_ratios(spec.a, spec.b),
                        "target": spec.target,
                    }
                    for spec in ROWS
                },
                "contenders": {
                    name: {
                        "topic": results.topics[name].name,
                        "partition_ends": results.topics[name].ends,
                        "ceiling_msg_per_s": results.topics[name].ceiling(name),
                        "median_msg_per_s": results.median(name),
                        "runs": [timing_json(t) for t in timings],
                    }
                    for name, timings in results.timings.items()
                },
            }
        )
    print()
    for name, status, detail in checks:
        print(f"target {status:<7} {name}: {detail}")
    print(f"total {outcome['seconds']:.0f} s")
    document["targets"] = [{"name": n, "status": s, "detail": d} for n, s, d in checks]
    document["seconds"] = outcome["seconds"]

    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
