"""The soak run: writers and a consumer group at work while the network fails at random.

Behind the embedded broker's fault proxy, for a few minutes:

- a synchronous writer and an async-mode writer write keyed messages (each key numbers
  its messages, so order and duplicates can be told apart);
- two group readers fetch batches and commit them explicitly, partition by partition,
  while a third member keeps joining the group, reading a while and leaving;
- the proxy cuts, blackholes, delays or slows the network at moments drawn from the
  seed, between healthy spells.

Every call is timed against the deadline its documentation promises. Then the network
heals, the readers drain the topic and everything closes; `tests.support.soak_ledger`
checks what was recorded. The seed decides the fault schedule and each client's
workload, so a failing seed replays the same storm (the interleaving, driven by real
time, varies a little): `scripts/soak --minutes 10 --seed 1234`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import random
import resource
import sys
import time
import tracemalloc
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

from aiomq import (
    Client,
    CommitError,
    Dialer,
    Error,
    Message,
    Reader,
    TopicSpec,
    WriteErrors,
    Writer,
)
from aiomq.testing import EmbeddedBroker, FaultProxy
from tests.support.soak_ledger import (
    CONFIRMED,
    FAILED,
    STALE,
    Findings,
    Ledger,
    MessageId,
    Read,
    Sent,
    check,
    decode,
    encode,
)
from tests.support.waiting import wait_until

__all__ = ["SEED_ENV", "SoakSettings", "figures", "main", "run", "soak"]

T = TypeVar("T")

SEED_ENV: Final = "AIOMQ_SOAK_SEED"
"""The environment variable that gives the soak test its seed, to replay a failure."""

_DRAIN_DEADLINE: Final = 60.0
# After the last acknowledged message is read, how long the readers go on, to catch late
# duplicates and re-reads.
_QUIET: Final = 2.0
# Past its bound, a call is reported; past this much more, it is abandoned as hung.
_ABANDON_AFTER: Final = 30.0
_MEMORY_FILTERS: Final = (
    tracemalloc.Filter(True, "*/aiomq/*"),
    tracemalloc.Filter(True, "*/aiokafka/*"),
)


_WRITERS: Final = 2  # the sync writer is number 0, the async-mode writer number 1


class _OwnPartitions:
    """Keeps one writer's keys on partitions no other writer writes to.

    The embedded broker can answer a fetch with a batch appended to a partition after
    another that it leaves out, when two producers append to that partition at the same
    moment: a reader of the log, aiokafka's own consumer as well, then passes over records
    the log holds (docs/testing.md). That would read here as messages aiomq lost. With one
    writer a partition, appends to a partition overlap only when a request that timed out
    still lands beside its retry.
    """

    def __init__(self, number: int, writers: int) -> None:
        self._number = number
        self._writers = writers

    def balance(self, message: Message, partitions: Sequence[int], /) -> int:
        own = [p for p in partitions if p % self._writers == self._number] or list(partitions)
        return own[zlib.crc32(message.key or b"") % len(own)]


@dataclass(frozen=True, kw_only=True)
class SoakSettings:
    """How long, how hard and with which client settings a soak runs."""

    seed: int
    duration: float = 100.0
    """Seconds of load and faults; draining and closing come on top."""
    partitions: int = 4
    keys: int = 16
    """Keys per writer."""
    write_timeout: float = 1.5
    max_attempts: int = 6
    backoff_max: float = 0.4
    commit_timeout: float = 1.5
    close_timeout: float = 5.0
    session_timeout: float = 3.0
    open_timeout: float = 10.0
    """The readers' dialer timeout, which bounds opening."""
    slack: float = 1.0
    """Seconds a call may take beyond its documented deadline on a busy two-core machine."""
    memory_limit: int = 1024 * 1024
    """Bytes aiomq and aiokafka may hold at the end beyond what they held warmed up."""

    @property
    def write_bound(self) -> float:
        """What one synchronous write may take: the metadata look-up, then each attempt
        (connecting and the request, each within `write_timeout`) and its backoff and
        metadata refresh (each within `write_backoff_max`)."""
        attempt = 2 * self.write_timeout + 2 * self.backoff_max
        return self.write_timeout + self.max_attempts * attempt + self.slack


