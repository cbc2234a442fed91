"""Prometheus metrics of every open Writer and Reader, read from their `stats()` when
scraped. Needs the `prometheus` extra: `pip install 'aiomq[prometheus]'`.

```python
import prometheus_client
import aiomq.prometheus

async def main():
    aiomq.prometheus.register()              # on prometheus_client.REGISTRY
    prometheus_client.start_http_server(9108)
    async with aiomq.Reader(...) as reader:  # scraped while it is open
        ...
```

Nothing runs between scrapes: each scrape takes one `stats()` snapshot of each Writer
and Reader open in the process, and an object leaves the scrape when it closes.

Every series has an `object` label (`writer-1`, `reader-2`, ...) that tells apart objects
sharing a client id and group: summed, two writers' counters would seem to restart when
one of them closes, and maxima and averages cannot be summed at all. Aggregate it away
in queries (`sum without (object) (...)`).

Reading a reader's stats from another thread could race with its event loop, and
`prometheus_client.start_http_server` scrapes from a thread of its own. So the collector
is bound to the event loop the Writers and Readers run on (the one running when it is
created, or `loop=`); a scrape from another thread reads the stats on that loop and waits
for them at most `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal

try:
    import prometheus_client
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover - exercised in a test that hides the package
    raise ImportError(
        "aiomq.prometheus needs the prometheus_client package: pip install 'aiomq[prometheus]'"
    ) from exc

from aiomq._internal import registry
from aiomq._internal.log import get_logger
from aiomq.reader import Reader
from aiomq.stats import (
    PartitionProgress,
    PartitionStats,
    ProcessingStats,
    ReaderStats,
    WriterStats,
)
from aiomq.writer import Writer

__all__ = ["METRICS", "AiomqCollector", "MetricSpec", "register", "unregister"]

_WRITER: Final = ("client_id", "object")
_READER: Final = ("client_id", "group", "object")
_PARTITION: Final = (*_READER, "topic", "partition")

# A stats() that races with its event loop (read from another thread without a loop to
# hop to) fails rather than returning a wrong value: try it again, a few times.
_ATTEMPTS: Final = 3


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricSpec:
    """One metric the collector exports."""

    name: str
    """The name in the exposition; counters end in `_total`."""

    type: Literal["counter", "gauge"]
    """The Prometheus metric type."""

    labels: tuple[str, ...]
    """The label names, in order."""

    help: str
    """The HELP text."""

    source: str
    """The stats field it comes from, as `Class.field` (`WriterStats.messages`)."""


def _spec(
    name: str, kind: Literal["counter", "gauge"], source: str, labels: tuple[str, ...], text: str
) -> MetricSpec:
    return MetricSpec(name=name, type=kind, labels=labels, help=text, source=source)


# fmt: off
METRICS: Final[tuple[MetricSpec, ...]] = (
    # Writers.
    _spec("aiomq_writer_writes_total", "counter", "WriterStats.writes", _WRITER,
          "Calls to write_messages that queued at least one message."),
    _spec("aiomq_messages_written_total", "counter", "WriterStats.messages", _WRITER,
          "Messages the broker acknowledged."),
    _spec("aiomq_bytes_written_total", "counter", "WriterStats.bytes", _WRITER,
          "Key, value and header bytes of the acknowledged messages, before compression."),
    _spec("aiomq_write_errors_total", "counter", "WriterStats.errors", _WRITER,
          "Messages that failed for good."),
    _spec("aiomq_write_retries_total", "counter", "WriterStats.retries", _WRITER,
          "Produce requests sent again after a retriable error."),
    _spec("aiomq_batches_written_total", "counter", "WriterStats.batches", _WRITER,
          "Record batches the broker acknowledged."),
    _spec("aiomq_transactions_total", "counter", "WriterStats.transactions", _WRITER,
          "Transactions committed."),
    _spec("aiomq_transactions_aborted_total", "counter", "WriterStats.transactions_aborted",
          _WRITER, "Transactions aborted."),
    _spec("aiomq_writer_queued_messages", "gauge", "WriterStats.queued", _WRITER,
          "Messages accepted and not yet settled."),
    _spec("aiomq_writer_batch_messages_average", "gauge", "WriterStats.batch_messages_avg",
          _WRITER, "Mean messages per acknowledged batch since the writer opened."),
    _spec("aiomq_writer_batch_messages_max", "gauge", "WriterStats.batch_messages_max",
          _WRITER, "Most messages in one acknowledged batch since the writer opened."),
    _spec("aiomq_writer_batch_size_average_bytes", "gauge", "WriterStats.batch_bytes_avg",
          _WRITER, "Mean encoded size of an acknowledged batch, after compression."),
    _spec("aiomq_writer_batch_duration_average_seconds", "gauge", "WriterStats.batch_time_avg",
          _WRITER, "Mean time from a batch's first message queued to its acknowledgement."),
    _spec("aiomq_writer_batch_duration_max_seconds", "gauge", "WriterStats.batch_time_max",
          _WRITER, "Longest time from a batch's first message queued to its acknowledgement."),
    # Readers.
    _spec("aiomq_messages_read_total", "counter", "ReaderStats.messages", _READER,
          "Messages returned to the caller."),
    _spec("aiomq_bytes_read_total", "counter", "ReaderStats.bytes", _READER,
          "Key and value bytes of the messages returned."),
    _spec("aiomq_reader_fetches_total", "counter", "ReaderStats.fetches", _READER,
          "Fetch rounds that returned messages."),
    _spec("aiomq_read_errors_total", "counter", "ReaderStats.errors", _READER,
          "Failed fetches and failed commits."),
    _spec("aiomq_commits_total", "counter", "ReaderStats.commits", _READER,
          "Successful offset commits."),
    _spec("aiomq_stale_commits_total", "counter", "ReaderStats.stale_commits", _READER,
          "Partition offsets given to commit and dropped unsent."),
    _spec("aiomq_rebalances_total", "counter", "ReaderStats.rebalances", _READER,
          "Partition assignments received from the group coordinator."),
    _spec("aiomq_reader_queued_messages", "gauge", "ReaderStats.queued", _READER,
          "Messages fetched and waiting to be returned."),
    _spec("aiomq_consumer_lag", "gauge", "PartitionStats.lag", _PARTITION,
          "Messages between the reader's position and the high water mark."),
    _spec("aiomq_consumer_offset", "gauge", "PartitionStats.offset", _PARTITION,
          "The next offset the reader will return."),
    _spec("aiomq_consumer_high_water_mark", "gauge", "PartitionStats.high_water_mark",
          _PARTITION, "The partition's high water mark at the last fetch."),
    # Reader.process, while it runs.
    _spec("aiomq_processing_running", "gauge", "ProcessingStats.running", _READER,
          "Handlers running now."),
    _spec("aiomq_processing_waiting", "gauge", "ProcessingStats.waiting", _READER,
          "Messages fetched, not finished and not running."),
    _spec("aiomq_processing_finished_total", "counter", "ProcessingStats.finished", _READER,
          "Messages handled or dead-lettered since process started."),
    _spec("aiomq_processing_retries_total", "counter", "ProcessingStats.retried", _READER,
          "Handler attempts that failed and were tried again."),
    _spec("aiomq_processing_dead_lettered_total", "counter", "ProcessingStats.dead_lettered",
          _READER, "Messages written to the dead-letter topic."),
    _spec("aiomq_processing_finished_offset", "gauge", "PartitionProgress.finished",
          _PARTITION, "The finished watermark: every message before it has finished."),
    _spec("aiomq_processing_committed_offset", "gauge", "PartitionProgress.committed",
          _PARTITION, "The group's committed offset as far as the reader knows."),
)
# fmt: on
"""Every metric the collector exports; a sample whose stats field is -1 (unknown) is left
out."""

_Stats = WriterStats | ReaderStats | PartitionStats | ProcessingStats | PartitionProgress


def _fields_by_class() -> dict[str, list[tuple[MetricSpec, str]]]:
    """Which metrics read which stats class, with the field each reads."""
    fields: dict[str, list[tuple[MetricSpec, str]]] = {}
    for spec in METRICS:
        name, _, field = spec.source.partition(".")
        fields.setdefault(name, []).append((spec, field))
    return fields


_FIELDS: Final = _fields_by_class()


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One open object's stats, and the labels its series carry."""

    labels: tuple[str, ...]
    stats: WriterStats | ReaderStats


