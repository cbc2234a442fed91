"""Benchmark `aiomq.transform` against a hand-written aiokafka consume-transform-produce loop.

Run it from the repository root::

    .venv/bin/python bench/transform.py                 # under a minute on 2 cores
    .venv/bin/python bench/transform.py --quick         # about 15 seconds
    .venv/bin/python bench/transform.py --runs 9 --json out.json

Each run transforms one input topic from its first offset, in a consumer group of its own,
into an output topic: one output per input, its value upper-cased, its key kept. Its rate is
inputs per second from the group's assignment (the join is left out) to the commit of the
last input. The contenders take turns, their order rotating from run to run, and each cell
is the median of the runs.

Two brokers, because aiokafka's transactional producer cannot start on the embedded one (it
asks for its producer id with InitProducerId v0, which Tansu refuses for a transactional
id; the script tries it and prints the answer):

- the embedded Tansu broker: at least once, aiomq against aiokafka, and aiomq exactly once;
- librdkafka's mock cluster, in this process (`tests/support/mock_cluster.py`, through
  ctypes; confluent-kafka comes with the dev dependencies): exactly once, aiomq against
  aiokafka's transactional producer, and the at-least-once pair again.

Only ratios from one broker in one run mean much. See bench/README.md.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiokafka
from _common import RunTimings, parse_options, start_report
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

import aiomq
from aiomq import (
    Client,
    IsolationLevel,
    Message,
    Reader,
    RequiredAcks,
    TopicSpec,
    Transaction,
    Writer,
)

PARTITIONS = 4
VALUE_SIZE = 100
KEYS = [b"key-%d" % i for i in range(1000)]
FILL_CALL = 10_000  # messages per write_messages call when filling the input topic
BATCH = 500  # transform's batch_size, getmany's max_records, max_poll_records, queue_capacity
BATCH_WAIT = 0.1  # transform's max_wait, its default
# The Reader's max_wait and aiokafka's fetch_max_wait_ms (both default to 0.5 s). Both
# consumers run on aiokafka's fetcher, which sends one fetch at a time to a broker and
# leaves out the partitions that still have records buffered: once a partition has been
# read to its end, a fetch for it alone waits out the whole long poll while the others run
# dry. On Tansu, at 0.5 s, two or three fetches a run took 0.15-0.47 s on both sides,
# which weighed more than the clients' own work.
FETCH_WAIT = 0.1
MAX_BYTES = 1_048_576  # the Reader's max_bytes and aiokafka's max_partition_fetch_bytes
# A Tansu group join takes about half the session timeout: keep it short.
SESSION_TIMEOUT = 1.0
HEARTBEAT_INTERVAL = 0.25
# A run that finds fewer inputs than it expects would wait for ever: give up instead.
RUN_TIMEOUT = 120.0

TANSU = "embedded Tansu"
MOCK = "librdkafka mock cluster"
EXTERNAL = "external"

# The contenders, as named in the output.
AIOMQ_ALO = "aiomq transform, at least once"
AIOKAFKA_ALO = "aiokafka loop, at least once"
AIOMQ_EOS = "aiomq transform, exactly once"
AIOKAFKA_EOS = "aiokafka loop, exactly once"


@dataclass(frozen=True, kw_only=True, slots=True)
class Counts:
    """How much work each run does."""

    inputs: int  # in the input topic, and transformed by each measured run
    warmup: int  # transformed once by each contender before the measured runs


DEFAULT_COUNTS = Counts(inputs=100_000, warmup=10_000)
QUICK_COUNTS = Counts(inputs=20_000, warmup=2_000)


@dataclass(frozen=True, kw_only=True, slots=True)
class Broker:
    """Where the contenders run: a broker and its two topics."""

    kind: str
    bootstrap: str
    source: str
    sink: str
    has_topics: bool = False  # created with the broker (the mock cluster has no CreateTopics)


@dataclass(frozen=True, kw_only=True, slots=True)
class Timing:
    """One measured run: inputs committed, outputs written, and the time from the group's
    assignment to the last commit."""

    inputs: int
    outputs: int
    batches: int
    seconds: float
    commit_interval: float  # median seconds between two commits

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds


def upper_case(message: Message) -> Message:
    """aiomq's transform function: one output per input, the value upper-cased, same key."""
    return Message(key=message.key, value=(message.value or b"").upper())


def group_id() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


