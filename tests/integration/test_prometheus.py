"""`aiomq.prometheus`: the stats of open Writers and Readers, scraped over HTTP from
prometheus_client's own server while they run against the embedded broker."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from structlog.testing import capture_logs

from aiomq import Message, Order, Reader, ReaderStats, Writer, WriterStats
from aiomq.prometheus import METRICS, AiomqCollector, MetricSpec, register, unregister
from tests.integration.test_reader import DEADLINE, create_topic, group_reader
from tests.support.waiting import wait_until


@dataclass
class Scrape:
    """The samples of one scrape that carry a given client id."""

    samples: list[Sample] = field(default_factory=list)

    def named(self, name: str, **labels: str) -> list[Sample]:
        return [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample of `name` whose labels include `labels`."""
        found = self.named(name, **labels)
        assert len(found) == 1, (name, labels, found)
        return found[0].value

    def objects(self) -> set[str]:
        return {s.labels["object"] for s in self.samples}


@dataclass
class Endpoint:
    """A metrics server on a free port, with a fresh registry holding the collector."""

    url: str
    registry: CollectorRegistry
    collector: AiomqCollector

    async def scrape(self, client_id: str) -> Scrape:
        """GET /metrics over HTTP (the server reads the stats on this event loop) and keep
        the samples of `client_id`."""

        def get() -> str:
            with urllib.request.urlopen(self.url, timeout=DEADLINE) as response:
                body: bytes = response.read()
            return body.decode()

        text = await asyncio.to_thread(get)
        return Scrape(
            [
                sample
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.labels.get("client_id") == client_id
            ]
        )


@contextlib.contextmanager
def http_server(registry: CollectorRegistry) -> Iterator[str]:
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(DEADLINE)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    # Registered inside the test's event loop, so the collector reads stats on it.
    registry = CollectorRegistry()
    collector = register(registry)
    with http_server(registry) as url:
        yield Endpoint(url, registry, collector)
    unregister(collector, registry)


def by_spec(spec: MetricSpec, stats: object) -> object:
    return getattr(stats, spec.source.partition(".")[2])


def check_writer(scrape: Scrape, stats: WriterStats) -> None:
    """Every writer metric of the scrape equals its field of `stats`."""
    for spec in METRICS:
        if spec.source.startswith("WriterStats."):
            assert scrape.value(spec.name) == by_spec(spec, stats), spec.name


def check_reader(scrape: Scrape, stats: ReaderStats, group: str) -> None:
    """Every reader metric of the scrape, per partition too, equals `stats`."""
    for spec in METRICS:
        owner = spec.source.partition(".")[0]
        if owner == "ReaderStats":
            assert scrape.value(spec.name, group=group) == by_spec(spec, stats), spec.name
        elif owner == "PartitionStats":
            assert len(scrape.named(spec.name)) == len(stats.partitions), spec.name
            for part in stats.partitions:
                where = {"topic": part.topic, "partition": str(part.partition)}
                assert scrape.value(spec.name, **where) == by_spec(spec, part), (spec, where)


async def test_a_scrape_over_http_shows_each_stat_of_an_open_writer_and_group_reader(
    bootstrap_servers: str, topic: str, endpoint: Endpoint
) -> None:
    await create_topic(bootstrap_servers, topic, 2)
    writer_id, reader_id = f"{topic}-writer", f"{topic}-reader"
    group = f"g-{topic}"
    messages = [Message(key=f"k{i % 5}".encode(), value=b"v" * i) for i in range(40)]
    async with Writer(brokers=bootstrap_servers.split(","), topic=topic, client_id=writer_id) as w:
        await w.write_messages(*messages[:25])
        await w.write_messages(*messages[25:])
        async with group_reader(bootstrap_servers, topic, group, client_id=reader_id) as reader:
            read: list[Message] = []
            async with asyncio.timeout(DEADLINE):
                while len(read) < len(messages):
                    read += await reader.fetch_batch(len(messages) - len(read))
            await reader.commit_messages(*read)
            # Everything is written, read and committed: the stats hold still, so the
            # scrape must show them exactly.
            written, taken = w.stats(), reader.stats()
            writes, reads = await endpoint.scrape(writer_id), await endpoint.scrape(reader_id)
            assert (w.stats(), reader.stats()) == (written, taken)

    assert writes.value("aiomq_messages_written_total") == 40
    assert writes.value("aiomq_writer_writes_total") == 2
    check_writer(writes, written)
    assert len(writes.objects()) == 1

    assert reads.value("aiomq_messages_read_total", group=group) == 40
    assert reads.value("aiomq_commits_total", group=group) == 1
    assert sum(s.value for s in reads.named("aiomq_consumer_lag")) == 0
    check_reader(reads, taken, group)
    assert len(reads.objects()) == 1
    # No process() ran: no processing series.
    assert not [s for s in reads.samples if s.name.startswith("aiomq_processing_")]