def _family(spec: MetricSpec) -> CounterMetricFamily | GaugeMetricFamily:
    if spec.type == "counter":
        return CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)


def _rows(snapshot: _Snapshot) -> Iterator[tuple[_Stats, tuple[str, ...]]]:
    """Each stats object inside a snapshot, with the label values of its series."""
    stats, labels = snapshot.stats, snapshot.labels
    yield stats, labels
    if isinstance(stats, ReaderStats):
        for part in stats.partitions:
            yield part, (*labels, part.topic, str(part.partition))
        if stats.processing is not None:
            yield stats.processing, labels
            for progress in stats.processing.partitions:
                yield progress, (*labels, progress.topic, str(progress.partition))


def _families(snapshots: Sequence[_Snapshot]) -> list[Metric]:
    """The metric families of the snapshots, those without samples left out."""
    families = {spec.name: _family(spec) for spec in METRICS}
    for snapshot in snapshots:
        for stats, labels in _rows(snapshot):
            per_partition = isinstance(stats, PartitionStats | PartitionProgress)
            for spec, field in _FIELDS[type(stats).__name__]:
                value: float = getattr(stats, field)
                if per_partition and value < 0:
                    continue  # -1: not known yet
                families[spec.name].add_metric(labels, value)
    return [family for family in families.values() if family.samples]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class AiomqCollector(Collector):
    """A `prometheus_client` collector of the stats of every open aiomq Writer and Reader.

    Register it on a registry (or use `register()`); each scrape reads the stats then,
    and nothing runs in between. The series are listed in `METRICS`.

    Safe to scrape from any thread, and from several at once. Scraped on its event loop
    (from a coroutine or a callback there), it reads the stats directly; scraped from
    another thread while that loop runs, it has the loop read them and waits at most
    `timeout` seconds, logging `prometheus_scrape_timed_out` and leaving aiomq's series out
    of that scrape if the loop does not get to it in time. Objects of other event loops
    are read from whatever thread scrapes: keep them on one loop, or know that their
    reads can race with their loop (a racing read is tried again, and left out and logged
    as `prometheus_stats_unreadable` if it keeps failing).

    Args:
        loop: The event loop the Writers and Readers run on. Default: None (the loop
            running when the collector is created; if none runs, stats are read in the
            scraping thread).
        timeout: Seconds a scrape from another thread waits for the loop. Default: 5.0.
    """

    def __init__(
        self, *, loop: asyncio.AbstractEventLoop | None = None, timeout: float = 5.0
    ) -> None:
        self.loop = loop if loop is not None else _running_loop()
        self.timeout = timeout
        self._names: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
        self._numbers = {"writer": 0, "reader": 0}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<AiomqCollector metrics={len(METRICS)} timeout={self.timeout}>"

    def describe(self) -> Iterator[Metric]:
        """Yield every metric family the collector may export, without samples.

        A registry calls it on `register`, to refuse a second collector with the same
        names; it reads no stats.
        """
        for spec in METRICS:
            yield _family(spec)

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of the objects open now, read at this moment."""
        yield from _families(self._snapshots())

    def _snapshots(self) -> list[_Snapshot]:
        snapshots = registry.read_on(self.loop, self._read, self.timeout)
        if snapshots is None:
            get_logger().warning("prometheus_scrape_timed_out", timeout=self.timeout)
            return []
        return snapshots

    def _read(self) -> list[_Snapshot]:
        """Take a snapshot of each open Writer and Reader."""
        snapshots = []
        for resource in registry.open_resources():
            labels: tuple[str, ...]
            if isinstance(resource, Writer):
                labels = (resource.config.effective_client_id, self._name(resource, "writer"))
            elif isinstance(resource, Reader):
                config = resource.config
                name = self._name(resource, "reader")
                labels = (config.effective_client_id, config.group_id or "", name)
            else:
                continue
            stats = _stats_of(resource)
            if stats is not None:
                snapshots.append(_Snapshot(labels, stats))
        return snapshots

    def _name(self, resource: object, kind: str) -> str:
        """The `object` label of a resource: its kind and a number, kept for its life."""
        with self._lock:
            name = self._names.get(resource)
            if name is None:
                self._numbers[kind] += 1
                name = self._names[resource] = f"{kind}-{self._numbers[kind]}"
            return name


def _stats_of(resource: Writer | Reader) -> WriterStats | ReaderStats | None:
    error: Exception | None = None
    for _ in range(_ATTEMPTS):
        try:
            return resource.stats()
        except Exception as exc:
            error = exc
    get_logger().warning("prometheus_stats_unreadable", resource=repr(resource), error=repr(error))
    return None


def register(
    registry: CollectorRegistry = prometheus_client.REGISTRY,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    timeout: float = 5.0,
) -> AiomqCollector:
    """Create an `AiomqCollector` and register it on `registry`.

    Call it from the event loop the Writers and Readers run on (or pass `loop=`), so
    that scrapes from the HTTP server's thread read the stats on that loop.

    Args:
        registry: Where to register. Default: `prometheus_client.REGISTRY`.
        loop: See `AiomqCollector`. Default: None (the running loop, if any).
        timeout: See `AiomqCollector`. Default: 5.0.

    Returns:
        The collector, for `unregister`.

    Raises:
        ValueError: The registry already has a collector of these metrics
            (`prometheus_client`'s `DuplicateTimeseries`).
    """
    collector = AiomqCollector(loop=loop, timeout=timeout)
    registry.register(collector)
    return collector


def unregister(
    collector: AiomqCollector, registry: CollectorRegistry = prometheus_client.REGISTRY
) -> None:
    """Remove a collector that `register` returned from `registry`.

    Raises:
        KeyError: The collector is not registered there.
    """
    registry.unregister(collector)
