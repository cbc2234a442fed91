"""The `aiomq` command line, run in subprocesses against a real broker.

Both entry points are exercised: `python -m aiomq` and the `aiomq` console script. Group
tests set a 2-second session timeout through AIOMQ_CLI_SESSION_TIMEOUT, because a group
join on the embedded broker takes half of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import click
import pytest

import aiomq
from aiomq.admin import Client, TopicSpec

SCRIPT = Path(sys.executable).with_name("aiomq")


def _env(bootstrap: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AIOMQ_BOOTSTRAP_SERVERS"}
    if bootstrap is not None:
        env["AIOMQ_BOOTSTRAP_SERVERS"] = bootstrap
    env["AIOMQ_CLI_SESSION_TIMEOUT"] = "2"
    return env


def _command(script: bool) -> list[str]:
    return [str(SCRIPT)] if script else [sys.executable, "-m", "aiomq"]


def run(
    bootstrap: str | None,
    *args: str,
    input: bytes | str | None = None,
    script: bool = False,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run one aiomq command to its end; stdout and stderr as text."""
    data = input.encode() if isinstance(input, str) else input
    done = subprocess.run(
        [*_command(script), *args],
        input=data,
        capture_output=True,
        timeout=timeout,
        env=_env(bootstrap),
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def ok(bootstrap: str | None, *args: str, **kwargs: Any) -> str:
    """Run a command that must succeed; return its stdout."""
    done = run(bootstrap, *args, **kwargs)
    assert done.returncode == 0, (args, done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stdout


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single `error: ...` line of a failed command (and nothing else on stderr)."""
    assert done.returncode == 1, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def admin(bootstrap: str, call: Callable[[Client], Any]) -> Any:
    """Run one admin call in-process, for set-up and for checking what a command did."""

    async def main() -> Any:
        async with Client(brokers=[bootstrap]) as client:
            return await call(client)

    return asyncio.run(main())


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin(bootstrap, lambda c: c.create_topics(TopicSpec(name=topic, partitions=partitions)))


def write_one_by_one(bootstrap: str, topic: str, messages: Sequence[aiomq.Message]) -> None:
    """Write each message in its own request, so end offsets are exact on every broker."""

    async def main() -> None:
        async with aiomq.Writer(brokers=[bootstrap], topic=topic) as writer:
            for message in messages:
                await writer.write_messages(message)

    asyncio.run(main())


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    offsets = admin(bootstrap, lambda c: c.group_offsets(group, topics=[topic]))
    return {o.partition: o.committed for o in offsets}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class LineReader:
    """Collects a child's stdout lines in a thread, so a test can wait for them."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.seen: list[bytes] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"stdout ended after {len(self.seen)} lines"
            self.seen.append(line)
        return self.seen

    def rest(self, timeout: float = 30.0) -> list[bytes]:
        while (line := self.lines.get(timeout=timeout)) is not None:
            self.seen.append(line)
        return self.seen


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; any still running at the end is killed."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- produce and consume ---------------------------------------------------------------------


def test_produced_keys_values_and_headers_come_back_exactly(
    bootstrap_servers: str, topic: str
) -> None:
    create_topic(bootstrap_servers, topic)
    lines = "alice:hello\nbob:hi:there\nno separator\n:empty key\n"
    done = run(
        bootstrap_servers,
        "produce",
        topic,
        "-K",
        ":",
        "-H",
        "source=cli",
        "-H",
        "trace=a=b",
        input=lines,
        script=True,
    )
    assert done.returncode == 0, done.stderr
    out = ok(
        bootstrap_servers,
        "consume",
        topic,
        "--from-beginning",
        "--max-messages",
        "4",
        "--format",
        "%o [%k] [%s] %K %h\\n",
        script=True,
    )
    assert out == (
        "0 [alice] [hello] 5 source=cli,trace=a=b\n"
        "1 [bob] [hi:there] 3 source=cli,trace=a=b\n"
        "2 [] [no separator] -1 source=cli,trace=a=b\n"
        "3 [] [empty key] 0 source=cli,trace=a=b\n"
    )


def test_produce_prints_a_summary_of_messages_bytes_and_seconds(
    bootstrap_servers: str, topic: str
) -> None:
    create_topic(bootstrap_servers, topic)
    done = run(bootstrap_servers, "produce", topic, input="one\ntwo\nthree")
    assert done.returncode == 0
    assert done.stdout == ""
    assert re.fullmatch(
        rf"wrote 3 messages \(11 bytes\) to {topic} in \d+\.\d\d s \(\d+ messages/s\)\n",
        done.stderr,
    ), done.stderr


def test_a_line_too_large_to_write_is_reported_and_the_others_are_written(
    bootstrap_servers: str, topic: str
) -> None:
    create_topic(bootstrap_servers, topic)
    huge = "x" * 1_100_000  # more than the writer's 1 MiB batch limit
    done = run(bootstrap_servers, "produce", topic, input=f"before\n{huge}\nafter\n")
    assert done.returncode == 1
    failure, summary = done.stderr.splitlines()
    assert failure.startswith("error: line 2 not written: MESSAGE_TOO_LARGE")
    assert re.fullmatch(rf"wrote 2 messages \(11 bytes\) to {topic} in .*; 1 failed", summary)
    out = ok(bootstrap_servers, "consume", topic, "--from-beginning", "--exit-at-end")
    assert out == "before\nafter\n"


def test_consume_prints_one_value_per_line_by_default(bootstrap_servers: str, topic: str) -> None:
    create_topic(bootstrap_servers, topic)
    ok(bootstrap_servers, "produce", topic, input="first\n\nthird\n")
    out = ok(bootstrap_servers, "consume", topic, "--from-beginning", "--exit-at-end")
    assert out == "first\n\nthird\n"


def test_produce_reads_a_file_and_writes_to_the_partition_given(
    bootstrap_servers: str, topic: str, tmp_path: Path
) -> None:
    create_topic(bootstrap_servers, topic, partitions=3)
    source = tmp_path / "lines.txt"
    source.write_text("".join(f"line {i}\n" for i in range(50)))
    ok(bootstrap_servers, "produce", topic, str(source), "-p", "2", "-z", "gzip", "--acks", "1")
    out = ok(bootstrap_servers, "consume", topic, "-p", "2", "-o", "beginning", "-e", "-f", "%s\\n")
    assert out.splitlines() == [f"line {i}" for i in range(50)]
    assert ok(bootstrap_servers, "consume", topic, "-p", "0", "-o", "beginning", "-e") == ""


def test_json_output_parses_with_binary_data_marked_as_base64(
    bootstrap_servers: str, topic: str
) -> None:
    create_topic(bootstrap_servers, topic)
    write_one_by_one(
        bootstrap_servers,
        topic,
        [
            aiomq.Message(key=b"k", value=b"text", headers=[("h", b"v")]),
            aiomq.Message(key=None, value=b"\xff\x00", headers=[("bin", b"\xfe")]),
        ],
    )
    out = ok(bootstrap_servers, "consume", topic, "--from-beginning", "-c", "2", "--json")
    first, second = (json.loads(line) for line in out.splitlines())
    assert {k: v for k, v in first.items() if k != "timestamp"} == {
        "topic": topic,
        "partition": 0,
        "offset": 0,
        "key": "k",
        "value": "text",
        "headers": [["h", "v"]],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["timestamp"])
    assert second["key"] is None
    assert second["value"] == {"base64": "/wA="}
    assert second["headers"] == [["bin", {"base64": "/g=="}]]


def test_consume_starts_at_an_offset_or_a_time_in_partition_mode(
    bootstrap_servers: str, topic: str
) -> None:
    create_topic(bootstrap_servers, topic)
    write_one_by_one(bootstrap_servers, topic, [aiomq.Message(value=b"m%d" % i) for i in range(5)])
    assert ok(bootstrap_servers, "consume", topic, "-p", "0", "-o", "3", "-e") == "m3\nm4\n"
    everything = ok(bootstrap_servers, "consume", topic, "-o", "2000-01-01T00:00:00Z", "-e")
    assert everything.splitlines() == [f"m{i}" for i in range(5)]
    # Without --offset, reading starts at the end: nothing old is printed.
    assert ok(bootstrap_servers, "consume", topic, "--exit-at-end") == ""


@pytest.mark.external_broker("Tansu does not look up offsets by timestamp")
def test_consume_from_a_future_time_prints_nothing(bootstrap_servers: str, topic: str) -> None:
    create_topic(bootstrap_servers, topic)
    write_one_by_one(bootstrap_servers, topic, [aiomq.Message(value=b"old")])
    assert ok(bootstrap_servers, "consume", topic, "-o", "2999-01-01T00:00:00Z", "-e") == ""


# -- topics ----------------------------------------------------------------------------------


def test_topics_are_created_listed_described_and_deleted(
    bootstrap_servers: str, topic: str
) -> None:
    out = ok(
        bootstrap_servers,
        "topics",
        "create",
        topic,
        "--partitions",
        "3",
        "--replication-factor",
        "1",
        "--config",
        "retention.ms=3600000",
        script=True,
    )
    assert out == f"created topic {topic} (3 partitions)\n"
    assert topic in ok(bootstrap_servers, "topics", "list").splitlines()

    described = ok(bootstrap_servers, "topics", "describe", topic).splitlines()
    assert described[0] == f"Topic: {topic}  Partitions: 3  ReplicationFactor: 1"
    assert "retention.ms=3600000" in described[1]
    assert described[2].split() == ["PARTITION", "LEADER", "REPLICAS", "ISR"]
    rows = [line.split() for line in described[3:]]
    assert [row[0] for row in rows] == ["0", "1", "2"]
    assert all(row[1] == row[2] == row[3] for row in rows)  # one replica, the leader

    assert ok(bootstrap_servers, "topics", "delete", topic) == f"deleted topic {topic}\n"
    assert topic not in ok(bootstrap_servers, "topics", "list").splitlines()


def test_creating_an_existing_topic_fails_unless_if_not_exists(
    bootstrap_servers: str, topic: str
) -> None:
    create_topic(bootstrap_servers, topic)
    line = one_error_line(run(bootstrap_servers, "topics", "create", topic))
    assert "TOPIC_ALREADY_EXISTS" in line and topic in line
    out = ok(bootstrap_servers, "topics", "create", topic, "--if-not-exists")
    assert out == f"topic {topic} exists already\n"


def test_topics_alter_sets_configs(bootstrap_servers: str, topic: str) -> None:
    create_topic(bootstrap_servers, topic)
    out = ok(bootstrap_servers, "topics", "alter", topic, "--config", "retention.ms=120000")
    assert out == f"altered configs of topic {topic}: retention.ms=120000\n"
    described = ok(bootstrap_servers, "topics", "describe", topic)
    assert "retention.ms=120000" in described


def test_topics_alter_partitions_grows_the_topic_or_names_the_missing_api(
    bootstrap_servers: str, topic: str
) -> None:
    create_topic(bootstrap_servers, topic)
    done = run(bootstrap_servers, "topics", "alter", topic, "--partitions", "3")
    if done.returncode == 0:
        assert done.stdout == f"topic {topic} now has 3 partitions\n"
        assert "Partitions: 3" in ok(bootstrap_servers, "topics", "describe", topic)
    else:  # the embedded broker lacks CreatePartitions
        line = one_error_line(done)
        assert "does not support CreatePartitions" in line


# -- groups ----------------------------------------------------------------------------------


def test_group_consume_commits_what_it_printed_and_describe_shows_the_lag(
    bootstrap_servers: str, topic: str
) -> None:
    group = f"g-{topic}"
    create_topic(bootstrap_servers, topic)
    write_one_by_one(bootstrap_servers, topic, [aiomq.Message(value=b"m%d" % i) for i in range(5)])
    out = ok(bootstrap_servers, "consume", topic, "-g", group, "--from-beginning", "-c", "3")
    assert out == "m0\nm1\nm2\n"
    assert committed(bootstrap_servers, group, topic) == {0: 3}

    listed = ok(bootstrap_servers, "groups", "list").splitlines()
    assert listed[0].split() == ["GROUP", "STATE", "PROTOCOL-TYPE"]
    assert group in [line.split()[0] for line in listed[1:]]

    described = ok(bootstrap_servers, "groups", "describe", group, script=True).splitlines()
    assert described[0].startswith(f"Group: {group}  State: ")
    header = next(i for i, line in enumerate(described) if line.split()[:1] == ["TOPIC"])
    assert described[header].split() == ["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]
    assert described[header + 1].split() == [topic, "0", "3", "5", "2"]
    assert described[header + 2] == "Total lag: 2"


def test_group_consume_exits_at_the_end_of_the_log(bootstrap_servers: str, topic: str) -> None:
    group = f"g-{topic}"
    create_topic(bootstrap_servers, topic, partitions=2)
    write_one_by_one(
        bootstrap_servers,
        topic,
        [aiomq.Message(value=b"m%d" % i, partition=i % 2) for i in range(6)],
    )
    out = ok(bootstrap_servers, "consume", topic, "-g", group, "--from-beginning", "-e")
    assert sorted(out.splitlines()) == [f"m{i}" for i in range(6)]
    assert committed(bootstrap_servers, group, topic) == {0: 3, 1: 3}


def test_reset_offsets_is_a_dry_run_unless_executed(bootstrap_servers: str, topic: str) -> None:
    group = f"g-{topic}"
    create_topic(bootstrap_servers, topic)
    write_one_by_one(bootstrap_servers, topic, [aiomq.Message(value=b"m%d" % i) for i in range(4)])
    reset = ["groups", "reset-offsets", group, "--topic", topic]

    out = ok(bootstrap_servers, *reset, "--to-offset", "3", "--execute")
    assert out.splitlines()[1].split() == [group, topic, "0", "-", "3"]
    assert committed(bootstrap_servers, group, topic) == {0: 3}

    dry = run(bootstrap_servers, *reset, "--to-earliest")
    assert dry.returncode == 0
    assert dry.stdout.splitlines()[0].split() == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "NEW-OFFSET",
    ]
    assert dry.stdout.splitlines()[1].split() == [group, topic, "0", "3", "0"]
    assert "dry run" in dry.stderr
    assert committed(bootstrap_servers, group, topic) == {0: 3}

    ok(bootstrap_servers, *reset, "--to-earliest", "--execute")
    assert committed(bootstrap_servers, group, topic) == {0: 0}
    ok(bootstrap_servers, *reset, "--to-latest", "--execute")
    assert committed(bootstrap_servers, group, topic) == {0: 4}
    ok(bootstrap_servers, *reset, "--to-datetime", "2000-01-01T00:00:00Z", "--execute")
    assert committed(bootstrap_servers, group, topic) == {0: 0}


def test_groups_delete_removes_the_group(bootstrap_servers: str, topic: str) -> None:
    group = f"g-{topic}"
    create_topic(bootstrap_servers, topic)
    write_one_by_one(bootstrap_servers, topic, [aiomq.Message(value=b"m")])
    ok(bootstrap_servers, "groups", "reset-offsets", group, "-t", topic, "--to-latest", "--execute")
    assert ok(bootstrap_servers, "groups", "delete", group) == f"deleted group {group}\n"
    groups = [line.split()[0] for line in ok(bootstrap_servers, "groups", "list").splitlines()]
    assert group not in groups
    line = one_error_line(run(bootstrap_servers, "groups", "describe", group))
    assert group in line


# -- failures --------------------------------------------------------------------------------


def test_producing_to_a_missing_topic_is_one_error_line(bootstrap_servers: str, topic: str) -> None:
    line = one_error_line(run(bootstrap_servers, "produce", topic, input="lost?\n"))
    assert "UNKNOWN_TOPIC_OR_PARTITION" in line and repr(topic) in line
    assert "--allow-auto-topic-creation" in line
    assert topic not in ok(bootstrap_servers, "topics", "list").splitlines()


def test_producing_with_auto_creation_creates_the_topic(bootstrap_servers: str, topic: str) -> None:
    ok(bootstrap_servers, "produce", topic, "--allow-auto-topic-creation", input="made\n")
    assert topic in ok(bootstrap_servers, "topics", "list").splitlines()


@pytest.mark.parametrize(
    "command",
    [
        ["consume", "{topic}"],
        ["consume", "{topic}", "--group", "g-{topic}"],
        ["topics", "describe", "{topic}"],
        ["topics", "delete", "{topic}"],
    ],
    ids=["consume", "consume-group", "describe", "delete"],
)
def test_a_missing_topic_is_one_error_line_naming_it(
    bootstrap_servers: str, topic: str, command: list[str]
) -> None:
    args = [part.format(topic=topic) for part in command]
    line = one_error_line(run(bootstrap_servers, *args, timeout=30))
    assert "UNKNOWN_TOPIC_OR_PARTITION" in line and repr(topic) in line


def test_a_missing_partition_is_one_error_line_naming_it(
    bootstrap_servers: str, topic: str
) -> None:
    create_topic(bootstrap_servers, topic, partitions=2)
    for command in (["produce", topic, "-p", "5"], ["consume", topic, "-p", "5"]):
        line = one_error_line(run(bootstrap_servers, *command, input=""))
        assert "partition 5" in line and "partitions 0 to 1" in line


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "list"],
        ["topics", "create", "t"],
        ["produce", "t"],
        ["consume", "t"],
        ["consume", "t", "--group", "g"],
        ["groups", "list"],
    ],
    ids=lambda c: "-".join(c),
)
def test_an_unreachable_broker_fails_quickly_with_one_line(command: list[str]) -> None:
    address = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    done = run(address, *command, input="x\n", timeout=30)
    assert time.monotonic() - started < 20
    line = one_error_line(done)
    assert address in line


