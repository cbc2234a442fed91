"""`aiomq.transform`: consume, transform, produce, exactly once or at least once.

On the embedded broker every run here commits or aborts nothing that would show aborted
records, except where a test says so: there, only "at least once" is checked locally, and
"exactly once" against Apache Kafka (which hides aborted records from READ_COMMITTED).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from typing import Any

import pytest

from aiomq import (
    ConfigError,
    IsolationLevel,
    Message,
    Reader,
    TransformStats,
    Writer,
    transform,
)
from tests.integration.test_reader import DEADLINE, group_reader
from tests.integration.test_transactions import (
    brokers,
    committed_reader,
    create_topics,
    group_offsets,
    transactional,
    unique,
    values_until,
    values_within,
)
from tests.support.brokers import external_bootstrap
from tests.support.processes import child_module, kill_hard
from tests.support.waiting import wait_until

PER_PARTITION = 100


async def seed_keyed(bootstrap_servers: str, topic: str, partitions: int, count: int) -> None:
    """`count` messages per partition, three keys per partition, values numbered per key."""
    numbers: Counter[bytes] = Counter()
    messages = []
    for partition in range(partitions):
        for i in range(count):
            key = f"k{partition}-{i % 3}".encode()
            messages.append(
                Message(
                    key=key, value=f"{key.decode()}:{numbers[key]}".encode(), partition=partition
                )
            )
            numbers[key] += 1
    async with Writer(brokers=brokers(bootstrap_servers), topic=topic) as writer:
        await writer.write_messages(*messages)


def upper(message: Message) -> Message:
    assert message.value is not None
    return Message(key=message.key, value=message.value.upper())


def input_reader(bootstrap_servers: str, topic: str, group_id: str, **options: Any) -> Reader:
    return group_reader(
        bootstrap_servers,
        topic,
        group_id,
        **{"isolation_level": IsolationLevel.READ_COMMITTED, **options},
    )


async def run_until_committed(
    reader: Reader, writer: Writer, fn: Any, ends: dict[int, int], **options: Any
) -> TransformStats:
    """Run transform until the group has committed `ends`, then close the reader."""
    task = asyncio.create_task(transform(reader, writer, fn, **options))
    group_id = reader.config.group_id
    assert group_id is not None
    topic = reader.config.topic
    assert topic is not None
    bootstrap = ",".join(reader.config.brokers)
    try:
        await committed_up_to(bootstrap, group_id, topic, ends, task)
    finally:
        await reader.aclose()
    async with asyncio.timeout(DEADLINE):
        return await task


async def committed_up_to(
    bootstrap_servers: str,
    group_id: str,
    topic: str,
    ends: dict[int, int],
    *runs: asyncio.Task[Any],
) -> None:
    """Wait until the group has committed `ends`; fail at once if a run ends first."""
    async with asyncio.timeout(DEADLINE):
        while await group_offsets(bootstrap_servers, group_id, topic) != ends:
            for run in runs:
                assert not run.done(), run
            await asyncio.sleep(0.1)


def check_outputs(outputs: list[bytes], partitions: int, *, exactly_once: bool) -> None:
    """Every input's output is there, per key in input order; once each if `exactly_once`."""
    counts = Counter(outputs)
    expected = {
        f"K{p}-{k}:{n}".encode()
        for p in range(partitions)
        for k in range(3)
        for n in range(len(range(k, PER_PARTITION, 3)))
    }
    assert set(counts) == expected
    if exactly_once:
        assert max(counts.values()) == 1
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for value in dict.fromkeys(outputs):  # first sightings, in order of reading
        key, _, number = value.partition(b":")
        by_key[key].append(int(number))
    for numbers in by_key.values():
        assert numbers == sorted(numbers)


# -- the whole run ------------------------------------------------------------------------


