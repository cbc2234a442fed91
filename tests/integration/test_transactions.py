"""A transactional Writer (`transactional_id`, `transaction()`, `send_offsets`) against real
brokers: the embedded one (Tansu), librdkafka's mock cluster, and Apache Kafka when one is
named.

What each broker shows (measured; see also test_transaction_protocol.py):

- The embedded broker runs the whole protocol: it hides the records of an open
  transaction from READ_COMMITTED readers until it commits, keeps offsets sent in a
  transaction from the group until it commits (and for good if it aborts), and fences an
  older writer with the same transactional id. It does not hide aborted records from
  READ_COMMITTED readers, so that aborted records stay unseen is checked only against
  Apache Kafka (the `external_broker` tests, and the extra checks marked so below).
- The mock cluster accepts transactional producers and takes injected errors and delays
  for every transaction request: retries, fencing, refusals and timeouts are shown there.
- Neither local broker checks the group generation that offsets sent in a transaction
  carry (KIP-447); a test shows it against Apache Kafka, and one shows the reader's own
  refusal of offsets of partitions it no longer owns, everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import pytest
import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer
from confluent_kafka import TopicPartition as PeerPartition

from aiomq import (
    Client,
    ClosedError,
    ConfigError,
    IsolationLevel,
    Message,
    ProducerFencedError,
    Reader,
    RequiredAcks,
    TopicSpec,
    TransactionError,
    WriteErrors,
    Writer,
)
from aiomq._internal.kafka.consumer import group_member
from aiomq.testing import EmbeddedBroker
from tests.integration.test_reader import DEADLINE, fetch_n, group_reader
from tests.support.brokers import external_bootstrap
from tests.support.mock_cluster import ApiKey, ErrorCode, MockCluster
from tests.support.processes import child_module, kill_hard
from tests.support.waiting import wait_until

# -- helpers ------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def brokers(bootstrap_servers: str) -> list[str]:
    return bootstrap_servers.split(",")


def transactional(
    bootstrap_servers: str, transactional_id: str | None = None, **options: Any
) -> Writer:
    return Writer(
        brokers=brokers(bootstrap_servers),
        transactional_id=transactional_id or unique("txn"),
        **{"write_timeout": 5.0, **options},
    )


def committed_reader(bootstrap_servers: str, topic: str, **options: Any) -> Reader:
    """A group reader of `topic` that reads committed records only."""
    return group_reader(
        bootstrap_servers,
        topic,
        unique("committed"),
        isolation_level=IsolationLevel.READ_COMMITTED,
        **options,
    )


async def create_topics(bootstrap_servers: str, *topics: str, partitions: int = 2) -> None:
    async with Client(brokers=brokers(bootstrap_servers)) as admin:
        await admin.create_topics(*(TopicSpec(name=t, partitions=partitions) for t in topics))


async def seed(bootstrap_servers: str, topic: str, count: int, *, partition: int = 0) -> None:
    async with Writer(brokers=brokers(bootstrap_servers), topic=topic) as writer:
        await writer.write_messages(
            *(Message(value=f"in{i}".encode(), partition=partition) for i in range(count))
        )


async def group_offsets(bootstrap_servers: str, group_id: str, topic: str) -> dict[int, int]:
    async with Client(brokers=brokers(bootstrap_servers)) as admin:
        offsets = await admin.group_offsets(group_id, topics=[topic])
    return {o.partition: o.committed for o in offsets}


async def values_within(reader: Reader, within: float) -> list[bytes]:
    """Every value the reader returns until `within` seconds pass without a new one."""
    got: list[bytes] = []
    while True:
        try:
            async with asyncio.timeout(within):
                batch = await reader.fetch_batch(1000)
        except TimeoutError:
            return got
        got += [m.value for m in batch if m.value is not None]


async def values_until(reader: Reader, expected: set[bytes]) -> list[bytes]:
    """Read until every value of `expected` has arrived (within the deadline)."""
    got: list[bytes] = []
    async with asyncio.timeout(DEADLINE):
        while not expected <= set(got):
            got += [m.value for m in await reader.fetch_batch(1000) if m.value is not None]
    return got


def peer_values(
    bootstrap_servers: str,
    topic: str,
    partitions: int,
    *,
    expected: set[bytes] | None = None,
    within: float = 2.0,
) -> list[bytes]:
    """What librdkafka's own consumer reads in read_committed from the start of every
    partition: until `expected` has arrived and then `within` seconds more, or with no
    `expected`, for `within` seconds (run it in a thread)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": unique("peer"),
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([PeerPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got: list[bytes] = []
    try:
        start = time.monotonic()
        if expected is not None:
            while not expected <= set(got):
                assert time.monotonic() - start < DEADLINE, (got, expected)
                take(consumer.poll(0.1), got)
        quiet_until = time.monotonic() + within
        while time.monotonic() < quiet_until:
            take(consumer.poll(0.1), got)
    finally:
        consumer.close()
    return got


def take(message: Any, into: list[bytes]) -> None:
    """Keep the value of a record librdkafka's consumer polled, if it is one."""
    if message is not None and not message.error() and message.value() is not None:
        into.append(message.value())


@contextlib.asynccontextmanager
async def input_reader(bootstrap_servers: str, topic: str, group_id: str) -> AsyncIterator[Reader]:
    async with group_reader(
        bootstrap_servers, topic, group_id, isolation_level=IsolationLevel.READ_COMMITTED
    ) as reader:
        yield reader


def writer_tasks() -> set[asyncio.Task[Any]]:
    """The running tasks of aiomq's own code (aiokafka's fetcher comes and goes)."""
    found = set()
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and "/aiomq/" in code.co_filename:
            found.add(task)
    return found


@contextlib.contextmanager
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with structlog.testing.capture_logs() as logs:
        yield logs


# -- commit, abort, and what readers see ---------------------------------------------------


async def test_a_committed_transaction_is_seen_by_read_committed_readers_only_once_committed(
    bootstrap_servers: str, topic: str
) -> None:
    """The records are there all along (a READ_UNCOMMITTED reader sees them before the
    commit, so the hiding is real); READ_COMMITTED readers, aiomq's and librdkafka's,
    see them only after it."""
    await create_topics(bootstrap_servers, topic)
    expected = {b"a", b"b", b"c"}
    async with (
        transactional(bootstrap_servers, topic=topic) as writer,
        committed_reader(bootstrap_servers, topic) as hidden,
        group_reader(bootstrap_servers, topic, unique("uncommitted")) as uncommitted,
    ):
        async with writer.transaction():
            written = await writer.write_messages(
                Message(value=b"a", partition=0),
                Message(value=b"b", partition=1),
                Message(value=b"c", partition=1),
            )
            assert [m.offset >= 0 for m in written] == [True] * 3
            assert set(await values_until(uncommitted, expected)) == expected
            assert await values_within(hidden, 1.0) == []
            assert (
                await asyncio.to_thread(peer_values, bootstrap_servers, topic, 2, within=3.0) == []
            )

        assert sorted(await values_until(hidden, expected)) == sorted(expected)
    seen = await asyncio.to_thread(peer_values, bootstrap_servers, topic, 2, expected=expected)
    assert sorted(seen) == sorted(expected)


async def test_offsets_sent_in_a_transaction_reach_the_group_only_when_it_commits(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic, f"{topic}.out")
    await seed(bootstrap_servers, topic, 10)
    group_id = unique("group")
    async with (
        input_reader(bootstrap_servers, topic, group_id) as reader,
        transactional(bootstrap_servers, topic=f"{topic}.out") as writer,
    ):
        inputs = await fetch_n(reader, 10)
        async with writer.transaction():
            await writer.write_messages(*(Message(value=m.value) for m in inputs))
            await writer.send_offsets(reader, inputs)
            assert await group_offsets(bootstrap_servers, group_id, topic) == {0: -1, 1: -1}
        assert await group_offsets(bootstrap_servers, group_id, topic) == {0: 10, 1: -1}
        assert reader.stats().commits == 1

        # The reader learnt the offset: committing an earlier message now would move the
        # group back, so it is dropped.
        await reader.commit_messages(inputs[3])
        assert reader.stats().stale_commits == 1
    assert await group_offsets(bootstrap_servers, group_id, topic) == {0: 10, 1: -1}


async def test_an_exception_aborts_the_transaction_and_propagates_unchanged(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic, f"{topic}.out")
    await seed(bootstrap_servers, topic, 4)
    group_id = unique("group")

    class Boom(Exception):
        pass

    boom = Boom("the handler failed")
    async with (
        input_reader(bootstrap_servers, topic, group_id) as reader,
        transactional(bootstrap_servers, topic=f"{topic}.out") as writer,
    ):
        inputs = await fetch_n(reader, 4)

        async def fail() -> None:
            async with writer.transaction():
                await writer.write_messages(Message(value=b"doomed"))
                await writer.send_offsets(reader, inputs)
                raise boom

        with captured_logs() as logs, pytest.raises(Boom) as caught:
            await fail()
        assert caught.value is boom
        assert "transaction_aborted" in [entry["event"] for entry in logs]
        assert await group_offsets(bootstrap_servers, group_id, topic) == {0: -1, 1: -1}

        # The writer goes on: the next transaction commits the same offsets.
        async with writer.transaction():
            await writer.write_messages(Message(value=b"kept"))
            await writer.send_offsets(reader, inputs)
        stats = writer.stats()
        assert (stats.transactions, stats.transactions_aborted) == (1, 1)
    assert await group_offsets(bootstrap_servers, group_id, topic) == {0: 4, 1: -1}

    if external_bootstrap() is not None:
        # Only Apache Kafka hides aborted records; the embedded broker shows them.
        async with committed_reader(bootstrap_servers, f"{topic}.out") as check:
            assert await values_within(check, 2.0) == [b"kept"]


@pytest.mark.external_broker("the local brokers do not hide aborted records from READ_COMMITTED")
async def test_records_of_an_aborted_transaction_are_never_seen_by_read_committed_readers(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic)
    async with transactional(bootstrap_servers, topic=topic) as writer:
        with contextlib.suppress(RuntimeError):
            async with writer.transaction():
                await writer.write_messages(Message(value=b"aborted", partition=0))
                raise RuntimeError("abort")
        async with writer.transaction():
            await writer.write_messages(Message(value=b"committed", partition=0))
    async with committed_reader(bootstrap_servers, topic) as reader:
        assert await values_within(reader, 2.0) == [b"committed"]
    seen = await asyncio.to_thread(
        peer_values, bootstrap_servers, topic, 2, expected={b"committed"}
    )
    assert seen == [b"committed"]


# -- fencing -------------------------------------------------------------------------------


async def test_a_second_writer_with_the_same_transactional_id_fences_the_first(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic)
    transactional_id = unique("txn")
    async with (
        transactional(bootstrap_servers, transactional_id, topic=topic) as first,
        transactional(bootstrap_servers, transactional_id, topic=topic) as second,
    ):
        with pytest.raises(ProducerFencedError) as caught:
            async with first.transaction():
                await first.write_messages(Message(value=b"zombie"))
        assert caught.value.transactional_id == transactional_id
        assert isinstance(caught.value, TransactionError)
        assert repr(transactional_id) in str(caught.value)

        # Fenced for good: every later use is refused, naming the first fencing.
        with pytest.raises(ProducerFencedError):
            async with first.transaction():
                pass
        with pytest.raises(ProducerFencedError):
            await first.write_messages(Message(value=b"zombie"))

        async with second.transaction():
            await second.write_messages(Message(value=b"alive", partition=0))
    async with committed_reader(bootstrap_servers, topic) as reader:
        assert b"alive" in await values_until(reader, {b"alive"})


async def test_a_fenced_writer_that_aborted_does_not_take_its_transactional_id_back(
    bootstrap_servers: str, topic: str
) -> None:
    """After an abort the older writer asks for its epoch again before its next
    transaction; that must not fence the newer writer that took the id meanwhile."""
    await create_topics(bootstrap_servers, topic)
    transactional_id = unique("txn")
    async with transactional(bootstrap_servers, transactional_id, topic=topic) as first:
        with contextlib.suppress(LookupError):
            async with first.transaction():
                await first.write_messages(Message(value=b"aborted", partition=0))
                raise LookupError("abort")
        async with transactional(bootstrap_servers, transactional_id, topic=topic) as second:
            with pytest.raises(ProducerFencedError):
                async with first.transaction():
                    await first.write_messages(Message(value=b"zombie", partition=0))
            async with second.transaction():
                await second.write_messages(Message(value=b"alive", partition=0))


async def test_after_a_failed_write_the_embedded_broker_cannot_renew_the_epoch_so_reopen(
    kafka_faulty_broker: EmbeddedBroker, topic: str
) -> None:
    """A batch that failed half-way leaves its sequence unknown: the next transaction needs
    a new epoch, asked for with the writer's id and epoch (KIP-360) so that a writer
    fenced meanwhile cannot take its transactional id back. The embedded broker fails on
    that request, so the writer says to reopen it; a new writer with the same
    transactional id carries on. (The mock cluster renews; see the test below.)"""
    servers = kafka_faulty_broker.bootstrap_servers
    await create_topics(servers, topic, partitions=1)
    transactional_id = unique("txn")
    async with transactional(
        servers, transactional_id, topic=topic, max_attempts=1, write_timeout=1.0
    ) as writer:

        async def write_through_a_cut() -> None:
            async with writer.transaction():
                await writer.write_messages(Message(value=b"before"))
                kafka_faulty_broker.faults.cut()
                await writer.write_messages(Message(value=b"lost"))

        with captured_logs() as logs, pytest.raises(WriteErrors):
            await write_through_a_cut()
        kafka_faulty_broker.faults.heal()
        assert "transaction_abort_failed" in [entry["event"] for entry in logs]

        with pytest.raises(TransactionError, match="open a new writer") as caught:
            async with writer.transaction():
                pass
        assert caught.value.step == "renewing the producer epoch before a transaction"
    successor = transactional(servers, transactional_id, topic=topic)
    async with successor, successor.transaction():
        await successor.write_messages(Message(value=b"after"))


async def test_a_writer_killed_mid_transaction_is_aborted_by_its_successor(
    bootstrap_servers: str, topic: str
) -> None:
    """The writer runs in a subprocess killed with SIGKILL while its transaction is open
    (records written, offsets sent). A new writer with its transactional id aborts it:
    the offsets never reach the group, and READ_COMMITTED readers are no longer held
    back by the open transaction."""
    await create_topics(bootstrap_servers, topic, f"{topic}.out")
    await seed(bootstrap_servers, topic, 5)
    group_id = unique("group")
    transactional_id = unique("txn")
    async with child_module(
        "tests.support.crash_transaction", bootstrap_servers, topic, group_id, transactional_id
    ) as process:
        assert process.stdout is not None
        async with asyncio.timeout(DEADLINE):
            line = await process.stdout.readline()
        assert line.strip() == b"open", "the crashing writer stopped early; its stderr says why"
        await kill_hard(process)

    async with committed_reader(bootstrap_servers, f"{topic}.out") as reader:
        # The open transaction holds its records back.
        assert await values_within(reader, 1.0) == []
        heir = transactional(bootstrap_servers, transactional_id, topic=f"{topic}.out")
        async with heir, heir.transaction():
            await heir.write_messages(Message(value=b"after", partition=0))
        seen = await values_until(reader, {b"after"})
    if external_bootstrap() is not None:
        assert seen == [b"after"]
    assert await group_offsets(bootstrap_servers, group_id, topic) == {0: -1, 1: -1}


# -- bad use -------------------------------------------------------------------------------


async def test_transactions_do_not_nest(bootstrap_servers: str, topic: str) -> None:
    await create_topics(bootstrap_servers, topic)
    async with transactional(bootstrap_servers, topic=topic) as writer:

        async def nest() -> None:
            async with writer.transaction():
                await writer.write_messages(Message(value=b"outer"))
                async with writer.transaction():
                    pass

        with pytest.raises(TransactionError, match="do not nest"):
            await nest()
        # The outer one was aborted by the error; the writer goes on.
        async with writer.transaction():
            await writer.write_messages(Message(value=b"next"))


async def test_a_transactional_writer_refuses_writes_outside_a_transaction(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic)
    async with transactional(bootstrap_servers, topic=topic) as writer:
        with pytest.raises(TransactionError, match=r"writer\.transaction\(\)") as caught:
            await writer.write_messages(Message(value=b"stray"))
        assert caught.value.step == "write_messages"
        assert writer.stats().messages == 0


async def test_transactions_need_a_transactional_writer(bootstrap_servers: str, topic: str) -> None:
    await create_topics(bootstrap_servers, topic)
    async with (
        Writer(brokers=brokers(bootstrap_servers), topic=topic) as plain,
        group_reader(bootstrap_servers, topic, unique("group")) as reader,
    ):
        with pytest.raises(ConfigError, match="transactional_id"):
            plain.transaction()
        with pytest.raises(ConfigError, match="transactional_id"):
            await plain.send_offsets(reader, [])


async def test_send_offsets_needs_an_open_transaction_and_a_group_reader(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic)
    await seed(bootstrap_servers, topic, 1)
    async with (
        transactional(bootstrap_servers, topic=topic) as writer,
        Reader(brokers=brokers(bootstrap_servers), topic=topic, partition=0) as single,
        input_reader(bootstrap_servers, topic, unique("group")) as reader,
    ):
        message = (await fetch_n(single, 1))[0]
        with pytest.raises(TransactionError, match="send_offsets"):
            await writer.send_offsets(reader, [message])
        async with writer.transaction():
            with pytest.raises(ConfigError, match="group_id"):
                await writer.send_offsets(single, [message])
            stranger = message._replace(topic=f"{topic}.other")
            with pytest.raises(ConfigError, match="only a message this reader returned"):
                await writer.send_offsets(reader, [stranger])


def test_a_transactional_writer_needs_acks_from_all_replicas() -> None:
    with pytest.raises(ConfigError, match="required_acks"):
        Writer(brokers=["localhost:9092"], transactional_id="t", required_acks=RequiredAcks.ONE)
    with pytest.raises(ConfigError, match="transactional_id"):
        Writer(brokers=["localhost:9092"], transactional_id="")
    with pytest.raises(ConfigError, match="transaction_timeout"):
        Writer(brokers=["localhost:9092"], transactional_id="t", transaction_timeout=0)


async def test_closing_the_writer_inside_a_transaction_aborts_it(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topics(bootstrap_servers, topic, f"{topic}.out")
    await seed(bootstrap_servers, topic, 2)
    group_id = unique("group")
    async with input_reader(bootstrap_servers, topic, group_id) as reader:
        inputs = await fetch_n(reader, 2)
        writer = transactional(bootstrap_servers, topic=f"{topic}.out")
        async with writer:

            async def close_inside() -> None:
                async with writer.transaction():
                    await writer.send_offsets(reader, inputs)
                    await writer.aclose()

            with pytest.raises(ClosedError, match="aborted"):
                await close_inside()
    assert await group_offsets(bootstrap_servers, group_id, topic) == {0: -1, 1: -1}


# -- rebalances ----------------------------------------------------------------------------


async def test_offsets_of_partitions_the_reader_lost_are_refused_and_the_transaction_aborts(
    bootstrap_servers: str, topic: str
) -> None:
    """A reader that lost a partition in a rebalance must not commit a transaction for it:
    its outputs would duplicate those of the partition's new owner. The reader refuses
    before asking the broker (which, from Kafka 2.5, would refuse too)."""
    await create_topics(bootstrap_servers, topic, f"{topic}.out")
    await seed(bootstrap_servers, topic, 3, partition=0)
    await seed(bootstrap_servers, topic, 3, partition=1)
    group_id = unique("group")
    async with (
        input_reader(bootstrap_servers, topic, group_id) as first,
        transactional(bootstrap_servers, topic=f"{topic}.out") as writer,
    ):
        inputs = await fetch_n(first, 6)
        async with input_reader(bootstrap_servers, topic, group_id) as second:
            await wait_until(
                lambda: len(first.assignment()) == 1, "the first reader has one partition"
            )
            await wait_until(lambda: len(second.assignment()) == 1, "the second has the other")

            async def zombie() -> None:
                async with writer.transaction():
                    await writer.write_messages(Message(value=b"zombie output"))
                    await writer.send_offsets(first, inputs)

            with pytest.raises(TransactionError, match="no longer owns") as caught:
                await zombie()
            assert caught.value.step == "sending offsets to the transaction"
            assert first.stats().stale_commits == 1  # one partition lost
    assert await group_offsets(bootstrap_servers, group_id, topic) == {0: -1, 1: -1}


@pytest.mark.external_broker(
    "the local brokers do not check the generation of offsets sent in a transaction (KIP-447)"
)
async def test_the_broker_refuses_offsets_sent_in_a_transaction_with_an_old_generation(
    bootstrap_servers: str, topic: str
) -> None:
    """The second line of defence: the broker itself refuses a transactional offset commit
    from a generation the group has left behind."""
    await create_topics(bootstrap_servers, topic)
    await seed(bootstrap_servers, topic, 1)
    group_id = unique("group")
    async with (
        input_reader(bootstrap_servers, topic, group_id) as reader,
        transactional(bootstrap_servers, topic=topic) as writer,
    ):
        await fetch_n(reader, 1)
        consumer = reader._core.consumer
        assert consumer is not None
        current = group_member(consumer)
        transactions = writer._transactions
        assert transactions is not None
        async with writer.transaction():
            await transactions.send_offsets(group_id, current, {topic: {0: 1}})
        stale = type(current)(
            generation=current.generation - 1,
            member_id=current.member_id,
            group_instance_id=None,
            coordinator=current.coordinator,
        )

        async def send_stale() -> None:
            async with writer.transaction():
                await transactions.send_offsets(group_id, stale, {topic: {0: 1}})

        with pytest.raises(TransactionError, match=r"ILLEGAL_GENERATION|UNKNOWN_MEMBER_ID"):
            await send_stale()


# -- cancellation --------------------------------------------------------------------------


async def test_cancelling_inside_a_transaction_at_random_points_never_half_commits(
    bootstrap_servers: str, topic: str
) -> None:
    """Each transaction writes one output to each of two partitions and commits one
    input's offset; a cancellation lands at a random moment in each. After every one the
    writer is ready again (no transaction left open, nothing left running), and the group's
    offset is that of the last transaction that committed. Against Apache Kafka, the
    outputs show too that every transaction committed whole or not at all (the embedded
    broker would show aborted outputs)."""
    rounds = 20
    await create_topics(bootstrap_servers, topic, f"{topic}.out")
    await seed(bootstrap_servers, topic, rounds)
    group_id = unique("group")
    rng = random.Random(20261205)
    outcomes: dict[int, str] = {}
    async with (
        input_reader(bootstrap_servers, topic, group_id) as reader,
        transactional(bootstrap_servers, topic=f"{topic}.out") as writer,
    ):
        inputs = await fetch_n(reader, rounds)

        async def one(i: int) -> None:
            async with writer.transaction():
                await writer.write_messages(
                    Message(value=f"{i}".encode(), partition=0),
                    Message(value=f"{i}".encode(), partition=1),
                )
                await writer.send_offsets(reader, [inputs[i]])

        before = writer_tasks()
        for i in range(rounds):
            task = asyncio.create_task(one(i))
            await asyncio.sleep(rng.uniform(0, 0.02))
            task.cancel()
            try:
                await task
                outcomes[i] = "committed"
            except asyncio.CancelledError:
                outcomes[i] = "cancelled"
            assert not writer._transactions.is_open  # type: ignore[union-attr]
            offset = max((await group_offsets(bootstrap_servers, group_id, topic))[0], 0)
            last_committed = max((j for j, o in outcomes.items() if o == "committed"), default=-1)
            # A cancelled transaction may have committed (the cancellation came during
            # its commit, which runs to its end) or not: the offset says which.
            assert offset in {last_committed + 1, i + 1}, (i, outcomes, offset)
            if offset == i + 1:
                outcomes[i] = "committed"
        assert writer_tasks() <= before

        # Both kinds happened, or the test would show nothing.
        assert set(outcomes.values()) == {"committed", "cancelled"}, outcomes
        async with writer.transaction():
            await writer.write_messages(Message(value=b"end", partition=0))
        # Each transaction committed or aborted, none both or neither.
        stats = writer.stats()
        committed_count = sum(o == "committed" for o in outcomes.values())
        assert stats.transactions == committed_count + 1
        assert stats.transactions_aborted == rounds - committed_count

    if external_bootstrap() is not None:
        async with committed_reader(bootstrap_servers, f"{topic}.out") as check:
            seen = await values_within(check, 2.0)
        committed = {str(i).encode() for i, o in outcomes.items() if o == "committed"}
        assert sorted(v for v in seen if v != b"end") == sorted([*committed, *committed])


# -- faults, on the mock cluster -----------------------------------------------------------


@pytest.fixture
def mock_topic(mock_cluster: MockCluster, topic: str) -> str:
    mock_cluster.create_topic(topic, partitions=2, replication_factor=3)
    return topic


async def test_retriable_refusals_of_each_step_are_retried(
    mock_cluster: MockCluster, mock_topic: str
) -> None:
    mock_cluster.start_request_tracking()
    async with transactional(
        mock_cluster.bootstrap_servers, topic=mock_topic, write_backoff_min=0.01
    ) as writer:
        mock_cluster.push_request_errors(
            ApiKey.ADD_PARTITIONS_TO_TXN,
            ErrorCode.CONCURRENT_TRANSACTIONS,
            ErrorCode.NOT_COORDINATOR,
        )
        mock_cluster.push_request_errors(
            ApiKey.END_TXN,
            ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
            ErrorCode.CONCURRENT_TRANSACTIONS,
        )
        with captured_logs() as logs:
            async with writer.transaction():
                await writer.write_messages(Message(value=b"x", partition=0))
        retried = [e["step"] for e in logs if e["event"] == "transaction_step_retried"]
    assert retried.count("adding partitions to the transaction") == 2
    assert retried.count("committing the transaction") == 2
    assert len(mock_cluster.requests(ApiKey.END_TXN)) == 3
    assert len(mock_cluster.requests(ApiKey.ADD_PARTITIONS_TO_TXN)) == 3


@pytest.mark.parametrize("code", [ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH])
async def test_a_commit_answered_fenced_raises_producer_fenced_and_the_writer_refuses_more(
    mock_cluster: MockCluster, mock_topic: str, code: ErrorCode
) -> None:
    async with transactional(mock_cluster.bootstrap_servers, topic=mock_topic) as writer:
        mock_cluster.push_request_errors(ApiKey.END_TXN, code)
        with pytest.raises(ProducerFencedError) as caught:
            async with writer.transaction():
                await writer.write_messages(Message(value=b"x", partition=0))
        assert caught.value.step == "committing the transaction"
        assert caught.value.__cause__ is not None
        with pytest.raises(ProducerFencedError, match="fenced"):
            async with writer.transaction():
                pass


async def test_a_commit_refused_for_good_names_the_step_and_the_next_transaction_works(
    mock_cluster: MockCluster, mock_topic: str
) -> None:
    mock_cluster.start_request_tracking()
    async with transactional(mock_cluster.bootstrap_servers, topic=mock_topic) as writer:
        mock_cluster.push_request_errors(ApiKey.END_TXN, ErrorCode.INVALID_TXN_STATE)
        with pytest.raises(TransactionError) as caught:
            async with writer.transaction():
                await writer.write_messages(Message(value=b"x", partition=0))
        assert caught.value.step == "committing the transaction"
        assert repr(writer.config.transactional_id) in str(caught.value)
        assert "INVALID_TXN_STATE" in str(caught.value)
        assert any("outcome of the commit is unknown" in n for n in caught.value.__notes__)

        inits = len(mock_cluster.requests(ApiKey.INIT_PRODUCER_ID))
        async with writer.transaction():
            await writer.write_messages(Message(value=b"y", partition=0))
        # The unknown outcome is settled by a new epoch first.
        assert len(mock_cluster.requests(ApiKey.INIT_PRODUCER_ID)) == inits + 1


async def test_a_failed_write_makes_the_commit_abort_instead(
    mock_cluster: MockCluster, mock_topic: str
) -> None:
    """In async mode the write returns before the batch fails; the commit sees the failure,
    aborts, and says why."""
    mock_cluster.start_request_tracking()
    async with transactional(
        mock_cluster.bootstrap_servers, topic=mock_topic, async_mode=True, max_attempts=1
    ) as writer:
        mock_cluster.push_request_errors(ApiKey.PRODUCE, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        with pytest.raises(TransactionError, match="aborted instead of committed") as caught:
            async with writer.transaction():
                await writer.write_messages(Message(value=b"x", partition=0))
        assert "Kafka error 6" in str(caught.value)
        assert writer.stats().errors == 1
    end_txns = mock_cluster.requests(ApiKey.END_TXN)
    assert len(end_txns) == 1  # the abort


async def test_after_a_failed_write_the_next_transaction_renews_the_epoch_and_commits(
    mock_cluster: MockCluster, mock_topic: str
) -> None:
    mock_cluster.start_request_tracking()
    async with transactional(
        mock_cluster.bootstrap_servers, topic=mock_topic, max_attempts=1
    ) as writer:
        mock_cluster.push_request_errors(ApiKey.PRODUCE, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        with pytest.raises(WriteErrors):
            async with writer.transaction():
                await writer.write_messages(Message(value=b"x", partition=0))
        inits = len(mock_cluster.requests(ApiKey.INIT_PRODUCER_ID))
        async with writer.transaction():
            written = await writer.write_messages(Message(value=b"y", partition=0))
        assert written[0].offset >= 0
        assert len(mock_cluster.requests(ApiKey.INIT_PRODUCER_ID)) == inits + 1


async def test_a_clean_abort_needs_no_new_epoch(mock_cluster: MockCluster, mock_topic: str) -> None:
    mock_cluster.start_request_tracking()
    async with transactional(mock_cluster.bootstrap_servers, topic=mock_topic) as writer:
        inits = len(mock_cluster.requests(ApiKey.INIT_PRODUCER_ID))
        for _ in range(3):
            with contextlib.suppress(LookupError):
                async with writer.transaction():
                    await writer.write_messages(Message(value=b"x", partition=0))
                    raise LookupError
        async with writer.transaction():
            await writer.write_messages(Message(value=b"y", partition=0))
        assert len(mock_cluster.requests(ApiKey.INIT_PRODUCER_ID)) == inits
        assert len(mock_cluster.requests(ApiKey.END_TXN)) == 4


async def test_a_commit_the_coordinator_never_answers_ends_within_write_timeout(
    mock_cluster: MockCluster, mock_topic: str
) -> None:
    async with transactional(
        mock_cluster.bootstrap_servers, topic=mock_topic, write_timeout=1.0
    ) as writer:
        async with writer.transaction():
            await writer.write_messages(Message(value=b"warm-up", partition=0))
        for broker in (1, 2, 3):
            mock_cluster.broker_push_request_error_rtts(broker, ApiKey.END_TXN, *[(0, 5000)] * 3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TransactionError, match="write_timeout") as caught:
            async with writer.transaction():
                await writer.write_messages(Message(value=b"x", partition=0))
        elapsed = loop.time() - started
    assert elapsed < 1.0 + 1.5, elapsed
    assert any("unknown" in note for note in caught.value.__notes__)


async def test_an_abort_the_coordinator_refuses_is_logged_and_the_exception_still_propagates(
    mock_cluster: MockCluster, mock_topic: str
) -> None:
    async with transactional(mock_cluster.bootstrap_servers, topic=mock_topic) as writer:
        mock_cluster.push_request_errors(ApiKey.END_TXN, ErrorCode.INVALID_TXN_STATE)
        error = KeyError("the handler's own")

        async def fail() -> None:
            async with writer.transaction():
                await writer.write_messages(Message(value=b"x", partition=0))
                raise error

        with captured_logs() as logs, pytest.raises(KeyError) as caught:
            await fail()
        assert caught.value is error
        failed = [e for e in logs if e["event"] == "transaction_abort_failed"]
        assert len(failed) == 1
        assert "INVALID_TXN_STATE" in failed[0]["error"]
        # The next transaction starts from a new epoch, which completes the abort.
        async with writer.transaction():
            await writer.write_messages(Message(value=b"y", partition=0))


async def test_opening_fails_clearly_when_the_coordinator_refuses(
    mock_cluster: MockCluster, mock_topic: str
) -> None:
    mock_cluster.push_request_errors(ApiKey.INIT_PRODUCER_ID, ErrorCode.PRODUCER_FENCED)
    with pytest.raises(ProducerFencedError) as caught:
        async with transactional(mock_cluster.bootstrap_servers, topic=mock_topic):
            pass
    assert caught.value.step == "initializing the transactional producer"
