"""What every `aiomq` command shares: settings, broker resolution, running a coroutine
with a clean stop on Ctrl-C and SIGTERM, and option parsing helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from aiomq._cli import admin
from aiomq._cli.format import parse_datetime, parse_key_value, parse_offset

__all__ = [
    "ENV_BOOTSTRAP",
    "ENV_SESSION_TIMEOUT",
    "Interrupted",
    "Settings",
    "Terminated",
    "broker_option",
    "connection",
    "datetime_option",
    "key_values",
    "offset_option",
    "progress",
    "run",
    "session_timeout_option",
]

ENV_BOOTSTRAP = "AIOMQ_BOOTSTRAP_SERVERS"
ENV_SESSION_TIMEOUT = "AIOMQ_CLI_SESSION_TIMEOUT"

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """The options given before the command name."""

    bootstrap: str | None
    timeout: float
    verbose: int


class Interrupted(Exception):
    """The command was stopped by Ctrl-C (SIGINT), after cleaning up."""


class Terminated(Exception):
    """The command was stopped by SIGTERM, after the same clean stop as for Ctrl-C."""


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine to its end, and return its result.

    Raises:
        Interrupted: Ctrl-C stopped it, after its cleanup ran.
        Terminated: SIGTERM stopped it, after its cleanup ran.
    """
    # asyncio.run turns the first Ctrl-C into a cancellation of the command, whose
    # teardown (commits, writer flush) still runs; then it raises KeyboardInterrupt.
    # SIGTERM (from `timeout`, a service manager, a container stop) is treated alike.
    try:
        return asyncio.run(_terminable(coro))
    except KeyboardInterrupt:
        if sys.stderr.isatty():
            print(file=sys.stderr)  # after the terminal's ^C
        raise Interrupted() from None


async def _terminable(coro: Coroutine[Any, Any, T]) -> T:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError):  # pragma: no cover - not on this platform
        return await coro
    try:
        return await coro
    except asyncio.CancelledError:
        if terminated:
            raise Terminated() from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def connection(ctx: click.Context, bootstrap: str | None) -> admin.Connection:
    """The connection settings of this run: the command's -b, else the root's -b, else
    the environment; a usage error when none names a broker."""
    settings: Settings = ctx.find_root().obj
    raw = bootstrap or settings.bootstrap or os.environ.get(ENV_BOOTSTRAP, "")
    brokers = [b.strip() for b in raw.split(",") if b.strip()]
    if not brokers:
        raise click.UsageError(
            f"no broker given: pass --bootstrap-server HOST:PORT (-b), or set {ENV_BOOTSTRAP}"
        )
    logger = admin.configure_logging(settings.verbose)
    return admin.Connection(brokers=brokers, timeout=settings.timeout, logger=logger)


def broker_option(command: F) -> F:
    """Let a command take -b after its name too, as kafka-topics and kcat do."""
    return click.option(
        "-b",
        "--bootstrap-server",
        "bootstrap",
        metavar="HOST:PORT[,...]",
        help=f"Brokers to connect to (default: ${ENV_BOOTSTRAP}).",
    )(command)


def session_timeout_option(command: F) -> F:
    """--session-timeout, for the commands that can read in a consumer group."""
    return click.option(
        "--session-timeout",
        type=click.FloatRange(min=0.1),
        default=10.0,
        show_default=True,
        envvar=ENV_SESSION_TIMEOUT,
        help="Seconds the group waits for a silent member (with --group).",
    )(command)


def key_values(values: tuple[str, ...], what: str, param: str) -> dict[str, str]:
    """Parse repeated KEY=VALUE options into a dict (a usage error when one is malformed)."""
    pairs: dict[str, str] = {}
    for text in values:
        try:
            name, value = parse_key_value(text, what)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=param) from None
        pairs[name] = value
    return pairs


def offset_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A click callback parsing `--offset` with `parse_offset`."""
    if value is None:
        return None
    try:
        return parse_offset(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def datetime_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A click callback parsing an ISO-8601 time with `parse_datetime`."""
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@contextlib.contextmanager
def progress(show: bool, description: str) -> Iterator[Callable[[int], None] | None]:
    """A live count of messages with their rate, drawn on stdout when `show` is true (the
    callers set it only when stdout is a terminal); it disappears when the work ends.

    Yields:
        A function to call with each number of messages done, or None when not shown.
    """
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("[bold]{task.completed:,.0f}[/] messages"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(file=sys.stdout), transient=True) as bar:
        task = bar.add_task(description, total=None, rate="")

        def advance(count: int) -> None:
            bar.advance(task, count)
            speed = bar.tasks[task].speed
            bar.update(task, rate="" if speed is None else f"{speed:,.0f} messages/s")

        yield advance
