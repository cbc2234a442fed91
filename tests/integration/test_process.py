"""`Reader.process`: concurrent handlers, order per key, retries, dead letters, and commits
that never pass an unfinished message; against the embedded broker."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import structlog

from aiomq import (
    DEAD_LETTER_HEADERS,
    ConfigError,
    Message,
    Order,
    ProcessingError,
    Reader,
    Retry,
    UnknownTopicOrPartitionError,
    Writer,
)
from aiomq.testing import EmbeddedBroker
from tests.integration.test_reader import DEADLINE, group_reader
from tests.integration.test_reader_trust import tasks_of
from tests.integration.test_transactions import brokers, create_topics, group_offsets, unique
from tests.support.processes import child_module, kill_hard
from tests.support.waiting import wait_until

FAST_RETRY = Retry(attempts=3, backoff_min=0.01, backoff_max=0.02)


async def seed(
    bootstrap_servers: str, topic: str, count: int, *, keys: int, keyless_every: int = 0
) -> list[Message]:
    """Write `count` messages, keys spread over `keys` values (every `keyless_every`-th
    without a key), each value its number; return them as written."""
    messages = [
        Message(
            key=None if keyless_every and i % keyless_every == 0 else f"k{i % keys}".encode(),
            value=str(i).encode(),
        )
        for i in range(count)
    ]
    async with Writer(brokers=brokers(bootstrap_servers), topic=topic) as writer:
        return await writer.write_messages(*messages)


def ends_of(written: list[Message]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for m in written:
        ends[m.partition] = max(ends.get(m.partition, -1), m.offset + 1)
    return ends


@contextlib.asynccontextmanager
async def processing(
    reader: Reader, handler: Callable[[Message], Awaitable[None]], **options: Any
) -> AsyncIterator[asyncio.Task[None]]:
    """Run `reader.process` in a task for the body; close the reader after it, and wait
    for the task (which must end by itself then)."""
    task = asyncio.create_task(reader.process(handler, **options))
    try:
        yield task
    finally:
        await reader.aclose()
        async with asyncio.timeout(DEADLINE):
            await asyncio.wait({task})


async def until_committed(
    bootstrap_servers: str,
    group_id: str,
    topic: str,
    ends: dict[int, int],
    task: asyncio.Task[None],
) -> None:
    """Wait until the group has committed `ends` (partitions left out: nothing)."""
    async with asyncio.timeout(DEADLINE):
        while await committed(bootstrap_servers, group_id, topic) != ends:
            assert not task.done(), task
            await asyncio.sleep(0.05)


async def committed(bootstrap_servers: str, group_id: str, topic: str) -> dict[int, int]:
    """The group's committed offsets, of the partitions where it has committed any."""
    offsets = await group_offsets(bootstrap_servers, group_id, topic)
    return {partition: offset for partition, offset in offsets.items() if offset >= 0}


class Recorder:
    """A handler that sleeps a random while, and records what ran and what overlapped."""

    def __init__(self, seed: int, *, latency: float = 0.005, by_partition: bool = False) -> None:
        self.by_partition = by_partition
        self.rng = random.Random(seed)
        self.latency = latency
        self.handled: list[Message] = []
        self.running = 0
        self.most_running = 0
        self.running_per: Counter[Any] = Counter()
        self.most_per: Counter[Any] = Counter()

    def group_of(self, message: Message) -> Any:
        """What must not run beside itself: a key of a partition, or a partition."""
        if self.by_partition:
            return message.partition
        return (message.partition, message.key)

    async def __call__(self, message: Message) -> None:
        group = self.group_of(message)
        self.running += 1
        self.running_per[group] += 1
        self.most_running = max(self.most_running, self.running)
        self.most_per[group] = max(self.most_per[group], self.running_per[group])
        try:
            await asyncio.sleep(self.rng.random() * self.latency)
            self.handled.append(message)
        finally:
            self.running -= 1
            self.running_per[group] -= 1


# -- order and concurrency ----------------------------------------------------------------