async def test_a_scrape_during_process_shows_running_and_waiting_handlers_and_each_watermark(
    bootstrap_servers: str, topic: str, endpoint: Endpoint
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    client_id, group = f"{topic}-reader", f"g-{topic}"
    # Offsets 3 and 6 share the key "slow": the handler of 3 blocks, and 6 waits behind it.
    keys = [b"slow" if i in (3, 6) else f"k{i}".encode() for i in range(10)]
    async with Writer(brokers=bootstrap_servers.split(","), topic=topic) as w:
        await w.write_messages(*(Message(key=k, value=b"%d" % i) for i, k in enumerate(keys)))
    release = asyncio.Event()

    async def handle(message: Message) -> None:
        if message.offset == 3:
            await release.wait()

    def progress(reader: Reader) -> tuple[int, int, int, int, int] | None:
        p = reader.stats().processing
        if p is None or not p.partitions:
            return None
        (part,) = p.partitions
        return p.running, p.waiting, p.finished, part.finished, part.committed

    async with group_reader(bootstrap_servers, topic, group, client_id=client_id) as reader:
        task = asyncio.create_task(reader.process(handle, concurrency=4, order=Order.KEY))
        await wait_until(
            lambda: progress(reader) == (1, 1, 8, 3, 3),
            "offset 3 runs, 6 waits behind it, the others finished and 3 is committed",
        )
        stats = reader.stats()
        blocked = await endpoint.scrape(client_id)
        assert reader.stats() == stats
        release.set()
        await wait_until(lambda: progress(reader) == (0, 0, 10, 10, 10), "all finished")
        done = await endpoint.scrape(client_id)
    async with asyncio.timeout(DEADLINE):
        await task

    where = {"group": group, "topic": topic, "partition": "0"}
    assert blocked.value("aiomq_processing_running", group=group) == 1
    assert blocked.value("aiomq_processing_waiting", group=group) == 1
    assert blocked.value("aiomq_processing_finished_total", group=group) == 8
    assert blocked.value("aiomq_processing_finished_offset", **where) == 3
    assert blocked.value("aiomq_processing_committed_offset", **where) == 3
    assert blocked.value("aiomq_processing_retries_total", group=group) == 0
    assert blocked.value("aiomq_processing_dead_lettered_total", group=group) == 0
    check_reader(blocked, stats, group)
    assert done.value("aiomq_processing_running", group=group) == 0
    assert done.value("aiomq_processing_finished_total", group=group) == 10
    assert done.value("aiomq_processing_finished_offset", **where) == 10
    assert done.value("aiomq_processing_committed_offset", **where) == 10


async def test_a_closed_writer_or_reader_leaves_the_scrape(
    bootstrap_servers: str, topic: str, endpoint: Endpoint
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    client_id = f"{topic}-client"
    writer = Writer(brokers=bootstrap_servers.split(","), topic=topic, client_id=client_id)
    reader = group_reader(bootstrap_servers, topic, f"g-{topic}", client_id=client_id)
    assert (await endpoint.scrape(client_id)).samples == []  # not open yet
    async with writer, reader:
        await writer.write_messages(Message(value=b"one"))
        both = await endpoint.scrape(client_id)
        await writer.aclose()
        reader_only = await endpoint.scrape(client_id)
    gone = await endpoint.scrape(client_id)

    assert both.named("aiomq_messages_written_total")
    assert both.named("aiomq_rebalances_total")
    assert not reader_only.named("aiomq_messages_written_total")
    assert reader_only.named("aiomq_rebalances_total")
    assert gone.samples == []


async def test_writers_with_the_same_client_id_are_told_apart_by_the_object_label(
    bootstrap_servers: str, topic: str, endpoint: Endpoint
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    client_id = f"{topic}-shared"
    brokers = bootstrap_servers.split(",")
    async with (
        Writer(brokers=brokers, topic=topic, client_id=client_id) as first,
        Writer(brokers=brokers, topic=topic, client_id=client_id) as second,
    ):
        await first.write_messages(*(Message(value=b"a") for _ in range(3)))
        await second.write_messages(*(Message(value=b"b") for _ in range(5)))
        scrape = await endpoint.scrape(client_id)
        again = await endpoint.scrape(client_id)

    written = {s.labels["object"]: s.value for s in scrape.named("aiomq_messages_written_total")}
    assert sorted(written.values()) == [3, 5]
    assert len(written) == 2
    # An object keeps its label from one scrape to the next.
    assert {
        s.labels["object"]: s.value for s in again.named("aiomq_messages_written_total")
    } == written


async def test_scraping_on_the_event_loop_itself_reads_the_stats_directly(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    registry = CollectorRegistry()
    register(registry)
    client_id = f"{topic}-direct"
    async with Writer(
        brokers=bootstrap_servers.split(","), topic=topic, client_id=client_id
    ) as writer:
        await writer.write_messages(Message(value=b"x"), Message(value=b"y"))
        # A synchronous call on the loop's own thread: hopping to the loop would deadlock.
        text = generate_latest(registry).decode()
    line = rf'aiomq_messages_written_total{{client_id="{client_id}",object="writer-\d+"}} 2\.0'
    assert re.search(line, text), text


async def test_a_scrape_from_a_thread_gives_up_on_a_blocked_loop_after_its_timeout(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    registry = CollectorRegistry()
    register(registry, timeout=0.2)
    async with Writer(brokers=bootstrap_servers.split(","), topic=topic) as writer:
        await writer.write_messages(Message(value=b"x"))
        finished = threading.Event()

        def scrape() -> str:
            try:
                return generate_latest(registry).decode()
            finally:
                finished.set()

        with capture_logs() as logs:
            scraping = asyncio.get_running_loop().run_in_executor(None, scrape)
            # Block the loop until the scrape returns: it can only return by giving up.
            assert finished.wait(DEADLINE)
            text = await scraping
    assert "aiomq_" not in text
    assert [e for e in logs if e["event"] == "prometheus_scrape_timed_out"]
