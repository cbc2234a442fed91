"""What a Reader promises through rebalances, outages, bad input and shutdown.

Each test here reproduces a defect found by using the reader as a service would, with the
network cut or stalled under it, and holds the fix in place. Rebalances run on the
embedded broker (a second member joining the group with another topic makes every member
give its partitions up and get them back); outages run on the librdkafka mock cluster,
whose brokers can be taken down and brought back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from structlog.testing import capture_logs

from aiomq import (
    BackgroundTaskError,
    BrokerConnectionError,
    ClosedError,
    CommitError,
    ConfigError,
    Message,
    Reader,
    UnknownTopicOrPartitionError,
    Writer,
)
from aiomq._internal.consumer.commits import GroupCommits
from aiomq.group import Claim, GroupSession
from aiomq.testing import EmbeddedBroker
from tests.integration.test_reader import (
    DEADLINE,
    GROUP_OPTIONS,
    Calls,
    committed_offsets,
    create_topic,
    fetch_n,
    group_reader,
    orders_on_mock_cluster,
    values,
    write,
)
from tests.support.mock_cluster import MockCluster
from tests.support.waiting import wait_until


async def rebalance_by_joining(
    bootstrap_servers: str, topic: str, group_id: str, assigned: Calls, times: int
) -> Reader:
    """Open a member of `group_id` that reads another topic, and wait for the rebalance.

    The reader already in the group gives every partition up and gets its own back: its
    `on_assigned` callback (`assigned`) has then been called `times` times in all.
    """
    other = f"{topic}-other"
    await create_topic(bootstrap_servers, other, 1)
    joiner = group_reader(bootstrap_servers, other, group_id)
    await joiner.__aenter__()
    await assigned.wait_for(times)
    return joiner


async def one_partition_group(bootstrap_servers: str, topic: str, count: int) -> tuple[str, Calls]:
    """Create `topic` with one partition holding `count` messages; return a group id for
    it and a recorder of the group's assignments."""
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", count))
    return f"g-{topic}", Calls()


def tasks_of(before: set[asyncio.Task[Any]]) -> list[str]:
    """Describe the tasks that run now and did not before (the current one excluded)."""
    current = asyncio.current_task()
    return sorted(
        repr(task.get_coro())
        for task in asyncio.all_tasks() - before
        if task is not current and not task.done()
    )


# -- 1. a late commit never moves the group back -----------------------------------------


