"""The transaction protocol's requests (`aiomq._internal.kafka.transaction`), against real
brokers: the embedded one (Tansu) and librdkafka's mock cluster.

Versions sent: FindCoordinator v1 (key type 1), InitProducerId v3, AddPartitionsToTxn v0,
AddOffsetsToTxn v0, TxnOffsetCommit v3 and EndTxn v0, on both brokers (the newest each
side knows; aiokafka has only v0 of the transaction requests, v3 is aiomq's own).

What each broker shows, measured:

- A full round (coordinator, producer id, partitions, commit) passes on both.
- Fencing: only the embedded broker fences. A second InitProducerId with the same
  transactional id keeps the producer id and bumps the epoch, and the first producer's
  AddPartitionsToTxn is refused with PRODUCER_FENCED. Its EndTxn, though, gets no answer:
  the embedded broker closes the connection instead of answering PRODUCER_FENCED, so that
  a fenced producer's EndTxn failing with a fenced error is shown only with the error
  injected on the mock cluster. The mock cluster gives a new producer id at epoch 0 on
  each InitProducerId and never fences.
- Offsets in a transaction: only the embedded broker stores them. They stay hidden from
  the group until EndTxn commits, and an abort leaves the group's offset unchanged. The
  mock cluster accepts TxnOffsetCommit but never makes the offsets visible.
- A partition refused in AddPartitionsToTxn (an unknown topic) is shown on the mock
  cluster; the embedded broker accepts any topic there.
- Neither broker checks TxnOffsetCommit v3's generation and member id (both accept a
  made-up generation), so the fencing of a consumer that lost its partitions (KIP-447)
  is not shown here; only a real Kafka shows it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from aiomq import BrokerError, Client, TopicSpec, UnknownTopicOrPartitionError
from aiomq._internal.kafka.admin import find_coordinator_request
from aiomq._internal.kafka.client import KafkaClient
from aiomq._internal.kafka.errors import ErrorCode
from aiomq._internal.kafka.transaction import (
    add_offsets,
    add_partitions,
    commit_offsets_in_transaction,
    end_transaction,
    find_transaction_coordinator,
    init_transactional_producer,
)
from tests.support.mock_cluster import MockCluster

END_TXN = 26
TRANSACTION_TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def connected(bootstrap_servers: str) -> AsyncIterator[KafkaClient]:
    client = KafkaClient(
        brokers=bootstrap_servers.split(","),
        client_id="aiomq-test",
        dialer=None,
        request_timeout=10.0,
        metadata_max_age=300.0,
    )
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def group_coordinator(client: KafkaClient, group_id: str) -> int:
    async def send(node: int) -> int:
        response = await client.send(node, find_coordinator_request(group_id))
        assert response.error_code == 0
        node_id: int = response.coordinator_id
        return node_id

    return await client.ask_any_broker(send, skip=lambda exc: False)


async def committed(bootstrap_servers: str, group_id: str, topic: str) -> dict[int, int]:
    async with Client(brokers=bootstrap_servers.split(",")) as admin:
        offsets = await admin.group_offsets(group_id, topics=[topic])
    return {o.partition: o.committed for o in offsets}


async def create_topic(bootstrap_servers: str, topic: str) -> None:
    async with Client(brokers=bootstrap_servers.split(",")) as admin:
        await admin.create_topics(TopicSpec(name=topic, partitions=2))


async def full_round(client: KafkaClient, topic: str) -> None:
    transactional_id = unique("txn")
    node = await find_transaction_coordinator(client, transactional_id)
    producer_id, epoch = await init_transactional_producer(
        client, node, transactional_id, TRANSACTION_TIMEOUT
    )
    assert producer_id >= 0
    assert epoch >= 0

    await add_partitions(client, node, transactional_id, producer_id, epoch, {topic: [0, 1]})
    await end_transaction(client, node, transactional_id, producer_id, epoch, commit=True)


async def test_a_full_transaction_round_commits_on_the_embedded_broker(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic)
    async with connected(bootstrap_servers) as client:
        await full_round(client, topic)


async def test_a_full_transaction_round_commits_on_the_mock_cluster(
    mock_cluster: MockCluster, topic: str
) -> None:
    mock_cluster.create_topic(topic, partitions=2, replication_factor=3)
    async with connected(mock_cluster.bootstrap_servers) as client:
        await full_round(client, topic)


async def test_a_second_init_with_the_same_transactional_id_bumps_the_epoch_and_fences_the_first(
    bootstrap_servers: str, topic: str
) -> None:
    """On the embedded broker: the mock cluster never fences."""
    await create_topic(bootstrap_servers, topic)
    transactional_id = unique("txn")
    async with connected(bootstrap_servers) as client:
        node = await find_transaction_coordinator(client, transactional_id)
        first = await init_transactional_producer(
            client, node, transactional_id, TRANSACTION_TIMEOUT
        )
        second = await init_transactional_producer(
            client, node, transactional_id, TRANSACTION_TIMEOUT
        )

        assert second == (first[0], first[1] + 1)
        with pytest.raises(BrokerError) as caught:
            await add_partitions(client, node, transactional_id, *first, {topic: [0]})
        assert caught.value.code in {ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH}
        assert repr(transactional_id) in str(caught.value)
        assert "adding partitions to the transaction" in str(caught.value)

        await add_partitions(client, node, transactional_id, *second, {topic: [0]})
        await end_transaction(client, node, transactional_id, *second, commit=True)


@pytest.mark.parametrize("code", [ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH])
async def test_an_end_transaction_answered_fenced_raises_naming_the_transactional_id_and_step(
    mock_cluster: MockCluster, topic: str, code: ErrorCode
) -> None:
    """On the mock cluster, with the error injected: the embedded broker closes the
    connection on a fenced producer's EndTxn rather than answering it."""
    mock_cluster.create_topic(topic, partitions=1, replication_factor=3)
    transactional_id = unique("txn")
    async with connected(mock_cluster.bootstrap_servers) as client:
        node = await find_transaction_coordinator(client, transactional_id)
        ids = await init_transactional_producer(client, node, transactional_id, TRANSACTION_TIMEOUT)
        await add_partitions(client, node, transactional_id, *ids, {topic: [0]})
        mock_cluster.push_request_errors(END_TXN, code)

        with pytest.raises(BrokerError) as caught:
            await end_transaction(client, node, transactional_id, *ids, commit=True)

    assert (caught.value.code, caught.value.name) == (code, code.name)
    assert not caught.value.retriable
    assert str(caught.value).endswith(
        f": transactional id {transactional_id!r}, while committing the transaction"
    )