@pytest.mark.parametrize("exactly_once", [True, False], ids=["exactly-once", "at-least-once"])
async def test_every_input_is_transformed_in_key_order_and_committed(
    bootstrap_servers: str, topic: str, exactly_once: bool
) -> None:
    out = f"{topic}.out"
    await create_topics(bootstrap_servers, topic, out)
    await seed_keyed(bootstrap_servers, topic, 2, PER_PARTITION)
    group_id = unique("transform")
    writer = (
        transactional(bootstrap_servers, topic=out)
        if exactly_once
        else Writer(brokers=brokers(bootstrap_servers), topic=out)
    )
    async with writer, input_reader(bootstrap_servers, topic, group_id) as reader:
        stats = await run_until_committed(
            reader, writer, upper, {0: PER_PARTITION, 1: PER_PARTITION}, batch_size=50
        )
    assert stats.messages_read == stats.messages_written == 2 * PER_PARTITION
    assert stats.batches >= 4  # batches of at most 50
    assert stats.batches_dropped == 0
    async with committed_reader(bootstrap_servers, out) as check:
        outputs = await values_within(check, 2.0)
    check_outputs(outputs, 2, exactly_once=True)  # nothing failed: exactly once either way


async def test_the_function_may_be_async_and_return_several_messages_or_none(
    bootstrap_servers: str, topic: str
) -> None:
    out = f"{topic}.out"
    await create_topics(bootstrap_servers, topic, out)
    await seed_keyed(bootstrap_servers, topic, 1, 30)

    async def fan(message: Message) -> list[Message] | None:
        await asyncio.sleep(0)
        assert message.value is not None
        if message.offset % 2:
            return None
        return [
            Message(key=message.key, value=message.value + b"/a"),
            Message(key=message.key, value=message.value + b"/b"),
        ]

    async with (
        transactional(bootstrap_servers, topic=out) as writer,
        input_reader(bootstrap_servers, topic, unique("transform")) as reader,
    ):
        stats = await run_until_committed(reader, writer, fan, {0: 30, 1: -1})
    assert (stats.messages_read, stats.messages_written) == (30, 30)
    async with committed_reader(bootstrap_servers, out) as check:
        outputs = await values_within(check, 2.0)
    # Each even input gives two outputs, in order: same key, same partition.
    expected = [f"k0-{i % 3}:{i // 3}/{half}".encode() for i in range(0, 30, 2) for half in "ab"]
    assert sorted(outputs) == sorted(expected)
    first_key = [v for v in outputs if v.startswith(b"k0-0:")]
    assert first_key == [v for v in expected if v.startswith(b"k0-0:")]


# -- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("exactly_once", [True, False], ids=["exactly-once", "at-least-once"])
async def test_a_failing_function_ends_the_run_with_its_error_and_commits_nothing_of_its_batch(
    bootstrap_servers: str, topic: str, exactly_once: bool
) -> None:
    out = f"{topic}.out"
    await create_topics(bootstrap_servers, topic, out)
    await seed_keyed(bootstrap_servers, topic, 1, 40)
    group_id = unique("transform")

    class Poison(Exception):
        pass

    def fn(message: Message) -> Message:
        if message.offset == 25:
            raise Poison(message.offset)
        return upper(message)

    writer = (
        transactional(bootstrap_servers, topic=out)
        if exactly_once
        else Writer(brokers=brokers(bootstrap_servers), topic=out)
    )
    async with writer, input_reader(bootstrap_servers, topic, group_id) as reader:
        with pytest.raises(Poison):
            await transform(reader, writer, fn, batch_size=10, max_wait=1.0)
    committed = (await group_offsets(bootstrap_servers, group_id, topic))[0]
    assert 0 <= committed <= 25
    async with committed_reader(bootstrap_servers, out) as check:
        outputs = await values_within(check, 2.0)
    # The outputs of exactly the committed inputs, nothing of the failed batch.
    assert len(outputs) == committed


def wrong(message: Message) -> Any:
    return b"oops"