async def test_same_key_messages_run_one_after_another_in_offset_order_and_keys_concurrently(
    bootstrap_servers: str, topic: str
) -> None:
    count = 3000
    await create_topics(bootstrap_servers, topic, partitions=3)
    written = await seed(bootstrap_servers, topic, count, keys=40, keyless_every=7)
    group_id = unique("process")
    recorder = Recorder(20261205)
    async with (
        group_reader(bootstrap_servers, topic, group_id) as reader,
        processing(reader, recorder, concurrency=64) as task,
    ):
        await until_committed(bootstrap_servers, group_id, topic, ends_of(written), task)
        stats = reader.stats().processing
        assert stats is not None
        assert (stats.finished, stats.running, stats.waiting) == (count, 0, 0)
    assert task.exception() is None

    assert sorted(int(m.value or b"") for m in recorder.handled) == list(range(count))
    assert 10 < recorder.most_running <= 64  # concurrency is used, and bounded
    assert max(recorder.most_per.values()) == 1  # never two of one key (keyless: per partition)
    by_key: dict[Any, list[int]] = defaultdict(list)
    for m in recorder.handled:
        by_key[(m.partition, m.key)].append(m.offset)
    assert all(offsets == sorted(offsets) for offsets in by_key.values())


@pytest.mark.parametrize("order", [Order.PARTITION, Order.NONE])
async def test_partition_order_runs_each_partition_alone_and_none_lets_a_key_overlap(
    bootstrap_servers: str, topic: str, order: Order
) -> None:
    count = 600
    await create_topics(bootstrap_servers, topic, partitions=2)
    written = await seed(bootstrap_servers, topic, count, keys=30)
    group_id = unique("process")
    recorder = Recorder(7, by_partition=order is Order.PARTITION)
    async with (
        group_reader(bootstrap_servers, topic, group_id) as reader,
        processing(reader, recorder, concurrency=32, order=order) as task,
    ):
        await until_committed(bootstrap_servers, group_id, topic, ends_of(written), task)
    assert len(recorder.handled) == count
    if order is Order.PARTITION:
        assert max(recorder.most_per.values()) == 1
        per_partition: dict[int, list[int]] = defaultdict(list)
        for m in recorder.handled:
            per_partition[m.partition].append(m.offset)
        assert all(offsets == sorted(offsets) for offsets in per_partition.values())
    else:
        assert max(recorder.most_per.values()) > 1  # a key ran beside itself


# -- commits ------------------------------------------------------------------------------


@pytest.mark.parametrize("commit_interval", [0.0, 0.2], ids=["commit-at-once", "commit-interval"])
async def test_no_commit_passes_a_message_still_running(
    bootstrap_servers: str, topic: str, commit_interval: float
) -> None:
    """A handler stuck on one message keeps its partition's commit just below it while
    every other message finishes, but for the later ones of its key, which wait; closing
    the reader cancels it and commits no further."""
    count = 200
    await create_topics(bootstrap_servers, topic, partitions=2)
    written = await seed(bootstrap_servers, topic, count, keys=10)
    stuck = next(m for m in written if m.partition == 0 and m.offset == 5)
    held = [m for m in written if (m.partition, m.key) == (0, stuck.key) and m.offset > 5]
    group_id = unique("process")
    forever = asyncio.Event()

    async def handler(message: Message) -> None:
        if message.offset == stuck.offset and message.partition == 0:
            await forever.wait()

    reader = group_reader(
        bootstrap_servers, topic, group_id, commit_interval=commit_interval, close_timeout=1.0
    )
    async with reader, processing(reader, handler, concurrency=16) as task:
        await wait_until(
            lambda: (
                (s := reader.stats().processing) is not None and s.finished == count - 1 - len(held)
            ),
            "every other message finished",
        )
        ends = ends_of(written)
        await until_committed(bootstrap_servers, group_id, topic, {**ends, 0: 5}, task)
        progress = reader.stats().processing
        assert progress is not None
        assert (progress.running, progress.waiting) == (1, len(held))
        assert [(p.partition, p.finished) for p in progress.partitions] == [(0, 5), (1, ends[1])]
    assert await committed(bootstrap_servers, group_id, topic) == {**ends, 0: 5}


