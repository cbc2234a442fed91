"""SASL: local brokers do not authenticate, so the round trips run against compose.yaml's SASL
listener; locally, a broker without SASL gives a clear error naming mechanism and user."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import structlog

import aiomq

MECHANISMS: list[Callable[[str, str], aiomq.SaslMechanism]] = [
    lambda user, password: aiomq.Plain(username=user, password=password),
    lambda user, password: aiomq.ScramSha256(username=user, password=password),
    lambda user, password: aiomq.ScramSha512(username=user, password=password),
]


@pytest.mark.parametrize("make", MECHANISMS, ids=["plain", "scram-sha-256", "scram-sha-512"])
async def test_a_broker_without_sasl_gives_a_clear_error_naming_mechanism_and_user(
    bootstrap_servers: str, topic: str, make: Callable[[str, str], aiomq.SaslMechanism]
) -> None:
    if os.environ.get("AIOMQ_BOOTSTRAP_SERVERS"):
        pytest.skip("the plaintext listener of an external broker may accept SASL")
    sasl = make("billing", "hunter2-secret")
    writer = aiomq.Writer(
        brokers=[bootstrap_servers], topic=topic, dialer=aiomq.Dialer(sasl=sasl, timeout=5.0)
    )
    with (
        structlog.testing.capture_logs() as logs,
        pytest.raises(aiomq.AuthenticationError) as caught,
    ):
        await writer.__aenter__()
    message = str(caught.value)
    assert sasl.mechanism_name in message
    assert "billing" in message
    assert caught.value.username == "billing"
    assert "hunter2-secret" not in message + repr(caught.value) + str(logs)


def _sasl_settings() -> tuple[list[str], str, str]:
    servers = os.environ.get("AIOMQ_SASL_BOOTSTRAP_SERVERS")
    user = os.environ.get("AIOMQ_SASL_USERNAME")
    password = os.environ.get("AIOMQ_SASL_PASSWORD")
    if not (servers and user and password):
        pytest.fail(
            "SASL tests need AIOMQ_SASL_BOOTSTRAP_SERVERS, AIOMQ_SASL_USERNAME and "
            "AIOMQ_SASL_PASSWORD (compose.yaml: localhost:9094, aiomq, aiomq-secret)"
        )
    return servers.split(","), user, password


@pytest.mark.external_broker("SASL authentication: neither local broker authenticates")
@pytest.mark.parametrize("make", MECHANISMS, ids=["plain", "scram-sha-256", "scram-sha-512"])
async def test_writer_and_reader_authenticate_with_each_mechanism(
    topic: str, make: Callable[[str, str], aiomq.SaslMechanism]
) -> None:
    brokers, user, password = _sasl_settings()
    dialer = aiomq.Dialer(sasl=make(user, password))
    async with aiomq.Writer(
        brokers=brokers, topic=topic, dialer=dialer, allow_auto_topic_creation=True
    ) as w:
        written = await w.write_messages(aiomq.Message(value=b"authenticated", partition=0))
    async with aiomq.Reader(brokers=brokers, topic=topic, partition=0, dialer=dialer) as r:
        message = await r.fetch_message()
    assert message.value == b"authenticated"
    assert message.offset == written[0].offset


@pytest.mark.external_broker("SASL authentication: neither local broker authenticates")
async def test_a_wrong_password_names_mechanism_and_user_but_not_the_secret(topic: str) -> None:
    brokers, user, _password = _sasl_settings()
    dialer = aiomq.Dialer(sasl=aiomq.ScramSha512(username=user, password="wrong-secret"))
    with (
        structlog.testing.capture_logs() as logs,
        pytest.raises(aiomq.AuthenticationError) as caught,
    ):
        async with aiomq.Writer(brokers=brokers, topic=topic, dialer=dialer):
            pass
    assert "SCRAM-SHA-512" in str(caught.value)
    assert user in str(caught.value)
    assert "wrong-secret" not in str(caught.value) + repr(caught.value) + str(logs)
