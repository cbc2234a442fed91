"""TLS end to end: a terminator with a test CA in front of the embedded broker."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog

import aiomq
from tests.support.tls import TLSBroker


def _dialer(ca_file: object) -> aiomq.Dialer:
    return aiomq.Dialer(tls=aiomq.tls_context(ca_file=str(ca_file)), timeout=5.0)


async def test_writer_and_reader_work_over_tls(tls_broker: TLSBroker, topic: str) -> None:
    dialer = _dialer(tls_broker.ca_file)
    brokers = [tls_broker.bootstrap_servers]
    async with aiomq.Writer(
        brokers=brokers, topic=topic, dialer=dialer, allow_auto_topic_creation=True
    ) as w:
        written = await w.write_messages(
            *(aiomq.Message(value=b"secret %d" % i, partition=0) for i in range(5))
        )
    assert [m.offset for m in written] == [0, 1, 2, 3, 4]
    async with aiomq.Reader(brokers=brokers, topic=topic, partition=0, dialer=dialer) as r:
        async with asyncio.timeout(20):
            values = [(await r.fetch_message()).value for _ in range(5)]
    assert values == [b"secret %d" % i for i in range(5)]


async def test_a_certificate_from_an_unknown_ca_is_refused_naming_the_broker(
    tls_broker: TLSBroker, topic: str
) -> None:
    writer = aiomq.Writer(
        brokers=[tls_broker.bootstrap_servers],
        topic=topic,
        dialer=_dialer(tls_broker.other_ca_file),
    )
    with pytest.raises(aiomq.TLSError) as caught:
        await writer.__aenter__()
    assert tls_broker.bootstrap_servers in str(caught.value)
    assert "certificate" in str(caught.value)
    assert "issuer" in str(caught.value) or "self-signed" in str(caught.value)


async def test_a_certificate_for_another_host_is_refused(tls_broker: TLSBroker, topic: str) -> None:
    reader = aiomq.Reader(
        brokers=[tls_broker.wrong_host_servers],
        topic=topic,
        partition=0,
        dialer=_dialer(tls_broker.ca_file),
    )
    with pytest.raises(aiomq.TLSError) as caught:
        await reader.__aenter__()
    assert tls_broker.wrong_host_servers in str(caught.value)
    assert "mismatch" in str(caught.value).lower() or "not valid for" in str(caught.value)


async def test_a_plaintext_client_at_a_tls_listener_fails_fast_saying_so(
    tls_broker: TLSBroker, topic: str
) -> None:
    writer = aiomq.Writer(
        brokers=[tls_broker.bootstrap_servers],
        topic=topic,
        dialer=aiomq.Dialer(timeout=5.0),
    )
    started = time.monotonic()
    with pytest.raises(aiomq.TLSError, match="expects TLS") as caught:
        await writer.__aenter__()
    assert time.monotonic() - started < 30  # a bound on hanging, not a performance claim
    assert tls_broker.bootstrap_servers in str(caught.value)


async def test_a_tls_client_at_a_plaintext_listener_fails_fast_saying_so(
    tls_broker: TLSBroker, topic: str
) -> None:
    writer = aiomq.Writer(
        brokers=[tls_broker.plaintext_servers], topic=topic, dialer=_dialer(tls_broker.ca_file)
    )
    with pytest.raises(aiomq.TLSError, match="does not speak TLS") as caught:
        await writer.__aenter__()
    assert tls_broker.plaintext_servers in str(caught.value)


async def test_tls_failures_log_no_secret_and_name_the_broker(tls_broker: TLSBroker) -> None:
    dialer = aiomq.Dialer(
        tls=aiomq.tls_context(ca_file=str(tls_broker.other_ca_file)),
        sasl=aiomq.ScramSha512(username="billing", password="hunter2-secret"),
        timeout=5.0,
    )
    with structlog.testing.capture_logs() as logs:
        writer = aiomq.Writer(brokers=[tls_broker.bootstrap_servers], topic="t", dialer=dialer)
        with pytest.raises(aiomq.TLSError) as caught:
            await writer.__aenter__()
    everything = " ".join([str(caught.value), repr(caught.value), repr(dialer), repr(writer)])
    everything += " ".join(str(entry) for entry in logs)
    assert "hunter2-secret" not in everything
    assert "billing" in repr(dialer)