async def test_a_function_returning_something_else_than_messages_is_refused_by_name(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic, f"{topic}.out")
    await seed_keyed(bootstrap_servers, topic, 1, 1)
    async with (
        transactional(bootstrap_servers, topic=f"{topic}.out") as writer,
        input_reader(bootstrap_servers, topic, unique("transform")) as reader,
    ):
        with pytest.raises(ConfigError, match=rf"{topic}\[0\]@0 it returned b'oops'"):
            await transform(reader, writer, wrong)


async def test_arguments_that_do_not_fit_are_refused(bootstrap_servers: str, topic: str) -> None:
    await create_topics(bootstrap_servers, topic)
    servers = brokers(bootstrap_servers)
    async with (
        transactional(bootstrap_servers, topic=topic) as txn_writer,
        Writer(brokers=servers, topic=topic) as plain,
        Writer(brokers=servers, topic=topic, async_mode=True) as async_writer,
        Reader(brokers=servers, topic=topic, partition=0) as single,
        input_reader(bootstrap_servers, topic, unique("g")) as committed,
        group_reader(bootstrap_servers, topic, unique("g")) as uncommitted,
    ):
        cases: list[tuple[Reader, Writer, dict[str, Any], str]] = [
            (single, plain, {}, "group_id"),
            (committed, plain, {"exactly_once": True}, "transactional_id"),
            (committed, txn_writer, {"exactly_once": False}, "exactly_once=True"),
            (uncommitted, txn_writer, {}, "READ_COMMITTED"),
            (committed, async_writer, {}, "async_mode=False"),
            (committed, plain, {"batch_size": 0}, "batch_size"),
            (committed, plain, {"max_wait": -1}, "max_wait"),
        ]
        for reader, writer, options, match in cases:
            with pytest.raises(ConfigError, match=match):
                await transform(reader, writer, upper, **options)


# -- cancellation, rebalances, crashes ----------------------------------------------------


async def test_cancelling_ends_the_run_and_a_new_run_goes_on_where_it_stopped(
    bootstrap_servers: str, topic: str
) -> None:
    out = f"{topic}.out"
    await create_topics(bootstrap_servers, topic, out)
    await seed_keyed(bootstrap_servers, topic, 2, PER_PARTITION)
    group_id = unique("transform")
    seen = 0

    async def slow(message: Message) -> Message:
        nonlocal seen
        seen += 1
        await asyncio.sleep(0.002)
        return upper(message)

    async with transactional(bootstrap_servers, topic=out) as writer:
        async with input_reader(bootstrap_servers, topic, group_id) as reader:
            task = asyncio.create_task(transform(reader, writer, slow, batch_size=20))
            await wait_until(lambda: seen >= 50, "fifty inputs transformed")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not writer._transactions.is_open  # type: ignore[union-attr]
        async with input_reader(bootstrap_servers, topic, group_id) as reader:
            await run_until_committed(
                reader, writer, upper, {0: PER_PARTITION, 1: PER_PARTITION}, batch_size=20
            )
    async with committed_reader(bootstrap_servers, out) as check:
        outputs = await values_until(check, {f"K{p}-0:0".encode() for p in range(2)} | {b"K1-0:33"})
        outputs += await values_within(check, 2.0)
    check_outputs(outputs, 2, exactly_once=external_bootstrap() is not None)


