"""Prometheus metrics: serve the stats of every open Writer and Reader, and scrape them.

Shows: aiomq.prometheus.register() on prometheus_client's default registry, its HTTP
server on a free port, a Writer and a group Reader running Reader.process, one scrape of
/metrics over HTTP with a few of the aiomq lines it holds, and that closed objects leave
the scrape. Needs the prometheus extra (pip install 'aiomq[prometheus]').
Run: python examples/prometheus_metrics.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an
embedded broker; stops by itself)
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
import uuid

import prometheus_client
import structlog

import aiomq
import aiomq.prometheus
from aiomq.testing import env_or_embedded_broker

MESSAGES = 100
SHOWN = (
    "aiomq_messages_written_total",
    "aiomq_batches_written_total",
    "aiomq_messages_read_total",
    "aiomq_consumer_lag",
    "aiomq_processing_finished_total",
    "aiomq_processing_committed_offset",
)


def aiomq_lines(url: str) -> list[str]:
    """Scrape the endpoint (blocking: run it in a thread) and keep aiomq's samples."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
    return [line for line in text.splitlines() if line.startswith("aiomq_")]


async def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    run = uuid.uuid4().hex[:8]
    topic, group = f"example-orders-{run}", f"example-billing-{run}"

    # Registered from inside the event loop, so scrapes from the server's thread read
    # the stats on this loop.
    aiomq.prometheus.register()
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1")
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    print(f"serving metrics on {url}")

    async with env_or_embedded_broker() as brokers:
        async with aiomq.Client(brokers=brokers) as admin:
            await admin.create_topics(aiomq.TopicSpec(name=topic, partitions=2))
        handled: list[aiomq.Message] = []

        async def handle(message: aiomq.Message) -> None:
            handled.append(message)  # a real handler would do its work here

        async with (
            aiomq.Writer(brokers=brokers, topic=topic, client_id="example-writer") as writer,
            # Short group timings so that the example's group forms quickly.
            aiomq.Reader(
                brokers=brokers,
                topic=topic,
                group_id=group,
                client_id="example-reader",
                session_timeout=1.0,
                heartbeat_interval=0.25,
                max_wait=0.1,
            ) as reader,
        ):
            await writer.write_messages(
                *(
                    aiomq.Message(key=b"customer-%d" % (i % 7), value=b"order")
                    for i in range(MESSAGES)
                )
            )
            processing = asyncio.create_task(reader.process(handle))
            await committed_all(reader)
            lines = await asyncio.to_thread(aiomq_lines, url)
            print(f"one scrape while open: {len(lines)} aiomq samples, among them")
            for line in lines:
                if line.split("{")[0] in SHOWN:
                    print(f"  {line}")
        await processing
        print(f"handled {len(handled)} messages")
        after = await asyncio.to_thread(aiomq_lines, url)
        print(f"after closing: {len(after)} aiomq samples")
    server.shutdown()
    server.server_close()
    thread.join()


async def committed_all(reader: aiomq.Reader) -> None:
    """Wait until process has handled and committed every message, so the scrape shows
    it. Stats offer nothing to await: look at them every 50 ms, for a minute at most."""

    def committed() -> int:
        processing = reader.stats().processing
        parts = () if processing is None else processing.partitions
        return sum(max(0, p.committed) for p in parts)

    async with asyncio.timeout(60):
        while committed() < MESSAGES:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main())