# -- the clock ------------------------------------------------------------------------------


class Clock:
    """Starts when the group assigns partitions, stops once `count` inputs are committed."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.started: float | None = None
        self.stopped: float | None = None
        self.committed_inputs = 0
        self.batches = 0
        self.commit_times: list[float] = []
        self.done = asyncio.Event()

    def assigned(self, partitions: Collection[object]) -> None:
        if self.started is None and partitions:
            self.started = time.perf_counter()

    def committed(self, inputs: int) -> None:
        self.commit_times.append(time.perf_counter())
        self.committed_inputs += inputs
        self.batches += 1
        if self.stopped is None and self.committed_inputs >= self.count:
            self.stopped = time.perf_counter()
            self.done.set()

    @property
    def seconds(self) -> float:
        if self.started is None or self.stopped is None:
            raise RuntimeError("the run ended before its clock stopped")
        return self.stopped - self.started

    @property
    def commit_interval(self) -> float:
        """The median time from one commit to the next: a batch's cost once the run is under
        way, leaving out the first fetch, a slow fetch now and then, and the wait for the
        last batch to fill."""
        times = self.commit_times
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return statistics.median(gaps) if gaps else self.seconds

    def timing(self, *, inputs: int, outputs: int, batches: int) -> Timing:
        return Timing(
            inputs=inputs,
            outputs=outputs,
            batches=batches,
            seconds=self.seconds,
            commit_interval=self.commit_interval,
        )


# -- aiomq: transform() with a reader and a writer that tell the clock what they commit -----
#
# transform() commits through public calls: `Reader.commit_messages` at least once, and
# `Writer.send_offsets` inside `Writer.transaction()` exactly once. The subclasses below
# pass each call through unchanged and tell the clock once it has returned.


class CountingReader(Reader):
    """A group reader whose `commit_messages` tells the clock how many inputs it committed."""

    def __init__(self, clock: Clock, **options: Any) -> None:
        super().__init__(**options)
        self.clock = clock

    async def commit_messages(self, *messages: Message) -> None:
        await super().commit_messages(*messages)
        self.clock.committed(len(messages))


class CountingWriter(Writer):
    """A transactional writer that tells the clock how many inputs each committed
    transaction sent the offsets of."""

    def __init__(self, clock: Clock, **options: Any) -> None:
        super().__init__(**options)
        self.clock = clock
        self.offsets_sent = 0

    async def send_offsets(self, reader: Any, messages: Iterable[Message]) -> None:
        # `reader: Any`: whatever kind of reader the writer accepts, passed on as it is.
        messages = list(messages)
        await super().send_offsets(reader, messages)
        self.offsets_sent += len(messages)

    def transaction(self) -> Transaction:
        return CountedTransaction(super().transaction(), self)


class CountedTransaction(Transaction):
    """The writer's own transaction, telling the clock once it has committed."""

    __slots__ = ("_inner", "_owner")

    def __init__(self, inner: Transaction, owner: CountingWriter) -> None:
        # No Transaction.__init__: every call goes to `inner`.
        self._inner = inner
        self._owner = owner

    async def __aenter__(self) -> Self:
        self._owner.offsets_sent = 0
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, traceback)
        if exc_type is None:
            self._owner.clock.committed(self._owner.offsets_sent)