async def test_back_pressure_stops_fetching_at_max_pending(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic, partitions=1)
    await seed(bootstrap_servers, topic, 500, keys=1)
    release = asyncio.Event()

    async def handler(message: Message) -> None:
        await release.wait()

    async with group_reader(bootstrap_servers, topic, unique("process")) as reader:
        async with processing(reader, handler, max_pending=50) as task:
            await wait_until(
                lambda: (s := reader.stats().processing) is not None and s.waiting == 49,
                "fifty messages pending",
            )
            await asyncio.sleep(0.3)  # a fetch that ignored the limit would land meanwhile
            stats = reader.stats().processing
            assert stats is not None
            assert (stats.running, stats.waiting) == (1, 49)
            release.set()
            await wait_until(
                lambda: (s := reader.stats().processing) is not None and s.finished == 500,
                "all finished",
            )
        assert task.exception() is None


# -- failures -----------------------------------------------------------------------------


async def test_a_poison_message_goes_to_the_dead_letter_topic_after_exactly_its_attempts(
    bootstrap_servers: str, topic: str
) -> None:
    dlq = f"{topic}.dlq"
    await create_topics(bootstrap_servers, topic, partitions=2)
    await create_topics(bootstrap_servers, dlq, partitions=1)
    messages = [
        Message(key=f"k{i % 4}".encode(), value=str(i).encode(), headers=[("trace", b"t%d" % i)])
        for i in range(40)
    ]
    async with Writer(brokers=brokers(bootstrap_servers), topic=topic) as writer:
        written = await writer.write_messages(*messages)
    poison = written[13]
    attempts: Counter[int] = Counter()

    class Poisoned(Exception):
        pass

    async def handler(message: Message) -> None:
        if message.value == poison.value:
            attempts[message.offset] += 1
            raise Poisoned("cannot parse order 13")

    group_id = unique("process")
    async with (
        group_reader(bootstrap_servers, topic, group_id) as reader,
        processing(reader, handler, retry=FAST_RETRY, dead_letter=dlq) as task,
    ):
        await until_committed(bootstrap_servers, group_id, topic, ends_of(written), task)
        stats = reader.stats().processing
        assert stats is not None
        assert (stats.retried, stats.dead_lettered, stats.finished) == (2, 1, 40)
    assert attempts == {poison.offset: 3}

    async with Reader(brokers=brokers(bootstrap_servers), topic=dlq, partition=0) as letters:
        async with asyncio.timeout(DEADLINE):
            letter = await letters.fetch_message()
    assert (letter.key, letter.value) == (poison.key, poison.value)
    assert letter.headers[0] == ("trace", b"t13")
    extra = dict(letter.headers[1:])
    assert list(extra) == list(DEAD_LETTER_HEADERS)
    assert extra["aiomq.dlq.topic"] == topic.encode()
    assert extra["aiomq.dlq.partition"] == str(poison.partition).encode()
    assert extra["aiomq.dlq.offset"] == str(poison.offset).encode()
    assert extra["aiomq.dlq.error.type"].endswith(b".Poisoned")
    assert extra["aiomq.dlq.error.message"] == b"cannot parse order 13"
    assert extra["aiomq.dlq.attempts"] == b"3"
    assert extra["aiomq.dlq.first_failure"] <= extra["aiomq.dlq.last_failure"]


async def test_retry_on_chooses_what_is_retried(bootstrap_servers: str, topic: str) -> None:
    await create_topics(bootstrap_servers, topic, partitions=1)
    await seed(bootstrap_servers, topic, 2, keys=2)
    calls: Counter[bytes] = Counter()

    async def handler(message: Message) -> None:
        value = message.value or b""
        calls[value] += 1
        raise (TimeoutError if value == b"0" else KeyError)(value)

    retry = Retry(attempts=4, backoff_min=0.0, backoff_max=0.0, on=TimeoutError)
    async with group_reader(bootstrap_servers, topic, unique("process")) as reader:
        with pytest.raises(ProcessingError) as caught:
            await reader.process(handler, retry=retry, order=Order.NONE)
    failed = caught.value
    # One of them failed first and stopped the run; either way, the attempts match `on`.
    assert failed.attempts == (4 if failed.message.value == b"0" else 1)
    assert calls[b"1"] <= 1