class _Events:
    """A structlog-shaped logger that hands each event a client logs to `sink`."""

    def __init__(self, sink: Callable[[str, dict[str, Any]], None], **context: Any) -> None:
        self._sink = sink
        self._context = context

    def bind(self, **context: Any) -> _Events:
        return _Events(self._sink, **{**self._context, **context})

    def _log(self, event: str, *args: Any, **fields: Any) -> None:
        self._sink(event, {**self._context, **fields})

    debug = info = warning = warn = error = critical = exception = msg = _log


class _Soak:
    """One run: the clients, the fault schedule, and the ledger they fill."""

    def __init__(self, proxy: FaultProxy, servers: list[str], settings: SoakSettings) -> None:
        self.proxy = proxy
        self.servers = servers
        self.settings = settings
        self.ledger = Ledger(memory_limit=settings.memory_limit)
        self.loop = asyncio.get_running_loop()
        self.end = self.loop.time() + settings.duration
        self.topic = f"soak-{settings.seed}"
        self.group = f"soak-{settings.seed}"
        self.stop_reading = asyncio.Event()
        self.unsettled = 0
        self.warm: tracemalloc.Snapshot | None = None
        self.started_tracing = False

    def rng(self, role: str) -> random.Random:
        return random.Random(f"{self.settings.seed}:{role}")

    async def timed(self, what: str, bound: float, call: Awaitable[T]) -> T:
        """Await `call`, noting how long it took against `bound`; give up on it as hung
        well past the bound."""
        start = self.loop.time()
        try:
            async with asyncio.timeout(bound + _ABANDON_AFTER):
                return await call
        finally:
            self.ledger.timed(what, self.loop.time() - start, bound)

    def _count(self, event: str, fields: dict[str, Any]) -> None:
        self.ledger.counts[event] += 1

    def _past(self, moment: float) -> bool:
        return self.loop.time() >= moment

    def unexpected(self, role: str, exc: BaseException) -> None:
        self.ledger.errors.append(f"{role}: {exc!r}")

    # -- faults ---------------------------------------------------------------------------

    async def faults(self) -> None:
        """Healthy spells of 1-4 s, each followed by one fault held for a while."""
        rng = self.rng("faults")
        s = self.settings
        proxy = self.proxy
        try:
            while True:
                await asyncio.sleep(rng.uniform(1.0, 4.0))
                if self.loop.time() >= self.end:
                    return
                kind = rng.choice(["cut", "blackhole", "blackhole", "delay", "slow"])
                if kind == "cut":
                    proxy.cut()
                    hold = rng.uniform(0.2, 2.0)
                elif kind == "blackhole":
                    proxy.blackhole()
                    # Often past write_timeout and commit_timeout, sometimes far past.
                    hold = rng.uniform(0.3, 2.5 * s.write_timeout)
                elif kind == "delay":
                    proxy.delay(rng.uniform(0.02, 0.3))
                    hold = rng.uniform(1.0, 4.0)
                else:
                    # Round trips past write_timeout: requests time out, then land.
                    proxy.delay(rng.uniform(0.55, 1.0) * s.write_timeout)
                    hold = rng.uniform(1.0, 3.0)
                self.ledger.faults[kind] += 1
                await asyncio.sleep(hold)
                proxy.heal()
        finally:
            proxy.heal()

    # -- writers --------------------------------------------------------------------------

    def _writer(self, number: int, **options: Any) -> Writer:
        s = self.settings
        ledger = self.ledger

        def on_event(event: str, fields: dict[str, Any]) -> None:
            if event == "write_retried":
                ledger.retries.append((number, fields["partition"], self.loop.time()))
            ledger.counts[event] += 1

        return Writer(
            brokers=self.servers,
            topic=self.topic,
            balancer=_OwnPartitions(number, _WRITERS),
            write_timeout=s.write_timeout,
            max_attempts=s.max_attempts,
            write_backoff_min=0.05,
            write_backoff_max=s.backoff_max,
            close_timeout=s.close_timeout,
            logger=_Events(on_event),
            **options,
        )

    def _batch(self, number: int, rng: random.Random, seqs: list[int]) -> list[MessageId]:
        ids: list[MessageId] = []
        for _ in range(rng.randint(1, 12)):
            key = rng.randrange(self.settings.keys)
            seqs[key] += 1
            ids.append((number, key, seqs[key]))
        now = self.loop.time()
        for message_id in ids:
            self.ledger.sent[message_id] = Sent(accepted_at=now)
        return ids

    async def sync_writer(self) -> None:
        number = 0
        rng = self.rng("sync writer")
        seqs = [0] * self.settings.keys
        s = self.settings
        ledger = self.ledger
        writer = self._writer(number)
        try:
            await self.timed("writer open", s.open_timeout + s.slack, writer.__aenter__())
            while self.loop.time() < self.end:
                ids = self._batch(number, rng, seqs)
                messages = [Message(key=k, value=v) for k, v in map(encode, ids)]
                try:
                    written: list[Message | None] = list(
                        await self.timed(
                            "write (sync)", s.write_bound, writer.write_messages(*messages)
                        )
                    )
                except WriteErrors as exc:
                    written = exc.written
                except Error:
                    written = [None] * len(ids)
                now = self.loop.time()
                for message_id, result in zip(ids, written, strict=True):
                    sent = ledger.sent[message_id]
                    sent.settled_at = now
                    if result is None:
                        sent.failed = True
                    else:
                        sent.acked = True
                        sent.place = _place(result)
                await asyncio.sleep(rng.uniform(0.0, 0.04))
        except Exception as exc:
            self.unexpected("sync writer", exc)
        finally:
            await self._close_writer(number, writer)

    async def _close_writer(self, number: int, writer: Writer) -> None:
        s = self.settings
        await self.timed("writer close", s.close_timeout + s.slack, writer.aclose())
        # The duplicates are explained by the retries logged: the stats must agree.
        logged = sum(1 for n, _partition, _at in self.ledger.retries if n == number)
        counted = writer.stats().retries
        if logged != counted:
            self.ledger.errors.append(
                f"writer {number} logged {logged} retries and counted {counted} in its stats"
            )

    async def async_writer(self) -> None:
        number = 1
        rng = self.rng("async writer")
        seqs = [0] * self.settings.keys
        s = self.settings
        ledger = self.ledger

        def completion(messages: list[Message], error: Error | None) -> None:
            now = self.loop.time()
            self.unsettled -= len(messages)
            for message in messages:
                sent = ledger.sent[decode(message.value)]
                sent.settled_at = now
                if error is None:
                    sent.acked = True
                    sent.place = _place(message)
                else:
                    sent.failed = True

        writer = self._writer(number, async_mode=True, completion=completion)
        try:
            await self.timed("writer open", s.open_timeout + s.slack, writer.__aenter__())
            while self.loop.time() < self.end:
                if self.unsettled > 2000:
                    # The soak's own pacing: an outage is no reason to queue without end.
                    await asyncio.sleep(0.05)
                    continue
                ids = self._batch(number, rng, seqs)
                messages = [Message(key=k, value=v) for k, v in map(encode, ids)]
                try:
                    # Queuing waits for metadata at most, never for delivery.
                    await self.timed(
                        "write (async)", s.write_timeout + s.slack, writer.write_messages(*messages)
                    )
                    self.unsettled += len(ids)
                except Error:
                    for message_id in ids:
                        ledger.sent[message_id].failed = True
                await asyncio.sleep(rng.uniform(0.0, 0.04))
        except Exception as exc:
            self.unexpected("async writer", exc)
        finally:
            await self._close_writer(number, writer)

    # -- readers --------------------------------------------------------------------------

    def _reader(self) -> Reader:
        s = self.settings
        return Reader(
            brokers=self.servers,
            topic=self.topic,
            group_id=self.group,
            session_timeout=s.session_timeout,
            heartbeat_interval=s.session_timeout / 6,
            rebalance_timeout=s.session_timeout,
            max_wait=0.1,
            commit_timeout=s.commit_timeout,
            close_timeout=s.close_timeout,
            dialer=Dialer(timeout=s.open_timeout),
            logger=_Events(self._count),
        )

    async def read(self, name: str, reader: Reader, until: Callable[[], bool]) -> None:
        """Fetch and commit, partition by partition, until `until()` holds."""
        ledger = self.ledger
        s = self.settings
        open_reads: defaultdict[int, list[Read]] = defaultdict(list)
        while not until():
            try:
                batch = await asyncio.wait_for(reader.fetch_batch(200), 0.5)
            except TimeoutError:
                continue
            now = self.loop.time()
            last: dict[int, Message] = {}
            for message in batch:
                partition, offset = _place(message)
                entry = ledger.read(name, now, partition, offset, message.value)
                open_reads[message.partition].append(entry)
                last[message.partition] = message
            ledger.counts["messages read"] += len(batch)
            for partition, message in sorted(last.items()):
                stale = reader.stats().stale_commits
                try:
                    await self.timed(
                        "commit", s.commit_timeout + s.slack, reader.commit_messages(message)
                    )
                except CommitError:
                    ledger.counts["commits failed"] += 1
                    for entry in open_reads[partition]:
                        entry.commit = FAILED
                    continue
                if reader.stats().stale_commits > stale:
                    ledger.counts["commits dropped as stale"] += 1
                    for entry in open_reads[partition]:
                        entry.commit = STALE
                    continue
                ledger.counts["commits"] += 1
                confirmed = self.loop.time()
                still_open = []
                for entry in open_reads[partition]:
                    if entry.offset <= message.offset:
                        entry.commit = CONFIRMED
                        entry.confirmed_at = confirmed
                    else:
                        still_open.append(entry)
                open_reads[partition] = still_open

    async def steady_reader(self, name: str) -> None:
        s = self.settings
        reader = self._reader()
        try:
            await self.timed("reader open", s.open_timeout + s.slack, reader.__aenter__())
            await self.read(name, reader, self.stop_reading.is_set)
        except Exception as exc:
            self.unexpected(name, exc)
        finally:
            await self._close_reader(reader)

    async def _close_reader(self, reader: Reader) -> None:
        s = self.settings
        try:
            # Documented: close_timeout, plus a second to release the connections.
            await self.timed("reader close", s.close_timeout + 1.0 + s.slack, reader.aclose())
        except CommitError:
            self.ledger.counts["final flushes failed"] += 1

    async def churner(self) -> None:
        """A member that joins the group, reads for 2-6 s and leaves, again and again."""
        rng = self.rng("churner")
        s = self.settings
        joined = 0
        while True:
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            if self.loop.time() >= self.end:
                return
            stay = rng.uniform(2.0, 6.0)
            reader = self._reader()
            try:
                await self.timed("reader open", s.open_timeout + s.slack, reader.__aenter__())
            except Error:
                self.ledger.counts["joins failed"] += 1
                continue
            joined += 1
            self.ledger.counts["joins"] += 1
            leave_at = self.loop.time() + stay
            try:
                await self.read(f"joiner-{joined}", reader, partial(self._past, leave_at))
            except Exception as exc:
                self.unexpected(f"joiner-{joined}", exc)
            finally:
                await self._close_reader(reader)

    # -- the run --------------------------------------------------------------------------

    async def warm_up_memory(self) -> None:
        """A third of the way in, start tracing allocations (if nobody traces them yet):
        what aiomq and aiokafka allocate from then on and still hold at the end is their
        growth. Tracing only from there spares the run a third of tracemalloc's cost."""
        await asyncio.sleep(self.settings.duration / 3)
        if not tracemalloc.is_tracing():
            tracemalloc.start()
            self.started_tracing = True
        self.warm = _snapshot()

    def drained(self) -> Callable[[], bool]:
        """A test of whether every message acknowledged so far has been read at the offset
        its writer was told. A retried batch may have landed twice: a copy read at an
        earlier offset does not count, or the run could end before the readers reach the
        acknowledged one and report it misplaced."""
        placed, sent = self.ledger.placed, self.ledger.sent
        missing = [m for m, s in sent.items() if s.acked and s.place not in placed.get(m, ())]

        def test() -> bool:
            while missing and sent[missing[-1]].place in placed.get(missing[-1], ()):
                missing.pop()
            return not missing

        return test

    async def look_up_lost(self) -> None:
        """For a few acknowledged messages no reader returned, read what the log holds
        at their place, and note who read the places around it: the writer's fault or
        the group's."""
        ledger = self.ledger
        lost = [(m, s.place) for m, s in ledger.sent.items() if s.acked and m not in ledger.placed]
        for message_id, place in lost[:5]:
            assert place is not None
            partition, offset = place
            reader = Reader(brokers=self.servers, topic=self.topic, partition=partition)
            try:
                async with reader:
                    reader.set_offset(offset)
                    async with asyncio.timeout(10.0):
                        found = await reader.fetch_message()
                held = f"{found.offset}: {found.value!r}"
            except (Error, TimeoutError) as exc:
                held = repr(exc)
            around = [
                f"{offset + step}: "
                + ", ".join(
                    f"{r.reader} at {r.at:.1f} ({r.commit})"
                    for r in ledger.reads[partition, offset + step]
                )
                for step in (-1, 1)
            ]
            ledger.lost_details[message_id] = (
                f"(acknowledged at {place}, the log holds {held}; read around it: "
                + "; ".join(around)
                + ")"
            )

    async def run(self) -> None:
        s = self.settings
        async with Client(brokers=self.servers, logger=_Events(self._count)) as admin:
            await admin.create_topics(TopicSpec(name=self.topic, partitions=s.partitions))
        async with asyncio.TaskGroup() as group:
            readers = [group.create_task(self.steady_reader(f"reader-{n}")) for n in range(2)]
            load = [
                group.create_task(role())
                for role in (self.faults, self.sync_writer, self.async_writer, self.churner)
            ]
            memory = group.create_task(self.warm_up_memory())
            await asyncio.gather(*load)
            self.proxy.heal()
            with contextlib.suppress(AssertionError):  # the checks name what is missing
                await wait_until(
                    self.drained(), "every acknowledged message is read", deadline=_DRAIN_DEADLINE
                )
            await asyncio.sleep(_QUIET)
            await self.look_up_lost()
            await memory
            if self.warm is not None:
                final = _snapshot()
                self.ledger.memory_growth = _total(final) - _total(self.warm)
                self.ledger.memory_sites = [
                    str(stat) for stat in final.compare_to(self.warm, "lineno")[:5]
                ]
            self.stop_reading.set()
            await asyncio.gather(*readers)


