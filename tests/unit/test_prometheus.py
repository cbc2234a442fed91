"""`aiomq.prometheus` without a broker: the metric list against the stats classes, the
samples made from given stats, the docs table and the Grafana dashboard."""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import aiomq.prometheus
from aiomq import (
    PartitionProgress,
    PartitionStats,
    ProcessingStats,
    ReaderStats,
    WriterStats,
)
from aiomq.prometheus import METRICS, AiomqCollector, _families, _Snapshot

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "aiomq.json"
PAGE = ROOT / "docs" / "observability.md"

STATS_CLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (WriterStats, ReaderStats, PartitionStats, ProcessingStats, PartitionProgress)
}
# Fields that are not exported as a metric of their own: labels, nested stats, and the
# total lag (the sum of the per-partition lag series).
NOT_EXPORTED = {
    "PartitionStats.topic",
    "PartitionStats.partition",
    "PartitionProgress.topic",
    "PartitionProgress.partition",
    "ProcessingStats.partitions",
    "ReaderStats.partitions",
    "ReaderStats.processing",
    "ReaderStats.lag",
}


def exported_names(collector: AiomqCollector) -> set[str]:
    """The sample names the collector's metric families can produce, as a query names
    them: counters with `_total`."""
    names = set()
    for family in collector.describe():
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def test_importing_without_prometheus_client_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "aiomq.prometheus")
    with pytest.raises(ImportError, match=re.escape("pip install 'aiomq[prometheus]'")):
        importlib.import_module("aiomq.prometheus")


def test_every_stats_field_is_exported_once_under_a_prometheus_name() -> None:
    sources = [spec.source for spec in METRICS]
    assert len(sources) == len(set(sources))
    fields = {
        f"{name}.{f.name}" for name, cls in STATS_CLASSES.items() for f in dataclasses.fields(cls)
    }
    assert set(sources) == fields - NOT_EXPORTED
    for spec in METRICS:
        assert re.fullmatch(r"aiomq_[a-z_]+", spec.name), spec.name
        assert spec.name.endswith("_total") == (spec.type == "counter"), spec.name
        assert spec.labels[0] == "client_id" and "object" in spec.labels, spec.name


def test_describe_lists_every_metric_and_registering_twice_is_refused() -> None:
    collector = AiomqCollector()
    assert exported_names(collector) == {spec.name for spec in METRICS}
    registry = CollectorRegistry()
    registry.register(collector)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        aiomq.prometheus.register(registry)
    aiomq.prometheus.unregister(collector, registry)
    aiomq.prometheus.unregister(aiomq.prometheus.register(registry), registry)


def writer_stats(**changes: Any) -> WriterStats:
    fields = dict.fromkeys((f.name for f in dataclasses.fields(WriterStats)), 0)
    return WriterStats(**{**fields, **changes})


def reader_stats(**changes: Any) -> ReaderStats:
    fields: dict[str, Any] = dict.fromkeys((f.name for f in dataclasses.fields(ReaderStats)), 0)
    fields.update(partitions=(), processing=None)
    return ReaderStats(**{**fields, **changes})


def samples(snapshots: list[_Snapshot]) -> Iterator[tuple[str, dict[str, str], float]]:
    for family in _families(snapshots):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value


def test_unknown_partition_values_are_left_out_rather_than_exported_as_minus_one() -> None:
    parts = (
        PartitionStats(topic="t", partition=0, offset=5, high_water_mark=9, lag=4),
        PartitionStats(topic="t", partition=1, offset=-1, high_water_mark=-1, lag=-1),
    )
    progress = (PartitionProgress(topic="t", partition=0, committed=-1, finished=3),)
    processing = ProcessingStats(
        running=2, waiting=1, finished=3, retried=0, dead_lettered=0, partitions=progress
    )
    stats = reader_stats(messages=5, partitions=parts, processing=processing)
    got = list(samples([_Snapshot(("c", "g", "reader-1"), stats)]))
    names = [name for name, _, _ in got]
    assert names.count("aiomq_consumer_lag") == 1
    assert names.count("aiomq_consumer_offset") == 1
    assert "aiomq_processing_committed_offset" not in names
    labels = {"client_id": "c", "group": "g", "object": "reader-1", "topic": "t"}
    assert ("aiomq_consumer_lag", {**labels, "partition": "0"}, 4) in got
    assert ("aiomq_processing_finished_offset", {**labels, "partition": "0"}, 3) in got
    assert (
        "aiomq_processing_running",
        {"client_id": "c", "group": "g", "object": "reader-1"},
        2,
    ) in got


def test_families_without_samples_are_left_out() -> None:
    got = {name for name, _, _ in samples([_Snapshot(("c", "writer-1"), writer_stats())])}
    assert got == {s.name for s in METRICS if s.source.startswith("WriterStats.")}
    assert list(samples([])) == []


def table_rows() -> dict[str, list[str]]:
    """The rows of the metrics table in docs/observability.md, by metric name."""
    rows = {}
    for line in PAGE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `aiomq_"):
            rows[cells[0].strip("`")] = cells
    return rows


def test_the_docs_table_lists_every_metric_with_its_type_labels_and_source() -> None:
    rows = table_rows()
    assert set(rows) == {spec.name for spec in METRICS}
    for spec in METRICS:
        _, kind, labels, _meaning, source = rows[spec.name]
        assert kind == spec.type, spec.name
        assert re.findall(r"`(\w+)`", labels) == list(spec.labels), spec.name
        assert source == f"`{spec.source}`", spec.name


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and template variables."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def test_every_metric_in_the_dashboard_is_one_the_collector_exports() -> None:
    exported = exported_names(AiomqCollector())
    queries = dashboard_queries()
    assert len(queries) >= 10
    used = set()
    for query in queries:
        names = set(re.findall(r"\baiomq_\w+", query))
        assert names, query
        assert names <= exported, (query, names - exported)
        used |= names
    # The panels docs/observability.md promises: throughput, errors, lag, commits and
    # Reader.process.
    for name in (
        "aiomq_messages_written_total",
        "aiomq_messages_read_total",
        "aiomq_write_errors_total",
        "aiomq_read_errors_total",
        "aiomq_consumer_lag",
        "aiomq_commits_total",
        "aiomq_processing_running",
        "aiomq_processing_waiting",
    ):
        assert name in used, name


def test_every_label_in_the_dashboard_is_one_the_metrics_carry() -> None:
    labels = {label for spec in METRICS for label in spec.labels}
    for query in dashboard_queries():
        grouped = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", query)
        matched = re.findall(r"[{,]\s*(\w+)\s*=~?", query)
        named = [n.strip() for g in grouped for n in g.split(",")] + matched
        named += re.findall(r"label_values\([^,]+,\s*(\w+)\)", query)
        assert set(named) <= labels, (query, set(named) - labels)