async def test_without_a_dead_letter_topic_a_failure_stops_processing_with_processing_error(
    bootstrap_servers: str, topic: str
) -> None:
    count = 100
    await create_topics(bootstrap_servers, topic, partitions=1)
    written = await seed(bootstrap_servers, topic, count, keys=5)
    poison = written[42]
    group_id = unique("process")
    error = ValueError("bad order")

    async def handler(message: Message) -> None:
        if message.offset == poison.offset:
            raise error

    async with group_reader(bootstrap_servers, topic, group_id) as reader:
        with pytest.raises(ProcessingError) as caught:
            await reader.process(handler, retry=FAST_RETRY)
        assert reader.stats().processing is None
    assert caught.value.message.offset == poison.offset
    assert caught.value.attempts == 3
    assert caught.value.__cause__ is error
    assert f"{topic}[0]@42" in str(caught.value)
    # Everything before it finished and is committed; it and what follows are not.
    assert await committed(bootstrap_servers, group_id, topic) == {0: 42}


async def test_a_dead_letter_topic_that_does_not_exist_is_refused_at_the_start(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic, partitions=1)

    async def handler(message: Message) -> None:
        pass

    async with group_reader(bootstrap_servers, topic, unique("process")) as reader:
        with pytest.raises(UnknownTopicOrPartitionError, match="nowhere"):
            await reader.process(handler, dead_letter=f"{topic}.nowhere")


async def test_a_dead_letter_write_that_fails_stops_processing_with_processing_error(
    bootstrap_servers: str, topic: str
) -> None:
    dlq = f"{topic}.dlq"
    await create_topics(bootstrap_servers, topic, partitions=1)
    await create_topics(bootstrap_servers, dlq, partitions=1)
    await seed(bootstrap_servers, topic, 3, keys=1)

    async def handler(message: Message) -> None:
        raise RuntimeError("always")

    # Every dead letter is larger than this writer's batches may be.
    async with (
        Writer(brokers=brokers(bootstrap_servers), topic=dlq, batch_bytes=64) as tiny,
        group_reader(bootstrap_servers, topic, unique("process")) as reader,
    ):
        with pytest.raises(ProcessingError, match="dead-letter topic failed too") as caught:
            await reader.process(handler, retry=Retry(attempts=1), dead_letter=tiny)
    assert caught.value.message.offset == 0
    assert "MESSAGE_TOO_LARGE" in repr(caught.value.__cause__)


async def test_arguments_that_do_not_fit_are_refused(bootstrap_servers: str, topic: str) -> None:
    await create_topics(bootstrap_servers, topic, partitions=1)

    async def handler(message: Message) -> None:
        pass

    servers = brokers(bootstrap_servers)
    async with (
        Reader(brokers=servers, topic=topic, partition=0) as single,
        group_reader(bootstrap_servers, topic, unique("g")) as reader,
        Writer(brokers=servers) as topicless,
    ):
        with pytest.raises(ConfigError, match="group_id"):
            await single.process(handler)
        bad: list[tuple[dict[str, Any], str]] = [
            ({"concurrency": 0}, "concurrency"),
            ({"order": "key"}, "Order"),
            ({"retry": 3}, "Retry"),
            ({"max_pending": 0}, "max_pending"),
            ({"dead_letter": topicless}, "topic of its own"),
            ({"dead_letter": ""}, "dead_letter"),
        ]
        for options, match in bad:
            with pytest.raises(ConfigError, match=match):
                await reader.process(handler, **options)
    retry_cases: list[tuple[dict[str, Any], str]] = [
        ({"attempts": 0}, "attempts"),
        ({"backoff_min": -1}, "backoff_min"),
        ({"backoff_min": 2, "backoff_max": 1}, "larger"),
        ({"on": 5}, "Retry.on"),
    ]
    for retry_options, match in retry_cases:
        with pytest.raises(ConfigError, match=match):
            Retry(**retry_options)


# -- rebalances, cancellation, crashes ----------------------------------------------------


