"""The Writer under broker faults, injected with librdkafka's mock cluster.

Each test uses a topic of three partitions replicated on all three brokers, with the
leader of partition p on broker p + 1, so a fault aimed at one broker hits one partition.
Outcomes are checked by reading the topic back with a plain aiokafka consumer (manual
assignment, no consumer group and no transactions).

The mock accepts aiomq's idempotent writes, but checks producer ids and sequence numbers
only for transactional producers: it never drops a duplicate. An injected error is
answered before anything is appended, though, so an error pushed with
`push_request_errors` never leaves a record behind that a retry could duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence

import pytest
from aiokafka import TopicPartition
from structlog.testing import capture_logs

from aiomq import (
    BrokerError,
    ClosedError,
    Error,
    Message,
    RequestTimeoutError,
    RoundRobin,
    WriteErrors,
    Writer,
)
from tests.integration.test_writer import Record, read_all
from tests.support.mock_cluster import ApiKey, ErrorCode, MockCluster
from tests.support.waiting import wait_until

DEADLINE = 30.0
PARTITIONS = 3
# Short backoffs keep retries quick; the mock recovers from every fault within 0.1 s.
FAST_RETRIES = {"write_backoff_min": 0.01, "write_backoff_max": 0.05}

TOPIC_AUTHORIZATION_FAILED = 29
INVALID_RECORD = 87


def brokers(cluster: MockCluster) -> list[str]:
    """The cluster's bootstrap addresses as a list: a Writer wants one `host:port` per item."""
    return cluster.bootstrap_servers.split(",")


def leader_of(partition: int) -> int:
    return partition + 1


def create_topic(cluster: MockCluster, topic: str) -> list[TopicPartition]:
    cluster.create_topic(topic, partitions=PARTITIONS, replication_factor=3)
    for partition in range(PARTITIONS):
        cluster.set_partition_leader(topic, partition, leader_of(partition))
    return [TopicPartition(topic, p) for p in range(PARTITIONS)]


@contextlib.asynccontextmanager
async def returns_within(seconds: float, what: str) -> AsyncIterator[None]:
    """Fail the test if the block takes longer than `seconds`: it proves it does not hang."""
    limit = asyncio.timeout(seconds)
    try:
        async with limit:
            yield
    except TimeoutError:
        if limit.expired():
            raise AssertionError(f"{what} did not return within {seconds} s") from None
        raise


def by_partition(records: Sequence[Record]) -> dict[int, list[bytes | None]]:
    values: defaultdict[int, list[bytes | None]] = defaultdict(list)
    for record in records:
        values[record.partition].append(record.value)
    return dict(values)


def expected_by_partition(written: Sequence[Message]) -> dict[int, list[bytes | None]]:
    values: defaultdict[int, list[bytes | None]] = defaultdict(list)
    for message in written:
        values[message.partition].append(message.value)
    return dict(values)


def numbered(count: int, start: int = 0) -> list[Message]:
    return [Message(value=b"%d" % i, writer_data=i) for i in range(start, start + count)]


async def test_not_leader_and_request_timed_out_errors_are_retried_and_each_message_lands_once(
    mock_cluster: MockCluster, topic: str
) -> None:
    partitions = create_topic(mock_cluster, topic)
    injected = [
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.REQUEST_TIMED_OUT,
    ]
    written: list[Message] = []

    async with Writer(
        brokers=brokers(mock_cluster), topic=topic, balancer=RoundRobin(), **FAST_RETRIES
    ) as writer:
        mock_cluster.start_request_tracking()
        mock_cluster.push_request_errors(ApiKey.PRODUCE, *injected)
        for start in range(0, 30, 10):
            written += await writer.write_messages(*numbered(10, start))
        stats = writer.stats()

    assert (stats.retries, stats.errors, stats.messages) == (len(injected), 0, 30)
    # Every injected error cost exactly one extra request.
    assert len(mock_cluster.requests(ApiKey.PRODUCE)) == stats.batches + len(injected)
    records = await read_all(mock_cluster.bootstrap_servers, partitions)
    assert by_partition(records) == expected_by_partition(written)
    assert [r.offset for r in records if r.partition == 0] == list(range(10))


