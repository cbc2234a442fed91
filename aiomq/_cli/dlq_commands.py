"""The `aiomq dlq show` and `aiomq dlq replay` commands: their options, help and examples."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import click

from aiomq._cli import admin, dlq
from aiomq._cli.dead_letter import SHOW_COLUMNS
from aiomq._cli.runtime import broker_option, connection, progress, run, session_timeout_option

__all__ = ["dead_letters"]


@click.group(
    "dlq",
    epilog="""\b
Examples:
  aiomq dlq show orders.dlq
  aiomq dlq show orders.dlq --json | jq -r .error_message
  aiomq dlq replay orders.dlq --dry-run
  aiomq dlq replay orders.dlq --group orders-replay
""",
)
def dead_letters() -> None:
    """Show and replay the dead-letter topics that Reader.process writes."""


@dead_letters.command(
    "show",
    epilog="""\b
Examples:
  aiomq dlq show orders.dlq
  aiomq dlq show orders.dlq --max 20
  aiomq dlq show orders.dlq --json
\b
Reads every partition from its first message up to its end when the command starts,
and prints one row per message: where it is in the dead-letter topic, where it came
from, its attempts, when it failed last, the error's type and text (shortened), and
its key. A message without the aiomq.dlq.* headers has an empty (-) origin.
\b
--json prints one object per line, with the full error, the first and last failure
times as written, and the message's key, value and own headers ({"base64": "..."}
where they are not UTF-8).
""",
)
@click.argument("topic")
@click.option("--json", "as_json", is_flag=True, help="Print each message as a JSON line.")
@click.option(
    "-c", "--max", "max_messages", type=click.IntRange(min=1), help="Stop after N messages."
)
@broker_option
@click.pass_context
def show(
    ctx: click.Context, topic: str, as_json: bool, max_messages: int | None, bootstrap: str | None
) -> int:
    """List the messages of the dead-letter topic TOPIC, with where and why they failed."""
    conn = connection(ctx, bootstrap)
    out = admin.Output()
    report = dlq.ShowReport()
    try:
        with progress(out.terminal and not as_json, f"reading {topic}") as advance:
            run(
                dlq.show(
                    conn,
                    out,
                    topic,
                    as_json=as_json,
                    limit=max_messages,
                    report=report,
                    progress=advance,
                )
            )
    finally:
        if report.started:
            with _closed_pipe_is_quiet(report):
                if not as_json:
                    out.table(SHOW_COLUMNS, [letter.to_row() for letter in report.letters])
            out.note(report.summary(topic))
    return 0


@dead_letters.command(
    "replay",
    epilog="""\b
Examples:
  aiomq dlq replay orders.dlq --dry-run
  aiomq dlq replay orders.dlq
  aiomq dlq replay orders.dlq --to orders.retry --max 100
  aiomq dlq replay orders.dlq --group orders-replay
\b
Writes each message of TOPIC, up to its end when the command starts, to the topic it
came from (its aiomq.dlq.topic header) or to --to: the same key and value, its own
headers, every aiomq.dlq.* header removed. The writer's balancer places it by key.
Messages without an origin are skipped (and counted) unless --to is given. Order is
kept per dead-letter partition, and each write waits for the brokers' acknowledgement.
A write that fails stops the replay with exit status 1, naming the message.
\b
Kafka cannot delete messages, so the dead-letter topic keeps them: a second run
replays them again. With --group, the run starts where the group's committed offsets
are (else at the beginning) and commits each message once written or skipped, so the
next run with the same group goes on after it. --dry-run counts what would be written
and writes and commits nothing.
""",
)
@click.argument("topic")
@click.option("--to", "target", metavar="TOPIC", help="Write every message to TOPIC instead.")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed; write nothing.")
@click.option(
    "-c", "--max", "max_messages", type=click.IntRange(min=1), help="Stop after N messages."
)
@click.option(
    "-g", "--group", metavar="ID", help="Start at, and commit progress to, this consumer group."
)
@session_timeout_option
@broker_option
@click.pass_context
def replay(
    ctx: click.Context,
    topic: str,
    target: str | None,
    dry_run: bool,
    max_messages: int | None,
    group: str | None,
    session_timeout: float,
    bootstrap: str | None,
) -> int:
    """Write the messages of the dead-letter topic TOPIC back to their origin topics."""
    if target == "":
        raise click.BadParameter("the topic must not be empty", param_hint="--to")
    if group == "":
        raise click.BadParameter("the group id must not be empty", param_hint="--group")
    options = dlq.ReplayOptions(
        topic=topic,
        to=target,
        dry_run=dry_run,
        max_messages=max_messages,
        group=group,
        session_timeout=session_timeout,
    )
    conn = connection(ctx, bootstrap)
    out = admin.Output()
    report = dlq.ReplayReport()
    verb = "reading" if dry_run else "replaying"
    try:
        with progress(out.terminal, f"{verb} {topic}") as advance:
            run(dlq.replay(conn, options, report, advance))
    finally:
        if report.started:
            out.table(["TOPIC", "MESSAGES"], report.rows())
            if report.failure is not None:
                out.note(f"error: {report.failure}")
            out.note(report.summary(options))
            for missing in report.missing:
                out.note(f"note: topic {missing!r} does not exist; replaying to it would fail")
    return 0 if report.failure is None else 1


@contextlib.contextmanager
def _closed_pipe_is_quiet(report: dlq.ShowReport) -> Iterator[None]:
    """Stop writing to stdout once its reader went away (`| head`), without an error."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        report.pipe_closed = True
    if report.pipe_closed:
        # Nobody reads our output any more; keep the exit flush from failing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