async def test_a_second_member_joining_mid_run_loses_nothing(
    bootstrap_servers: str, topic: str
) -> None:
    count = 2000
    await create_topics(bootstrap_servers, topic, partitions=4)
    written = await seed(bootstrap_servers, topic, count, keys=30)
    group_id = unique("process")
    first, second = Recorder(1, latency=0.01), Recorder(2, latency=0.01)
    async with (
        group_reader(bootstrap_servers, topic, group_id) as one,
        processing(one, first, concurrency=16) as task_one,
    ):
        await wait_until(lambda: len(first.handled) >= 300, "the first member is under way")
        async with (
            group_reader(bootstrap_servers, topic, group_id) as two,
            processing(two, second, concurrency=16) as task_two,
        ):
            await wait_until(lambda: len(second.handled) > 0, "the second member handles too")
            await until_committed(bootstrap_servers, group_id, topic, ends_of(written), task_two)
        assert not task_one.done()
    handled = Counter(int(m.value or b"") for m in first.handled + second.handled)
    assert set(handled) == set(range(count))  # nothing lost (again at most: at least once)
    assert max(first.most_per.values()) == max(second.most_per.values()) == 1


async def test_cancelling_at_random_moments_loses_nothing_and_commits_nothing_early(
    bootstrap_servers: str, topic: str
) -> None:
    count = 1000
    await create_topics(bootstrap_servers, topic, partitions=2)
    written = await seed(bootstrap_servers, topic, count, keys=20)
    group_id = unique("process")
    rng = random.Random(5)
    finished: set[tuple[int, int]] = set()

    async def handler(message: Message) -> None:
        await asyncio.sleep(rng.random() * 0.01)
        finished.add((message.partition, message.offset))

    for _ in range(6):
        async with group_reader(bootstrap_servers, topic, group_id, close_timeout=1.0) as reader:
            task = asyncio.create_task(reader.process(handler, concurrency=32))
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert reader.stats().processing is None
        committed = await group_offsets(bootstrap_servers, group_id, topic)
        for partition, offset in committed.items():
            # Everything below a commit has finished.
            assert all((partition, o) in finished for o in range(max(offset, 0))), partition
    async with (
        group_reader(bootstrap_servers, topic, group_id) as reader,
        processing(reader, handler) as task,
    ):
        await until_committed(bootstrap_servers, group_id, topic, ends_of(written), task)
    assert len(finished) == count


async def test_a_member_killed_mid_run_is_resumed_without_redoing_what_it_committed(
    bootstrap_servers: str, topic: str
) -> None:
    count = 600
    await create_topics(bootstrap_servers, topic, partitions=2)
    written = await seed(bootstrap_servers, topic, count, keys=12)
    group_id = unique("process")
    before: list[tuple[int, int]] = []
    async with child_module(
        "tests.support.crash_process", bootstrap_servers, topic, group_id
    ) as process:
        assert process.stdout is not None
        async with asyncio.timeout(DEADLINE):
            while len(before) < 200:
                line = await process.stdout.readline()
                assert line, "the crashing member stopped early; its stderr says why"
                partition, offset = map(int, line.split())
                before.append((partition, offset))
        await kill_hard(process)
        async with asyncio.timeout(DEADLINE):
            rest = (await process.stdout.read()).splitlines()
        for line in rest:
            partition, offset = map(int, line.split())
            before.append((partition, offset))
    committed = await group_offsets(bootstrap_servers, group_id, topic)
    assert any(o > 0 for o in committed.values()), committed

    after: list[tuple[int, int]] = []

    async def handler(message: Message) -> None:
        after.append((message.partition, message.offset))

    async with (
        group_reader(bootstrap_servers, topic, group_id) as reader,
        processing(reader, handler) as task,
    ):
        await until_committed(bootstrap_servers, group_id, topic, ends_of(written), task)
    # Nothing finished and committed is handled again; nothing is lost.
    assert all(offset >= max(committed[partition], 0) for partition, offset in after)
    assert {(m.partition, m.offset) for m in written} == set(before) | set(after)


