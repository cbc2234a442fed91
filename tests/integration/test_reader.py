"""The Reader against a real broker: positions, commits, rebalances, cancellation and close.

Group tests keep sessions short (see GROUP_OPTIONS), since every join and rebalance waits
on them. Where Tansu's ListOffsets "latest" matters (`LAST_OFFSET`, `read_lag()`), messages
are written one call at a time, so that every record batch holds one record. Tests that need
fault injection run on the librdkafka mock cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from aiomq import (
    LAST_OFFSET,
    ClosedError,
    CommitError,
    ConfigError,
    IsolationLevel,
    Message,
    Reader,
    Writer,
)
from aiomq.group import Claim, GroupSession
from tests.support.mock_cluster import ApiKey, MockCluster

# Generous upper bound for any wait: reaching it means a hang, not a slow machine.
DEADLINE = 30.0

# Short group sessions. The embedded broker answers a group's first join with generation 0,
# so aiokafka never sends LeaveGroup for that member and the next member to join waits for
# its session to expire: the shorter the session, the faster the tests.
GROUP_OPTIONS: dict[str, Any] = {
    "session_timeout": 1.0,
    "heartbeat_interval": 0.25,
    "max_wait": 0.1,
}

Key = tuple[str, int]


# -- helpers ------------------------------------------------------------------------------


async def create_topic(bootstrap_servers: str, topic: str, partitions: int) -> None:
    """Create `topic` with `partitions` partitions and one replica."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def write(
    bootstrap_servers: str, topic: str, messages: Iterable[Message], *, one_by_one: bool = False
) -> list[Message]:
    """Write `messages` to `topic` and return them as written (with partitions and offsets).

    With `one_by_one`, each message is written and acknowledged before the next, so every
    record batch holds one record (Tansu's ListOffsets "latest" is only right then).
    """
    messages = list(messages)
    async with Writer(
        brokers=bootstrap_servers.split(","), topic=topic, allow_auto_topic_creation=True
    ) as writer:
        if not one_by_one:
            return await writer.write_messages(*messages)
        written: list[Message] = []
        for message in messages:
            written.extend(await writer.write_messages(message))
        return written


def values(prefix: str, count: int, *, partition: int = 0) -> list[Message]:
    return [Message(value=f"{prefix}{i}".encode(), partition=partition) for i in range(count)]


def group_reader(bootstrap_servers: str, topic: str, group_id: str, **options: Any) -> Reader:
    return Reader(
        brokers=bootstrap_servers.split(","),
        topic=topic,
        group_id=group_id,
        **{**GROUP_OPTIONS, **options},
    )


async def committed_offsets(
    bootstrap_servers: str, group_id: str, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The group's committed offset for each partition, None where nothing is committed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","))
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group_id, partitions=list(partitions))
    finally:
        await admin.close()
    result: dict[TopicPartition, int | None] = {}
    for tp in partitions:
        entry = found.get(tp)
        result[tp] = None if entry is None or entry.offset < 0 else entry.offset
    return result


