"""One SASL login attempt by aiomq and one by librdkafka, each reduced to its outcome.

An outcome is "authenticated" (a message written to partition 0 was read back),
"bad credentials" (the broker refused the login) or "bad mechanism" (the broker does not
offer the mechanism). The SASL tests run both clients against the same broker and compare.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

import aiomq

__all__ = ["Login", "Outcome", "aiomq_outcome", "librdkafka_outcome"]

Outcome = Literal["authenticated", "bad credentials", "bad mechanism"]

# Generous: reaching it means a hang, not a slow machine.
DEADLINE = 30.0


@dataclass(frozen=True)
class Login:
    """What a client logs in with: a password mechanism and credentials, or a token."""

    mechanism: str
    username: str = ""
    secret: str = ""
    """The password, or the bearer token for OAUTHBEARER."""

    def dialer(self) -> aiomq.Dialer:
        secret = self.secret

        async def token() -> str:
            return secret

        sasl: aiomq.SaslMechanism
        if self.mechanism == "PLAIN":
            sasl = aiomq.Plain(username=self.username, password=secret)
        elif self.mechanism == "SCRAM-SHA-256":
            sasl = aiomq.ScramSha256(username=self.username, password=secret)
        elif self.mechanism == "SCRAM-SHA-512":
            sasl = aiomq.ScramSha512(username=self.username, password=secret)
        else:
            sasl = aiomq.OAuthBearer(token_provider=token)
        return aiomq.Dialer(sasl=sasl, timeout=5.0)

    def librdkafka_config(self, servers: str) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bootstrap.servers": servers,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": self.mechanism,
        }
        if self.mechanism == "OAUTHBEARER":
            secret = self.secret
            config["oauth_cb"] = lambda _config: (secret, time.time() + 3600)
        else:
            config["sasl.username"] = self.username
            config["sasl.password"] = self.secret
        return config


def _topic(client: str) -> str:
    return f"sasl-{client}-{uuid.uuid4().hex[:8]}"


async def aiomq_outcome(servers: str, login: Login) -> Outcome:
    """Write a message to a new topic with aiomq and read it back, logged in as `login`.

    Also checks that the secret is in no error message, repr or log line.
    """
    topic = _topic("aiomq")
    dialer = login.dialer()
    refused: aiomq.AuthenticationError | None = None
    with structlog.testing.capture_logs() as logs:
        try:
            async with asyncio.timeout(DEADLINE):
                async with aiomq.Writer(
                    brokers=[servers], topic=topic, dialer=dialer, allow_auto_topic_creation=True
                ) as w:
                    written = await w.write_messages(aiomq.Message(value=b"logged in", partition=0))
                async with aiomq.Reader(
                    brokers=[servers], topic=topic, partition=0, dialer=dialer
                ) as r:
                    message = await r.fetch_message()
        except aiomq.AuthenticationError as exc:
            refused = exc
    assert login.secret not in f"{refused} {refused!r} {logs}", "a secret leaked"
    if refused is not None:
        assert refused.mechanism == login.mechanism
        if login.username:
            assert refused.username == login.username
            assert login.username in str(refused)
        return "bad mechanism" if "does not offer" in str(refused) else "bad credentials"
    assert (message.value, message.offset) == (b"logged in", written[0].offset)
    return "authenticated"


def _refusal(errors: list[KafkaError]) -> Outcome | None:
    for error in errors:
        if error.code() == KafkaError._AUTHENTICATION:
            text = error.str()
            return "bad mechanism" if "Unsupported SASL mechanism" in text else "bad credentials"
    return None


def librdkafka_outcome(servers: str, login: Login) -> Outcome:
    """Produce a message to a new topic with librdkafka and consume it, logged in as `login`.

    Blocking: run it in a thread.
    """
    topic = _topic("librdkafka")
    errors: list[KafkaError] = []
    delivered: list[tuple[KafkaError | None, int | None]] = []
    producer = Producer(
        {**login.librdkafka_config(servers), "error_cb": errors.append, "linger.ms": 0}
    )
    producer.produce(
        topic,
        b"logged in",
        partition=0,
        on_delivery=lambda error, message: delivered.append((error, message.offset())),
    )
    deadline = time.monotonic() + DEADLINE
    while not delivered and _refusal(errors) is None:
        assert time.monotonic() < deadline, f"librdkafka neither delivered nor failed: {errors}"
        producer.poll(0.05)
    refusal = _refusal(errors)
    if refusal is not None:
        producer.purge()
        return refusal
    (error, offset), *_ = delivered
    assert error is None, error
    assert offset is not None
    consumer = Consumer(
        {
            **login.librdkafka_config(servers),
            "group.id": topic,
            "enable.auto.commit": False,
            "error_cb": errors.append,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, offset)])
        while True:
            assert time.monotonic() < deadline, f"librdkafka read nothing back: {errors}"
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                assert message.value() == b"logged in"
                return "authenticated"
    finally:
        consumer.close()