@pytest.mark.parametrize("commit_interval", [0.0, 60.0], ids=["at-once", "stashed"])
async def test_a_late_commit_after_the_partition_comes_back_never_moves_the_group_back(
    bootstrap_servers: str, topic: str, commit_interval: float
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", 10))
    group_id = f"g-{topic}"
    tp = TopicPartition(topic, 0)
    assigned = Calls()
    async with group_reader(
        bootstrap_servers,
        topic,
        group_id,
        commit_interval=commit_interval,
        on_assigned=assigned,
    ) as reader:
        read = await fetch_n(reader, 10)
        await reader.commit_messages(read[9])
        await assigned.wait_for(1)
        joiner = await rebalance_by_joining(bootstrap_servers, topic, group_id, assigned, 2)
        try:
            assert reader.assignment() == {(topic, 0)}
            with capture_logs() as logs:
                await reader.commit_messages(read[2])
                if commit_interval:
                    await reader._commits.flush(None)
            assert (await committed_offsets(bootstrap_servers, group_id, [tp]))[tp] == 10
            assert [e for e in logs if e["event"] == "stale_commit_dropped"]
            assert reader.stats().stale_commits == 1
        finally:
            await joiner.aclose()


async def test_messages_buffered_before_a_revoke_are_never_returned_after_it(
    bootstrap_servers: str, topic: str
) -> None:
    group_id, assigned = await one_partition_group(bootstrap_servers, topic, 10)
    async with group_reader(bootstrap_servers, topic, group_id, on_assigned=assigned) as reader:
        first = await fetch_n(reader, 1)
        await reader.commit_messages(first[0])
        await assigned.wait_for(1)
        joiner = await rebalance_by_joining(bootstrap_servers, topic, group_id, assigned, 2)
        try:
            again = await fetch_n(reader, 9)
        finally:
            await joiner.aclose()
    # Everything after the committed offset, once each: nothing from the old buffer.
    assert [m.offset for m in again] == list(range(1, 10))


# -- 2. every commit is bounded ------------------------------------------------------------


def orders_reader(brokers: list[str], **options: Any) -> Reader:
    """A member of group "billing" reading topic "orders", with short group sessions."""
    return Reader(
        brokers=brokers, topic="orders", group_id="billing", **{**GROUP_OPTIONS, **options}
    )


async def test_a_commit_while_the_coordinator_is_unreachable_raises_after_commit_timeout(
    mock_cluster: MockCluster,
) -> None:
    brokers = await orders_on_mock_cluster(mock_cluster)
    async with orders_reader(brokers, commit_timeout=1.0) as reader:
        read = await fetch_n(reader, 2)
        mock_cluster.broker_down(-1)
        with pytest.raises(CommitError) as raised:
            async with asyncio.timeout(DEADLINE):
                await reader.commit_messages(read[1])
        assert raised.value.offsets == {("orders", 0): 2}
        assert "orders[0]@2" in str(raised.value)
        assert list(raised.value.messages) == [read[1]]
        mock_cluster.broker_up(-1)


async def test_a_stashed_commit_that_times_out_stays_stashed_for_the_next_flush(
    mock_cluster: MockCluster,
) -> None:
    brokers = await orders_on_mock_cluster(mock_cluster)
    # A session that outlasts the outage: the member keeps its partition, and its stash.
    async with orders_reader(
        brokers,
        commit_interval=60,
        commit_timeout=1.0,
        session_timeout=20.0,
        heartbeat_interval=1.0,
    ) as reader:
        read = await fetch_n(reader, 3)
        await reader.commit_messages(read[1])
        mock_cluster.broker_down(-1)
        with pytest.raises(CommitError):
            async with asyncio.timeout(DEADLINE):
                await reader._commits.flush(None)
        mock_cluster.broker_up(-1)
        async with asyncio.timeout(DEADLINE):
            await reader._commits.flush(None)
        tp = TopicPartition("orders", 0)
        assert (await committed_offsets(",".join(brokers), "billing", [tp]))[tp] == 2


async def test_aclose_ends_a_commit_waiting_in_another_task_with_closed_error(
    mock_cluster: MockCluster,
) -> None:
    brokers = await orders_on_mock_cluster(mock_cluster)
    reader = orders_reader(
        brokers,
        commit_timeout=120,
        close_timeout=2.0,
    )
    await reader.__aenter__()
    read = await fetch_n(reader, 1)
    mock_cluster.broker_down(-1)
    committing = asyncio.create_task(reader.commit_messages(read[0]))
    await asyncio.sleep(0.3)  # let the commit reach its wait for the coordinator
    assert not committing.done()
    async with asyncio.timeout(DEADLINE):
        await reader.aclose()
    assert committing.done()
    with pytest.raises(ClosedError):
        committing.result()


async def test_an_async_for_loop_ends_as_soon_as_the_reader_starts_closing(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", 50))
    reader = Reader(brokers=[bootstrap_servers], topic=topic, queue_capacity=50)
    await reader.__aenter__()
    seen: list[int] = []
    closing: asyncio.Task[None] | None = None
    async with asyncio.timeout(DEADLINE):
        async for message in reader:
            seen.append(message.offset)
            if len(seen) == 5:
                closing = asyncio.create_task(reader.aclose())
                await asyncio.sleep(0)
        assert closing is not None
        await closing
    assert seen == [0, 1, 2, 3, 4]


# -- 3. aclose is prompt and complete ------------------------------------------------------


async def test_aclose_during_a_group_join_is_prompt_and_leaves_no_task(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    before = asyncio.all_tasks()
    # The embedded broker holds a join for about half the session timeout.
    reader = group_reader(
        bootstrap_servers,
        topic,
        f"g-{topic}",
        session_timeout=20.0,
        heartbeat_interval=1.0,
        close_timeout=30.0,
    )
    await reader.__aenter__()
    fetching = asyncio.create_task(reader.fetch_message())
    await asyncio.sleep(0.5)  # the join is under way
    async with asyncio.timeout(5):
        await reader.aclose()
    assert fetching.done()
    with pytest.raises(ClosedError):
        fetching.result()
    assert tasks_of(before) == []


async def test_aclose_after_a_timed_out_fetch_leaves_no_task(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    before = asyncio.all_tasks()
    reader = Reader(brokers=[bootstrap_servers], topic=topic, max_wait=0.1)
    await reader.__aenter__()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await reader.fetch_message()
    async with asyncio.timeout(5):
        await reader.aclose()
    assert tasks_of(before) == []


async def test_aclose_ends_every_call_waiting_in_other_tasks(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    reader = Reader(brokers=[bootstrap_servers], topic=topic, max_wait=0.1)
    await reader.__aenter__()

    async def iterate() -> None:
        async for _ in reader:
            raise AssertionError("nothing was written")

    waiting = [
        asyncio.create_task(reader.fetch_message()),
        asyncio.create_task(reader.read_message()),
        asyncio.create_task(reader.fetch_batch(10)),
    ]
    loop = asyncio.create_task(iterate())
    await asyncio.sleep(0.3)
    async with asyncio.timeout(5):
        await reader.aclose()
    assert all(task.done() for task in [*waiting, loop])
    for task in waiting:
        assert isinstance(task.exception(), ClosedError)
    assert loop.result() is None


# -- 4. bad input gets a typed error -------------------------------------------------------


async def test_a_partition_reader_of_a_missing_topic_raises_unknown_topic(
    bootstrap_servers: str, topic: str
) -> None:
    reader = Reader(brokers=[bootstrap_servers], topic=f"missing-{topic}")
    with pytest.raises(UnknownTopicOrPartitionError) as raised:
        async with asyncio.timeout(DEADLINE):
            await reader.__aenter__()
    assert f"missing-{topic}" in str(raised.value)


async def test_a_partition_reader_of_a_partition_out_of_range_names_the_partition_count(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 3)
    reader = Reader(brokers=[bootstrap_servers], topic=topic, partition=99)
    with pytest.raises(UnknownTopicOrPartitionError) as raised:
        async with asyncio.timeout(DEADLINE):
            await reader.__aenter__()
    assert "99" in str(raised.value)
    assert "3 partitions" in str(raised.value)


@pytest.mark.parametrize("name", ["a b", "", ".", "..", "x" * 250, "ümlaut"])
def test_an_invalid_topic_name_is_refused_when_the_reader_is_created(name: str) -> None:
    with pytest.raises(ConfigError, match="topic"):
        Reader(brokers=["localhost:9092"], topic=name)


@pytest.mark.parametrize(
    "message",
    [
        Message(topic="orders", partition=0),  # never read: offset -1
        Message(topic="elsewhere", partition=0, offset=4),
        Message(topic="orders", partition=-1, offset=4),
    ],
    ids=["negative-offset", "other-topic", "no-partition"],
)
async def test_committing_a_message_the_reader_could_not_have_read_is_refused(
    bootstrap_servers: str, topic: str, message: Message
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", 6))
    group_id = f"g-{topic}"
    message = message._replace(topic=topic if message.topic == "orders" else message.topic)
    tp = TopicPartition(topic, 0)
    async with group_reader(bootstrap_servers, topic, group_id) as reader:
        read = await fetch_n(reader, 6)
        await reader.commit_messages(read[5])
        with pytest.raises(ConfigError) as raised:
            await reader.commit_messages(message)
        assert message.topic in str(raised.value)
        # Among messages it did read, the one it could not have read fails the whole call.
        with pytest.raises(ConfigError) as raised:
            await reader.commit_messages(*read[:3], message, *read[3:])
        assert message.topic in str(raised.value)
    assert (await committed_offsets(bootstrap_servers, group_id, [tp]))[tp] == 6


# -- 5. outages are visible and recoverable ------------------------------------------------


async def test_an_outage_is_counted_logged_and_survived_by_default(
    mock_cluster: MockCluster,
) -> None:
    brokers = await orders_on_mock_cluster(mock_cluster)
    async with Reader(brokers=brokers, topic="orders", max_wait=0.1) as reader:
        await fetch_n(reader, 3)
        with capture_logs() as logs:
            mock_cluster.broker_down(-1)
            fetching = asyncio.create_task(reader.fetch_message())
            await wait_until(
                lambda: any(e["event"] == "broker_unreachable" for e in logs),
                "the outage is logged",
            )
            assert not fetching.done()
            assert reader.stats().errors > 0
            mock_cluster.broker_up(-1)
            await write(",".join(brokers), "orders", values("after", 1))
            async with asyncio.timeout(DEADLINE):
                message = await fetching
        assert message.value == b"after0"
        events = [e["event"] for e in logs if e["event"].startswith("broker_")]
        assert events == ["broker_unreachable", "broker_reachable"]
        unreachable = next(e for e in logs if e["event"] == "broker_unreachable")
        assert unreachable["brokers"]


async def test_reads_raise_broker_connection_error_after_unavailable_timeout(
    mock_cluster: MockCluster,
) -> None:
    brokers = await orders_on_mock_cluster(mock_cluster)
    async with Reader(
        brokers=brokers, topic="orders", max_wait=0.1, unavailable_timeout=1.0
    ) as reader:
        await fetch_n(reader, 3)
        mock_cluster.broker_down(-1)
        with pytest.raises(BrokerConnectionError):
            async with asyncio.timeout(DEADLINE):
                await reader.fetch_message()
        assert reader.stats().errors > 0


# -- 7. concurrent fetchers across a rebalance ---------------------------------------------


async def test_a_task_waiting_to_fetch_across_a_revoke_gets_no_message_from_before_it(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    group_id = f"g-{topic}"
    assigned = Calls()
    # A long max_wait keeps the second task inside its fetch across the rebalance.
    async with group_reader(
        bootstrap_servers, topic, group_id, on_assigned=assigned, max_wait=10.0
    ) as reader:
        await assigned.wait_for(1)
        waiting = [asyncio.create_task(reader.fetch_message()) for _ in range(2)]
        await asyncio.sleep(0.2)  # both tasks are inside their fetch
        await write(bootstrap_servers, topic, values("v", 10))
        async with asyncio.timeout(DEADLINE):
            done, pending = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        assert [task.result().offset for task in done] == [0]
        joiner = await rebalance_by_joining(bootstrap_servers, topic, group_id, assigned, 2)
        try:
            # Nothing was committed: after the revoke, reading starts again at offset 0,
            # and each message comes once.
            async with asyncio.timeout(DEADLINE):
                after = [(await task).offset for task in pending]
            after += [m.offset for m in await fetch_n(reader, 10 - len(after))]
        finally:
            await joiner.aclose()
    assert sorted(after) == list(range(10))


# -- 8. smaller findings -------------------------------------------------------------------


async def test_stats_count_only_returned_messages_after_set_offset(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", 10))
    async with Reader(brokers=[bootstrap_servers], topic=topic) as reader:
        await fetch_n(reader, 1)
        reader.set_offset(0)
        assert reader.stats().messages == 1
        await fetch_n(reader, 2)
        assert reader.stats().messages == 3


async def test_stats_count_only_returned_messages_after_a_revoke(
    bootstrap_servers: str, topic: str
) -> None:
    group_id, assigned = await one_partition_group(bootstrap_servers, topic, 10)
    async with group_reader(bootstrap_servers, topic, group_id, on_assigned=assigned) as reader:
        await fetch_n(reader, 1)
        await assigned.wait_for(1)
        joiner = await rebalance_by_joining(bootstrap_servers, topic, group_id, assigned, 2)
        try:
            assert reader.stats().messages == 1
        finally:
            await joiner.aclose()


class StubbornHandler:
    """A handler whose claims ignore the end of their claim."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = 0

    async def setup(self, session: GroupSession) -> None:
        pass

    async def consume_claim(self, session: GroupSession, claim: Claim) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def cleanup(self, session: GroupSession) -> None:
        pass


async def test_a_claim_that_ignores_a_revoke_is_cancelled_after_rebalance_timeout(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    group_id = f"g-{topic}"
    assigned = Calls()
    handler = StubbornHandler()
    async with group_reader(
        bootstrap_servers, topic, group_id, on_assigned=assigned, rebalance_timeout=1.0
    ) as reader:
        consuming = asyncio.create_task(reader.consume(handler))
        async with asyncio.timeout(DEADLINE):
            await handler.started.wait()
        with capture_logs() as logs:
            joiner = await rebalance_by_joining(bootstrap_servers, topic, group_id, assigned, 2)
        try:
            assert handler.cancelled == 1
            assert any(e["event"] == "group_claim_cancelled" for e in logs)
        finally:
            await joiner.aclose()
        await reader.aclose()
        async with asyncio.timeout(DEADLINE):
            await consuming


# -- the same faults through the fault proxy, on the embedded broker -----------------------


async def test_a_cut_network_is_logged_counted_and_survived_by_a_partition_reader(
    kafka_faulty_broker: EmbeddedBroker, topic: str
) -> None:
    servers = kafka_faulty_broker.bootstrap_servers
    await create_topic(servers, topic, 1)
    await write(servers, topic, values("v", 2))
    async with Reader(brokers=[servers], topic=topic, max_wait=0.1) as reader:
        await fetch_n(reader, 2)
        with capture_logs() as logs:
            kafka_faulty_broker.faults.cut()
            fetching = asyncio.create_task(reader.fetch_message())
            await wait_until(
                lambda: any(e["event"] == "broker_unreachable" for e in logs),
                "the cut is logged",
            )
            assert reader.stats().errors > 0
            kafka_faulty_broker.faults.heal()
            await write(servers, topic, values("after", 1))
            async with asyncio.timeout(DEADLINE):
                message = await fetching
        assert message.value == b"after0"
        assert [e["event"] for e in logs if e["event"].startswith("broker_")] == [
            "broker_unreachable",
            "broker_reachable",
        ]


async def test_a_blackholed_network_makes_reads_raise_after_unavailable_timeout(
    kafka_faulty_broker: EmbeddedBroker, topic: str
) -> None:
    servers = kafka_faulty_broker.bootstrap_servers
    await create_topic(servers, topic, 1)
    await write(servers, topic, values("v", 1))
    async with Reader(
        brokers=[servers], topic=topic, max_wait=0.1, unavailable_timeout=1.0, close_timeout=2.0
    ) as reader:
        await fetch_n(reader, 1)
        kafka_faulty_broker.faults.blackhole()
        with pytest.raises(BrokerConnectionError, match="unavailable_timeout"):
            async with asyncio.timeout(DEADLINE):
                await reader.fetch_message()
        kafka_faulty_broker.faults.heal()


async def test_a_commit_through_a_blackhole_raises_and_aclose_stays_prompt(
    kafka_faulty_broker: EmbeddedBroker, topic: str
) -> None:
    servers = kafka_faulty_broker.bootstrap_servers
    await create_topic(servers, topic, 1)
    await write(servers, topic, values("v", 3))
    before = asyncio.all_tasks()
    reader = group_reader(servers, topic, f"g-{topic}", commit_timeout=1.0, close_timeout=3.0)
    await reader.__aenter__()
    read = await fetch_n(reader, 3)
    kafka_faulty_broker.faults.blackhole()
    with pytest.raises(CommitError) as raised:
        async with asyncio.timeout(DEADLINE):
            await reader.commit_messages(read[2])
    assert raised.value.offsets == {(topic, 0): 3}
    async with asyncio.timeout(3.0 + 2.0):
        await reader.aclose()
    assert tasks_of(before) == []
    kafka_faulty_broker.faults.heal()


async def test_aclose_cut_short_by_an_outage_leaves_no_fetch_request_running(
    kafka_faulty_broker: EmbeddedBroker, topic: str
) -> None:
    """After a rebalance the member leaves the group on close; blackholed, that LeaveGroup
    outlasts the close budget, and the fetcher's requests must still be ended."""
    servers = kafka_faulty_broker.bootstrap_servers
    group_id, assigned = await one_partition_group(servers, topic, 3)
    before = asyncio.all_tasks()
    reader = group_reader(servers, topic, group_id, close_timeout=1.0, on_assigned=assigned)
    await reader.__aenter__()
    await fetch_n(reader, 3)
    await assigned.wait_for(1)
    joiner = await rebalance_by_joining(servers, topic, group_id, assigned, 2)
    await joiner.aclose()
    await assigned.wait_for(3)
    kafka_faulty_broker.faults.blackhole()
    try:
        await asyncio.sleep(0.5)  # the reader's next fetch is sent into the blackhole
        with capture_logs() as logs:
            async with asyncio.timeout(1.0 + 2.0):
                await reader.aclose()
        left = tasks_of(before)
    finally:
        kafka_faulty_broker.faults.heal()
    assert [e for e in logs if e["event"] == "reader_close_timed_out"]
    assert left == []


# -- a failing background task -------------------------------------------------------------


async def test_a_failing_commit_flusher_fails_the_reader_loudly(
    bootstrap_servers: str, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", 3))
    reader = group_reader(bootstrap_servers, topic, f"g-{topic}", commit_interval=0.05)

    async def broken(self: GroupCommits, partitions: set[tuple[str, int]] | None) -> None:
        raise RuntimeError("flusher bug")

    monkeypatch.setattr(GroupCommits, "flush", broken)
    with capture_logs() as logs:
        await reader.__aenter__()
        await wait_until(
            lambda: any(e["event"] == "background_task_failed" for e in logs),
            "the failure is logged",
        )
    with pytest.raises(BackgroundTaskError, match="flusher bug"):
        async with asyncio.timeout(DEADLINE):
            await reader.fetch_message()
    with pytest.raises(BackgroundTaskError):
        await reader.aclose()


async def test_the_documented_outage_rehearsal_raises_broker_connection_error(
    kafka_faulty_broker: EmbeddedBroker,
) -> None:
    # The "Fault injection" example of docs/testing.md, as it is written there.
    brokers = [kafka_faulty_broker.bootstrap_servers]
    async with Writer(brokers=brokers, topic="t", allow_auto_topic_creation=True) as w:
        await w.write_messages(Message(value=b"first", partition=0))
    async with Reader(brokers=brokers, topic="t", max_wait=0.1, unavailable_timeout=1.0) as r:
        await r.fetch_message()
        kafka_faulty_broker.faults.cut()
        with pytest.raises(BrokerConnectionError):
            async with asyncio.timeout(DEADLINE):
                await r.fetch_message()


class CountingHandler:
    """A handler that counts the messages its claims see."""

    def __init__(self) -> None:
        self.seen = 0

    async def setup(self, session: GroupSession) -> None:
        pass

    async def consume_claim(self, session: GroupSession, claim: Claim) -> None:
        async for message in claim:
            self.seen += 1
            session.mark_message(message)

    async def cleanup(self, session: GroupSession) -> None:
        pass


async def test_an_outage_under_a_group_handler_is_logged_and_ends_it_after_unavailable_timeout(
    mock_cluster: MockCluster,
) -> None:
    brokers = await orders_on_mock_cluster(mock_cluster)
    handler = CountingHandler()
    reader = orders_reader(
        brokers,
        unavailable_timeout=1.0,
        close_timeout=2.0,
    )
    await reader.__aenter__()
    with capture_logs() as logs:
        consuming = asyncio.create_task(reader.consume(handler))
        await wait_until(lambda: handler.seen == 3, "the handler has read every message")
        mock_cluster.broker_down(-1)
        with pytest.raises(BrokerConnectionError):
            async with asyncio.timeout(DEADLINE):
                await consuming
    assert any(e["event"] == "broker_unreachable" for e in logs)
    assert reader.stats().errors > 0
    # The marks could not be committed with every broker down: closing says so.
    with pytest.raises(CommitError) as raised:
        await reader.aclose()
    assert raised.value.offsets == {("orders", 0): 3}