async def test_a_batch_fails_with_write_errors_once_its_attempts_run_out(
    mock_cluster: MockCluster, topic: str
) -> None:
    partitions = create_topic(mock_cluster, topic)
    attempts = 3
    # More errors than attempts, all on the leader of partition 0 only.
    failing = leader_of(0)
    errors = [(ErrorCode.NOT_LEADER_OR_FOLLOWER, 0)] * (attempts + 2)
    messages = [
        Message(value=b"a", partition=0),
        Message(value=b"b", partition=1),
        Message(value=b"c", partition=0),
        Message(value=b"d", partition=1),
    ]

    async with Writer(
        brokers=brokers(mock_cluster), topic=topic, max_attempts=attempts, **FAST_RETRIES
    ) as writer:
        mock_cluster.start_request_tracking()
        mock_cluster.broker_push_request_error_rtts(failing, ApiKey.PRODUCE, *errors)
        with pytest.raises(WriteErrors) as caught:
            await writer.write_messages(*messages)
        stats = writer.stats()

    failed = caught.value
    for index in (0, 2):
        error = failed.errors[index]
        assert isinstance(error, BrokerError)
        assert (error.code, error.retriable) == (ErrorCode.NOT_LEADER_OR_FOLLOWER, True)
        assert (error.topic, error.partition) == (topic, 0)
        assert failed.written[index] is None
    assert [failed.errors[1], failed.errors[3]] == [None, None]
    assert [(m.partition, m.value) for m in failed.written[1::2] if m is not None] == [
        (1, b"b"),
        (1, b"d"),
    ]
    assert len(failed) == 2
    assert (stats.errors, stats.messages, stats.retries) == (2, 2, attempts - 1)
    produce = mock_cluster.requests(ApiKey.PRODUCE)
    assert sum(1 for r in produce if r.broker_id == failing) == attempts
    records = await read_all(mock_cluster.bootstrap_servers, partitions)
    assert by_partition(records) == {1: [b"b", b"d"]}


@pytest.mark.parametrize(
    "code",
    [TOPIC_AUTHORIZATION_FAILED, INVALID_RECORD],
    ids=["TOPIC_AUTHORIZATION_FAILED", "INVALID_RECORD"],
)
async def test_a_non_retriable_error_fails_the_write_after_one_request(
    mock_cluster: MockCluster, topic: str, code: int
) -> None:
    partitions = create_topic(mock_cluster, topic)

    async with Writer(brokers=brokers(mock_cluster), topic=topic, **FAST_RETRIES) as writer:
        mock_cluster.start_request_tracking()
        mock_cluster.push_request_errors(ApiKey.PRODUCE, code)
        with pytest.raises(WriteErrors) as caught:
            await writer.write_messages(Message(value=b"refused", partition=0))
        stats = writer.stats()

    (error,) = caught.value.errors
    assert isinstance(error, BrokerError)
    assert (error.code, error.retriable, error.topic, error.partition) == (code, False, topic, 0)
    assert caught.value.written == [None]
    assert len(mock_cluster.requests(ApiKey.PRODUCE)) == 1
    assert (stats.errors, stats.retries, stats.messages) == (1, 0, 0)
    assert await read_all(mock_cluster.bootstrap_servers, partitions) == []


async def test_a_write_that_fails_for_good_logs_write_failed_with_its_topic_and_partition(
    mock_cluster: MockCluster, topic: str
) -> None:
    create_topic(mock_cluster, topic)

    with capture_logs() as logs:
        async with Writer(brokers=brokers(mock_cluster), topic=topic, **FAST_RETRIES) as writer:
            mock_cluster.push_request_errors(ApiKey.PRODUCE, TOPIC_AUTHORIZATION_FAILED)
            with pytest.raises(WriteErrors):
                await writer.write_messages(Message(value=b"refused", partition=2))

    failures = [entry for entry in logs if entry["event"] == "write_failed"]
    assert len(failures) == 1
    (failure,) = failures
    assert (failure["log_level"], failure["topic"], failure["partition"]) == ("error", topic, 2)
    assert failure["messages"] == 1
    assert "TOPIC_AUTHORIZATION_FAILED" in failure["error"]