def test_without_a_broker_address_it_is_a_usage_error() -> None:
    done = run(None, "topics", "list")
    assert done.returncode == 2
    assert "--bootstrap-server" in done.stderr and "AIOMQ_BOOTSTRAP_SERVERS" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_broker_can_be_named_before_or_after_the_command(
    bootstrap_servers: str, topic: str
) -> None:
    create_topic(bootstrap_servers, topic)
    for args in (
        ["-b", bootstrap_servers, "topics", "list"],
        ["topics", "list", "-b", bootstrap_servers],
    ):
        assert topic in ok(None, *args).splitlines()


@pytest.mark.parametrize(
    "command",
    [
        ["consume", "t", "--offset", "soon"],
        ["consume", "t", "--format", "%x"],
        ["consume", "t", "--format", "%s", "--json"],
        ["consume", "t", "--group", "g", "--partition", "1"],
        ["consume", "t", "--group", "g", "--offset", "5"],
        ["consume", "t", "--max-messages", "0"],
        ["produce", "t", "-H", "no-equals-sign"],
        ["produce", "t", "--acks", "2"],
        ["produce", "t", "/no/such/file"],
        ["topics", "create", "t", "--partitions", "0"],
        ["topics", "create", "t", "--config", "oops"],
        ["topics", "alter", "t"],
        ["groups", "reset-offsets", "g", "--topic", "t"],
        ["groups", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"],
        ["groups", "reset-offsets", "g", "-t", "t", "--to-datetime", "Tuesday"],
        ["no-such-command"],
    ],
    ids=lambda c: " ".join(c),
)
def test_malformed_arguments_exit_2_without_touching_the_broker(command: list[str]) -> None:
    done = run(f"127.0.0.1:{closed_port()}", *command)
    assert done.returncode == 2, done.stderr
    assert "Error:" in done.stderr and "Traceback" not in done.stderr


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_help_on_every_command_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    from aiomq._cli.app import cli
    from aiomq.cli import main

    paths = [(), *_commands(cli)]
    assert len(paths) > 14
    for path in paths:
        assert main([*path, "--help"]) == 0
        out = capsys.readouterr().out
        assert "Example" in out, path
        assert f"aiomq {' '.join(path)}".strip() in out, path


def test_without_click_the_command_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['click'] = None; from aiomq.cli import main; "
        "raise SystemExit(main(['topics', 'list']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: the aiomq command line needs click and rich: pip install 'aiomq[cli]'"
    ]


