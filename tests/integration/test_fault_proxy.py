"""The fault proxy of `aiomq.testing`: each fault has the effect its documentation claims.

Most tests talk the Kafka protocol on raw sockets, one ApiVersions request at a time, so
that what they observe is the proxy's doing and not a client's retries. They put a
`FaultProxy` in front of the suite's broker (the embedded one, or the one named by
AIOMQ_BOOTSTRAP_SERVERS); the tests of `EmbeddedBroker(faults=True)` use the
`kafka_faulty_broker` fixture of aiomq's pytest plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from aiomq.testing import EmbeddedBroker, FaultProxy
from tests.support.waiting import wait_until

DEADLINE = 5.0
# How long a test waits for an answer that must not come.
SILENCE = 0.5
_CLIENT_ID = b"fault-proxy-test"

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def api_versions(correlation_id: int) -> bytes:
    """An ApiVersions v0 request, which every Kafka broker answers."""
    body = struct.pack(
        f">hhih{len(_CLIENT_ID)}s", 18, 0, correlation_id, len(_CLIENT_ID), _CLIENT_ID
    )
    return struct.pack(">i", len(body)) + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response off the stream and return its correlation id."""
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    body = await reader.readexactly(size)
    correlation_id: int = struct.unpack(">i", body[:4])[0]
    return correlation_id


async def round_trip(stream: Stream, correlation_id: int) -> None:
    """Send one request and check that its answer comes back within the deadline."""
    reader, writer = stream
    writer.write(api_versions(correlation_id))
    await writer.drain()
    async with asyncio.timeout(DEADLINE):
        assert await read_response(reader) == correlation_id


@contextlib.asynccontextmanager
async def connect(address: str) -> AsyncIterator[Stream]:
    """A raw TCP connection to `address`, closed (and its socket gone) at the end."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def turned_away(address: str) -> bool:
    """Tell whether a new connection to `address` is refused, or reset before any answer."""
    try:
        async with connect(address) as stream:
            stream[1].write(api_versions(1))
            async with asyncio.timeout(DEADLINE):
                await read_response(stream[0])
    except (ConnectionRefusedError, ConnectionResetError, asyncio.IncompleteReadError):
        return True
    return False


def proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("aiomq-fault-proxy")]


def open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
async def proxy(bootstrap_servers: str) -> AsyncIterator[FaultProxy]:
    """A fault proxy in front of the suite's broker (its bootstrap address only)."""
    async with FaultProxy(target=bootstrap_servers.split(",")[0]) as proxy:
        yield proxy


# -- relaying ---------------------------------------------------------------------------


async def test_requests_round_trip_through_a_healthy_proxy(proxy: FaultProxy) -> None:
    async with connect(proxy.address) as stream:
        for correlation_id in range(3):
            await round_trip(stream, correlation_id)
        assert proxy.connections == 1
        assert proxy.accepted == 1
        assert proxy.state == "healthy"
    await wait_until(
        lambda: proxy.connections == 0, "the closed connection is no longer open", deadline=DEADLINE
    )


async def test_a_producer_and_a_consumer_round_trip_through_a_faulty_broker(
    kafka_faulty_broker: EmbeddedBroker, topic: str
) -> None:
    servers = kafka_faulty_broker.bootstrap_servers
    assert servers == kafka_faulty_broker.faults.address
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"through the proxy", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        async with asyncio.timeout(DEADLINE):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (record.offset, record.value) == (sent.offset, b"through the proxy")
    # Each client made a bootstrap connection and one to the broker it read from metadata.
    assert kafka_faulty_broker.faults.accepted >= 4


async def test_the_metadata_of_a_faulty_broker_advertises_the_proxy(
    kafka_faulty_broker: EmbeddedBroker,
) -> None:
    client = AIOKafkaClient(bootstrap_servers=kafka_faulty_broker.bootstrap_servers)
    await client.bootstrap()
    try:
        advertised = {(b.host, b.port) for b in client.cluster.brokers()}
    finally:
        await client.close()
    proxy = kafka_faulty_broker.faults
    assert advertised == {(proxy.host, proxy.port)}


async def test_a_proxy_whose_target_refuses_resets_the_client() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        target = f"127.0.0.1:{placeholder.getsockname()[1]}"
        async with FaultProxy(target=target) as proxy:
            assert await turned_away(proxy.address)
            await wait_until(
                lambda: proxy.connections == 0, "the connection is dropped", deadline=DEADLINE
            )


def test_a_proxy_works_under_a_plain_with_without_an_event_loop(bootstrap_servers: str) -> None:
    with FaultProxy(target=bootstrap_servers.split(",")[0]) as proxy:
        host, port = proxy.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=DEADLINE) as sock:
            sock.sendall(api_versions(7))
            with sock.makefile("rb") as stream:
                (size,) = struct.unpack(">i", stream.read(4))
                assert struct.unpack(">i", stream.read(size)[:4])[0] == 7
            proxy.cut()
            with pytest.raises(ConnectionResetError):
                sock.recv(1)


# -- cut --------------------------------------------------------------------------------


async def test_cut_resets_open_connections_before_it_returns(proxy: FaultProxy) -> None:
    async with connect(proxy.address) as one, connect(proxy.address) as two:
        await round_trip(one, 1)
        await round_trip(two, 2)
        proxy.cut()
        assert proxy.connections == 0
        assert proxy.state == "cut"
        for reader, _writer in (one, two):
            with pytest.raises(ConnectionResetError):
                async with asyncio.timeout(DEADLINE):
                    await reader.read(1)


