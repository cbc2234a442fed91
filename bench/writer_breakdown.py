"""Where the time of the Writer's throughput loop goes, part by part.

Runs the loop of `bench/writer.py`'s 100-byte throughput row (sequential calls of 1,000
keyed messages) against an embedded broker, timing the Writer's internal steps and the
event loop's waits, and prints the microseconds each part takes per message. It patches
private methods, so it measures this version of aiomq only; it is a tool for working on
the Writer, not a comparison with anything.

    .venv/bin/python bench/writer_breakdown.py [--calls 400] [--rounds 3] [--async-mode]

With --async-mode the writer queues each call and a completion callback counts the
acknowledged messages; a round ends when all of them are. --completion-as-given gives that
callback the messages as given (`completion_written=False`); --keyless writes messages
without keys; --many builds them with `Message.many`. Each round also prints the client's
CPU time per message (`time.process_time`). --gc-threshold N runs it with
`gc.set_threshold(N, 20, 50)` (see docs/benchmarks.md on the garbage collector).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from collections.abc import Callable
from typing import Any

from aiomq import Message, Writer
from aiomq._internal.producer.engine import Producer
from aiomq._internal.producer.planner import Planner
from aiomq.testing import EmbeddedBroker

KEYS = [b"key-%d" % i for i in range(1000)]
CALL_SIZE = 1000

spent: dict[str, float] = {}


def timing(owner: type, name: str, label: str, *, is_async: bool = False) -> None:
    """Replace `owner.name` with a wrapper adding its duration to `spent[label]`."""
    original: Callable[..., Any] = getattr(owner, name)
    clock = time.perf_counter
    if is_async:

        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return await original(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + clock() - start

        setattr(owner, name, timed_async)
    else:

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + clock() - start

        setattr(owner, name, timed)


def time_waits(loop: asyncio.AbstractEventLoop) -> None:
    """Count the time the event loop spends blocked in its selector as idle."""
    selector: Any = getattr(loop, "_selector")  # noqa: B009 - a private attribute
    select = selector.select
    clock = time.perf_counter

    def timed_select(timeout: float | None = None) -> Any:
        start = clock()
        try:
            return select(timeout)
        finally:
            spent["waiting for the broker, client idle"] = (
                spent.get("waiting for the broker, client idle", 0.0) + clock() - start
            )

    selector.select = timed_select


async def one_round(
    bootstrap: str, calls: int, async_mode: bool, options: argparse.Namespace
) -> tuple[float, float, dict[str, float]]:
    acknowledged = 0
    everything = asyncio.Event()

    def count(messages: list[Message], error: object) -> None:
        nonlocal acknowledged
        acknowledged += len(messages)
        if acknowledged >= (calls + 1) * CALL_SIZE:
            everything.set()

    async with Writer(
        brokers=[bootstrap],
        topic="breakdown",
        allow_auto_topic_creation=True,
        async_mode=async_mode,
        completion=count if async_mode else None,
        completion_written=not options.completion_as_given,
    ) as w:
        values = [os.urandom(100)] * CALL_SIZE
        await w.write_messages(
            *[Message(key=k, value=v) for k, v in zip(KEYS, values, strict=True)]
        )
        time_waits(asyncio.get_running_loop())
        spent.clear()
        building = 0.0
        clock = time.perf_counter
        keys = None if options.keyless else KEYS
        start = clock()
        cpu = time.process_time()
        for _ in range(calls):
            mark = clock()
            if options.many:
                messages = Message.many(values, keys)
            elif keys is None:
                messages = [Message(value=v) for v in values]
            else:
                messages = [Message(key=keys[j], value=v) for j, v in enumerate(values)]
            building += clock() - mark
            await w.write_messages(*messages)
        if async_mode:
            await everything.wait()
        wall = clock() - start
        cpu = time.process_time() - cpu
    parts = {"the caller building the Message objects": building, **spent}
    return wall, cpu, parts


async def main(calls: int, rounds: int, async_mode: bool, options: argparse.Namespace) -> None:
    timing(Planner, "plan", "checking, sizing and balancing (plan)", is_async=True)
    timing(Producer, "_build_batch", "encoding record batches (_build_batch)")
    timing(Producer, "_succeed", "building the written messages (_succeed)")
    async with EmbeddedBroker() as broker:
        for number in range(1, rounds + 1):
            wall, cpu, parts = await one_round(broker.bootstrap_servers, calls, async_mode, options)
            messages = calls * CALL_SIZE
            per_message = wall / messages * 1e6
            print(
                f"round {number}: {messages / wall:,.0f} msg/s, {per_message:.2f} µs a message, "
                f"client CPU {cpu / messages * 1e6:.2f} µs a message"
            )
            for label, seconds in parts.items():
                print(f"  {label:44s} {seconds / messages * 1e6:5.2f} µs")
            rest = wall - sum(parts.values())
            label = "the rest: requests, answers, tasks"
            print(f"  {label:44s} {rest / messages * 1e6:5.2f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls of 1,000 messages per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each on a new writer")
    parser.add_argument("--async-mode", action="store_true", help="write in async mode")
    parser.add_argument(
        "--completion-as-given",
        action="store_true",
        help="async mode: completion_written=False",
    )
    parser.add_argument("--keyless", action="store_true", help="messages without keys")
    parser.add_argument("--many", action="store_true", help="build them with Message.many")
    parser.add_argument(
        "--gc-threshold", type=int, default=None, metavar="N", help="gc.set_threshold(N, 20, 50)"
    )
    options = parser.parse_args()
    if options.gc_threshold is not None:
        gc.set_threshold(options.gc_threshold, 20, 50)
    asyncio.run(main(options.calls, options.rounds, options.async_mode, options))
