"""Draw what a Prometheus scrape of aiomq shows over half a minute, as an SVG for the docs.

Run it from the repository root::

    .venv/bin/python bench/prometheus_picture.py                 # about 30 seconds
    .venv/bin/python bench/prometheus_picture.py --out run.svg   # somewhere else

A Writer writes 1,500 messages a second to a topic of 4 partitions for 26 seconds, and a
group Reader handles them with `Reader.process` (8 handlers). From second 8 to 16 each
handler takes 10 ms instead of 2, so the reader falls behind and the lag grows; then it
catches up. Every second the script scrapes its own `prometheus_client` HTTP endpoint
(`aiomq.prometheus` registered on a fresh registry), and at the end it draws the rates
and the lag from those scrapes, by hand, as SVG: docs/images/prometheus-run.svg, shown in
docs/observability.md. The broker is the embedded one unless $AIOMQ_BOOTSTRAP_SERVERS
names another. Figures vary with the machine; the shape should not.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import time
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import structlog
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

import aiomq
import aiomq.prometheus
from aiomq.testing import env_or_embedded_broker

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "prometheus-run.svg"

PARTITIONS = 4
KEYS = 64
WRITE_RATE = 1500  # messages a second
TICK = 0.1  # seconds between two write calls
DURATION = 26.0  # seconds of writing
SLOW = (8.0, 16.0)  # seconds from the start during which handlers are slow
FAST_HANDLER, SLOW_HANDLER = 0.002, 0.010  # seconds one handler takes
CONCURRENCY = 8
DRAIN = 15.0  # seconds the reader may take to catch up after the writing stops
TAIL = 3  # scrapes once it has caught up


@dataclass
class Scrape:
    """The figures of one scrape, summed over the run's writer and reader."""

    at: float
    written: float = 0.0
    read: float = 0.0
    handled: float = 0.0
    running: float = 0.0
    waiting: float = 0.0
    lag: dict[int, float] = field(default_factory=dict)


def scrape(url: str, client_id: str, at: float) -> Scrape:
    """GET the metrics page and keep the run's samples."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    got = Scrape(at)
    sums: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("client_id") != client_id:
                continue
            if sample.name == "aiomq_consumer_lag":
                got.lag[int(sample.labels["partition"])] = sample.value
            sums[sample.name] += sample.value
    got.written = sums["aiomq_messages_written_total"]
    got.read = sums["aiomq_messages_read_total"]
    got.handled = sums["aiomq_processing_finished_total"]
    got.running = sums["aiomq_processing_running"]
    got.waiting = sums["aiomq_processing_waiting"]
    return got


async def run() -> list[Scrape]:
    """Write, process and scrape; return the scrapes."""
    name = uuid.uuid4().hex[:8]
    topic, group, client_id = f"picture-{name}", f"picture-{name}", f"picture-{name}"
    registry = CollectorRegistry()
    aiomq.prometheus.register(registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    scrapes: list[Scrape] = []
    try:
        async with env_or_embedded_broker() as brokers:
            async with aiomq.Client(brokers=brokers) as admin:
                await admin.create_topics(aiomq.TopicSpec(name=topic, partitions=PARTITIONS))
            start = time.monotonic()

            def now() -> float:
                return time.monotonic() - start

            async def handle(message: aiomq.Message) -> None:
                slow = SLOW[0] <= now() < SLOW[1]
                await asyncio.sleep(SLOW_HANDLER if slow else FAST_HANDLER)

            async with (
                aiomq.Writer(brokers=brokers, topic=topic, client_id=client_id) as writer,
                aiomq.Reader(
                    brokers=brokers,
                    topic=topic,
                    group_id=group,
                    client_id=client_id,
                    session_timeout=1.0,
                    heartbeat_interval=0.25,
                    max_wait=0.1,
                ) as reader,
            ):
                processing = asyncio.create_task(reader.process(handle, concurrency=CONCURRENCY))
                start = time.monotonic()
                per_tick = round(WRITE_RATE * TICK)
                count = 0

                async def write() -> None:
                    nonlocal count
                    tick = 0
                    while (tick := tick + 1) * TICK <= DURATION:
                        await writer.write_messages(
                            *(
                                aiomq.Message(key=b"k%d" % ((count + i) % KEYS), value=b"x" * 100)
                                for i in range(per_tick)
                            )
                        )
                        count += per_tick
                        await asyncio.sleep(max(0.0, tick * TICK - now()))

                writing = asyncio.create_task(write())
                second, tail = 0, 0
                while tail < TAIL:
                    second += 1
                    await asyncio.sleep(max(0.0, second - now()))
                    got = await asyncio.to_thread(scrape, url, client_id, now())
                    scrapes.append(got)
                    if (writing.done() and got.handled >= count) or now() > DURATION + DRAIN:
                        tail += 1
                await writing
            await processing
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    return scrapes


# -- drawing ------------------------------------------------------------------------------

WIDTH = 760
PANEL = 210  # height of one chart
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 46, 30
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def nice_top(value: float) -> float:
    """The smallest of 1, 2 or 5 times a power of ten at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10.0 ** len(str(int(value)))
    for step in (0.1, 0.2, 0.5, 1.0):
        if value <= power * step:
            return power * step
    return power


