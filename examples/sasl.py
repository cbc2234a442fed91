"""Authenticate with SASL/SCRAM-SHA-512, write and read; then see a wrong password refused.

Shows: aiomq.ScramSha512 in a Dialer (Plain and ScramSha256 work the same way; add
tls=aiomq.tls_context(...) for SASL over TLS), and aiomq.AuthenticationError for a refused
login, which names the mechanism and the user but never the password.
Run: python examples/sasl.py (an embedded broker behind a SASL front, with one account),
or against a real SASL listener, such as compose.yaml's:
  AIOMQ_SASL_BOOTSTRAP_SERVERS=localhost:9094 AIOMQ_SASL_USERNAME=aiomq \
  AIOMQ_SASL_PASSWORD=aiomq-secret python examples/sasl.py
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator

import structlog

import aiomq
from aiomq.testing import EmbeddedBroker, SaslAccounts


@contextlib.asynccontextmanager
async def sasl_listener() -> AsyncIterator[tuple[list[str], str, str]]:
    """The SASL listener named by the environment, else an embedded broker behind a front."""
    servers = os.environ.get("AIOMQ_SASL_BOOTSTRAP_SERVERS")
    user = os.environ.get("AIOMQ_SASL_USERNAME")
    password = os.environ.get("AIOMQ_SASL_PASSWORD")
    if servers and user and password:
        yield servers.split(","), user, password
        return
    accounts = SaslAccounts(users={"billing": "example-secret"}, mechanisms=["SCRAM-SHA-512"])
    async with EmbeddedBroker(sasl=accounts) as broker:
        yield [broker.bootstrap_servers], "billing", "example-secret"


async def main() -> None:
    # aiomq logs through structlog; show warnings and errors only here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    async with sasl_listener() as (brokers, user, password):
        dialer = aiomq.Dialer(sasl=aiomq.ScramSha512(username=user, password=password))
        topic = f"example-sasl-{uuid.uuid4().hex[:8]}"
        async with aiomq.Writer(
            brokers=brokers, topic=topic, dialer=dialer, allow_auto_topic_creation=True
        ) as w:
            written = await w.write_messages(aiomq.Message(value=b"authenticated", partition=0))
        async with aiomq.Reader(brokers=brokers, topic=topic, partition=0, dialer=dialer) as r:
            m = await r.fetch_message()
        print(f"authenticated as {user}; wrote offset {written[0].offset}, read back {m.value!r}")

        wrong = aiomq.Dialer(sasl=aiomq.ScramSha512(username=user, password="not-the-password"))
        try:
            async with aiomq.Writer(brokers=brokers, topic=topic, dialer=wrong):
                pass
        except aiomq.AuthenticationError as exc:
            print(f"a wrong password is refused: {exc}")  # names mechanism and user only


if __name__ == "__main__":
    asyncio.run(main())
