"""The admin Client against a real broker: topics, configs, offsets and consumer groups.

Every test uses its own topic and group. Messages are written one call at a time where an
end offset matters: Tansu's ListOffsets "latest" is only right when every record batch
holds one record. Group members use short sessions (`session_timeout=2.0`): a join on the
embedded broker takes about half the session timeout.

Tansu gaps met here (each test that needs what it lacks is marked `external_broker`):
no CreatePartitions API, timestamp look-ups that always answer offset 0, member
assignments and client ids left out of DescribeGroups, ListGroups that only lists groups
with committed offsets (and says "Unknown" for their state), a stopped group's last member
kept until another member joins (Tansu answers a first join with generation 0, so aiokafka
sends no LeaveGroup), so such a group never becomes Empty. The librdkafka mock cluster
stands in where several brokers are needed; it has no admin APIs beyond Metadata.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

import aiomq
from aiomq import (
    FIRST_OFFSET,
    LAST_OFFSET,
    BrokerError,
    Client,
    ClosedError,
    ConfigError,
    Message,
    Reader,
    RequestTimeoutError,
    TopicSpec,
    UnknownTopicOrPartitionError,
    Writer,
)
from tests.support.brokers import external_bootstrap
from tests.support.mock_cluster import MockCluster

# Generous upper bound for any wait: reaching it means a hang, not a slow machine.
DEADLINE = 30.0

GROUP_OPTIONS: dict[str, Any] = {"session_timeout": 2.0, "heartbeat_interval": 0.5}

only_on_the_embedded_broker = pytest.mark.skipif(
    external_bootstrap() is not None,
    reason="checks how the embedded broker (Tansu) refuses an API that Apache Kafka has",
)


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture
def group(topic: str) -> str:
    """A consumer group no other test uses."""
    return f"group-{topic}"


@asynccontextmanager
async def admin(bootstrap_servers: str, **options: Any) -> AsyncIterator[Client]:
    async with Client(brokers=bootstrap_servers.split(","), **options) as client:
        yield client


async def write_one_by_one(bootstrap_servers: str, topic: str, partition: int, count: int) -> None:
    """Write `count` messages to one partition, each in its own request and record batch."""
    async with Writer(brokers=bootstrap_servers.split(","), topic=topic) as writer:
        for i in range(count):
            await writer.write_messages(Message(value=b"message %d" % i, partition=partition))


def group_reader(bootstrap_servers: str, topic: str, group: str) -> Reader:
    return Reader(
        brokers=bootstrap_servers.split(","), topic=topic, group_id=group, **GROUP_OPTIONS
    )


async def first_offset_read(bootstrap_servers: str, topic: str, group: str) -> int:
    """The offset of the first message a new member of `group` reads."""
    async with group_reader(bootstrap_servers, topic, group) as reader:
        with anyio.fail_after(DEADLINE):
            return (await reader.fetch_message()).offset


# -- topics -------------------------------------------------------------------------------


async def test_a_created_topic_is_listed_and_described_with_its_partitions_and_replicas(
    bootstrap_servers: str, topic: str
) -> None:
    async with admin(bootstrap_servers) as client:
        created = await client.create_topics(
            TopicSpec(name=topic, partitions=3, replication_factor=1)
        )
        assert created == [topic]
        assert topic in await client.list_topics()
        [info] = await client.describe_topics(topic)
    assert info.name == topic
    assert not info.internal
    assert [p.partition for p in info.partitions] == [0, 1, 2]
    assert info.replication_factor == 1
    for partition in info.partitions:
        assert partition.leader >= 0
        assert partition.replicas == (partition.leader,)
        assert partition.isr == (partition.leader,)


async def test_topics_are_listed_sorted_and_described_in_the_order_asked(
    bootstrap_servers: str, topic: str
) -> None:
    names = [f"{topic}-b", f"{topic}-a"]
    async with admin(bootstrap_servers) as client:
        await client.create_topics(*(TopicSpec(name=n, replication_factor=1) for n in names))
        listed = await client.list_topics()
        described = await client.describe_topics(*names)
        everything = await client.describe_topics()
    assert listed == sorted(listed)
    assert [i.name for i in described] == names
    assert {i.name for i in everything} >= set(names)
    assert [i.name for i in everything] == sorted(i.name for i in everything)


async def test_configs_set_at_creation_are_described_back(
    bootstrap_servers: str, topic: str
) -> None:
    spec = TopicSpec(
        name=topic,
        replication_factor=1,
        configs={"retention.ms": "60000", "cleanup.policy": "compact"},
    )
    async with admin(bootstrap_servers) as client:
        await client.create_topics(spec)
        configs = await client.describe_configs(topic)
    assert configs["retention.ms"] == "60000"
    assert configs["cleanup.policy"] == "compact"


async def test_altered_configs_are_described_back_and_none_reverts_to_the_default(
    bootstrap_servers: str, topic: str
) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(
            TopicSpec(name=topic, replication_factor=1, configs={"retention.ms": "60000"})
        )
        await client.alter_configs(topic, {"retention.ms": "1000", "cleanup.policy": "compact"})
        altered = await client.describe_configs(topic)
        await client.alter_configs(topic, {"cleanup.policy": None})
        reverted = await client.describe_configs(topic)
    assert altered["retention.ms"] == "1000"
    assert altered["cleanup.policy"] == "compact"
    assert reverted["retention.ms"] == "1000"  # configs not named are left alone
    assert reverted.get("cleanup.policy", "delete") == "delete"


async def test_creating_an_existing_topic_fails_naming_the_topic(
    bootstrap_servers: str, topic: str
) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, replication_factor=1))
        with pytest.raises(BrokerError) as caught:
            await client.create_topics(TopicSpec(name=topic, replication_factor=1))
    assert caught.value.code == 36
    assert caught.value.topic == topic
    assert topic in str(caught.value)
    assert "TOPIC_ALREADY_EXISTS" in str(caught.value)


async def test_creating_an_existing_topic_with_if_not_exists_leaves_it_as_it_is(
    bootstrap_servers: str, topic: str
) -> None:
    other = f"{topic}-new"
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, partitions=2, replication_factor=1))
        created = await client.create_topics(
            TopicSpec(name=topic, partitions=5, replication_factor=1),
            TopicSpec(name=other, replication_factor=1),
            if_not_exists=True,
        )
        [info] = await client.describe_topics(topic)
    assert created == [other]
    assert len(info.partitions) == 2


async def test_a_deleted_topic_is_no_longer_listed(bootstrap_servers: str, topic: str) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, replication_factor=1))
        await client.delete_topics(topic)
        assert topic not in await client.list_topics()
        with pytest.raises(UnknownTopicOrPartitionError):
            await client.describe_topics(topic)


@pytest.mark.parametrize(
    "operation",
    [
        "describe_topics",
        "delete_topics",
        "list_offsets",
        "describe_configs",
        "alter_configs",
        "group_offsets",
        "reset_group_offsets",
    ],
)
async def test_an_unknown_topic_fails_with_an_error_naming_it(
    bootstrap_servers: str, topic: str, operation: str
) -> None:
    calls = {
        "describe_topics": lambda c: c.describe_topics(topic),
        "delete_topics": lambda c: c.delete_topics(topic),
        "list_offsets": lambda c: c.list_offsets(topic),
        "describe_configs": lambda c: c.describe_configs(topic),
        "alter_configs": lambda c: c.alter_configs(topic, {"retention.ms": "1000"}),
        "group_offsets": lambda c: c.group_offsets(f"group-{topic}", topics=[topic]),
        "reset_group_offsets": lambda c: c.reset_group_offsets(
            f"group-{topic}", topic, to=FIRST_OFFSET
        ),
    }
    async with admin(bootstrap_servers) as client:
        with pytest.raises(UnknownTopicOrPartitionError) as caught:
            await calls[operation](client)
    assert caught.value.topic == topic
    assert topic in str(caught.value)


@pytest.mark.external_broker("Tansu lacks the CreatePartitions API")
async def test_create_partitions_grows_the_topic(bootstrap_servers: str, topic: str) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, partitions=2, replication_factor=1))
        await client.create_partitions(topic, total=5)
        [info] = await client.describe_topics(topic)
        assert [p.partition for p in info.partitions] == [0, 1, 2, 3, 4]
        with pytest.raises(BrokerError) as caught:
            await client.create_partitions(topic, total=3)
    assert caught.value.name == "INVALID_PARTITIONS"
    assert caught.value.topic == topic


@only_on_the_embedded_broker
async def test_create_partitions_on_the_embedded_broker_fails_at_once_naming_the_api(
    bootstrap_servers: str, topic: str
) -> None:
    async with admin(bootstrap_servers, timeout=DEADLINE) as client:
        await client.create_topics(TopicSpec(name=topic, partitions=2, replication_factor=1))
        with pytest.raises(BrokerError) as caught:
            await client.create_partitions(topic, total=5)
    assert caught.value.code == 35
    assert "CreatePartitions" in str(caught.value)
    assert topic in str(caught.value)


# -- cluster and offsets ------------------------------------------------------------------


async def test_describe_cluster_lists_the_brokers_with_host_and_port(
    bootstrap_servers: str,
) -> None:
    async with admin(bootstrap_servers) as client:
        cluster = await client.describe_cluster()
    assert cluster.brokers
    for broker in cluster.brokers:
        assert broker.host
        assert broker.port > 0
    bootstrap_ports = {int(address.rsplit(":", 1)[1]) for address in bootstrap_servers.split(",")}
    assert bootstrap_ports & {b.port for b in cluster.brokers}
    assert cluster.controller_id in {b.node_id for b in cluster.brokers}


async def test_list_offsets_finds_the_first_and_the_last_offset_of_each_partition(
    bootstrap_servers: str, topic: str
) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, partitions=3, replication_factor=1))
        assert await client.list_offsets(topic) == {0: 0, 1: 0, 2: 0}
        await write_one_by_one(bootstrap_servers, topic, 0, 5)
        await write_one_by_one(bootstrap_servers, topic, 1, 2)
        first = await client.list_offsets(topic, at=FIRST_OFFSET)
        last = await client.list_offsets(topic, at=LAST_OFFSET)
    assert first == {0: 0, 1: 0, 2: 0}
    assert last == {0: 5, 1: 2, 2: 0}


@pytest.mark.external_broker("Tansu answers every timestamp lookup with offset 0")
async def test_list_offsets_at_a_time_finds_the_first_message_at_or_after_it(
    bootstrap_servers: str, topic: str
) -> None:
    base = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, replication_factor=1))
        async with Writer(brokers=bootstrap_servers.split(","), topic=topic) as writer:
            for i in range(5):
                await writer.write_messages(
                    Message(value=b"%d" % i, partition=0, time=base + timedelta(minutes=i))
                )
        at_two = await client.list_offsets(topic, at=base + timedelta(minutes=2))
        between = await client.list_offsets(topic, at=base + timedelta(minutes=2, seconds=1))
        after_all = await client.list_offsets(topic, at=base + timedelta(hours=1))
    assert at_two == {0: 2}
    assert between == {0: 3}
    assert after_all == {0: 5}


# -- consumer groups ----------------------------------------------------------------------


async def test_a_running_group_is_listed_and_described_with_its_member(
    bootstrap_servers: str, topic: str, group: str
) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, partitions=2, replication_factor=1))
        await write_one_by_one(bootstrap_servers, topic, 0, 1)
        async with group_reader(bootstrap_servers, topic, group) as reader:
            with anyio.fail_after(DEADLINE):
                message = await reader.fetch_message()
            # Tansu lists only groups that have committed offsets.
            await reader.commit_messages(message)
            info = await client.describe_group(group)
            listed = {g.group_id: g for g in await client.list_groups()}
    assert info.group_id == group
    assert info.state == "Stable"
    assert info.protocol_type == "consumer"
    [member] = info.members
    assert member.member_id
    assert group in listed
    assert listed[group].protocol_type == "consumer"


@pytest.mark.external_broker("Tansu leaves member assignments and client ids out")
async def test_a_running_member_is_described_with_its_partitions(
    bootstrap_servers: str, topic: str, group: str
) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, partitions=2, replication_factor=1))
        await write_one_by_one(bootstrap_servers, topic, 0, 1)
        async with group_reader(bootstrap_servers, topic, group) as reader:
            with anyio.fail_after(DEADLINE):
                await reader.fetch_message()
            info = await client.describe_group(group)
            [listing] = [g for g in await client.list_groups() if g.group_id == group]
    [member] = info.members
    assert member.assignment == ((topic, 0), (topic, 1))
    assert member.client_id == "aiomq"
    assert member.host
    assert info.protocol
    assert listing.state == "Stable"


async def test_group_offsets_show_what_a_group_committed_and_its_lag(
    bootstrap_servers: str, topic: str, group: str
) -> None:
    total, read = 5, 3
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, partitions=2, replication_factor=1))
        await write_one_by_one(bootstrap_servers, topic, 0, total)
        async with group_reader(bootstrap_servers, topic, group) as reader:
            with anyio.fail_after(DEADLINE):
                messages = [await reader.fetch_message() for _ in range(read)]
            await reader.commit_messages(*messages)
            everything = await client.group_offsets(group)
            named = await client.group_offsets(group, topics=[topic])
    assert [(o.topic, o.partition, o.committed, o.end, o.lag) for o in everything] == [
        (topic, 0, read, total, total - read)
    ]
    assert [(o.partition, o.committed, o.end, o.lag) for o in named] == [
        (0, read, total, total - read),
        (1, -1, 0, -1),
    ]


@pytest.mark.parametrize(
    ("to", "expected"),
    [(FIRST_OFFSET, 0), (LAST_OFFSET, 5), (2, 2), (99, 5)],
    ids=["first", "last", "offset", "offset-past-the-end"],
)
async def test_reset_group_offsets_moves_where_a_new_member_starts(
    bootstrap_servers: str, topic: str, group: str, to: int, expected: int
) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, replication_factor=1))
        await write_one_by_one(bootstrap_servers, topic, 0, 5)
        reset = await client.reset_group_offsets(group, topic, to=to)
        [offset] = await client.group_offsets(group, topics=[topic])
    assert reset == {(topic, 0): expected}
    assert offset.committed == expected
    # One more message, so that a member starting at the end has something to read.
    await write_one_by_one(bootstrap_servers, topic, 0, 1)
    assert await first_offset_read(bootstrap_servers, topic, group) == expected


@pytest.mark.external_broker("Tansu answers every timestamp lookup with offset 0")
async def test_reset_group_offsets_to_a_time_starts_at_the_first_message_from_then(
    bootstrap_servers: str, topic: str, group: str
) -> None:
    base = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, replication_factor=1))
        async with Writer(brokers=bootstrap_servers.split(","), topic=topic) as writer:
            for i in range(5):
                await writer.write_messages(
                    Message(value=b"%d" % i, partition=0, time=base + timedelta(minutes=i))
                )
        reset = await client.reset_group_offsets(group, topic, to=base + timedelta(minutes=3))
    assert reset == {(topic, 0): 3}
    assert await first_offset_read(bootstrap_servers, topic, group) == 3


@pytest.mark.external_broker(
    "Tansu keeps a stopped group's last member until another joins, so it never turns Empty"
)
async def test_reset_group_offsets_works_once_the_group_s_readers_stopped(
    bootstrap_servers: str, topic: str, group: str
) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, replication_factor=1))
        await write_one_by_one(bootstrap_servers, topic, 0, 5)
        async with group_reader(bootstrap_servers, topic, group) as reader:
            with anyio.fail_after(DEADLINE):
                messages = [await reader.fetch_message() for _ in range(4)]
            await reader.commit_messages(*messages)
        with anyio.fail_after(DEADLINE):
            # Polling, not an Event: the state lives on the broker.
            while (await client.describe_group(group)).state != "Empty":  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        reset = await client.reset_group_offsets(group, topic, to=1)
    assert reset == {(topic, 0): 1}
    assert await first_offset_read(bootstrap_servers, topic, group) == 1


async def test_reset_group_offsets_of_a_running_group_fails_naming_the_group_and_its_state(
    bootstrap_servers: str, topic: str, group: str
) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, replication_factor=1))
        await write_one_by_one(bootstrap_servers, topic, 0, 3)
        async with group_reader(bootstrap_servers, topic, group) as reader:
            with anyio.fail_after(DEADLINE):
                message = await reader.fetch_message()
            await reader.commit_messages(message)
            with pytest.raises(aiomq.GroupNotEmptyError) as caught:
                await client.reset_group_offsets(group, topic, to=FIRST_OFFSET)
            [offset] = await client.group_offsets(group, topics=[topic])
    assert (caught.value.group_id, caught.value.state) == (group, "Stable")
    assert repr(group) in str(caught.value)
    assert "Stable" in str(caught.value)
    assert "1 member" in str(caught.value)
    assert offset.committed == 1  # untouched


async def test_a_deleted_group_is_no_longer_listed(
    bootstrap_servers: str, topic: str, group: str
) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, replication_factor=1))
        await write_one_by_one(bootstrap_servers, topic, 0, 2)
        await client.reset_group_offsets(group, topic, to=1)
        assert group in {g.group_id for g in await client.list_groups()}
        await client.delete_groups(group)
        assert group not in {g.group_id for g in await client.list_groups()}
        assert await client.group_offsets(group) == []


# -- several brokers: the librdkafka mock cluster -----------------------------------------


async def test_describe_cluster_lists_every_broker_of_a_three_broker_cluster(
    mock_cluster: MockCluster,
) -> None:
    async with admin(mock_cluster.bootstrap_servers) as client:
        cluster = await client.describe_cluster()
    assert [b.node_id for b in cluster.brokers] == [1, 2, 3]
    assert {b.host for b in cluster.brokers} == {"127.0.0.1"}
    assert len({b.port for b in cluster.brokers}) == 3
    assert cluster.cluster_id


async def test_describe_topics_shows_three_replicas_on_a_three_broker_cluster(
    mock_cluster: MockCluster,
) -> None:
    mock_cluster.create_topic("replicated", partitions=2, replication_factor=3)
    async with admin(mock_cluster.bootstrap_servers) as client:
        [info] = await client.describe_topics("replicated")
    assert info.replication_factor == 3
    for partition in info.partitions:
        assert sorted(partition.replicas) == [1, 2, 3]
        assert sorted(partition.isr) == [1, 2, 3]
        assert partition.leader in partition.replicas


async def test_a_call_whose_api_the_broker_lacks_fails_at_once_naming_the_api(
    mock_cluster: MockCluster,
) -> None:
    # The mock cluster answers Metadata but offers no CreateTopics; a generous timeout
    # shows that the call does not wait for it.
    async with admin(mock_cluster.bootstrap_servers, timeout=DEADLINE) as client:
        with anyio.fail_after(DEADLINE / 2), pytest.raises(BrokerError) as caught:
            await client.create_topics(TopicSpec(name="orders", replication_factor=3))
    assert caught.value.code == 35
    assert "CreateTopics" in str(caught.value)
    assert "'orders'" in str(caught.value)


@pytest.mark.parametrize("operation", ["list_topics", "describe_topics", "list_offsets"])
async def test_a_call_without_an_answer_ends_with_request_timeout_error_naming_it(
    mock_cluster: MockCluster, operation: str
) -> None:
    mock_cluster.create_topic("slow", partitions=1, replication_factor=1)
    calls = {
        "list_topics": lambda c: c.list_topics(),
        "describe_topics": lambda c: c.describe_topics("slow"),
        "list_offsets": lambda c: c.list_offsets("slow"),
    }
    async with admin(mock_cluster.bootstrap_servers, timeout=1.0) as client:
        mock_cluster.set_broker_rtt(-1, 60_000)
        try:
            with anyio.fail_after(DEADLINE), pytest.raises(RequestTimeoutError) as caught:
                await calls[operation](client)
        finally:
            mock_cluster.set_broker_rtt(-1, 0)
    assert operation in str(caught.value)
    assert isinstance(caught.value, TimeoutError)


async def test_a_cancelled_call_is_cancelled_not_timed_out_and_the_client_stays_usable(
    mock_cluster: MockCluster,
) -> None:
    async with admin(mock_cluster.bootstrap_servers, timeout=DEADLINE) as client:
        mock_cluster.set_broker_rtt(-1, 60_000)
        try:
            with anyio.move_on_after(0.5) as scope:
                await client.list_topics()
        finally:
            mock_cluster.set_broker_rtt(-1, 0)
        assert scope.cancelled_caught
        with anyio.fail_after(DEADLINE):
            cluster = await client.describe_cluster()
    assert len(cluster.brokers) == 3


async def test_calls_from_several_tasks_run_at_once(bootstrap_servers: str, topic: str) -> None:
    async with admin(bootstrap_servers) as client:
        await client.create_topics(TopicSpec(name=topic, partitions=2, replication_factor=1))
        listed, [info], offsets, cluster = await asyncio.gather(
            client.list_topics(),
            client.describe_topics(topic),
            client.list_offsets(topic),
            client.describe_cluster(),
        )
    assert topic in listed
    assert len(info.partitions) == 2
    assert offsets == {0: 0, 1: 0}
    assert cluster.brokers


async def test_a_closed_client_refuses_calls_and_cannot_be_reopened(
    bootstrap_servers: str,
) -> None:
    client = Client(brokers=bootstrap_servers.split(","))
    with pytest.raises(ClosedError, match="new"):
        await client.list_topics()
    async with client:
        await client.list_topics()
    await client.aclose()  # a second close is harmless
    with pytest.raises(ClosedError, match="list_topics"):
        await client.list_topics()
    with pytest.raises(ClosedError, match="opened once"):
        await client.__aenter__()


async def test_arguments_are_checked_before_anything_is_sent(bootstrap_servers: str) -> None:
    async with admin(bootstrap_servers) as client:
        with pytest.raises(ConfigError, match="timezone-aware"):
            await client.list_offsets("orders", at=datetime(2024, 1, 1))
        with pytest.raises(ConfigError, match="not a valid topic name"):
            await client.describe_topics("no spaces")
        with pytest.raises(ConfigError, match="appears twice"):
            await client.create_topics(TopicSpec(name="a"), TopicSpec(name="a"))
        with pytest.raises(ConfigError, match="FIRST_OFFSET"):
            await client.reset_group_offsets("g", "orders", to=-5)
        with pytest.raises(ConfigError, match="total"):
            await client.create_partitions("orders", total=0)


async def test_calls_log_what_they_changed(bootstrap_servers: str, topic: str) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        async with admin(bootstrap_servers) as client:
            await client.create_topics(TopicSpec(name=topic, replication_factor=1))
            await client.delete_topics(topic)
    events = [(e["event"], e.get("topics")) for e in logs if e["event"].startswith("topics_")]
    assert events == [("topics_created", [topic]), ("topics_deleted", [topic])]