async def test_cut_turns_new_connections_away(proxy: FaultProxy) -> None:
    proxy.cut()
    assert await turned_away(proxy.address)
    assert proxy.accepted == 0


async def test_heal_after_a_cut_lets_new_connections_through(proxy: FaultProxy) -> None:
    proxy.cut()
    proxy.heal()
    assert proxy.state == "healthy"
    async with connect(proxy.address) as stream:
        await round_trip(stream, 1)


async def test_a_producer_reconnects_through_the_proxy_once_a_cut_heals(
    kafka_faulty_broker: EmbeddedBroker, topic: str
) -> None:
    faults = kafka_faulty_broker.faults
    producer = AIOKafkaProducer(bootstrap_servers=kafka_faulty_broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before", partition=0)
        accepted = faults.accepted
        faults.cut()
        faults.heal()
        async with asyncio.timeout(DEADLINE):
            sent = await producer.send_and_wait(topic, b"after", partition=0)
    finally:
        await producer.stop()
    assert sent.offset == 1
    assert faults.accepted > accepted


# -- blackhole --------------------------------------------------------------------------


async def test_blackhole_leaves_a_request_on_an_open_connection_unanswered(
    proxy: FaultProxy,
) -> None:
    async with connect(proxy.address) as (reader, writer):
        await round_trip((reader, writer), 1)
        proxy.blackhole()
        writer.write(api_versions(2))
        await writer.drain()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(SILENCE):
                await reader.readexactly(1)
        assert proxy.connections == 1


async def test_heal_delivers_what_a_blackhole_held_on_an_open_connection(
    proxy: FaultProxy,
) -> None:
    async with connect(proxy.address) as (reader, writer):
        await round_trip((reader, writer), 1)
        proxy.blackhole()
        writer.write(api_versions(2))
        writer.write(api_versions(3))
        await writer.drain()
        proxy.heal()
        async with asyncio.timeout(DEADLINE):
            assert [await read_response(reader), await read_response(reader)] == [2, 3]


async def test_blackhole_accepts_new_connections_but_forwards_nothing(proxy: FaultProxy) -> None:
    proxy.blackhole()
    async with connect(proxy.address) as (reader, writer):
        await wait_until(
            lambda: proxy.accepted == 1, "the proxy accepts the connection", deadline=DEADLINE
        )
        writer.write(api_versions(1))
        await writer.drain()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(SILENCE):
                await reader.readexactly(1)


async def test_heal_after_a_blackhole_lets_new_connections_through(proxy: FaultProxy) -> None:
    proxy.blackhole()
    proxy.heal()
    async with connect(proxy.address) as stream:
        await round_trip(stream, 1)


async def test_cut_resets_connections_a_blackhole_holds(proxy: FaultProxy) -> None:
    async with connect(proxy.address) as (reader, writer):
        await round_trip((reader, writer), 1)
        proxy.blackhole()
        writer.write(api_versions(2))
        await writer.drain()
        proxy.cut()
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(DEADLINE):
                await reader.read(1)


# -- delay ------------------------------------------------------------------------------


async def test_delay_adds_its_latency_in_each_direction_of_a_round_trip(
    proxy: FaultProxy,
) -> None:
    async with connect(proxy.address) as stream:
        await round_trip(stream, 1)
        proxy.delay(0.2)
        assert proxy.latency == 0.2
        started = time.monotonic()
        await round_trip(stream, 2)
        assert time.monotonic() - started >= 2 * 0.2


async def test_delayed_chunks_keep_their_order_when_the_delay_changes(proxy: FaultProxy) -> None:
    async with connect(proxy.address) as (reader, writer):
        await round_trip((reader, writer), 0)
        # Alternating delays give successive chunks due times out of order; the proxy must
        # still forward each one after the one before it.
        for correlation_id in range(1, 11):
            proxy.delay(0.1 if correlation_id % 2 else 0.0)
            writer.write(api_versions(correlation_id))
            await writer.drain()
        async with asyncio.timeout(DEADLINE):
            answers = [await read_response(reader) for _ in range(10)]
        assert answers == list(range(1, 11))


async def test_heal_removes_the_delay(proxy: FaultProxy) -> None:
    proxy.delay(0.2)
    proxy.heal()
    assert proxy.latency == 0.0
    assert proxy.state == "healthy"


# -- lifecycle --------------------------------------------------------------------------


async def test_stopping_resets_connections_and_leaves_no_thread_or_socket(
    bootstrap_servers: str,
) -> None:
    descriptors = open_descriptors()
    proxy = FaultProxy(target=bootstrap_servers.split(",")[0])
    async with proxy, connect(proxy.address) as (reader, writer):
        await round_trip((reader, writer), 1)
        assert len(proxy_threads()) == 1
        proxy.stop()
        proxy.stop()
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(DEADLINE):
                await reader.read(1)
    assert not proxy.running
    assert proxy_threads() == []
    assert open_descriptors() - descriptors == set()


def test_a_faulty_broker_stops_its_proxy_with_it() -> None:
    with EmbeddedBroker(faults=True) as broker:
        proxy = broker.faults
        assert len(proxy_threads()) == 1
    assert not proxy.running
    assert proxy_threads() == []