def hours_ago(hours: int) -> datetime:
    """A recent time in the past, whole seconds: brokers refuse timestamps far off now."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours)


async def fetch_n(reader: Reader, count: int) -> list[Message]:
    """Fetch exactly `count` messages, within the deadline."""
    got: list[Message] = []
    async with asyncio.timeout(DEADLINE):
        while len(got) < count:
            got.append(await reader.fetch_message())
    return got


async def nothing_arrives(reader: Reader, within: float = 0.5) -> bool:
    """Tell whether a fetch times out, that is whether no message is there to read."""
    try:
        async with asyncio.timeout(within):
            await reader.fetch_message()
    except TimeoutError:
        return True
    return False


# -- single partition ---------------------------------------------------------------------


async def test_a_partition_reader_returns_every_message_from_the_first_offset_in_order(
    bootstrap_servers: str, topic: str
) -> None:
    start = hours_ago(1)
    sent = [
        Message(
            key=f"k{i}".encode(),
            value=f"v{i}".encode(),
            headers=[("n", b"%d" % i), ("kind", b"test")],
            time=start + timedelta(seconds=i),
            partition=0,
        )
        for i in range(5)
    ]
    await write(bootstrap_servers, topic, sent)
    async with Reader(brokers=bootstrap_servers.split(","), topic=topic) as reader:
        got = await fetch_n(reader, 5)
    assert [(m.topic, m.partition, m.offset) for m in got] == [(topic, 0, i) for i in range(5)]
    assert [(m.key, m.value, list(m.headers)) for m in got] == [
        (s.key, s.value, list(s.headers)) for s in sent
    ]
    assert [m.time for m in got] == [s.time for s in sent]
    assert all(m.high_water_mark == 5 for m in got)


async def test_set_offset_makes_the_next_read_return_that_offset(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("v", 10))
    async with Reader(brokers=bootstrap_servers.split(","), topic=topic) as reader:
        reader.set_offset(6)
        first = await fetch_n(reader, 1)
        reader.set_offset(2)
        again = await fetch_n(reader, 2)
    assert [(m.offset, m.value) for m in first] == [(6, b"v6")]
    assert [(m.offset, m.value) for m in again] == [(2, b"v2"), (3, b"v3")]


async def test_set_offset_before_opening_applies_to_the_first_read(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("v", 5))
    reader = Reader(brokers=bootstrap_servers.split(","), topic=topic)
    reader.set_offset(3)
    async with reader:
        got = await fetch_n(reader, 2)
    assert [m.offset for m in got] == [3, 4]


async def test_reading_from_the_last_offset_waits_for_a_new_message_and_returns_it(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("old", 3), one_by_one=True)
    async with Reader(brokers=bootstrap_servers.split(","), topic=topic, max_wait=0.1) as reader:
        reader.set_offset(LAST_OFFSET)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await reader.fetch_message()
        await write(bootstrap_servers, topic, [Message(value=b"new", partition=0)])
        got = await fetch_n(reader, 1)
    assert [(m.offset, m.value) for m in got] == [(3, b"new")]


async def test_offset_and_lag_track_the_position_in_the_partition(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("v", 10))
    async with Reader(brokers=bootstrap_servers.split(","), topic=topic) as reader:
        assert (reader.offset, reader.lag) == (-1, -1)
        await fetch_n(reader, 3)
        after_three = (reader.offset, reader.lag)
        await fetch_n(reader, 7)
        at_end = (reader.offset, reader.lag)
        reader.set_offset(4)
        await fetch_n(reader, 1)
        after_seek = (reader.offset, reader.lag)
    assert after_three == (3, 7)
    assert at_end == (10, 0)
    assert after_seek == (5, 5)


async def test_read_lag_asks_the_broker_how_far_behind_the_reader_is(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("v", 5), one_by_one=True)
    async with Reader(brokers=bootstrap_servers.split(","), topic=topic) as reader:
        before = await reader.read_lag()
        await fetch_n(reader, 2)
        after_two = await reader.read_lag()
        await write(bootstrap_servers, topic, values("w", 2), one_by_one=True)
        after_more = await reader.read_lag()
    assert (before, after_two, after_more) == (5, 3, 5)


async def test_group_only_calls_on_a_partition_reader_raise_config_error(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("v", 1))
    async with Reader(brokers=bootstrap_servers.split(","), topic=topic) as reader:
        message = await reader.fetch_message()
        with pytest.raises(ConfigError, match="group_id"):
            await reader.commit_messages(message)
        with pytest.raises(ConfigError, match="group_id"):
            await reader.consume(object())  # type: ignore[arg-type]


@pytest.mark.external_broker("Tansu answers every timestamp lookup with offset 0")
async def test_set_offset_at_starts_at_the_first_message_at_or_after_that_time(
    bootstrap_servers: str, topic: str
) -> None:
    start = hours_ago(10)
    await write(
        bootstrap_servers,
        topic,
        [Message(value=b"%d" % i, time=start + timedelta(hours=i), partition=0) for i in range(5)],
    )
    async with Reader(brokers=bootstrap_servers.split(","), topic=topic) as reader:
        await reader.set_offset_at(start + timedelta(hours=2, minutes=30))
        got = await fetch_n(reader, 1)
    assert [(m.offset, m.value) for m in got] == [(3, b"3")]


@pytest.mark.external_broker("Tansu answers every timestamp lookup with offset 0")
async def test_reading_a_time_range_returns_exactly_the_messages_inside_it(
    bootstrap_servers: str, topic: str
) -> None:
    start = hours_ago(10)
    await write(
        bootstrap_servers,
        topic,
        [Message(value=b"%d" % i, time=start + timedelta(hours=i), partition=0) for i in range(8)],
    )
    begin, end = start + timedelta(hours=2), start + timedelta(hours=5)
    inside: list[Message] = []
    async with Reader(brokers=bootstrap_servers.split(","), topic=topic) as reader:
        await reader.set_offset_at(begin)
        async with asyncio.timeout(DEADLINE):
            while (message := await reader.fetch_message()).time is not None and (
                message.time < end
            ):
                inside.append(message)
    assert [m.value for m in inside] == [b"2", b"3", b"4"]


@pytest.mark.external_broker("Tansu answers every timestamp lookup with offset 0")
async def test_set_offset_at_after_every_message_waits_for_new_ones(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("old", 3))
    async with Reader(brokers=bootstrap_servers.split(","), topic=topic, max_wait=0.1) as reader:
        await reader.set_offset_at(datetime.now(UTC) + timedelta(hours=1))
        assert await nothing_arrives(reader)
        await write(bootstrap_servers, topic, [Message(value=b"new", partition=0)])
        got = await fetch_n(reader, 1)
    assert [(m.offset, m.value) for m in got] == [(3, b"new")]


async def write_three_transactions(bootstrap_servers: str, topic: str) -> None:
    """Write "kept-1" and "kept-2" in committed transactions around an aborted "dropped"."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers.split(","), transactional_id=f"tx-{topic}"
    )
    await producer.start()
    try:
        for value, commit in ((b"kept-1", True), (b"dropped", False), (b"kept-2", True)):
            await producer.begin_transaction()
            await producer.send_and_wait(topic, value, partition=0)
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()


@pytest.mark.external_broker(
    "Tansu does not support aiokafka's transactional producer; the mock cluster's markers "
    "fail aiokafka's CRC"
)
async def test_a_read_committed_reader_skips_records_of_aborted_transactions(
    bootstrap_servers: str, topic: str
) -> None:
    await write_three_transactions(bootstrap_servers, topic)
    async with Reader(
        brokers=bootstrap_servers.split(","),
        topic=topic,
        isolation_level=IsolationLevel.READ_COMMITTED,
    ) as reader:
        got = await fetch_n(reader, 2)
        assert await nothing_arrives(reader)
    assert [m.value for m in got] == [b"kept-1", b"kept-2"]


@pytest.mark.external_broker(
    "Tansu does not support aiokafka's transactional producer; the mock cluster's markers "
    "fail aiokafka's CRC"
)
async def test_a_read_uncommitted_reader_sees_records_of_aborted_transactions(
    bootstrap_servers: str, topic: str
) -> None:
    await write_three_transactions(bootstrap_servers, topic)
    async with Reader(brokers=bootstrap_servers.split(","), topic=topic) as reader:
        got = await fetch_n(reader, 3)
    assert [m.value for m in got] == [b"kept-1", b"dropped", b"kept-2"]