async def aiomq_transform(broker: Broker, count: int, *, exactly_once: bool) -> Timing:
    """`aiomq.transform(reader, writer, upper_case)`, batch_size 500, max_wait 0.1 s."""
    clock = Clock(count)
    reader = CountingReader(
        clock,
        brokers=[broker.bootstrap],
        topic=broker.source,
        group_id=group_id(),
        queue_capacity=BATCH,
        max_wait=FETCH_WAIT,
        max_bytes=MAX_BYTES,
        session_timeout=SESSION_TIMEOUT,
        heartbeat_interval=HEARTBEAT_INTERVAL,
        isolation_level=(
            IsolationLevel.READ_COMMITTED if exactly_once else IsolationLevel.READ_UNCOMMITTED
        ),
        on_assigned=clock.assigned,
    )
    options: dict[str, Any] = {"brokers": [broker.bootstrap], "topic": broker.sink}
    writer = (
        CountingWriter(clock, transactional_id=f"bench-{uuid.uuid4().hex[:12]}", **options)
        if exactly_once
        else Writer(**options)
    )
    async with reader, writer:
        task = asyncio.create_task(
            aiomq.transform(
                reader,
                writer,
                upper_case,
                exactly_once=exactly_once,
                batch_size=BATCH,
                max_wait=BATCH_WAIT,
            )
        )
        done = asyncio.create_task(clock.done.wait())
        try:
            await asyncio.wait({task, done}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # raises what ended it
                raise RuntimeError("transform returned before every input was committed")
        finally:
            done.cancel()
        # Outside the clock: closing the reader ends transform(), which returns its stats.
        await reader.aclose()
        stats = await task
    return clock.timing(
        inputs=stats.messages_read, outputs=stats.messages_written, batches=stats.batches
    )


# -- aiokafka: the loop an application would write ------------------------------------------


class StartClock(ConsumerRebalanceListener):
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.clock.assigned(assigned)


async def aiokafka_loop(broker: Broker, count: int, *, exactly_once: bool) -> Timing:
    """`getmany(max_records=500)`, `send()` per output, then `flush()` and `commit()`; or,
    exactly once, the same inside `begin_transaction()` ... `send_offsets_to_transaction()`,
    `commit_transaction()`."""
    clock = Clock(count)
    group = group_id()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=int(FETCH_WAIT * 1000),
        max_partition_fetch_bytes=MAX_BYTES,
        max_poll_records=BATCH,
        session_timeout_ms=int(SESSION_TIMEOUT * 1000),
        heartbeat_interval_ms=int(HEARTBEAT_INTERVAL * 1000),
        isolation_level="read_committed" if exactly_once else "read_uncommitted",
    )
    consumer.subscribe([broker.source], listener=StartClock(clock))
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap,
        acks="all",
        linger_ms=0,
        enable_idempotence=exactly_once,
        transactional_id=f"bench-{uuid.uuid4().hex[:12]}" if exactly_once else None,
    )
    await producer.start()
    try:
        await consumer.start()
        try:
            outputs = await loop_until(consumer, producer, broker.sink, group, clock, exactly_once)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
    return clock.timing(inputs=clock.committed_inputs, outputs=outputs, batches=clock.batches)


async def loop_until(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    sink: str,
    group: str,
    clock: Clock,
    exactly_once: bool,
) -> int:
    """Transform batches until `clock.count` inputs are committed; return the outputs."""
    outputs = 0
    while not clock.done.is_set():
        batch = await consumer.getmany(timeout_ms=int(FETCH_WAIT * 1000), max_records=BATCH)
        if not batch:
            continue
        if exactly_once:
            await producer.begin_transaction()
        futures = []
        for records in batch.values():
            for record in records:
                futures.append(
                    await producer.send(sink, (record.value or b"").upper(), key=record.key)
                )
        if exactly_once:
            # The commit flushes, and fails if a send of the transaction failed.
            await producer.send_offsets_to_transaction(
                {tp: records[-1].offset + 1 for tp, records in batch.items()}, group
            )
            await producer.commit_transaction()
        else:
            await producer.flush()
            for future in futures:
                future.result()  # raises the error of a failed send
            await consumer.commit()
        outputs += len(futures)
        clock.committed(sum(len(records) for records in batch.values()))
    return outputs


# -- running the contenders -----------------------------------------------------------------

Contender = Callable[[Broker, int], Awaitable[Timing]]


def contender(run: Callable[..., Awaitable[Timing]], *, exactly_once: bool) -> Contender:
    async def one_run(broker: Broker, count: int) -> Timing:
        return await run(broker, count, exactly_once=exactly_once)

    return one_run


CONTENDERS: dict[str, Contender] = {
    AIOMQ_ALO: contender(aiomq_transform, exactly_once=False),
    AIOKAFKA_ALO: contender(aiokafka_loop, exactly_once=False),
    AIOMQ_EOS: contender(aiomq_transform, exactly_once=True),
    AIOKAFKA_EOS: contender(aiokafka_loop, exactly_once=True),
}


@dataclass(kw_only=True, slots=True)
class BrokerResults(RunTimings[Timing]):
    """Every measured run on one broker, by contender, in run order."""

    broker: Broker
    contenders: list[str]
    fill_rate: float
    partitions: int
    aiokafka_transactions: str | None  # why aiokafka's transactional producer failed

    def interval(self, name: str) -> float | None:
        """The median over the runs of the median time from one commit to the next."""
        runs = self.timings.get(name)
        return statistics.median(t.commit_interval for t in runs) if runs else None

    def steady_ratio(self, a: str, b: str) -> float | None:
        """b's time between commits over a's: above 1, a does a batch's work sooner."""
        x, y = self.interval(a), self.interval(b)
        return None if x is None or y is None or x == 0 else y / x