async def test_closing_ends_a_retry_backoff_at_once(bootstrap_servers: str, topic: str) -> None:
    """A message waiting 20 s for its next attempt does not hold the close back: the
    backoff ends when its partition is let go, and the message is left uncommitted."""
    await create_topics(bootstrap_servers, topic, partitions=1)
    await seed(bootstrap_servers, topic, 1, keys=1)
    group_id = unique("process")
    failed = asyncio.Event()

    async def handler(message: Message) -> None:
        failed.set()
        raise ConnectionError("the service is down")

    slow = Retry(attempts=5, backoff_min=20.0, backoff_max=20.0)
    async with group_reader(bootstrap_servers, topic, group_id) as reader:
        task = asyncio.create_task(reader.process(handler, retry=slow))
        async with asyncio.timeout(DEADLINE):
            await failed.wait()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await reader.aclose()
        async with asyncio.timeout(DEADLINE):
            await task
        assert loop.time() - started < 5.0
    assert await committed(bootstrap_servers, group_id, topic) == {}


async def test_a_backlog_of_several_partitions_runs_them_side_by_side(
    bootstrap_servers: str, topic: str
) -> None:
    """A fetch brings a block of one partition at a time. Each partition holds at most
    its share of `max_pending` (its fetching pauses beyond it), so the handlers run on
    every partition at once rather than on one partition's few keys."""
    partitions = 4
    await create_topics(bootstrap_servers, topic, partitions=partitions)
    async with Writer(brokers=brokers(bootstrap_servers), topic=topic) as writer:
        for partition in range(partitions):
            await writer.write_messages(
                *(
                    Message(key=b"k%d" % (i % 8), value=b"%d" % i, partition=partition)
                    for i in range(300)
                )
            )
    running: Counter[int] = Counter()
    most = 0
    finished = 0

    async def handler(message: Message) -> None:
        nonlocal most, finished
        running[message.partition] += 1
        most = max(most, sum(1 for n in running.values() if n))
        await asyncio.sleep(0.002)
        running[message.partition] -= 1
        finished += 1

    reader = group_reader(bootstrap_servers, topic, unique("process"))
    async with reader, processing(reader, handler, concurrency=32, max_pending=100):
        await wait_until(lambda: finished == partitions * 300, "every message handled")
    assert most == partitions


async def test_commits_held_back_by_an_outage_go_through_once_it_ends_and_closing_stays_prompt(
    kafka_faulty_broker: EmbeddedBroker, topic: str
) -> None:
    """Handlers finish while the network is blackholed: their commits fail (counted), are
    tried again after a backoff, and land once the network is back, with no new message
    needed to trigger them. Closing during another outage returns within `close_timeout`
    and leaves no task running."""
    servers = kafka_faulty_broker.bootstrap_servers
    await create_topics(servers, topic, partitions=1)
    await seed(servers, topic, 20, keys=4)
    group_id = unique("process")
    gate = asyncio.Event()

    async def handler(message: Message) -> None:
        if message.offset >= 10:
            await gate.wait()

    before = asyncio.all_tasks()
    reader = group_reader(servers, topic, group_id, commit_timeout=1.0, close_timeout=3.0)
    await reader.__aenter__()
    task = asyncio.create_task(reader.process(handler))
    await until_committed(servers, group_id, topic, {0: 10}, task)
    with structlog.testing.capture_logs() as logs:
        kafka_faulty_broker.faults.blackhole()
        gate.set()
        await wait_until(
            lambda: (s := reader.stats().processing) is not None and s.finished == 20,
            "every message handled",
        )
        # Three failed commits: more than the watermarks that moved in the outage ask for.
        await wait_until(
            lambda: sum(e["event"] == "commit_timed_out" for e in logs) >= 3,
            "commits failed in the outage",
        )
    kafka_faulty_broker.faults.heal()
    await until_committed(servers, group_id, topic, {0: 20}, task)

    kafka_faulty_broker.faults.blackhole()
    try:
        async with asyncio.timeout(3.0 + 2.0):
            await reader.aclose()
            await task
    finally:
        kafka_faulty_broker.faults.heal()
    assert task.exception() is None
    assert tasks_of(before) == []