async def test_fetch_batch_returns_between_one_and_max_messages_in_order(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("v", 40))
    batches: list[list[Message]] = []
    async with Reader(
        brokers=bootstrap_servers.split(","), topic=topic, queue_capacity=15
    ) as reader:
        async with asyncio.timeout(DEADLINE):
            while sum(map(len, batches)) < 40:
                batches.append(await reader.fetch_batch(7))
    assert all(1 <= len(batch) <= 7 for batch in batches)
    assert [m.offset for batch in batches for m in batch] == list(range(40))


async def test_async_for_iterates_over_the_messages_in_order(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("v", 6))
    got: list[Message] = []
    async with Reader(brokers=bootstrap_servers.split(","), topic=topic) as reader:
        async with asyncio.timeout(DEADLINE):
            async for message in reader:
                got.append(message)
                if len(got) == 6:
                    break
    assert [m.value for m in got] == [b"v%d" % i for i in range(6)]


# -- consumer groups ----------------------------------------------------------------------


async def test_a_new_group_member_starts_right_after_the_last_explicitly_committed_message(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", 10))
    group_id = f"g-{topic}"
    async with group_reader(bootstrap_servers, topic, group_id) as first:
        fetched = await fetch_n(first, 6)
        # Fetching alone commits nothing; committing the fifth commits everything before it.
        await first.commit_messages(fetched[4])
    async with group_reader(bootstrap_servers, topic, group_id) as second:
        resumed = await fetch_n(second, 1)
    assert [(m.offset, m.value) for m in resumed] == [(5, b"v5")]


async def test_read_message_in_a_group_commits_so_the_next_member_resumes_after_it(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", 6))
    group_id = f"g-{topic}"
    async with group_reader(bootstrap_servers, topic, group_id, commit_interval=0) as first:
        async with asyncio.timeout(DEADLINE):
            read = [await first.read_message() for _ in range(3)]
        stats = first.stats()
    committed = await committed_offsets(bootstrap_servers, group_id, [TopicPartition(topic, 0)])
    async with group_reader(bootstrap_servers, topic, group_id) as second:
        resumed = await fetch_n(second, 1)
    assert [m.offset for m in read] == [0, 1, 2]
    assert stats.commits == 3
    assert committed == {TopicPartition(topic, 0): 3}
    assert resumed[0].offset == 3


async def test_a_new_group_starting_at_the_last_offset_skips_older_messages(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("old", 4), one_by_one=True)
    got: list[Message] = []
    async with group_reader(
        bootstrap_servers, topic, f"g-{topic}", start_offset=LAST_OFFSET
    ) as reader:
        # The reader settles on the end of the partition at some point after joining: keep
        # writing new messages until one arrives; an old one must never come back.
        async with asyncio.timeout(DEADLINE):
            for n in range(1000):
                await write(bootstrap_servers, topic, [Message(value=b"new%d" % n, partition=0)])
                try:
                    async with asyncio.timeout(0.5):
                        got.append(await reader.fetch_message())
                        break
                except TimeoutError:
                    continue
    assert got
    assert got[0].value is not None
    assert got[0].value.startswith(b"new")
    assert got[0].offset >= 4


async def test_a_group_reads_several_topics_given_as_group_topics(
    bootstrap_servers: str, topic: str
) -> None:
    topics = [f"{topic}-a", f"{topic}-b"]
    for name in topics:
        await write(
            bootstrap_servers, name, [Message(value=f"{name}/{i}".encode()) for i in range(5)]
        )
    seen: set[tuple[str, bytes | None]] = set()
    async with Reader(
        brokers=bootstrap_servers.split(","),
        group_id=f"g-{topic}",
        group_topics=topics,
        **GROUP_OPTIONS,
    ) as reader:
        async with asyncio.timeout(DEADLINE):
            while len(seen) < 10:
                message = await reader.fetch_message()
                seen.add((message.topic, message.value))
        assignment = reader.assignment()
    assert seen == {(name, f"{name}/{i}".encode()) for name in topics for i in range(5)}
    assert {t for t, _ in assignment} == set(topics)


class Calls:
    """Records the partition sets a rebalance callback is called with, and waits for them."""

    def __init__(self) -> None:
        self.calls: list[set[Key]] = []
        self._changed = asyncio.Event()

    def __call__(self, partitions: set[Key]) -> None:
        self.calls.append(set(partitions))
        self._changed.set()

    async def acall(self, partitions: set[Key]) -> None:
        await asyncio.sleep(0)
        self(partitions)

    async def wait_for(self, count: int) -> None:
        """Wait until the callback has been called `count` times in all."""
        async with asyncio.timeout(DEADLINE):
            while len(self.calls) < count:
                self._changed.clear()
                await self._changed.wait()


async def test_a_sync_rebalance_callback_is_called_with_the_assigned_partitions(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("v", 1))
    assigned = Calls()
    async with group_reader(bootstrap_servers, topic, f"g-{topic}", on_assigned=assigned) as reader:
        await assigned.wait_for(1)
        assignment = reader.assignment()
    assert assigned.calls == [{(topic, p) for p in range(4)}]
    assert assignment == assigned.calls[0]


async def test_async_rebalance_callbacks_see_partitions_move_when_a_member_joins(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("v", 1))
    group_id = f"g-{topic}"
    a_assigned, a_revoked, b_assigned = Calls(), Calls(), Calls()
    everything = {(topic, p) for p in range(4)}
    async with group_reader(
        bootstrap_servers,
        topic,
        group_id,
        on_assigned=a_assigned.acall,
        on_revoked=a_revoked.acall,
    ) as a:
        await a_assigned.wait_for(1)
        async with group_reader(bootstrap_servers, topic, group_id, on_assigned=b_assigned.acall):
            await b_assigned.wait_for(1)
            await a_assigned.wait_for(2)
            a_now = a.assignment()
    assert a_assigned.calls[0] == everything
    assert a_revoked.calls[0] == everything
    assert a_assigned.calls[1] | b_assigned.calls[0] == everything
    assert not a_assigned.calls[1] & b_assigned.calls[0]
    assert len(a_assigned.calls[1]) == 2
    assert a_now == a_assigned.calls[1]


async def test_stats_count_messages_commits_rebalances_and_per_partition_lag(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", 10))
    async with group_reader(bootstrap_servers, topic, f"g-{topic}", commit_interval=0) as reader:
        async with asyncio.timeout(DEADLINE):
            for _ in range(4):
                await reader.read_message()
        stats = reader.stats()
    assert (stats.messages, stats.commits, stats.rebalances, stats.errors) == (4, 4, 1, 0)
    assert stats.bytes == sum(len(b"v%d" % i) for i in range(4))
    assert stats.lag == 6
    assert [
        (p.topic, p.partition, p.offset, p.high_water_mark, p.lag) for p in stats.partitions
    ] == [(topic, 0, 4, 10, 6)]


async def test_closing_a_reader_flushes_its_stashed_commits(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", 8))
    group_id = f"g-{topic}"
    async with group_reader(bootstrap_servers, topic, group_id, commit_interval=60) as first:
        async with asyncio.timeout(DEADLINE):
            for _ in range(5):
                await first.read_message()
        commits_before_close = first.stats().commits
    async with group_reader(bootstrap_servers, topic, group_id) as second:
        resumed = await fetch_n(second, 1)
    assert commits_before_close == 0
    assert resumed[0].offset == 5


async def test_a_failed_final_flush_raises_commit_error_from_aclose(
    mock_cluster: MockCluster,
) -> None:
    mock_cluster.set_group_initial_rebalance_delay_ms(0)
    mock_cluster.create_topic("orders", partitions=1)
    brokers = mock_cluster.bootstrap_servers
    await write(brokers, "orders", values("v", 5))
    reader = Reader(
        brokers=brokers.split(","),
        topic="orders",
        group_id="billing",
        commit_interval=60,
        **GROUP_OPTIONS,
    )
    async with reader:
        async with asyncio.timeout(DEADLINE):
            for _ in range(3):
                await reader.read_message()
        # OFFSET_METADATA_TOO_LARGE: an error aiokafka does not retry.
        mock_cluster.push_request_errors(ApiKey.OFFSET_COMMIT, 12)
        with pytest.raises(CommitError) as raised:
            async with asyncio.timeout(DEADLINE):
                await reader.aclose()
    assert raised.value.offsets == {("orders", 0): 3}
    assert "orders[0]@3" in str(raised.value)
    with pytest.raises(ClosedError):
        await reader.fetch_message()


# -- rebalancing: stashed offsets and queued messages of revoked partitions -----------------


async def test_offsets_stashed_for_a_partition_after_its_revocation_are_not_committed(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 2)
    await write(
        bootstrap_servers, topic, [*values("a", 5, partition=0), *values("b", 5, partition=1)]
    )
    group_id = f"g-{topic}"
    a_assigned, b_assigned = Calls(), Calls()
    async with group_reader(
        bootstrap_servers, topic, group_id, commit_interval=60, on_assigned=a_assigned
    ) as a:
        read = await fetch_n(a, 10)
        by_partition = {p: [m for m in read if m.partition == p] for p in (0, 1)}
        # Stashed while A owns both partitions: the revocation flushes these.
        await a.commit_messages(by_partition[0][1], by_partition[1][1])
        async with group_reader(bootstrap_servers, topic, group_id, on_assigned=b_assigned):
            await b_assigned.wait_for(1)
            await a_assigned.wait_for(2)
            (lost,) = b_assigned.calls[0]
            # Stashed after the revocation, for a partition A no longer owns.
            await a.commit_messages(by_partition[lost[1]][4])
            await a.aclose()
            committed = await committed_offsets(
                bootstrap_servers, group_id, [TopicPartition(topic, p) for p in (0, 1)]
            )
    assert committed == {TopicPartition(topic, 0): 2, TopicPartition(topic, 1): 2}


async def test_a_stale_stashed_offset_is_not_committed_when_its_partition_comes_back(
    bootstrap_servers: str, topic: str
) -> None:
    # A stashes an offset for a partition it lost; the new owner B commits further and
    # leaves; the partition returns to A. A's stale offset must not move the commit back.
    await create_topic(bootstrap_servers, topic, 2)
    await write(
        bootstrap_servers, topic, [*values("a", 5, partition=0), *values("b", 5, partition=1)]
    )
    group_id = f"g-{topic}"
    a_assigned, b_assigned = Calls(), Calls()
    async with group_reader(
        bootstrap_servers, topic, group_id, commit_interval=60, on_assigned=a_assigned
    ) as a:
        read = await fetch_n(a, 10)
        async with group_reader(
            bootstrap_servers, topic, group_id, commit_interval=0, on_assigned=b_assigned
        ) as b:
            await b_assigned.wait_for(1)
            await a_assigned.wait_for(2)
            (moved,) = b_assigned.calls[0]
            stale = next(m for m in read if m.partition == moved[1] and m.offset == 2)
            await a.commit_messages(stale)
            async with asyncio.timeout(DEADLINE):
                for _ in range(5):
                    await b.read_message()
        await a_assigned.wait_for(3)
        back = a.assignment()
    committed = await committed_offsets(bootstrap_servers, group_id, [TopicPartition(*moved)])
    assert moved in back
    assert committed == {TopicPartition(*moved): 5}


async def rebalance_with_messages_queued(
    bootstrap_servers: str, topic: str, *, commit_first: bool
) -> tuple[int, Message, set[Key], list[Message]]:
    """Let reader A queue messages of every partition, then make B join and take some.

    Returns how many messages A had queued, the one message A read (and, with
    `commit_first`, committed) before the rebalance, A's assignment after it, and the
    messages A returned after it, up to the first of each partition it now owns.
    """
    await write(
        bootstrap_servers,
        topic,
        [m for p in range(4) for m in values(f"p{p}-", 30, partition=p)],
    )
    group_id = f"g-{topic}"
    a_assigned, b_assigned = Calls(), Calls()
    after: list[Message] = []
    async with group_reader(bootstrap_servers, topic, group_id, on_assigned=a_assigned) as a:
        (first,) = await fetch_n(a, 1)
        if commit_first:
            await a.commit_messages(first)
        queued = a.stats().queued
        async with group_reader(bootstrap_servers, topic, group_id, on_assigned=b_assigned):
            await b_assigned.wait_for(1)
            await a_assigned.wait_for(2)
            assignment = a.assignment()
            async with asyncio.timeout(DEADLINE):
                while not assignment <= {(m.topic, m.partition) for m in after}:
                    after.append(await a.fetch_message())
    return queued, first, assignment, after


async def test_messages_queued_for_revoked_partitions_are_not_returned(
    bootstrap_servers: str, topic: str
) -> None:
    queued, _, assignment, after = await rebalance_with_messages_queued(
        bootstrap_servers, topic, commit_first=False
    )
    assert queued > 0
    assert len(assignment) == 2
    assert {(m.topic, m.partition) for m in after} <= assignment


async def test_a_partition_kept_through_a_rebalance_resumes_at_its_committed_offset(
    bootstrap_servers: str, topic: str
) -> None:
    _, first, assignment, after = await rebalance_with_messages_queued(
        bootstrap_servers, topic, commit_first=True
    )
    first_after: dict[Key, int] = {}
    for m in after:
        first_after.setdefault((m.topic, m.partition), m.offset)
    expected = {key: (1 if key == (first.topic, first.partition) else 0) for key in assignment}
    assert first_after == expected


# -- cancellation -------------------------------------------------------------------------


async def give_up_at_random(
    read: Callable[[], Coroutine[Any, Any, Message]], rng: random.Random
) -> Message | None:
    """Read one message with `read`, giving up at a random moment in one of three ways.

    Returns the message, or None when the read was cancelled or timed out first.
    """
    way = rng.randrange(3)
    if way == 0:
        try:
            async with asyncio.timeout(rng.uniform(0, 0.003)):
                return await read()
        except TimeoutError:
            return None
    if way == 1:
        with anyio.move_on_after(rng.uniform(0, 0.003)):
            return await read()
        return None
    task = asyncio.create_task(read())
    for _ in range(rng.randrange(4)):
        await asyncio.sleep(0)  # let the read run a few steps before cancelling it
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return None


async def fetch_or_give_up(reader: Reader, rng: random.Random) -> Message | None:
    return await give_up_at_random(reader.fetch_message, rng)


async def test_a_cancelled_or_timed_out_fetch_loses_no_message(
    bootstrap_servers: str, topic: str
) -> None:
    total = 600
    rng = random.Random(1398)
    got: list[int] = []
    gave_up = 0

    async def write_meanwhile() -> None:
        # Written in small batches while the reader reads, so that many fetches wait on
        # the broker for the next batch and are cancelled there.
        async with Writer(
            brokers=bootstrap_servers.split(","), topic=topic, allow_auto_topic_creation=True
        ) as writer:
            for start in range(0, total, 2):
                await writer.write_messages(
                    *[Message(value=b"v%d" % i, partition=0) for i in range(start, start + 2)]
                )

    await create_topic(bootstrap_servers, topic, 1)
    async with (
        Reader(brokers=bootstrap_servers.split(","), topic=topic, max_wait=0.05) as reader,
        asyncio.TaskGroup() as tasks,
    ):
        tasks.create_task(write_meanwhile())
        async with asyncio.timeout(DEADLINE):
            while len(got) < total:
                message = await fetch_or_give_up(reader, rng)
                if message is None:
                    gave_up += 1
                else:
                    got.append(message.offset)
    assert got == list(range(total))
    assert gave_up > 0


async def test_a_storm_of_cancelled_fetches_in_a_group_sees_every_message_exactly_once(
    bootstrap_servers: str, topic: str
) -> None:
    sent: list[Message] = []
    for batch in range(20):
        sent += await write(
            bootstrap_servers,
            topic,
            [
                Message(key=b"%d" % (batch * 100 + i), value=b"%d" % (batch * 100 + i))
                for i in range(100)
            ],
        )
    rng = random.Random(2024)
    seen: Counter[tuple[int, int]] = Counter()
    calls = 0
    async with group_reader(
        bootstrap_servers,
        topic,
        f"g-{topic}",
        commit_interval=0.2,
        queue_capacity=13,
        max_bytes=400,
    ) as reader:
        async with asyncio.timeout(60):
            while len(seen) < len(sent) or calls < 3000:
                calls += 1
                message = await fetch_or_give_up(reader, rng)
                if message is not None:
                    seen[(message.partition, message.offset)] += 1
                    await reader.commit_messages(message)
            leftover = await nothing_arrives(reader, 0.3)
    assert set(seen) == {(m.partition, m.offset) for m in sent}
    assert [key for key, count in seen.items() if count > 1] == []
    assert leftover


async def test_a_cancelled_or_timed_out_read_message_in_a_group_loses_no_message(
    bootstrap_servers: str, topic: str
) -> None:
    # read_message commits before returning: cancellations land in the commit too, and the
    # message must then come back on the next read, not vanish.
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", 200))
    rng = random.Random(99)
    got: list[int] = []
    gave_up = 0
    async with group_reader(bootstrap_servers, topic, f"g-{topic}", commit_interval=0) as reader:
        # A lost message leaves the loop waiting for it: the deadline ends it, and the
        # assertion below shows which offsets are missing.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while len(got) < 200:
                    message = await give_up_at_random(reader.read_message, rng)
                    if message is None:
                        gave_up += 1
                    else:
                        got.append(message.offset)
        leftover = await nothing_arrives(reader, 0.3)
    assert got == list(range(200))
    assert gave_up > 0
    assert leftover


# -- closing ------------------------------------------------------------------------------


async def test_aclose_ends_a_fetch_waiting_in_another_task_with_closed_error(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("v", 1))
    first_read = asyncio.Event()

    async with Reader(brokers=bootstrap_servers.split(","), topic=topic) as reader:

        async def read_two() -> None:
            await reader.fetch_message()
            first_read.set()
            await reader.fetch_message()  # nothing more comes: waits until the close

        waiting = asyncio.create_task(read_two())
        async with asyncio.timeout(DEADLINE):
            await first_read.wait()
        async with asyncio.timeout(DEADLINE):
            await reader.aclose()
        with pytest.raises(ClosedError):
            async with asyncio.timeout(DEADLINE):
                await waiting


async def test_aclose_ends_an_async_for_loop_waiting_in_another_task(
    bootstrap_servers: str, topic: str
) -> None:
    await write(bootstrap_servers, topic, values("v", 2))
    got: list[Message] = []
    two_read = asyncio.Event()

    async with group_reader(bootstrap_servers, topic, f"g-{topic}") as reader:

        async def iterate() -> None:
            async for message in reader:
                got.append(message)
                if len(got) == 2:
                    two_read.set()

        loop = asyncio.create_task(iterate())
        async with asyncio.timeout(DEADLINE):
            await two_read.wait()
        async with asyncio.timeout(DEADLINE):
            await reader.aclose()
            await loop
    assert len(got) == 2


async def orders_on_mock_cluster(mock_cluster: MockCluster) -> list[str]:
    """Create topic "orders" with three messages on the mock cluster; return its brokers."""
    mock_cluster.set_group_initial_rebalance_delay_ms(0)
    mock_cluster.create_topic("orders", partitions=1)
    await write(mock_cluster.bootstrap_servers, "orders", values("v", 3))
    return mock_cluster.bootstrap_servers.split(",")


async def open_on_mock_cluster(mock_cluster: MockCluster, **options: Any) -> Reader:
    """Open a group reader of topic "orders" (three messages) on the mock cluster."""
    brokers = await orders_on_mock_cluster(mock_cluster)
    reader = Reader(brokers=brokers, topic="orders", group_id="billing", **GROUP_OPTIONS, **options)
    await reader.__aenter__()
    return reader


async def test_aclose_returns_promptly_while_every_broker_is_down(
    mock_cluster: MockCluster,
) -> None:
    reader = await open_on_mock_cluster(mock_cluster, close_timeout=2.0)
    await fetch_n(reader, 1)
    mock_cluster.broker_down(-1)
    async with asyncio.timeout(15):
        await reader.aclose()
    with pytest.raises(ClosedError):
        await reader.fetch_message()


async def test_aclose_while_every_broker_is_down_reports_the_unflushed_commits(
    mock_cluster: MockCluster,
) -> None:
    reader = await open_on_mock_cluster(mock_cluster, close_timeout=2.0, commit_interval=60)
    await reader.commit_messages(*await fetch_n(reader, 2))
    mock_cluster.broker_down(-1)
    with pytest.raises(CommitError) as raised:
        async with asyncio.timeout(15):
            await reader.aclose()
    assert raised.value.offsets == {("orders", 0): 2}


async def test_aclose_while_every_broker_is_down_leaves_no_task_running(
    mock_cluster: MockCluster,
) -> None:
    brokers = await orders_on_mock_cluster(mock_cluster)
    before = asyncio.all_tasks()
    reader = Reader(
        brokers=brokers, topic="orders", group_id="billing", close_timeout=2.0, **GROUP_OPTIONS
    )
    await reader.__aenter__()
    await fetch_n(reader, 1)
    mock_cluster.broker_down(-1)
    async with asyncio.timeout(15):
        await reader.aclose()
    left = asyncio.all_tasks() - before
    if left:
        # Tasks the close cancelled may need a moment to finish.
        _, left = await asyncio.wait(left, timeout=3)
    assert [task.get_coro() for task in left] == []


# -- the group handler --------------------------------------------------------------------


class Handler:
    """A group handler that records what it is given.

    Every claim waits until all `claims` claims have started, so the handler only makes
    progress if claims run concurrently; each reads `per_claim` messages (forever when
    None), marking each, then returns.
    """

    def __init__(self, claims: int, per_claim: int | None) -> None:
        self.claims = claims
        self.per_claim = per_claim
        self.started: set[Key] = set()
        self.all_started = asyncio.Event()
        self.offsets: dict[Key, list[int]] = defaultdict(list)
        self.sessions: list[frozenset[Key]] = []
        self.cleanups: list[frozenset[Key]] = []
        self.cleaned_up = asyncio.Event()

    async def setup(self, session: GroupSession) -> None:
        self.sessions.append(session.claims)

    async def consume_claim(self, session: GroupSession, claim: Claim) -> None:
        key = (claim.topic, claim.partition)
        self.started.add(key)
        if len(self.started) == self.claims:
            self.all_started.set()
        await self.all_started.wait()
        async for message in claim:
            assert (message.topic, message.partition) == key
            self.offsets[key].append(message.offset)
            session.mark_message(message)
            if len(self.offsets[key]) == self.per_claim:
                return

    async def cleanup(self, session: GroupSession) -> None:
        self.cleanups.append(session.claims)
        self.cleaned_up.set()


async def write_to_each_partition(bootstrap_servers: str, topic: str, count: int) -> None:
    await write(
        bootstrap_servers,
        topic,
        [m for p in range(4) for m in values(f"p{p}-", count, partition=p)],
    )


@asynccontextmanager
async def consuming(reader: Reader, handler: Handler) -> AsyncIterator[asyncio.Task[None]]:
    """Run `reader.consume(handler)` in a task; cancel it on the way out."""
    task = asyncio.create_task(reader.consume(handler))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_group_handler_consumes_each_claimed_partition_concurrently(
    bootstrap_servers: str, topic: str
) -> None:
    await write_to_each_partition(bootstrap_servers, topic, 3)
    handler = Handler(claims=4, per_claim=None)
    async with (
        group_reader(bootstrap_servers, topic, f"g-{topic}") as reader,
        consuming(reader, handler),
    ):
        async with asyncio.timeout(DEADLINE):
            await handler.all_started.wait()
    assert handler.started == {(topic, p) for p in range(4)}


async def test_a_group_handler_sees_each_partition_in_order_and_its_marks_are_committed(
    bootstrap_servers: str, topic: str
) -> None:
    await write_to_each_partition(bootstrap_servers, topic, 5)
    group_id = f"g-{topic}"
    handler = Handler(claims=4, per_claim=3)
    async with (
        group_reader(bootstrap_servers, topic, group_id) as reader,
        consuming(reader, handler),
    ):
        async with asyncio.timeout(DEADLINE):
            await handler.cleaned_up.wait()
    async with group_reader(bootstrap_servers, topic, group_id) as after:
        rest = await fetch_n(after, 8)
    assert dict(handler.offsets) == {(topic, p): [0, 1, 2] for p in range(4)}
    assert sorted((m.partition, m.offset) for m in rest) == [
        (p, o) for p in range(4) for o in (3, 4)
    ]


async def test_a_group_handler_is_set_up_with_its_claims_and_cancelling_consume_cleans_up(
    bootstrap_servers: str, topic: str
) -> None:
    await write_to_each_partition(bootstrap_servers, topic, 1)
    handler = Handler(claims=4, per_claim=None)
    async with (
        group_reader(bootstrap_servers, topic, f"g-{topic}") as reader,
        consuming(reader, handler) as task,
    ):
        async with asyncio.timeout(DEADLINE):
            await handler.all_started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    everything = frozenset((topic, p) for p in range(4))
    assert handler.sessions == [everything]
    assert handler.cleanups == [everything]


async def test_closing_the_reader_makes_consume_return(bootstrap_servers: str, topic: str) -> None:
    await write_to_each_partition(bootstrap_servers, topic, 1)
    handler = Handler(claims=4, per_claim=None)
    async with group_reader(bootstrap_servers, topic, f"g-{topic}") as reader:
        task = asyncio.create_task(reader.consume(handler))
        async with asyncio.timeout(DEADLINE):
            await handler.all_started.wait()
        await reader.aclose()
        async with asyncio.timeout(DEADLINE):
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
    assert outcome is None
    assert handler.cleanups == [frozenset((topic, p) for p in range(4))]


async def test_closing_the_reader_makes_consume_return_between_generations(
    bootstrap_servers: str, topic: str
) -> None:
    await write_to_each_partition(bootstrap_servers, topic, 1)
    handler = Handler(claims=4, per_claim=1)
    async with group_reader(bootstrap_servers, topic, f"g-{topic}") as reader:
        task = asyncio.create_task(reader.consume(handler))
        # Every claim returns after one message: the generation ends, and consume waits
        # for the next assignment.
        async with asyncio.timeout(DEADLINE):
            await handler.cleaned_up.wait()
        await reader.aclose()
        try:
            async with asyncio.timeout(5):
                (outcome,) = await asyncio.gather(task, return_exceptions=True)
        finally:
            task.cancel()
    assert outcome is None


# -- rebalance churn ----------------------------------------------------------------------


async def test_members_joining_and_leaving_while_messages_are_written_lose_nothing(
    bootstrap_servers: str, topic: str
) -> None:
    # One member stays from first to last, two others join and leave twice each. The one
    # that stays joins first, so it leads the group throughout: Tansu goes on naming a
    # leader that left with LeaveGroup as the leader, and the group never settles again.
    group_id = f"g-{topic}"
    rng = random.Random(7)
    written: list[Message] = []
    processed: list[Message] = []
    churn_done = asyncio.Event()
    writing_done = asyncio.Event()
    leader_assigned = Calls()
    churner_assignments: defaultdict[asyncio.Event, list[set[Key]]] = defaultdict(list)

    async def write_until_churn_is_done() -> None:
        async with Writer(
            brokers=bootstrap_servers.split(","), topic=topic, allow_auto_topic_creation=True
        ) as writer:
            n = 0
            while not churn_done.is_set():
                batch = [Message(key=b"%d" % (n + i), value=b"%d" % (n + i)) for i in range(5)]
                n += len(batch)
                written.extend(await writer.write_messages(*batch))
                await asyncio.sleep(0.01)  # pace the writes, so they span the churn
        writing_done.set()

    async def read_and_commit(reader: Reader, leave: asyncio.Event) -> None:
        """Process and commit messages until `leave` is set."""
        while not leave.is_set():
            try:
                async with asyncio.timeout(0.1):
                    message = await reader.fetch_message()
            except TimeoutError:
                continue
            processed.append(message)
            # CommitError: the partition moved on meanwhile, and its next owner reads the
            # message again.
            with contextlib.suppress(CommitError):
                await reader.commit_messages(message)

    async def stay() -> None:
        async with group_reader(
            bootstrap_servers, topic, group_id, on_assigned=leader_assigned
        ) as reader:
            await read_and_commit(reader, churn_done)

    async def come_and_go(sessions: int, commit_interval: float) -> None:
        loop = asyncio.get_running_loop()
        joined = 0
        # Tansu now and then never answers a JoinGroup amid the churn: such a session is
        # given up after a while and does not count, up to two extra tries.
        for _ in range(sessions + 2):
            if joined == sessions:
                break
            leave = asyncio.Event()

            def leave_soon_after_joining(
                partitions: set[Key], leave: asyncio.Event = leave
            ) -> None:
                if not churner_assignments[leave]:
                    loop.call_later(rng.uniform(0.3, 1.0), leave.set)
                churner_assignments[leave].append(partitions)

            async with group_reader(
                bootstrap_servers,
                topic,
                group_id,
                commit_interval=commit_interval,
                on_assigned=leave_soon_after_joining,
            ) as reader:
                loop.call_later(5.0, leave.set)
                await read_and_commit(reader, leave)
            joined += bool(churner_assignments[leave])

    await write(bootstrap_servers, topic, [Message(value=b"first")])
    async with asyncio.timeout(90), asyncio.TaskGroup() as tasks:
        tasks.create_task(write_until_churn_is_done())
        tasks.create_task(stay())
        await leader_assigned.wait_for(1)
        async with asyncio.TaskGroup() as churn:
            churn.create_task(come_and_go(2, 0))
            churn.create_task(come_and_go(2, 0.2))
        churn_done.set()

    # The rest is drained from the committed offsets by single-partition readers: on
    # Tansu, a group whose leader left with LeaveGroup admits no new member.
    missing = {(m.partition, m.offset) for m in written} - {
        (m.partition, m.offset) for m in processed
    }
    partitions = sorted({m.partition for m in written})
    committed = await committed_offsets(
        bootstrap_servers, group_id, [TopicPartition(topic, p) for p in partitions]
    )
    for partition in partitions:
        position = committed[TopicPartition(topic, partition)] or 0
        end = max(m.offset for m in written if m.partition == partition) + 1
        async with Reader(
            brokers=bootstrap_servers.split(","), topic=topic, partition=partition
        ) as final:
            final.set_offset(position)
            async with asyncio.timeout(DEADLINE):
                while position < end:
                    position = (await final.fetch_message()).offset + 1
                    missing.discard((partition, position - 1))
    assert writing_done.is_set()
    assert len(leader_assigned.calls) >= 3, "no churn happened"
    assert len(churner_assignments) >= 2
    assert sorted(missing) == []


async def test_set_offset_last_right_after_opening_never_starts_at_the_oldest_message(
    bootstrap_servers: str, topic: str
) -> None:
    # aiokafka's own reset on assignment once overtook the seek to the end, so a reader
    # opened and moved to LAST_OFFSET at once started from offset 0 instead.
    await create_topic(bootstrap_servers, topic, 3)
    async with Writer(brokers=[bootstrap_servers], topic=topic) as w:
        for p in range(3):
            for i in range(2):
                await w.write_messages(Message(value=b"old %d" % i, partition=p))
    readers = [Reader(brokers=[bootstrap_servers], topic=topic, partition=p) for p in range(3)]
    for r in readers:
        r.set_offset(LAST_OFFSET)
        await r.__aenter__()
    try:
        waiting = [asyncio.ensure_future(r.fetch_message()) for r in readers]
        async with Writer(brokers=[bootstrap_servers], topic=topic) as w:
            for p in range(3):
                await w.write_messages(Message(value=b"new", partition=p))
        async with asyncio.timeout(DEADLINE):
            first = await asyncio.gather(*waiting)
    finally:
        for r in readers:
            await r.aclose()
    assert [(m.partition, m.offset, m.value) for m in first] == [(p, 2, b"new") for p in range(3)]


async def test_closing_a_group_reader_reports_its_partitions_as_revoked_after_flushing(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 2)
    await write(bootstrap_servers, topic, values("v", 3, partition=0))
    group_id = f"g-{topic}"
    revoked = Calls()
    reader = group_reader(
        bootstrap_servers, topic, group_id, commit_interval=60, on_revoked=revoked
    )
    async with reader:
        read = await fetch_n(reader, 3)
        await reader.commit_messages(*read)
        assert revoked.calls == []
    assert revoked.calls == [{(topic, 0), (topic, 1)}]
    committed = await committed_offsets(bootstrap_servers, group_id, [TopicPartition(topic, 0)])
    assert committed == {TopicPartition(topic, 0): 3}
