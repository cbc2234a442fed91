"""The SASL front on the wire: what it answers before a login, what it refuses, and that a
logged-in connection passes through to the broker untouched.

A raw client speaks the Kafka protocol to a front before the test broker; aiokafka's own
response classes decode the answers, so the front's encoding is checked by another
implementation than its own.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import scramp
from aiokafka.protocol.admin import (
    ApiVersionResponse_v0,
    SaslAuthenticateResponse_v1,
    SaslHandShakeResponse_v0,
    SaslHandShakeResponse_v1,
)

import aiomq
from aiomq._internal.sasl_front import SaslFront
from aiomq.testing import EmbeddedBroker, SaslAccounts
from tests.support.waiting import wait_until

USER = "billing"
PASSWORD = "billing-secret"
ACCOUNTS = SaslAccounts(users={USER: PASSWORD}, mechanisms=["PLAIN", "SCRAM-SHA-256"])
DEADLINE = 10.0

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE, METADATA = 18, 17, 36, 3


def request(api_key: int, version: int, correlation: int, body: bytes = b"") -> bytes:
    """A framed request with header v1 (client id "test")."""
    message = struct.pack(">hhih", api_key, version, correlation, 4) + b"test" + body
    return struct.pack(">i", len(message)) + message


def string(value: str) -> bytes:
    return struct.pack(">h", len(value)) + value.encode()


def token(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


class Raw:
    """A client connection that sends bytes and reads frames, every read with a deadline."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def frame(self) -> bytes:
        async with asyncio.timeout(DEADLINE):
            size = struct.unpack(">i", await self.reader.readexactly(4))[0]
            return await self.reader.readexactly(size)

    async def ask(self, data: bytes) -> bytes:
        await self.send(data)
        return await self.frame()

    async def closed_by_peer(self) -> bytes:
        """Wait until the other side closes; return what it sent before closing."""
        async with asyncio.timeout(DEADLINE):
            try:
                return await self.reader.read()
            except ConnectionResetError:
                return b""


@pytest.fixture
def front(bootstrap_servers: str) -> Iterator[SaslFront]:
    with SaslFront(target=bootstrap_servers, accounts=ACCOUNTS) as front:
        yield front


async def connect(address: str) -> AsyncIterator[Raw]:
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        yield Raw(reader, writer)
    finally:
        writer.close()


@pytest.fixture
async def client(front: SaslFront) -> AsyncIterator[Raw]:
    async for raw in connect(front.address):
        yield raw


@pytest.fixture
async def broker_client(bootstrap_servers: str) -> AsyncIterator[Raw]:
    async for raw in connect(bootstrap_servers):
        yield raw


def decode(response: type[Any], answer: bytes) -> Any:
    """Decode an answer (its size removed) with aiokafka's class, after its correlation id."""
    return response.decode(answer[4:])


def api_versions(answer: bytes) -> dict[int, tuple[int, int]]:
    decoded = decode(ApiVersionResponse_v0, answer)
    assert decoded.error_code == 0
    return {key: (low, high) for key, low, high in decoded.api_versions}


async def plain_login(client: Raw, password: str = PASSWORD) -> Any:
    answer = await client.ask(request(SASL_HANDSHAKE, 1, 1, string("PLAIN")))
    handshake = decode(SaslHandShakeResponse_v1, answer)
    assert handshake.error_code == 0
    credentials = f"\0{USER}\0{password}".encode()
    answer = await client.ask(request(SASL_AUTHENTICATE, 1, 2, token(credentials)))
    assert struct.unpack(">i", answer[:4])[0] == 2
    return decode(SaslAuthenticateResponse_v1, answer)


async def test_api_versions_before_the_login_lists_the_fronts_sasl_versions_and_the_brokers_apis(
    client: Raw, broker_client: Raw
) -> None:
    ours = api_versions(await client.ask(request(API_VERSIONS, 0, 7)))
    brokers = api_versions(await broker_client.ask(request(API_VERSIONS, 0, 7)))
    assert ours[SASL_HANDSHAKE] == (0, 1)
    assert ours[SASL_AUTHENTICATE] == (0, 1)
    others = {key: versions for key, versions in ours.items() if key not in (17, 36)}
    assert others == {k: v for k, v in brokers.items() if k not in (17, 36)}


async def test_an_unsupported_mechanism_is_answered_33_with_the_enabled_list_then_closed(
    client: Raw, front: SaslFront
) -> None:
    answer = await client.ask(request(SASL_HANDSHAKE, 1, 5, string("OAUTHBEARER")))
    assert struct.unpack(">i", answer[:4])[0] == 5
    decoded = decode(SaslHandShakeResponse_v1, answer)
    assert decoded.error_code == 33
    assert decoded.enabled_mechanisms == ["PLAIN", "SCRAM-SHA-256"]
    assert await client.closed_by_peer() == b""
    assert front.refused == 1


async def test_a_wrong_password_is_answered_58_with_kafkas_message_then_closed(
    client: Raw, front: SaslFront
) -> None:
    answer = await plain_login(client, password="wrong")
    assert answer.error_code == 58
    assert answer.error_message == "Authentication failed: Invalid username or password"
    assert answer.session_lifetime_ms == 0
    assert await client.closed_by_peer() == b""
    assert (front.authenticated, front.refused) == (0, 1)