async def test_nothing_is_lost_or_reordered_while_a_leader_broker_goes_down_and_comes_back(
    mock_cluster: MockCluster, topic: str
) -> None:
    partitions = create_topic(mock_cluster, topic)
    calls, per_call = 30, PARTITIONS
    down_after = 10
    written: list[Message] = []
    reached = asyncio.Event()

    async def write_all(writer: Writer) -> None:
        for call in range(calls):
            if call == down_after:
                reached.set()
            written.extend(await writer.write_messages(*numbered(per_call, call * per_call)))

    async with (
        Writer(brokers=brokers(mock_cluster), topic=topic, balancer=RoundRobin()) as writer,
        asyncio.TaskGroup() as group,
    ):
        writing = group.create_task(write_all(writer))
        async with asyncio.timeout(DEADLINE):
            await reached.wait()
        mock_cluster.broker_down(leader_of(1))
        await wait_until(lambda: writer.stats().retries > 0, "the writer retries")
        mock_cluster.broker_up(leader_of(1))
        async with asyncio.timeout(DEADLINE):
            await writing
        stats = writer.stats()

    assert (stats.messages, stats.errors) == (calls * per_call, 0)
    assert stats.retries > 0
    records = await read_all(mock_cluster.bootstrap_servers, partitions)
    assert by_partition(records) == expected_by_partition(written)
    assert Counter(r.value for r in records) == {b"%d" % i: 1 for i in range(calls * per_call)}


async def test_nothing_is_lost_or_reordered_while_partition_leaders_move(
    mock_cluster: MockCluster, topic: str
) -> None:
    partitions = create_topic(mock_cluster, topic)
    calls, per_call = 30, PARTITIONS
    move_after = (10, 20)
    written: list[Message] = []
    reached = [asyncio.Event() for _ in move_after]

    async def write_all(writer: Writer) -> None:
        for call in range(calls):
            if call in move_after:
                reached[move_after.index(call)].set()
            written.extend(await writer.write_messages(*numbered(per_call, call * per_call)))

    mock_cluster.start_request_tracking()
    async with (
        Writer(
            brokers=brokers(mock_cluster), topic=topic, balancer=RoundRobin(), **FAST_RETRIES
        ) as writer,
        asyncio.TaskGroup() as group,
    ):
        writing = group.create_task(write_all(writer))
        for shift, event in enumerate(reached, start=1):
            async with asyncio.timeout(DEADLINE):
                await event.wait()
            for partition in range(PARTITIONS):
                new_leader = (partition + shift) % PARTITIONS + 1
                mock_cluster.set_partition_leader(topic, partition, new_leader)
        async with asyncio.timeout(DEADLINE):
            await writing
        stats = writer.stats()

    assert (stats.messages, stats.errors) == (calls * per_call, 0)
    # The old leaders answered NOT_LEADER_OR_FOLLOWER until the writer followed the moves.
    assert stats.retries > 0
    assert {r.broker_id for r in mock_cluster.requests(ApiKey.PRODUCE)} == {1, 2, 3}
    records = await read_all(mock_cluster.bootstrap_servers, partitions)
    assert by_partition(records) == expected_by_partition(written)
    assert len(records) == calls * per_call


async def test_an_idempotent_writer_delivers_every_message_once(
    mock_cluster: MockCluster, topic: str
) -> None:
    partitions = create_topic(mock_cluster, topic)
    written: list[Message] = []

    mock_cluster.start_request_tracking()
    async with Writer(
        brokers=brokers(mock_cluster), topic=topic, idempotent=True, balancer=RoundRobin()
    ) as writer:
        for start in range(0, 30, 10):
            written += await writer.write_messages(*numbered(10, start))
        stats = writer.stats()

    assert (stats.messages, stats.errors, stats.retries) == (30, 0, 0)
    assert len(mock_cluster.requests(ApiKey.INIT_PRODUCER_ID)) == 1
    records = await read_all(mock_cluster.bootstrap_servers, partitions)
    assert by_partition(records) == expected_by_partition(written)
    assert len(records) == 30


