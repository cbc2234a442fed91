"""What the `aiomq topics` and `aiomq groups` commands do, and what every command shares:
the connection settings, the quiet logger, and text or rich-table output."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import structlog

from aiomq._cli.format import table_lines
from aiomq.admin import Client
from aiomq.cluster import GroupInfo, GroupOffset, TopicSpec
from aiomq.dialer import Dialer
from aiomq.errors import BrokerError, Error
from aiomq.message import FIRST_OFFSET, LAST_OFFSET
from aiomq.reader import Reader

__all__ = [
    "Connection",
    "Output",
    "configure_logging",
    "groups_delete",
    "groups_describe",
    "groups_list",
    "groups_reset_offsets",
    "topics_alter",
    "topics_create",
    "topics_delete",
    "topics_describe",
    "topics_list",
]

_UNSUPPORTED_VERSION = 35
_ACTIVE_STATES = frozenset({"Stable", "PreparingRebalance", "CompletingRebalance"})


def configure_logging(verbosity: int) -> Any:
    """Set up logging for a command-line run; return the structlog logger for aiomq.

    By default the library stays silent (the command reports failures itself, one line
    each) and aiokafka's own logging is muted. `-v` shows aiomq's events and aiokafka's
    warnings on stderr, `-vv` everything down to debug.
    """
    aiokafka = logging.getLogger("aiokafka")
    if verbosity <= 0:
        aiokafka.setLevel(logging.CRITICAL + 1)
        level = logging.CRITICAL
    else:
        logging.basicConfig(
            stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        aiokafka.setLevel(logging.WARNING if verbosity == 1 else logging.DEBUG)
        level = logging.INFO if verbosity == 1 else logging.DEBUG
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
    )


_COMMIT_INTERVAL = 1.0
"""Seconds between flushes of a command's group reader's commits."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Connection:
    """Where and how every client of one command-line run connects."""

    brokers: list[str]
    timeout: float
    logger: Any

    @property
    def dialer(self) -> Dialer:
        return Dialer(timeout=self.timeout)

    def client(self) -> Client:
        """An admin client, not yet opened."""
        return Client(
            brokers=self.brokers, timeout=self.timeout, dialer=self.dialer, logger=self.logger
        )

    def group_reader(
        self, topic: str, group: str, session_timeout: float, *, start_offset: int, max_wait: float
    ) -> Reader:
        """A reader of `topic` in consumer group `group`, not yet opened.

        Its commits go to a stash flushed every second and when it closes, so reading
        stays fast and Ctrl-C still commits every message the command handled.
        """
        return Reader(
            brokers=self.brokers,
            topic=topic,
            group_id=group,
            start_offset=start_offset,
            commit_interval=_COMMIT_INTERVAL,
            max_wait=max_wait,
            session_timeout=session_timeout,
            heartbeat_interval=min(3.0, session_timeout / 3),
            rebalance_timeout=max(session_timeout, 10.0),
            close_timeout=self.timeout,
            dialer=self.dialer,
            logger=self.logger,
        )


class Output:
    """Lines and tables on stdout, notes on stderr.

    Tables are drawn with rich when stdout is a terminal, and as plain columns otherwise
    (pipes, files), so that scripts can read them with `awk` or `cut`.
    """

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.terminal = self.stdout.isatty()

    def line(self, text: str = "") -> None:
        print(text, file=self.stdout)

    def note(self, text: str) -> None:
        print(text, file=self.stderr, flush=True)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        if not self.terminal:
            for text in table_lines(headers, rows):
                self.line(text)
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, pad_edge=False, header_style="bold")
        for header in headers:
            table.add_column(header)
        for row in rows:
            table.add_row(*("-" if c is None else str(c) for c in row))
        Console(file=self.stdout).print(table)


# -- topics ----------------------------------------------------------------------------------


async def topics_create(
    conn: Connection, out: Output, spec: TopicSpec, *, if_not_exists: bool
) -> None:
    async with conn.client() as client:
        created = await client.create_topics(spec, if_not_exists=if_not_exists)
    if created:
        plural = "" if spec.partitions == 1 else "s"
        out.line(f"created topic {spec.name} ({spec.partitions} partition{plural})")
    else:
        out.line(f"topic {spec.name} exists already")


async def topics_list(conn: Connection, out: Output, *, internal: bool) -> None:
    async with conn.client() as client:
        names = await client.list_topics(include_internal=internal)
    for name in names:
        out.line(name)


async def topics_describe(conn: Connection, out: Output, names: Sequence[str]) -> None:
    async with conn.client() as client:
        infos = await client.describe_topics(*names)
        configs: dict[str, dict[str, str] | None] = {}
        for info in infos:
            try:
                configs[info.name] = await client.describe_configs(info.name)
            except BrokerError as exc:
                if exc.code != _UNSUPPORTED_VERSION:
                    raise
                configs[info.name] = None
    for index, info in enumerate(infos):
        if index:
            out.line()
        out.line(
            f"Topic: {info.name}  Partitions: {len(info.partitions)}  "
            f"ReplicationFactor: {info.replication_factor}"
            + ("  Internal: true" if info.internal else "")
        )
        found = configs[info.name]
        if found is None:
            out.line("Configs: (the broker does not describe configs)")
        else:
            listed = ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
            out.line(f"Configs: {listed or '(none)'}")
        out.table(
            ["PARTITION", "LEADER", "REPLICAS", "ISR"],
            [(p.partition, p.leader, _ids(p.replicas), _ids(p.isr)) for p in info.partitions],
        )