@pytest.mark.parametrize(
    "before",
    [
        pytest.param(b"", id="metadata-first"),
        pytest.param(request(SASL_HANDSHAKE, 1, 1, string("PLAIN")), id="metadata-after-handshake"),
    ],
)
async def test_a_request_other_than_the_login_closes_the_connection_unanswered(
    client: Raw, front: SaslFront, before: bytes
) -> None:
    if before:
        await client.ask(before)
    await client.send(request(METADATA, 1, 9, struct.pack(">i", -1)))
    assert await client.closed_by_peer() == b""
    assert front.refused == 1


async def test_authenticating_before_a_handshake_closes_the_connection_unanswered(
    client: Raw,
) -> None:
    await client.send(request(SASL_AUTHENTICATE, 1, 1, token(f"\0{USER}\0{PASSWORD}".encode())))
    assert await client.closed_by_peer() == b""


async def test_a_frame_too_large_for_a_login_closes_the_connection(client: Raw) -> None:
    await client.send(struct.pack(">i", 1 << 20) + b"\0" * 1024)
    assert await client.closed_by_peer() == b""


async def test_after_logging_in_requests_reach_the_broker_even_those_sent_with_the_last_token(
    client: Raw, broker_client: Raw, front: SaslFront
) -> None:
    await client.ask(request(SASL_HANDSHAKE, 1, 1, string("PLAIN")))
    # The last login token and the first request in one write, as a pipelining client
    # might send them: the request must reach the broker, not the front.
    credentials = token(f"\0{USER}\0{PASSWORD}".encode())
    await client.send(request(SASL_AUTHENTICATE, 1, 2, credentials) + request(API_VERSIONS, 0, 3))
    assert decode(SaslAuthenticateResponse_v1, await client.frame()).error_code == 0
    through = await client.frame()
    # The broker's own answer, byte for byte: its SaslAuthenticate versions, not the front's.
    assert through == await broker_client.ask(request(API_VERSIONS, 0, 3))
    assert front.authenticated == 1


async def test_a_v0_handshake_takes_bare_plain_tokens_then_passes_through(
    client: Raw, broker_client: Raw
) -> None:
    handshake = await client.ask(request(SASL_HANDSHAKE, 0, 1, string("PLAIN")))
    assert decode(SaslHandShakeResponse_v0, handshake).error_code == 0
    # Kafka answers a bare PLAIN token with an empty one.
    assert await client.ask(token(f"\0{USER}\0{PASSWORD}".encode())) == b""
    through = await client.ask(request(API_VERSIONS, 0, 4))
    assert through == await broker_client.ask(request(API_VERSIONS, 0, 4))


async def test_a_v0_handshake_takes_bare_scram_tokens_from_scramps_client(client: Raw) -> None:
    await client.ask(request(SASL_HANDSHAKE, 0, 1, string("SCRAM-SHA-256")))
    scram = scramp.ScramClient(["SCRAM-SHA-256"], USER, PASSWORD)
    server_first = await client.ask(token(scram.get_client_first().encode()))
    scram.set_server_first(server_first.decode())
    server_final = await client.ask(token(scram.get_client_final().encode()))
    scram.set_server_final(server_final.decode())  # raises unless the server proved itself
    answer = api_versions(await client.ask(request(API_VERSIONS, 0, 5)))
    assert METADATA in answer


async def test_a_wrong_password_after_a_v0_handshake_closes_without_an_answer(
    client: Raw, front: SaslFront
) -> None:
    await client.ask(request(SASL_HANDSHAKE, 0, 1, string("PLAIN")))
    await client.send(token(f"\0{USER}\0wrong".encode()))
    assert await client.closed_by_peer() == b""
    assert front.refused == 1


async def test_the_front_closes_its_broker_connection_when_the_client_leaves(
    client: Raw, front: SaslFront
) -> None:
    assert (await plain_login(client)).error_code == 0
    await wait_until(lambda: front.connections == 1, "the front holds the connection")
    client.writer.close()
    await wait_until(lambda: front.connections == 0, "the front lets the connection go")


async def test_stopping_the_front_closes_every_connection(client: Raw, front: SaslFront) -> None:
    assert (await plain_login(client)).error_code == 0
    front.stop()
    assert await client.closed_by_peer() == b""
    with pytest.raises(aiomq.ClosedError):
        _ = front.address


async def test_with_faults_every_connection_goes_through_the_proxy_then_the_front(
    topic: str,
) -> None:
    async with EmbeddedBroker(sasl=ACCOUNTS, faults=True) as broker:
        brokers = [broker.bootstrap_servers]
        assert brokers == [broker.faults.address]
        dialer = aiomq.Dialer(sasl=aiomq.ScramSha256(username=USER, password=PASSWORD))
        async with aiomq.Writer(
            brokers=brokers, topic=topic, dialer=dialer, allow_auto_topic_creation=True
        ) as w:
            await w.write_messages(aiomq.Message(value=b"one", partition=0))
            # The writer's connection to the partition leader, made after reading metadata,
            # goes through the proxy too: a blackhole stalls it.
            broker.faults.blackhole()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.0):
                    await w.write_messages(aiomq.Message(value=b"stalled", partition=0))
            broker.faults.heal()
            written = await w.write_messages(aiomq.Message(value=b"two", partition=0))
        assert written[0].offset >= 1
        # Behind the proxy, the front still asks for a login.
        wrong = aiomq.Dialer(sasl=aiomq.Plain(username=USER, password="wrong"), timeout=5.0)
        with pytest.raises(aiomq.AuthenticationError):
            async with aiomq.Writer(brokers=brokers, topic=topic, dialer=wrong):
                pass
