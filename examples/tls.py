"""Write and read over TLS, verifying the broker's certificate against your own CA.

Shows: aiomq.tls_context(ca_file=...) in a Dialer shared by a Writer and a Reader.
Run: AIOMQ_BOOTSTRAP_SERVERS=host:9093 AIOMQ_TLS_CA_FILE=ca.pem python examples/tls.py
(the test suite runs it against the embedded broker behind a TLS terminator)
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import aiomq


async def main() -> int:
    servers = os.environ.get("AIOMQ_BOOTSTRAP_SERVERS")
    ca_file = os.environ.get("AIOMQ_TLS_CA_FILE")
    if not servers or not ca_file:
        print("set AIOMQ_BOOTSTRAP_SERVERS (a TLS listener) and AIOMQ_TLS_CA_FILE", file=sys.stderr)
        return 2
    brokers = servers.split(",")
    # Certificate and host name are verified; add cert_file/key_file for mutual TLS.
    dialer = aiomq.Dialer(tls=aiomq.tls_context(ca_file=ca_file))
    topic = f"example-tls-{uuid.uuid4().hex[:8]}"
    async with aiomq.Writer(
        brokers=brokers, topic=topic, dialer=dialer, allow_auto_topic_creation=True
    ) as w:
        written = await w.write_messages(aiomq.Message(value=b"sent over TLS", partition=0))
    async with aiomq.Reader(brokers=brokers, topic=topic, partition=0, dialer=dialer) as r:
        m = await r.fetch_message()
    print(f"wrote offset {written[0].offset}, read back {m.value!r} over TLS")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