async def topics_delete(conn: Connection, out: Output, names: Sequence[str]) -> None:
    async with conn.client() as client:
        await client.delete_topics(*names)
    for name in dict.fromkeys(names):
        out.line(f"deleted topic {name}")


async def topics_alter(
    conn: Connection,
    out: Output,
    name: str,
    *,
    partitions: int | None,
    configs: Mapping[str, str | None],
) -> None:
    async with conn.client() as client:
        if partitions is not None:
            await client.create_partitions(name, total=partitions)
            out.line(f"topic {name} now has {partitions} partitions")
        if configs:
            await client.alter_configs(name, configs)
            changes = ", ".join(
                f"{k}={v}" if v is not None else f"{k} (default)" for k, v in configs.items()
            )
            out.line(f"altered configs of topic {name}: {changes}")


def _ids(ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in ids)


# -- groups ----------------------------------------------------------------------------------


async def groups_list(conn: Connection, out: Output) -> None:
    async with conn.client() as client:
        groups = await client.list_groups()
    out.table(
        ["GROUP", "STATE", "PROTOCOL-TYPE"],
        [(g.group_id, g.state or "-", g.protocol_type or "-") for g in groups],
    )


async def groups_describe(conn: Connection, out: Output, group_id: str) -> None:
    async with conn.client() as client:
        info = await client.describe_group(group_id)
        offsets = await client.group_offsets(group_id)
    if info.state in ("Dead", "Empty") and not info.members and not offsets:
        # Brokers differ in what they call an unknown group; without members or offsets
        # there is nothing to describe either way.
        raise Error(f"consumer group {group_id!r} does not exist (no members, no offsets)")
    _print_group(out, info, offsets)


def _print_group(out: Output, info: GroupInfo, offsets: Sequence[GroupOffset]) -> None:
    protocol = info.protocol_type or "-"
    if info.protocol:
        protocol = f"{protocol} ({info.protocol})"
    out.line(f"Group: {info.group_id}  State: {info.state}  Protocol: {protocol}")
    out.line(f"Members: {len(info.members)}")
    if info.members:
        out.table(
            ["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"],
            [
                (
                    m.member_id,
                    m.client_id or "-",
                    m.host or "-",
                    ",".join(f"{t}[{p}]" for t, p in m.assignment) or "-",
                )
                for m in info.members
            ],
        )
    out.line()
    out.table(
        ["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"],
        [
            (
                o.topic,
                o.partition,
                o.committed if o.committed >= 0 else None,
                o.end if o.end >= 0 else None,
                o.lag if o.lag >= 0 else None,
            )
            for o in offsets
        ],
    )
    known = [o.lag for o in offsets if o.lag >= 0]
    out.line(f"Total lag: {sum(known) if known else '-'}")


async def groups_reset_offsets(
    conn: Connection,
    out: Output,
    group_id: str,
    topic: str,
    *,
    to: int | datetime,
    execute: bool,
) -> None:
    """Print the plan (current and new offset of every partition); with `execute`, apply it."""
    info: GroupInfo | None = None
    async with conn.client() as client:
        current = {
            o.partition: o.committed for o in await client.group_offsets(group_id, topics=[topic])
        }
        if execute:
            applied = await client.reset_group_offsets(group_id, topic, to=to)
            new = {p: o for (_, p), o in applied.items()}
        else:
            info = await client.describe_group(group_id)
            new = await _planned_offsets(client, topic, to)
    out.table(
        ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
        [
            (group_id, topic, p, current.get(p, -1) if current.get(p, -1) >= 0 else None, o)
            for p, o in sorted(new.items())
        ],
    )
    if info is not None:
        if info.state in _ACTIVE_STATES:
            out.note(
                f"note: group {group_id!r} is {info.state} with {len(info.members)} "
                "member(s); --execute needs it stopped (Empty)"
            )
        out.note("dry run: nothing was changed; add --execute to reset the offsets")


async def _planned_offsets(client: Client, topic: str, to: int | datetime) -> dict[int, int]:
    """The offsets `reset_group_offsets` would commit, computed the same way."""
    if isinstance(to, int) and to >= 0:
        first = await client.list_offsets(topic, at=FIRST_OFFSET)
        last = await client.list_offsets(topic, at=LAST_OFFSET)
        return {p: min(max(to, first[p]), last.get(p, to)) for p in first}
    return await client.list_offsets(topic, at=to)


async def groups_delete(conn: Connection, out: Output, group_ids: Sequence[str]) -> None:
    async with conn.client() as client:
        await client.delete_groups(*group_ids)
    for group_id in dict.fromkeys(group_ids):
        out.line(f"deleted group {group_id}")