def rotated(names: list[str], run: int) -> list[str]:
    """The order of the contenders in a run: rotated, so that none is always first."""
    shift = run % len(names)
    return names[shift:] + names[:shift]


def step(name: str, began: float) -> None:
    print(f"  {name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)


async def prepare(broker: Broker, count: int) -> tuple[float, int]:
    """Create both topics, unless the broker has them already, and write `count` inputs;
    return the write rate and the input topic's partitions."""
    async with Client(brokers=[broker.bootstrap]) as admin:
        if not broker.has_topics:
            await admin.create_topics(
                TopicSpec(name=broker.source, partitions=PARTITIONS, replication_factor=1),
                TopicSpec(name=broker.sink, partitions=PARTITIONS, replication_factor=1),
            )
        (source,) = await admin.describe_topics(broker.source)
    # Lower-case letters, so that upper-casing changes every byte.
    value = bytes(random.choices(b"abcdefghijklmnopqrstuvwxyz", k=VALUE_SIZE))
    start = time.perf_counter()
    async with Writer(
        brokers=[broker.bootstrap], topic=broker.source, required_acks=RequiredAcks.ALL
    ) as writer:
        for base in range(0, count, FILL_CALL):
            calls = min(FILL_CALL, count - base)
            await writer.write_messages(
                *[Message(key=KEYS[(base + j) % 1000], value=value) for j in range(calls)]
            )
    return count / (time.perf_counter() - start), len(source.partitions)


async def try_aiokafka_transactions(broker: Broker) -> str | None:
    """Start aiokafka's transactional producer and commit one empty transaction; return
    None if that worked, or what failed."""
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap, transactional_id=f"bench-probe-{uuid.uuid4().hex}"
    )
    try:
        async with asyncio.timeout(30):
            await producer.start()
            async with producer.transaction():
                pass
    except (KafkaError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await producer.stop()
    return None


async def bench_broker(
    broker: Broker, counts: Counts, runs: int, names: list[str]
) -> BrokerResults:
    print(f"broker: {broker.kind}, {broker.bootstrap}", flush=True)
    t0 = time.perf_counter()
    fill_rate, partitions = await prepare(broker, counts.inputs)
    step(f"{broker.kind}: fill", t0)
    failure = None
    if AIOKAFKA_EOS in names:
        failure = await try_aiokafka_transactions(broker)
        if failure is not None:
            names = [name for name in names if name != AIOKAFKA_EOS]
    results = BrokerResults(
        broker=broker,
        contenders=names,
        fill_rate=fill_rate,
        partitions=partitions,
        aiokafka_transactions=failure,
    )
    t0 = time.perf_counter()
    for name in names:
        async with asyncio.timeout(RUN_TIMEOUT):
            await CONTENDERS[name](broker, counts.warmup)
    step(f"{broker.kind}: warm-up", t0)
    t0 = time.perf_counter()
    for run in range(runs):
        for name in rotated(names, run):
            gc.collect()
            async with asyncio.timeout(RUN_TIMEOUT):
                results.add(name, await CONTENDERS[name](broker, counts.inputs))
    step(f"{broker.kind}: runs", t0)
    return results


def topic_names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"bench-transform-in-{tag}", f"bench-transform-out-{tag}"


@asynccontextmanager
async def embedded_broker() -> AsyncIterator[Broker]:
    """The embedded Tansu broker (`aiomq.testing.EmbeddedBroker`), in memory."""
    from aiomq.testing import EmbeddedBroker

    source, sink = topic_names()
    async with EmbeddedBroker() as broker:
        yield Broker(kind=TANSU, bootstrap=broker.bootstrap_servers, source=source, sink=sink)


@asynccontextmanager
async def mock_cluster() -> AsyncIterator[Broker]:
    """librdkafka's mock cluster, one broker, group joins without the initial delay."""
    from tests.support.mock_cluster import MockCluster

    source, sink = topic_names()
    with MockCluster(1) as cluster:
        cluster.set_group_initial_rebalance_delay_ms(0)
        for topic in (source, sink):
            cluster.create_topic(topic, partitions=PARTITIONS, replication_factor=1)
        yield Broker(
            kind=MOCK,
            bootstrap=cluster.bootstrap_servers,
            source=source,
            sink=sink,
            has_topics=True,
        )


ALL = [AIOMQ_ALO, AIOKAFKA_ALO, AIOMQ_EOS, AIOKAFKA_EOS]


async def run(bootstrap: str | None, counts: Counts, runs: int) -> dict[str, Any]:
    began = time.perf_counter()
    brokers = []
    if bootstrap is not None:
        source, sink = topic_names()
        external = Broker(kind=EXTERNAL, bootstrap=bootstrap, source=source, sink=sink)
        brokers.append(await bench_broker(external, counts, runs, ALL))
    else:
        async with embedded_broker() as broker:
            brokers.append(await bench_broker(broker, counts, runs, ALL))
        async with mock_cluster() as broker:
            brokers.append(await bench_broker(broker, counts, runs, ALL))
    return {"brokers": brokers, "seconds": time.perf_counter() - began}


# -- reporting ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class RowSpec:
    """A line of the table: one contender against another on the same broker."""

    key: str
    name: str
    a: str
    b: str


ROWS = (
    RowSpec(key="alo", name="1. at least once", a=AIOMQ_ALO, b=AIOKAFKA_ALO),
    RowSpec(key="eos", name="2. exactly once", a=AIOMQ_EOS, b=AIOKAFKA_EOS),
    RowSpec(
        key="eos_vs_alo_baseline",
        name="3. aiomq exactly once vs aiokafka at least once",
        a=AIOMQ_EOS,
        b=AIOKAFKA_ALO,
    ),
    RowSpec(
        key="eos_cost", name="4. aiomq exactly once vs at least once", a=AIOMQ_EOS, b=AIOMQ_ALO
    ),
)


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} msg/s"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f} ms"