def chart(
    y0: float,
    title: str,
    unit: str,
    series: list[tuple[str, list[tuple[float, float]]]],
    x_max: float,
) -> list[str]:
    """One chart's SVG elements, its top at `y0`."""
    top = nice_top(max((v for _, points in series for _, v in points), default=0.0))
    x_span, plot_h = WIDTH - LEFT - RIGHT, PANEL - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + t / x_max * x_span

    def y(v: float) -> float:
        return y0 + TOP + plot_h - v / top * plot_h

    out = [
        f'<text x="{LEFT}" y="{y0 + 18}" class="title">{escape(title)}</text>',
        f'<rect x="{x(SLOW[0]):.1f}" y="{y(top):.1f}" width="{x(SLOW[1]) - x(SLOW[0]):.1f}" '
        f'height="{plot_h}" class="slow"/>',
        f'<text x="{(x(SLOW[0]) + x(SLOW[1])) / 2:.1f}" y="{y(top) + 14:.1f}" '
        'class="note">slow handlers</text>',
    ]
    for i in range(5):
        value = top * i / 4
        label = f"{value:,.0f}" if top >= 10 else f"{value:g}"
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'class="grid"/>'
        )
        out.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" class="tick end">{label}</text>')
    for t in range(0, int(x_max) + 1, 5):
        out.append(f'<text x="{x(t):.1f}" y="{y(0) + 16:.1f}" class="tick middle">{t} s</text>')
    out.append(
        f'<text x="14" y="{y(top / 2):.1f}" class="tick middle" '
        f'transform="rotate(-90 14 {y(top / 2):.1f})">{escape(unit)}</text>'
    )
    for index, (_, points) in enumerate(series):
        color = COLORS[index % len(COLORS)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        out.append(f'<polyline points="{path}" stroke="{color}" class="line"/>')
    # The legend: one row under the title, from left to right.
    cursor = float(LEFT)
    for index, (label, _) in enumerate(series):
        color = COLORS[index % len(COLORS)]
        out.append(
            f'<text x="{cursor:.1f}" y="{y0 + 36}">'
            f'<tspan style="fill:{color}">\u25a0</tspan> {escape(label)}</text>'
        )
        cursor += 24 + 7 * len(label)
    return out


def draw(scrapes: list[Scrape]) -> str:
    """The SVG picture of the scrapes: rates, lag, and handlers."""
    x_max = max(5.0, scrapes[-1].at)
    pairs = list(itertools.pairwise(scrapes))

    def rate(attr: str) -> list[tuple[float, float]]:
        return [(b.at, (getattr(b, attr) - getattr(a, attr)) / (b.at - a.at)) for a, b in pairs]

    partitions = sorted({p for s in scrapes for p in s.lag})
    charts = [
        (
            "Throughput: rate() of the counters between scrapes",
            "messages/s",
            [
                ("written", rate("written")),
                ("read", rate("read")),
                ("handled", rate("handled")),
            ],
        ),
        (
            "aiomq_consumer_lag per partition",
            "messages",
            [
                *(
                    (f"partition {p}", [(s.at, s.lag.get(p, 0.0)) for s in scrapes])
                    for p in partitions
                ),
                ("total", [(s.at, sum(s.lag.values())) for s in scrapes]),
            ],
        ),
        (
            f"aiomq_processing_running ({CONCURRENCY} at most) and aiomq_processing_waiting",
            "messages",
            [
                ("running", [(s.at, s.running) for s in scrapes]),
                ("waiting", [(s.at, s.waiting) for s in scrapes]),
            ],
        ),
    ]
    height = PANEL * len(charts) + 10
    body = []
    for index, (title, unit, series) in enumerate(charts):
        body += chart(index * PANEL, title, unit, series, x_max)
    style = (
        "text{font-family:sans-serif;font-size:12px;fill:#333}"
        ".title{font-size:13px;font-weight:bold}"
        ".tick{font-size:11px;fill:#666}.end{text-anchor:end}.middle{text-anchor:middle}"
        ".note{font-size:11px;fill:#888;text-anchor:middle}"
        ".grid{stroke:#e5e5e5;stroke-width:1}.slow{fill:#f3f3f3}"
        ".line{fill:none;stroke-width:1.8;stroke-linejoin:round}"
    )
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}">',
            f"<style>{style}</style>",
            f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>',
            *body,
            "</svg>",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    scrapes = asyncio.run(run())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(draw(scrapes))
    peak = max(scrapes, key=lambda s: sum(s.lag.values()))
    print(f"{len(scrapes)} scrapes over {scrapes[-1].at:.0f} s")
    print(f"written {scrapes[-1].written:.0f}, handled {scrapes[-1].handled:.0f}")
    print(f"highest total lag {sum(peak.lag.values()):.0f} messages, at {peak.at:.0f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