def _place(message: Message) -> tuple[int, int]:
    # Copies (x + 0 is a new int in CPython), so that the ledger holds ints allocated here
    # and its own growth is not counted as the library's.
    return message.partition + 0, message.offset + 0


def _where(task: asyncio.Task[Any]) -> str:
    """A task's coroutine, and the innermost line it waits at."""
    coro: Any = task.get_coro()
    where = repr(coro)
    while coro is not None and getattr(coro, "cr_frame", None) is not None:
        frame = coro.cr_frame
        where += f" > {frame.f_code.co_name}:{frame.f_lineno}"
        coro = getattr(coro, "cr_await", None)
    return where


def _snapshot() -> tracemalloc.Snapshot:
    """What aiomq and aiokafka hold now, garbage collected first: an exception's traceback
    can keep a fetched batch alive in a reference cycle until the collector runs."""
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(_MEMORY_FILTERS)


def _total(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def soak(broker: EmbeddedBroker, settings: SoakSettings) -> tuple[Ledger, Findings]:
    """Run a soak against `broker` (started with `faults=True`) and check it.

    Returns:
        The ledger of the run and the findings of its checks.
    """
    before = asyncio.all_tasks()
    # aiokafka logs every failed connection and heartbeat, thousands under the faults, and
    # a test runner that keeps log records keeps the connections their exceptions name.
    aiokafka_log = logging.getLogger("aiokafka")
    level = aiokafka_log.level
    aiokafka_log.setLevel(logging.CRITICAL)
    run = _Soak(broker.faults, [broker.bootstrap_servers], settings)
    try:
        await run.run()
    finally:
        aiokafka_log.setLevel(level)
        if run.started_tracing:
            tracemalloc.stop()
    current = asyncio.current_task()
    run.ledger.leftover_tasks = sorted(
        _where(task)
        for task in asyncio.all_tasks() - before
        if task is not current and not task.done()
    )
    return run.ledger, check(run.ledger)


def figures(settings: SoakSettings, ledger: Ledger, findings: Findings) -> str:
    """The run's figures, in one line."""
    counts = ledger.counts
    sent = ledger.sent.values()
    faults = ",".join(f"{kind}:{n}" for kind, n in sorted(ledger.faults.items()))
    read_dups = sum(findings.read_duplicates.values())
    reasons = ",".join(f"{why}:{n}" for why, n in sorted(findings.read_duplicates.items()))
    slowest = ",".join(f"{what}:{t:.1f}s" for what, t in sorted(ledger.slowest.items()))
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (
        f"soak seed={settings.seed} {settings.duration:.0f}s: "
        f"messages={len(ledger.sent)} acked={sum(s.acked for s in sent)} "
        f"failed={sum(s.failed for s in sent)} unacked-landed={findings.unacked_landed} "
        f"read={counts['messages read']} faults={sum(ledger.faults.values())}({faults}) "
        f"retries={len(ledger.retries)} write-dups={findings.write_duplicates} "
        f"explained={findings.write_duplicates_explained} "
        f"read-dups={read_dups} explained={read_dups}({reasons}) "
        f"commits={counts['commits']} commits-failed={counts['commits failed']} "
        f"stale={counts['commits dropped as stale']} revokes={counts['partitions_revoked']} "
        f"joins={counts['joins']} "
        f"joins-failed={counts['joins failed']} hangs={len(ledger.hangs)} "
        f"tasks-left={len(ledger.leftover_tasks)} "
        f"memory-growth={ledger.memory_growth / 1024:.0f}KiB rss-max={rss_mib:.0f}MiB "
        f"slowest={slowest}"
    )


async def run(settings: SoakSettings, out: Callable[[str], None] = print) -> list[str]:
    """Start an embedded broker behind a fault proxy, soak it, and report.

    Returns:
        The problems found; empty when the run kept every promise.
    """
    out(
        f"soak: seed {settings.seed} for {settings.duration:.0f} s; replay with "
        f"scripts/soak --seed {settings.seed} (the test: {SEED_ENV}={settings.seed})"
    )
    async with EmbeddedBroker(faults=True) as broker:
        ledger, findings = await soak(broker, settings)
    out(figures(settings, ledger, findings))
    problems = findings.problems(ledger)
    for problem in problems:
        out(f"soak problem: {problem}")
    return problems


def seed_from_env() -> int:
    """The seed named by `AIOMQ_SOAK_SEED`, or a new one drawn from the clock."""
    named = os.environ.get(SEED_ENV, "").strip()
    return int(named) if named else time.time_ns() % 1_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/soak",
        description="Writers and a consumer group under random network faults, then checked.",
    )
    parser.add_argument("--minutes", type=float, default=2.0, help="minutes of load and faults")
    parser.add_argument("--seed", type=int, default=None, help="replay the run of this seed")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else seed_from_env()
    settings = SoakSettings(seed=seed, duration=args.minutes * 60)
    problems = asyncio.run(run(settings, lambda line: print(line, flush=True)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