async def test_an_idempotent_writer_retrying_timed_out_requests_writes_no_duplicates(
    mock_cluster: MockCluster, topic: str
) -> None:
    partitions = create_topic(mock_cluster, topic)
    injected = [ErrorCode.REQUEST_TIMED_OUT] * 3
    written: list[Message] = []

    async with Writer(
        brokers=brokers(mock_cluster),
        topic=topic,
        idempotent=True,
        balancer=RoundRobin(),
        **FAST_RETRIES,
    ) as writer:
        mock_cluster.push_request_errors(ApiKey.PRODUCE, *injected)
        for start in range(0, 30, 10):
            written += await writer.write_messages(*numbered(10, start))
        stats = writer.stats()

    assert (stats.messages, stats.errors, stats.retries) == (30, 0, len(injected))
    records = await read_all(mock_cluster.bootstrap_servers, partitions)
    assert by_partition(records) == expected_by_partition(written)
    assert Counter(r.value for r in records) == {b"%d" % i: 1 for i in range(30)}


async def test_closing_fails_counts_and_reports_what_it_cannot_deliver_within_close_timeout(
    mock_cluster: MockCluster, topic: str
) -> None:
    partitions = create_topic(mock_cluster, topic)
    outcomes: list[tuple[Message, Error | None]] = []

    def completion(messages: list[Message], error: Error | None) -> None:
        outcomes.extend((m, error) for m in messages)

    async with Writer(
        brokers=brokers(mock_cluster),
        topic=topic,
        async_mode=True,
        completion=completion,
        close_timeout=0.2,
    ) as writer:
        await writer.write_messages(Message(value=b"before", partition=0))
        await wait_until(lambda: writer.stats().messages == 1, "the first message is written")
        mock_cluster.broker_down(leader_of(0))
        await writer.write_messages(*(Message(value=b"%d" % i, partition=0) for i in range(5)))
        await wait_until(lambda: writer.stats().retries > 0, "the writer retries")
    stats = writer.stats()

    assert (stats.messages, stats.errors, stats.queued) == (1, 5, 0)
    failed = [(m.value, type(e)) for m, e in outcomes if e is not None]
    assert failed == [(b"%d" % i, ClosedError) for i in range(5)]
    mock_cluster.broker_up(leader_of(0))
    records = await read_all(mock_cluster.bootstrap_servers, partitions)
    assert [r.value for r in records] == [b"before"]


async def test_writes_to_healthy_leaders_succeed_while_another_broker_is_down(
    mock_cluster: MockCluster, topic: str
) -> None:
    create_topic(mock_cluster, topic)
    # Each writer looks the topic up on its first write. Several of them, so that a
    # lookup sent only to a randomly chosen broker would hit the down one.
    writers = 12

    async with contextlib.AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(Writer(brokers=brokers(mock_cluster), topic=topic))
            for _ in range(writers)
        ]
        mock_cluster.broker_down(leader_of(2))
        outcomes: list[str] = []
        for writer in opened:
            try:
                await writer.write_messages(Message(value=b"v", partition=0))
            except Error as exc:
                outcomes.append(repr(exc))
            else:
                outcomes.append("written")
        mock_cluster.broker_up(leader_of(2))

    assert outcomes == ["written"] * writers


# -- metadata during an outage ------------------------------------------------------------

# Longer than any test: a broker this slow never answers.
UNANSWERED_MS = 120_000


async def test_a_first_write_during_an_outage_gives_up_within_write_timeout_naming_the_topic(
    mock_cluster: MockCluster, topic: str
) -> None:
    create_topic(mock_cluster, topic)
    write_timeout = 1.0

    async with Writer(
        brokers=brokers(mock_cluster), topic=topic, write_timeout=write_timeout
    ) as writer:
        mock_cluster.set_broker_rtt(-1, UNANSWERED_MS)
        async with returns_within(write_timeout + 2, "a write waiting for metadata"):
            with pytest.raises(RequestTimeoutError) as caught:
                await writer.write_messages(Message(value=b"v"))
        mock_cluster.set_broker_rtt(-1, 0)

    assert repr(topic) in str(caught.value)
    assert writer.stats().writes == 0