async def test_a_rebalance_waits_for_the_batch_under_way_to_commit(
    bootstrap_servers: str, topic: str
) -> None:
    """The first member takes a whole batch of both partitions and works on it slowly; a
    second member joins meanwhile. The rebalance waits for the batch: it commits whole,
    with the generation it was read in, and nothing is dropped or read twice."""
    out = f"{topic}.out"
    await create_topics(bootstrap_servers, topic, out)
    await seed_keyed(bootstrap_servers, topic, 2, 10)
    group_id = unique("transform")
    working = asyncio.Event()

    async def slow(message: Message) -> Message:
        working.set()
        await asyncio.sleep(0.1)
        return upper(message)

    async with (
        transactional(bootstrap_servers, topic=out) as first_writer,
        transactional(bootstrap_servers, topic=out) as second_writer,
        input_reader(bootstrap_servers, topic, group_id) as first,
    ):
        await wait_until(lambda: len(first.assignment()) == 2, "the first member owns both")
        first_run = asyncio.create_task(
            transform(first, first_writer, slow, batch_size=20, max_wait=0.5)
        )
        async with asyncio.timeout(DEADLINE):
            await working.wait()
        async with input_reader(bootstrap_servers, topic, group_id) as second:
            second_run = asyncio.create_task(transform(second, second_writer, upper))
            await wait_until(lambda: len(second.assignment()) == 1, "the second member joined")
            await wait_until(lambda: first_run.done() or len(first.assignment()) == 1, "rebalanced")
            await committed_up_to(bootstrap_servers, group_id, topic, {0: 10, 1: 10}, second_run)
        await first.aclose()
        first_stats = await first_run
        second_stats = await second_run
    assert first_stats.messages_read == 20, first_stats
    assert first_stats.batches_dropped == 0
    assert second_stats.messages_read == 0
    async with committed_reader(bootstrap_servers, out) as check:
        outputs = await values_within(check, 2.0)
    inputs = await _inputs(bootstrap_servers, topic)
    assert sorted(outputs) == sorted(upper(m).value or b"" for m in inputs)


async def _inputs(bootstrap_servers: str, topic: str) -> list[Message]:
    async with group_reader(bootstrap_servers, topic, unique("inputs")) as reader:
        got: list[Message] = []
        async with asyncio.timeout(DEADLINE):
            while len(got) < 20:
                got += await reader.fetch_batch(100)
        return got


async def crash_and_resume(bootstrap_servers: str, topic: str) -> list[bytes]:
    """Run the transform in a subprocess, kill it (SIGKILL) once it has committed some
    batches and has one open, resume it here with the same transactional id, and return
    every output READ_COMMITTED readers see."""
    out = f"{topic}.out"
    await create_topics(bootstrap_servers, topic, out)
    await seed_keyed(bootstrap_servers, topic, 2, PER_PARTITION)
    group_id = unique("transform")
    transactional_id = unique("crash")
    async with child_module(
        "tests.support.crash_transform", bootstrap_servers, topic, group_id, transactional_id
    ) as process:
        assert process.stdout is not None
        async with asyncio.timeout(DEADLINE):
            for _ in range(60):
                line = await process.stdout.readline()
                assert line, "the crashing transform stopped early; its stderr says why"
        await kill_hard(process)
    before = await group_offsets(bootstrap_servers, group_id, topic)
    assert 0 < sum(max(o, 0) for o in before.values()) < 2 * PER_PARTITION, before

    async with (
        transactional(bootstrap_servers, transactional_id, topic=out) as writer,
        input_reader(bootstrap_servers, topic, group_id) as reader,
    ):
        await run_until_committed(reader, writer, upper, {0: PER_PARTITION, 1: PER_PARTITION})
    async with committed_reader(bootstrap_servers, out) as check:
        outputs = await values_until(check, {b"K0-0:0", b"K1-0:33"})
        return outputs + await values_within(check, 2.0)


async def test_a_transform_killed_mid_batch_loses_nothing(
    bootstrap_servers: str, topic: str
) -> None:
    """Everywhere: after the crash every input has its output (at least once)."""
    outputs = await crash_and_resume(bootstrap_servers, topic)
    check_outputs(outputs, 2, exactly_once=False)


@pytest.mark.external_broker("the local brokers do not hide aborted records from READ_COMMITTED")
async def test_a_transform_killed_mid_batch_is_exactly_once_for_read_committed_readers(
    bootstrap_servers: str, topic: str
) -> None:
    outputs = await crash_and_resume(bootstrap_servers, topic)
    check_outputs(outputs, 2, exactly_once=True)
