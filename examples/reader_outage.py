"""Rehearse a broker outage: what a Reader reports, and how it carries on afterwards.

Shows: the fault proxy in front of the embedded broker, `unavailable_timeout`, the error
count in `stats()`, and a read that resumes by itself once the network is back.
Run: python examples/reader_outage.py  (always uses its own embedded broker behind a fault
proxy: a proxy in front of another broker would only see the first connection)
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiomq
from aiomq.testing import EmbeddedBroker


async def main() -> None:
    # aiokafka, underneath, logs every failed connection attempt; aiomq's own events
    # (broker_unreachable, broker_reachable) already say what matters.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    async with EmbeddedBroker(faults=True) as broker:
        brokers = [broker.bootstrap_servers]  # the proxy's address
        async with aiomq.Writer(
            brokers=brokers, topic="readings", allow_auto_topic_creation=True
        ) as w:
            await w.write_messages(aiomq.Message(value=b"before the outage", partition=0))
        async with aiomq.Reader(
            brokers=brokers,
            topic="readings",
            partition=0,
            max_wait=0.1,
            unavailable_timeout=2.0,  # None (the default) would keep waiting instead
        ) as r:
            print(f"read {(await r.fetch_message()).value!r}")

            broker.faults.cut()
            print("network cut")
            started = time.monotonic()
            try:
                await r.fetch_message()
            except aiomq.BrokerConnectionError as exc:
                waited = time.monotonic() - started
                print(f"the read gave up after {waited:.0f} s: {type(exc).__name__}")
            print(f"failed attempts counted in stats(): {r.stats().errors > 0}")

            broker.faults.heal()
            print("network healed")
            async with aiomq.Writer(brokers=brokers, topic="readings") as w:
                await w.write_messages(aiomq.Message(value=b"after the outage", partition=0))
            async with asyncio.timeout(30):
                print(f"read {(await r.fetch_message()).value!r}, same reader, no restart")


if __name__ == "__main__":
    asyncio.run(main())
