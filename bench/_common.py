"""What the benchmark scripts share: options, the report's header, process measurements,
and the timings of runs by contender."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import resource
import shlex
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import aiokafka
import structlog

import aiomq

ENV_BOOTSTRAP = "AIOMQ_BOOTSTRAP_SERVERS"


class Rated(Protocol):
    """One measured run: what it achieved, per second."""

    @property
    def rate(self) -> float: ...


R = TypeVar("R", bound=Rated)


@dataclass(kw_only=True, slots=True)
class RunTimings(Generic[R]):
    """Every measured run, by contender, in run order; medians and ratios of them."""

    timings: dict[str, list[R]] = field(default_factory=dict)

    def add(self, name: str, timing: R) -> None:
        self.timings.setdefault(name, []).append(timing)

    def median(self, name: str) -> float | None:
        runs = self.timings.get(name)
        return statistics.median(t.rate for t in runs) if runs else None

    def run_ratios(self, a: str, b: str) -> list[float]:
        """a over b within each run: the spread shows how noisy the run was."""
        pairs = zip(self.timings.get(a, []), self.timings.get(b, []), strict=False)
        return [x.rate / y.rate for x, y in pairs]

    def ratio(self, a: str, b: str) -> float | None:
        x, y = self.median(a), self.median(b)
        return None if x is None or y is None or y == 0 else x / y


def parse_options(
    prog: str, description: str, quick_help: str, argv: list[str] | None
) -> tuple[argparse.Namespace, int]:
    """Parse the options every benchmark takes; return them and the number of runs."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--runs", type=int, default=None, help="runs per scenario (default 5)")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get(ENV_BOOTSTRAP),
        help=f"HOST:PORT of a broker (default: ${ENV_BOOTSTRAP}, else an embedded broker)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=None,
        metavar="N",
        help="gc.set_threshold(N, 20, 50) for the whole run, every client alike "
        "(default: Python's, 700, 10, 10)",
    )
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 5)
    if runs < 1:
        parser.error("--runs must be at least 1")
    if args.gc_threshold is not None:
        if args.gc_threshold < 1:
            parser.error("--gc-threshold must be at least 1")
        gc.set_threshold(args.gc_threshold, 20, 50)
    return args, runs


def start_report() -> str:
    """Keep library logs to errors, print the command and the software measured.

    Returns:
        The command line, for the JSON results.
    """
    # The library logs through structlog; a group join or a new topic's first retried
    # writes log below error level, and only errors belong in the report.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    print(f"command: {command}")
    print(
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"aiokafka {aiokafka.__version__}, aiomq {aiomq.__version__}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"gc thresholds {gc.get_threshold()}"
    )
    return command


def rss_bytes() -> int:
    """The resident set size of this process now (Linux), or its peak elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def mib(n: int) -> str:
    """A byte count in MiB, for the report."""
    return f"{n / 1_048_576:.1f} MiB"
