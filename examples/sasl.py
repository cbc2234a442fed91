"""Authenticate with SASL/SCRAM-SHA-512, then write and read.

Shows: aiomq.ScramSha512 in a Dialer (Plain and ScramSha256 work the same way; add
tls=aiomq.tls_context(...) for SASL over TLS). The password comes from the environment
and never appears in a log line, a repr or an error.
Run: docker compose up -d --wait, then
  AIOMQ_SASL_BOOTSTRAP_SERVERS=localhost:9094 AIOMQ_SASL_USERNAME=aiomq \
  AIOMQ_SASL_PASSWORD=aiomq-secret python examples/sasl.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import aiomq


async def main() -> int:
    servers = os.environ.get("AIOMQ_SASL_BOOTSTRAP_SERVERS")
    user = os.environ.get("AIOMQ_SASL_USERNAME")
    password = os.environ.get("AIOMQ_SASL_PASSWORD")
    if not (servers and user and password):
        print(
            "set AIOMQ_SASL_BOOTSTRAP_SERVERS, AIOMQ_SASL_USERNAME and AIOMQ_SASL_PASSWORD "
            "(compose.yaml provides a SASL listener)",
            file=sys.stderr,
        )
        return 2
    brokers = servers.split(",")
    dialer = aiomq.Dialer(sasl=aiomq.ScramSha512(username=user, password=password))
    topic = f"example-sasl-{uuid.uuid4().hex[:8]}"
    try:
        async with aiomq.Writer(
            brokers=brokers, topic=topic, dialer=dialer, allow_auto_topic_creation=True
        ) as w:
            written = await w.write_messages(aiomq.Message(value=b"authenticated", partition=0))
        async with aiomq.Reader(brokers=brokers, topic=topic, partition=0, dialer=dialer) as r:
            m = await r.fetch_message()
    except aiomq.AuthenticationError as exc:
        print(f"login refused: {exc}", file=sys.stderr)  # names mechanism and user only
        return 1
    print(f"authenticated as {user}; wrote offset {written[0].offset}, read back {m.value!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
