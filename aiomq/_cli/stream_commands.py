"""The `aiomq produce` and `aiomq consume` commands: their options, help and examples."""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import datetime
from typing import IO

import click

from aiomq._cli import admin, stream
from aiomq._cli.format import (
    FORMAT_TOKENS,
    compile_format,
    parse_header,
    render_json,
    render_value,
)
from aiomq._cli.runtime import (
    broker_option,
    connection,
    offset_option,
    progress,
    run,
    session_timeout_option,
)
from aiomq.message import FIRST_OFFSET, LAST_OFFSET
from aiomq.writer import Compression, RequiredAcks

__all__ = ["consume", "produce"]


# -- produce -------------------------------------------------------------------------------


@click.command(
    epilog="""\b
Examples:
  printf 'one\\ntwo\\n' | aiomq produce orders
  aiomq produce orders lines.txt -K: -H source=import --compression zstd
  aiomq produce orders --partition 0 --acks 1 < lines.txt
\b
Each line is one message (without its newline). With -K, a line is split at the
first separator into key and value; a line without the separator has a null key.
A summary goes to stderr; every message that fails is reported there, and the
exit status is 1 if any failed.
""",
)
@click.argument("topic")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option(
    "-K", "--key-separator", metavar="SEP", help="Split each line at the first SEP into key:value."
)
@click.option("-H", "--header", "headers", multiple=True, metavar="NAME=VALUE", help="Repeatable.")
@click.option("-p", "--partition", type=click.IntRange(min=0), help="Write to this partition.")
@click.option(
    "-z", "--compression", type=click.Choice(["gzip", "snappy", "lz4", "zstd"]), default=None
)
@click.option("--acks", type=click.Choice(["0", "1", "all"]), default="all", show_default=True)
@click.option(
    "--allow-auto-topic-creation",
    is_flag=True,
    help="Let the broker create a missing topic (default: a missing topic is an error).",
)
@broker_option
@click.pass_context
def produce(
    ctx: click.Context,
    topic: str,
    file: str | None,
    key_separator: str | None,
    headers: tuple[str, ...],
    partition: int | None,
    compression: str | None,
    acks: str,
    allow_auto_topic_creation: bool,
    bootstrap: str | None,
) -> int:
    """Write one message per line of FILE (or stdin) to TOPIC."""
    if key_separator == "":
        raise click.BadParameter("the key separator must not be empty", param_hint="-K")
    parsed_headers = []
    for text in headers:
        try:
            parsed_headers.append(parse_header(text))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--header") from None
    options = stream.ProduceOptions(
        topic=topic,
        key_separator=None if key_separator is None else key_separator.encode(),
        headers=tuple(parsed_headers),
        partition=partition,
        compression=None if compression is None else Compression[compression.upper()],
        acks={"0": RequiredAcks.NONE, "1": RequiredAcks.ONE, "all": RequiredAcks.ALL}[acks],
        allow_auto_topic_creation=allow_auto_topic_creation,
    )
    conn = connection(ctx, bootstrap)
    out = admin.Output()
    report = stream.ProduceReport()
    with contextlib.ExitStack() as stack:
        source: IO[bytes] = (
            sys.stdin.buffer if file in (None, "-") else stack.enter_context(open(file, "rb"))
        )
        show = out.terminal and not source.isatty()
        try:
            with progress(show, f"writing to {topic}") as advance:
                run(stream.produce(conn, out, options, source, report, advance))
        finally:
            if report.started:
                out.note(report.summary(topic))
    return 1 if report.failed else 0


# -- consume -------------------------------------------------------------------------------


@click.command(
    epilog="""\b
Examples:
  aiomq consume orders --from-beginning --exit-at-end
  aiomq consume orders --group billing --max-messages 10
  aiomq consume orders --partition 0 --offset 42 -f 'p%p o%o %k=%s\\n'
  aiomq consume orders --offset 2024-05-01T12:00:00Z --json
\b
Without --group, every partition (or the --partition given) is read from --offset
(default: the end, so only new messages). With --group, the group's committed offsets
decide, --from-beginning applies where it has none, and each printed message is
committed (flushed every second and on exit).
\b
--format tokens (kcat's), and escapes \\n \\t \\r \\0 \\\\:
"""
    + "\n".join(f"  %{t}  {d}" for t, d in FORMAT_TOKENS.items())
    + """
Nothing is added after a message: end the format with \\n.
\b
--json prints one object per line; keys and values that are not UTF-8 are given as
{"base64": "..."}.
\b
Ctrl-C stops cleanly: commits are flushed, and the exit status is 130 (143 for
SIGTERM). Reaching --max-messages or, with --exit-at-end, the end exits 0.
""",
)
@click.argument("topic")
@click.option("-g", "--group", help="Consume as a member of this consumer group.")
@click.option("-p", "--partition", type=click.IntRange(min=0), help="Read only this partition.")
@click.option(
    "-o",
    "--offset",
    metavar="beginning|end|N|TIME",
    callback=offset_option,
    help="Where to start (not with --group). Default: end.",
)
@click.option("--from-beginning", is_flag=True, help="Start at the oldest message.")
@click.option("-c", "--max-messages", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option(
    "-e", "--exit-at-end", is_flag=True, help="Stop once caught up with the end of the log."
)
@click.option("-f", "--format", "fmt", metavar="FORMAT", help="Print each message with FORMAT.")
@click.option("--json", "as_json", is_flag=True, help="Print each message as a JSON line.")
@session_timeout_option
@broker_option
@click.pass_context
def consume(
    ctx: click.Context,
    topic: str,
    group: str | None,
    partition: int | None,
    offset: int | datetime | None,
    from_beginning: bool,
    max_messages: int | None,
    exit_at_end: bool,
    fmt: str | None,
    as_json: bool,
    session_timeout: float,
    bootstrap: str | None,
) -> int:
    """Print the messages of TOPIC to stdout, one per line."""
    if group is not None and partition is not None:
        raise click.UsageError("--group and --partition exclude each other: a group assigns")
    if group is not None and offset is not None:
        raise click.UsageError(
            "--offset is for reading without a group; reset a group's offsets with "
            "`aiomq groups reset-offsets`"
        )
    if from_beginning and offset is not None and offset != FIRST_OFFSET:
        raise click.UsageError("--from-beginning and --offset exclude each other")
    if fmt is not None and as_json:
        raise click.UsageError("--format and --json exclude each other")
    if fmt is not None:
        try:
            render = compile_format(fmt)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--format") from None
    else:
        render = render_json if as_json else render_value
    options = stream.ConsumeOptions(
        topic=topic,
        render=render,
        group=group,
        partition=partition,
        offset=LAST_OFFSET if offset is None else offset,
        from_beginning=from_beginning,
        max_messages=max_messages,
        exit_at_end=exit_at_end,
        session_timeout=session_timeout,
    )
    conn = connection(ctx, bootstrap)
    report = stream.ConsumeReport()
    try:
        run(stream.consume(conn, options, sys.stdout.buffer, report))
    finally:
        if report.pipe_closed:
            # Nobody reads our output any more; keep the exit flush from failing.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        if report.started:
            admin.Output().note(report.summary())
    return 0