def print_table(all_results: list[BrokerResults], runs: int) -> None:
    headers = [
        f"broker / scenario (median of {runs} runs)",
        "first",
        "second",
        "ratio",
        "per-run ratios",
        "batch-time ratio",
    ]
    lines = []
    for results in all_results:
        for spec in ROWS:
            if spec.a not in results.contenders or spec.b not in results.contenders:
                continue
            ratio = results.ratio(spec.a, spec.b)
            per_run = results.run_ratios(spec.a, spec.b)
            steady = results.steady_ratio(spec.a, spec.b)
            lines.append(
                [
                    f"{results.broker.kind}: {spec.name}",
                    fmt_rate(results.median(spec.a)),
                    fmt_rate(results.median(spec.b)),
                    "-" if ratio is None else f"{ratio:.2f}x",
                    f"{min(per_run):.2f}-{max(per_run):.2f}" if per_run else "-",
                    "-" if steady is None else f"{steady:.2f}x",
                ]
            )
    widths = [max(len(r[i]) for r in [headers, *lines]) for i in range(len(headers))]

    def render(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    print(render(headers))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(render(line))
    print()
    for spec in ROWS:
        print(f"  {spec.name}: first {spec.a}  vs  second {spec.b}")
    print(
        "  ratio: first over second, inputs per second from assignment to the last commit; "
        "above 1, the first is faster"
    )
    print(
        "  batch-time ratio: second's median time from one commit to the next over the "
        "first's, leaving out the first fetch and the end of the input; above 1, the first is "
        "faster"
    )


def print_brokers(all_results: list[BrokerResults], counts: Counts) -> None:
    for results in all_results:
        broker = results.broker
        print(
            f"{broker.kind}: input topic of {counts.inputs:,} messages in {results.partitions} "
            f"partitions, written at {results.fill_rate:,.0f} msg/s"
        )
        if results.partitions != PARTITIONS:
            print(f"  note: not the {PARTITIONS} partitions the figures are usually quoted with")
        if results.aiokafka_transactions is not None:
            print(
                "  aiokafka's transactional producer cannot start here, so its exactly-once "
                "loop does not run (aiokafka asks for its producer id with InitProducerId v0, "
                f"the only version it has; the broker answered {results.aiokafka_transactions})"
            )
        for name in results.contenders:
            timings = results.timings.get(name, [])
            short = [t for t in timings if t.inputs < counts.inputs or t.outputs != t.inputs]
            batches = statistics.median(t.batches for t in timings) if timings else 0
            interval = results.interval(name)
            print(
                f"  {name}: median {fmt_rate(results.median(name))}; {batches:g} batches a "
                f"run, {fmt_ms(interval)} from one commit to the next"
                + (
                    f"; {len(short)} runs with fewer inputs or outputs than expected"
                    if short
                    else ""
                )
            )


def main(argv: list[str] | None = None) -> int:
    args, runs = parse_options(
        "bench/transform.py",
        "Benchmark aiomq.transform against a hand-written aiokafka consume-transform-produce loop.",
        "smaller counts, 3 runs (~15 s)",
        argv,
    )
    counts = QUICK_COUNTS if args.quick else DEFAULT_COUNTS

    command = start_report()
    print(
        f"settings: {counts.inputs:,} inputs of {VALUE_SIZE} B, keys b'key-<i % 1000>', "
        f"{PARTITIONS} partitions in and out; one output per input (value upper-cased, same "
        f"key); acks=all; {runs} runs per contender (order rotates each run) after a "
        f"warm-up of {counts.warmup:,} inputs each; every run a fresh consumer group from "
        "offset 0; the clock runs from the group's assignment to the last input's commit"
    )
    print(
        f"  aiomq: transform(batch_size={BATCH}, max_wait={BATCH_WAIT:g}), Reader "
        f"queue_capacity {BATCH}, Writer defaults (batch_size 1000, batch_timeout 0); "
        "exactly once: Writer(transactional_id=...), Reader isolation_level READ_COMMITTED"
    )
    print(
        f"  aiokafka: getmany(max_records={BATCH}), max_poll_records {BATCH}; send() per "
        "output, flush(), commit(); linger_ms 0; exactly once: "
        "AIOKafkaProducer(transactional_id=...), begin_transaction, send, "
        "send_offsets_to_transaction, commit_transaction, isolation_level read_committed"
    )
    print(
        f"  both: session timeout {SESSION_TIMEOUT:g} s, heartbeat {HEARTBEAT_INTERVAL:g} s, "
        f"fetch wait {FETCH_WAIT:g} s (the defaults are 0.5 s: see bench/README.md), "
        f"{MAX_BYTES // 1_048_576} MiB per partition fetch"
    )
    sys.stdout.flush()

    try:
        outcome = asyncio.run(run(args.bootstrap_servers, counts, runs))
    except (aiomq.Error, KafkaError, OSError) as exc:
        print(f"error: the benchmark could not run: {exc!r}", file=sys.stderr)
        return 1
    all_results: list[BrokerResults] = outcome["brokers"]
    print()
    print_brokers(all_results, counts)
    print()
    print_table(all_results, runs)
    print(f"total {outcome['seconds']:.0f} s")

    if args.json is not None:
        document = {
            "command": command,
            "python": platform.python_version(),
            "aiokafka": aiokafka.__version__,
            "aiomq": aiomq.__version__,
            "runs": runs,
            "counts": {"inputs": counts.inputs, "warmup": counts.warmup},
            "brokers": [
                {
                    "kind": results.broker.kind,
                    "bootstrap_servers": results.broker.bootstrap,
                    "partitions": results.partitions,
                    "fill_msg_per_s": results.fill_rate,
                    "aiokafka_transactions_failure": results.aiokafka_transactions,
                    "rows": {
                        spec.key: {
                            "name": spec.name,
                            "first": spec.a,
                            "second": spec.b,
                            "ratio": results.ratio(spec.a, spec.b),
                            "run_ratios": results.run_ratios(spec.a, spec.b),
                            "batch_time_ratio": results.steady_ratio(spec.a, spec.b),
                        }
                        for spec in ROWS
                        if spec.a in results.contenders and spec.b in results.contenders
                    },
                    "contenders": {
                        name: {
                            "median_msg_per_s": results.median(name),
                            "median_commit_interval_s": results.interval(name),
                            "runs": [
                                {
                                    "inputs": t.inputs,
                                    "outputs": t.outputs,
                                    "batches": t.batches,
                                    "seconds": t.seconds,
                                    "commit_interval_s": t.commit_interval,
                                }
                                for t in timings
                            ],
                        }
                        for name, timings in results.timings.items()
                    },
                }
                for results in all_results
            ],
            "seconds": outcome["seconds"],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