async def test_closing_the_writer_ends_a_write_waiting_for_metadata_with_closed_error(
    mock_cluster: MockCluster, topic: str
) -> None:
    create_topic(mock_cluster, topic)
    writer = Writer(brokers=brokers(mock_cluster), topic=topic, write_timeout=60.0)

    async def write() -> Error | None:
        try:
            await writer.write_messages(Message(value=b"v"))
        except Error as exc:
            return exc
        return None

    async with writer, asyncio.TaskGroup() as group:
        mock_cluster.start_request_tracking()
        mock_cluster.set_broker_rtt(-1, UNANSWERED_MS)
        writing = group.create_task(write())
        # A new connection's first request (ApiVersions) goes unanswered already.
        await wait_until(lambda: bool(mock_cluster.requests()), "the write reaches a broker")
        async with returns_within(5.0, "aclose() while a write waits for metadata"):
            await writer.aclose()
            error = await writing
        mock_cluster.set_broker_rtt(-1, 0)

    assert isinstance(error, ClosedError)
    assert repr(topic) in str(error)
    assert writer.stats().writes == 0


# -- what an async-mode call accepted -----------------------------------------------------


def async_calls(
    cluster: MockCluster, topic: str, outcomes: list[tuple[int, Error | None]]
) -> tuple[Writer, list[Message]]:
    """A writer in async mode with room for two messages, and a call of three, one per
    partition, after a first message to partition 0, whose delivery the broker delays."""

    def completion(messages: list[Message], error: Error | None) -> None:
        outcomes.extend((m.writer_data, error) for m in messages)

    writer = Writer(
        brokers=brokers(cluster),
        topic=topic,
        async_mode=True,
        completion=completion,
        queue_capacity=2,
    )
    call = [Message(value=b"%d" % i, partition=i - 1, writer_data=i) for i in (1, 2, 3)]
    cluster.broker_push_request_error_rtts(leader_of(0), ApiKey.PRODUCE, (ErrorCode.NO_ERROR, 1500))
    return writer, call


def check_all_or_none(raised: bool, outcomes: list[tuple[int, Error | None]]) -> None:
    of_the_call = sorted((data, error) for data, error in outcomes if data != 0)
    if raised:
        assert of_the_call == [], "the call raised, yet some of its messages were accepted"
    else:
        assert of_the_call == [(1, None), (2, None), (3, None)]


async def test_an_async_mode_call_interrupted_by_aclose_accepted_all_of_its_messages_or_none(
    mock_cluster: MockCluster, topic: str
) -> None:
    create_topic(mock_cluster, topic)
    outcomes: list[tuple[int, Error | None]] = []
    writer, call = async_calls(mock_cluster, topic, outcomes)

    async def write() -> bool:
        try:
            await writer.write_messages(*call)
        except ClosedError:
            return True
        return False

    async with writer, asyncio.TaskGroup() as group:
        await writer.write_messages(Message(value=b"0", partition=0, writer_data=0))
        writing = group.create_task(write())
        await wait_until(lambda: writer.stats().queued >= 2, "the call has messages queued")
        await writer.aclose()
        raised = await writing

    check_all_or_none(raised, outcomes)
    assert writer.stats().errors == 0


async def test_an_async_mode_call_cut_short_by_a_timeout_accepted_none_of_its_messages(
    mock_cluster: MockCluster, topic: str
) -> None:
    create_topic(mock_cluster, topic)
    outcomes: list[tuple[int, Error | None]] = []
    writer, call = async_calls(mock_cluster, topic, outcomes)

    async with writer:
        await writer.write_messages(Message(value=b"0", partition=0, writer_data=0))
        try:
            async with asyncio.timeout(0.2):
                await writer.write_messages(*call)
        except TimeoutError:
            raised = True
        else:
            raised = False

    check_all_or_none(raised, outcomes)
    assert writer.stats().errors == 0
