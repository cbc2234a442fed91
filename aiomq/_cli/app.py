"""The `aiomq` command tree, built with click: arguments, help texts and examples.

The work itself is done in `admin` (topics, groups), `stream` (produce, consume) and
`dlq` (dead-letter topics); `aiomq.cli.main` runs this tree and turns failures into exit
codes.
"""

from __future__ import annotations

from datetime import datetime

import click

from aiomq._cli import admin
from aiomq._cli.dlq_commands import dead_letters
from aiomq._cli.runtime import (
    ENV_BOOTSTRAP,
    Settings,
    broker_option,
    connection,
    datetime_option,
    key_values,
    run,
)
from aiomq._cli.stream_commands import consume, produce
from aiomq.cluster import TopicSpec
from aiomq.errors import ConfigError
from aiomq.message import FIRST_OFFSET, LAST_OFFSET

__all__ = ["cli"]


# -- the root ------------------------------------------------------------------------------


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  aiomq broker --port 9092 &               # a local broker, in memory
  export AIOMQ_BOOTSTRAP_SERVERS=127.0.0.1:9092
  aiomq topics create orders --partitions 3
  printf 'alice:hello\\nbob:hi\\n' | aiomq produce orders -K:
  aiomq consume orders --from-beginning --exit-at-end -f '%k %s\\n'
  aiomq dlq show orders.dlq
""",
)
@click.version_option(package_name="aiomq", prog_name="aiomq")
@click.option(
    "-b",
    "--bootstrap-server",
    "bootstrap",
    metavar="HOST:PORT[,...]",
    help=f"Brokers to connect to, comma-separated (default: ${ENV_BOOTSTRAP}).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds to wait when connecting, and for each admin request.",
)
@click.option("-v", "--verbose", count=True, help="Log on stderr (-v: aiomq's events, -vv: debug).")
@click.pass_context
def cli(ctx: click.Context, bootstrap: str | None, timeout: float, verbose: int) -> None:
    """Kafka from the command line: topics, producing, consuming, consumer groups,
    dead-letter topics.

    Exit status: 0 on success, 1 when Kafka refused or failed (one `error:` line on
    stderr), 2 for a usage error, 130 when interrupted with Ctrl-C (143 with SIGTERM),
    after a clean stop.
    """
    ctx.obj = Settings(bootstrap=bootstrap, timeout=timeout, verbose=verbose)


# -- topics --------------------------------------------------------------------------------


@cli.group(
    epilog="""\b
Examples:
  aiomq topics create orders --partitions 3 --config retention.ms=86400000
  aiomq topics list
  aiomq topics describe orders
  aiomq topics alter orders --partitions 6
  aiomq topics delete orders
"""
)
def topics() -> None:
    """Create, list, describe, alter and delete topics."""


@topics.command(
    "create",
    epilog="""\b
Example:
  aiomq topics create orders -p 3 -r 1 -c retention.ms=86400000 --if-not-exists
""",
)
@click.argument("name")
@click.option("-p", "--partitions", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "-r",
    "--replication-factor",
    type=int,
    default=-1,
    help="Copies of each partition. Default: the broker's default.replication.factor.",
)
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option("--if-not-exists", is_flag=True, help="Succeed if the topic exists already.")
@broker_option
@click.pass_context
def topics_create(
    ctx: click.Context,
    name: str,
    partitions: int,
    replication_factor: int,
    configs: tuple[str, ...],
    if_not_exists: bool,
    bootstrap: str | None,
) -> None:
    """Create a topic."""
    conn = connection(ctx, bootstrap)
    settings = key_values(configs, "a config", "--config")
    try:
        spec = TopicSpec(
            name=name,
            partitions=partitions,
            replication_factor=replication_factor,
            configs=settings,
        )
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    run(admin.topics_create(conn, admin.Output(), spec, if_not_exists=if_not_exists))


@topics.command("list", epilog="\b\nExample:\n  aiomq topics list --internal\n")
@click.option("--internal", is_flag=True, help="Also list Kafka's own topics.")
@broker_option
@click.pass_context
def topics_list(ctx: click.Context, internal: bool, bootstrap: str | None) -> None:
    """List topic names, one per line."""
    run(admin.topics_list(connection(ctx, bootstrap), admin.Output(), internal=internal))


@topics.command("describe", epilog="\b\nExample:\n  aiomq topics describe orders payments\n")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@broker_option
@click.pass_context
def topics_describe(ctx: click.Context, names: tuple[str, ...], bootstrap: str | None) -> None:
    """Show topics: partitions, leaders, replicas, in-sync replicas and configs."""
    run(admin.topics_describe(connection(ctx, bootstrap), admin.Output(), names))


@topics.command("delete", epilog="\b\nExample:\n  aiomq topics delete orders payments\n")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@broker_option
@click.pass_context
def topics_delete(ctx: click.Context, names: tuple[str, ...], bootstrap: str | None) -> None:
    """Delete topics and every message in them."""
    run(admin.topics_delete(connection(ctx, bootstrap), admin.Output(), names))


@topics.command(
    "alter",
    epilog="""\b
Examples:
  aiomq topics alter orders --partitions 6
  aiomq topics alter orders --config retention.ms=3600000 --delete-config cleanup.policy