# -- signals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_a_group_consumer_cleanly_committing_what_it_printed(
    bootstrap_servers: str,
    topic: str,
    started: list[subprocess.Popen[bytes]],
    signum: signal.Signals,
    status: int,
) -> None:
    group = f"g-{topic}"
    create_topic(bootstrap_servers, topic)

    # 600 kB of output: more than a pipe holds, so the signal comes while the consumer
    # is still printing (blocked on the pipe until the test reads on).
    padding = b" " + b"x" * 200

    async def fill() -> None:
        async with aiomq.Writer(brokers=[bootstrap_servers], topic=topic) as writer:
            await writer.write_messages(
                *(aiomq.Message(value=b"%d" % i + padding) for i in range(3000))
            )

    asyncio.run(fill())
    process = subprocess.Popen(
        [*_command(script=True), "consume", topic, "--group", group, "--from-beginning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(bootstrap_servers),
    )
    started.append(process)
    lines = LineReader(process.stdout)  # type: ignore[arg-type]  # a pipe was asked for
    lines.wait_for(10)
    process.send_signal(signum)
    assert process.wait(timeout=30) == status
    printed = lines.rest()
    stderr = process.stderr.read().decode()  # type: ignore[union-attr]
    assert "Traceback" not in stderr
    assert re.fullmatch(rf"read {len(printed)} messages in \d+\.\d\d s\n", stderr), stderr
    assert [int(line.split()[0]) for line in printed] == list(range(len(printed)))
    assert committed(bootstrap_servers, group, topic) == {0: len(printed)}


def test_ctrl_c_stops_a_producer_with_a_summary_of_what_was_written(
    bootstrap_servers: str, topic: str, started: list[subprocess.Popen[bytes]]
) -> None:
    create_topic(bootstrap_servers, topic)
    process = subprocess.Popen(
        [*_command(script=False), "produce", topic],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(bootstrap_servers),
    )
    started.append(process)
    assert process.stdin is not None
    process.stdin.write(b"typed\n")
    process.stdin.flush()

    async def first_message() -> aiomq.Message:
        async with aiomq.Reader(brokers=[bootstrap_servers], topic=topic, partition=0) as reader:
            async with asyncio.timeout(30):
                return await reader.fetch_message()

    assert asyncio.run(first_message()).value == b"typed"
    process.send_signal(signal.SIGINT)  # stdin is still open: the producer waits for input
    assert process.wait(timeout=30) == 130
    stderr = process.stderr.read().decode()  # type: ignore[union-attr]
    assert "Traceback" not in stderr
    assert re.fullmatch(rf"wrote 1 message \(5 bytes\) to {topic} in .*\n", stderr), stderr


def test_the_broker_command_serves_until_ctrl_c(started: list[subprocess.Popen[bytes]]) -> None:
    process = subprocess.Popen(
        [*_command(script=True), "broker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(None),
    )
    started.append(process)
    lines = LineReader(process.stdout)  # type: ignore[arg-type]
    first = lines.wait_for(1)[0].decode()
    found = re.search(r"listening on (\S+:\d+)", first)
    assert found, first
    address = found.group(1)
    ok(address, "topics", "create", "from-the-cli")
    assert ok(address, "topics", "list") == "from-the-cli\n"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert "Traceback" not in process.stderr.read().decode()  # type: ignore[union-attr]