async def test_a_partition_the_coordinator_refuses_is_named_with_the_transactional_id(
    mock_cluster: MockCluster, topic: str
) -> None:
    """On the mock cluster: the embedded broker accepts partitions of any topic here."""
    mock_cluster.create_topic(topic, partitions=1, replication_factor=3)
    missing = unique("missing")
    transactional_id = unique("txn")
    async with connected(mock_cluster.bootstrap_servers) as client:
        node = await find_transaction_coordinator(client, transactional_id)
        ids = await init_transactional_producer(client, node, transactional_id, TRANSACTION_TIMEOUT)

        with pytest.raises(UnknownTopicOrPartitionError) as caught:
            await add_partitions(client, node, transactional_id, *ids, {topic: [0], missing: [0]})

    assert (caught.value.topic, caught.value.partition) == (missing, 0)
    assert repr(transactional_id) in str(caught.value)


async def test_offsets_committed_in_a_transaction_become_visible_to_the_group_when_it_commits(
    bootstrap_servers: str, topic: str
) -> None:
    """On the embedded broker: the mock cluster never makes the offsets visible."""
    await create_topic(bootstrap_servers, topic)
    group_id = unique("group")
    transactional_id = unique("txn")
    async with connected(bootstrap_servers) as client:
        node = await find_transaction_coordinator(client, transactional_id)
        ids = await init_transactional_producer(client, node, transactional_id, TRANSACTION_TIMEOUT)
        await add_offsets(client, node, transactional_id, *ids, group_id)
        await commit_offsets_in_transaction(
            client,
            await group_coordinator(client, group_id),
            transactional_id,
            group_id,
            *ids,
            {topic: {0: 5, 1: 7}},
        )

        assert await committed(bootstrap_servers, group_id, topic) == {0: -1, 1: -1}
        await end_transaction(client, node, transactional_id, *ids, commit=True)

    assert await committed(bootstrap_servers, group_id, topic) == {0: 5, 1: 7}


async def test_offsets_committed_in_an_aborted_transaction_leave_the_group_unchanged(
    bootstrap_servers: str, topic: str
) -> None:
    """On the embedded broker: the mock cluster never makes the offsets visible."""
    await create_topic(bootstrap_servers, topic)
    group_id = unique("group")
    transactional_id = unique("txn")
    async with connected(bootstrap_servers) as client:
        node = await find_transaction_coordinator(client, transactional_id)
        coordinator = await group_coordinator(client, group_id)
        ids = await init_transactional_producer(client, node, transactional_id, TRANSACTION_TIMEOUT)
        for offset, commit in ((5, True), (9, False)):
            await add_offsets(client, node, transactional_id, *ids, group_id)
            await commit_offsets_in_transaction(
                client, coordinator, transactional_id, group_id, *ids, {topic: {0: offset}}
            )
            await end_transaction(client, node, transactional_id, *ids, commit=commit)

    assert await committed(bootstrap_servers, group_id, topic) == {0: 5, 1: -1}


@pytest.mark.external_broker(
    "the local brokers do not check the producer id and epoch of InitProducerId v3 (KIP-360)"
)
async def test_renewing_the_epoch_of_a_fenced_producer_is_refused_as_fenced(
    bootstrap_servers: str,
) -> None:
    """A producer renewing its epoch with its id and epoch must not take the transactional
    id back from a newer producer (the embedded broker fails on the request; the mock
    cluster renews it anyway)."""
    transactional_id = unique("txn")
    async with connected(bootstrap_servers) as client:
        node = await find_transaction_coordinator(client, transactional_id)
        old = await init_transactional_producer(client, node, transactional_id, TRANSACTION_TIMEOUT)
        renewed = await init_transactional_producer(
            client, node, transactional_id, TRANSACTION_TIMEOUT, old
        )
        assert renewed == (old[0], old[1] + 1)
        await init_transactional_producer(client, node, transactional_id, TRANSACTION_TIMEOUT)
        with pytest.raises(BrokerError) as caught:
            await init_transactional_producer(
                client, node, transactional_id, TRANSACTION_TIMEOUT, renewed
            )
    assert caught.value.code in {ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH}