""",
)
@click.argument("name")
@click.option(
    "-p", "--partitions", type=click.IntRange(min=1), help="Grow the topic to N partitions."
)
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option(
    "--delete-config",
    "deleted",
    multiple=True,
    metavar="KEY",
    help="Return a config to the broker's default. Repeatable.",
)
@broker_option
@click.pass_context
def topics_alter(
    ctx: click.Context,
    name: str,
    partitions: int | None,
    configs: tuple[str, ...],
    deleted: tuple[str, ...],
    bootstrap: str | None,
) -> None:
    """Add partitions to a topic, or change its configs."""
    if partitions is None and not configs and not deleted:
        raise click.UsageError("nothing to alter: give --partitions, --config or --delete-config")
    changes: dict[str, str | None] = dict(key_values(configs, "a config", "--config"))
    changes.update(dict.fromkeys(deleted))
    conn = connection(ctx, bootstrap)
    run(admin.topics_alter(conn, admin.Output(), name, partitions=partitions, configs=changes))


cli.add_command(produce)
cli.add_command(consume)


# -- groups --------------------------------------------------------------------------------


@cli.group(
    epilog="""\b
Examples:
  aiomq groups list
  aiomq groups describe billing
  aiomq groups reset-offsets billing --topic orders --to-earliest --execute
  aiomq groups delete billing
"""
)
def groups() -> None:
    """List, describe, reset and delete consumer groups."""


@groups.command("list", epilog="\b\nExample:\n  aiomq groups list\n")
@broker_option
@click.pass_context
def groups_list(ctx: click.Context, bootstrap: str | None) -> None:
    """List consumer groups with their state."""
    run(admin.groups_list(connection(ctx, bootstrap), admin.Output()))


@groups.command("describe", epilog="\b\nExample:\n  aiomq groups describe billing\n")
@click.argument("group")
@broker_option
@click.pass_context
def groups_describe(ctx: click.Context, group: str, bootstrap: str | None) -> None:
    """Show a group: state, members and their partitions, committed offsets and lag."""
    run(admin.groups_describe(connection(ctx, bootstrap), admin.Output(), group))


@groups.command(
    "reset-offsets",
    epilog="""\b
Examples:
  aiomq groups reset-offsets billing --topic orders --to-earliest
  aiomq groups reset-offsets billing --topic orders --to-offset 100 --execute
  aiomq groups reset-offsets billing -t orders --to-datetime 2024-05-01T12:00:00Z --execute
\b
Without --execute this is a dry run: it prints the plan and changes nothing.
The group must have no running members (state Empty) for --execute.
""",
)
@click.argument("group")
@click.option("-t", "--topic", required=True, help="The topic whose offsets to reset.")
@click.option("--to-earliest", is_flag=True, help="The oldest message kept.")
@click.option("--to-latest", is_flag=True, help="The end of each partition.")
@click.option(
    "--to-offset", type=click.IntRange(min=0), help="This offset (kept within each partition)."
)
@click.option(
    "--to-datetime",
    metavar="ISO-8601",
    callback=datetime_option,
    help="The first message at or after this time.",
)
@click.option("--execute", is_flag=True, help="Apply the plan (default: only print it).")
@broker_option
@click.pass_context
def groups_reset_offsets(
    ctx: click.Context,
    group: str,
    topic: str,
    to_earliest: bool,
    to_latest: bool,
    to_offset: int | None,
    to_datetime: datetime | None,
    execute: bool,
    bootstrap: str | None,
) -> None:
    """Plan, and with --execute apply, new committed offsets for GROUP on a topic."""
    chosen: list[int | datetime] = []
    if to_earliest:
        chosen.append(FIRST_OFFSET)
    if to_latest:
        chosen.append(LAST_OFFSET)
    if to_offset is not None:
        chosen.append(to_offset)
    if to_datetime is not None:
        chosen.append(to_datetime)
    if len(chosen) != 1:
        raise click.UsageError(
            "give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime"
        )
    conn = connection(ctx, bootstrap)
    run(
        admin.groups_reset_offsets(
            conn, admin.Output(), group, topic, to=chosen[0], execute=execute
        )
    )


@groups.command("delete", epilog="\b\nExample:\n  aiomq groups delete billing old-billing\n")
@click.argument("group_ids", nargs=-1, required=True, metavar="GROUP...")
@broker_option
@click.pass_context
def groups_delete(ctx: click.Context, group_ids: tuple[str, ...], bootstrap: str | None) -> None:
    """Delete consumer groups (with no running members) and their offsets."""
    run(admin.groups_delete(connection(ctx, bootstrap), admin.Output(), group_ids))


cli.add_command(dead_letters)


# -- broker --------------------------------------------------------------------------------


@cli.command(
    epilog="""\b
Example:
  aiomq broker --port 9092
  AIOMQ_BOOTSTRAP_SERVERS=127.0.0.1:9092 aiomq topics list   # in another shell
\b
Needs the embedded broker: pip install 'aiomq[testing]'. Ctrl-C stops it (exit 0).
""",
)
@click.option("--port", type=click.IntRange(min=1, max=65535), help="Default: a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def broker(port: int | None, host: str) -> int:
    """Run a Kafka broker in the foreground (in memory), for development and tests."""
    from aiomq.testing import main as broker_main

    argv = ["--host", host] + ([] if port is None else ["--port", str(port)])
    return broker_main(argv)
