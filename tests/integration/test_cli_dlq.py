"""`aiomq dlq show` and `aiomq dlq replay`, run in subprocesses against a real broker, on
dead-letter topics written by `Reader.process` or, for the odd cases, written directly."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from aiomq import DEAD_LETTER_HEADERS, Message, Reader, Retry, Writer
from tests.integration.test_cli import committed, create_topic, ok, one_error_line, run
from tests.integration.test_reader import GROUP_OPTIONS
from tests.support.waiting import wait_until

BAD = {2, 5, 9}
"""The orders whose handler always fails, in `dead_letters_of_a_real_run`."""

COUNT = 12
LONG_REASON = "the total is not a number, and the rest of this text only makes it long: " + (
    "x" * 40
)


def reason(order: int) -> str:
    return f"cannot parse order {order}: {LONG_REASON}"


def dead_letters_of_a_real_run(bootstrap: str, topic: str) -> tuple[str, list[Message]]:
    """Write COUNT orders to `topic` (2 partitions), process them with a handler that
    fails the BAD ones, into `topic`.dlq (2 partitions); return the dlq and the messages
    as written to `topic`."""
    dlq = f"{topic}.dlq"
    create_topic(bootstrap, topic, partitions=2)
    create_topic(bootstrap, dlq, partitions=2)

    async def main() -> list[Message]:
        orders = [
            Message(
                key=f"k{i % 4}".encode(),
                value=f"order-{i}".encode(),
                headers=[("trace", f"t{i}".encode())],
            )
            for i in range(COUNT)
        ]
        async with Writer(brokers=[bootstrap], topic=topic) as writer:
            written = await writer.write_messages(*orders)

        async def handle(message: Message) -> None:
            order = int((message.value or b"").decode().removeprefix("order-"))
            if order in BAD:
                raise ValueError(reason(order))

        async with Reader(
            brokers=[bootstrap], topic=topic, group_id=f"g-{topic}", **GROUP_OPTIONS
        ) as reader:
            task = asyncio.create_task(
                reader.process(
                    handle,
                    retry=Retry(attempts=2, backoff_min=0.01, backoff_max=0.02),
                    dead_letter=dlq,
                )
            )

            def finished() -> bool:
                stats = reader.stats().processing
                return stats is not None and stats.finished == COUNT

            await wait_until(finished, "every order is handled or dead-lettered")
            await reader.aclose()
            await task
        return written

    return dlq, asyncio.run(main())


def letter(origin: str | None, number: int, *, partition: int = -1) -> Message:
    """A dead letter written directly: its own header, then those `Reader.process` adds
    (none when `origin` is None)."""
    headers = [("trace", f"t{number}".encode())]
    if origin is not None:
        values = [
            origin,
            "0",
            str(number),
            "builtins.ValueError",
            f"bad {number}",
            "3",
            "2026-05-01T12:00:00.000001+00:00",
            "2026-05-01T12:00:01.500000+00:00",
        ]
        headers += [(n, v.encode()) for n, v in zip(DEAD_LETTER_HEADERS, values, strict=True)]
    return Message(key=b"k%d" % number, value=b"v%d" % number, headers=headers, partition=partition)


def write(bootstrap: str, topic: str, messages: Sequence[Message], *, batch: int = 1) -> None:
    """Write `messages` in calls of `batch`, so that record batches hold several records."""

    async def main() -> None:
        async with Writer(brokers=[bootstrap], topic=topic) as writer:
            for start in range(0, len(messages), batch):
                await writer.write_messages(*messages[start : start + batch])

    asyncio.run(main())


def everything(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every message of `topic`, as `consume --json` gives them."""
    out = ok(bootstrap, "consume", topic, "--from-beginning", "--exit-at-end", "--json")
    return [json.loads(line) for line in out.splitlines()]


def table(out: str) -> list[list[str]]:
    """The rows of a plain table below its header, split at runs of spaces; the last
    column (the error of `dlq show`) keeps its own spaces."""
    lines = out.splitlines()
    width = len(lines[0].split())
    return [line.split(maxsplit=width - 1) for line in lines[1:]]


# -- show ------------------------------------------------------------------------------------


def test_show_prints_a_row_per_dead_letter_with_its_origin_and_a_shortened_error(
    bootstrap_servers: str, topic: str
) -> None:
    dlq, written = dead_letters_of_a_real_run(bootstrap_servers, topic)
    done = run(bootstrap_servers, "dlq", "show", dlq)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == [
        "PARTITION",
        "OFFSET",
        "ORIGIN-TOPIC",
        "ORIGIN-PARTITION",
        "ORIGIN-OFFSET",
        "ATTEMPTS",
        "LAST-FAILURE",
        "ERROR-TYPE",
        "KEY",
        "ERROR",
    ]
    rows = table(done.stdout)
    assert len(rows) == len(BAD)
    # In the dead-letter topic's order: by partition, then offset.
    assert [(int(r[0]), int(r[1])) for r in rows] == sorted((int(r[0]), int(r[1])) for r in rows)
    bad = {(m.partition, m.offset): m for i, m in enumerate(written) if i in BAD}
    for row in rows:
        origin = bad.pop((int(row[3]), int(row[4])))
        order = int((origin.value or b"").decode().removeprefix("order-"))
        assert row[2] == topic
        assert row[5] == "2"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row[6]), row[6]
        assert row[7] == "ValueError"
        assert row[8] == (origin.key or b"").decode()
        assert len(row[9]) == 60 and row[9].endswith("...")
        assert reason(order).startswith(row[9].removesuffix("..."))
    assert not bad
    assert re.fullmatch(rf"read 3 messages from {re.escape(dlq)} in \d+\.\d\d s\n", done.stderr)


def test_show_json_gives_each_dead_letter_in_full_with_its_own_headers(
    bootstrap_servers: str, topic: str
) -> None:
    dlq, written = dead_letters_of_a_real_run(bootstrap_servers, topic)
    out = ok(bootstrap_servers, "dlq", "show", dlq, "--json", script=True)
    records = [json.loads(line) for line in out.splitlines()]
    bad = {(m.partition, m.offset): m for i, m in enumerate(written) if i in BAD}
    assert {(r["origin_partition"], r["origin_offset"]) for r in records} == set(bad)
    for record in records:
        origin = bad[(record["origin_partition"], record["origin_offset"])]
        order = int((origin.value or b"").decode().removeprefix("order-"))
        assert record["topic"] == dlq
        assert record["origin_topic"] == topic
        assert record["attempts"] == 2
        assert record["error_type"] == "builtins.ValueError"
        assert record["error_message"] == reason(order)
        assert record["first_failure"] <= record["last_failure"]
        assert record["key"] == (origin.key or b"").decode()
        assert record["value"] == f"order-{order}"
        assert record["headers"] == [["trace", f"t{order}"]]


def test_show_gives_a_message_without_dead_letter_headers_empty_origin_fields(
    bootstrap_servers: str, topic: str
) -> None:
    create_topic(bootstrap_servers, topic)
    write(bootstrap_servers, topic, [letter("orders", 0), letter(None, 1)])
    rows = table(ok(bootstrap_servers, "dlq", "show", topic))
    assert rows == [
        [
            "0",
            "0",
            "orders",
            "0",
            "0",
            "3",
            "2026-05-01T12:00:01.500Z",
            "ValueError",
            "k0",
            "bad 0",
        ],
        ["0", "1", "-", "-", "-", "-", "-", "-", "k1", "-"],
    ]
    plain = json.loads(ok(bootstrap_servers, "dlq", "show", topic, "--json").splitlines()[1])
    assert plain["origin_topic"] is plain["error_message"] is plain["attempts"] is None
    assert plain["headers"] == [["trace", "t1"]]


def test_show_stops_after_max_messages(bootstrap_servers: str, topic: str) -> None:
    create_topic(bootstrap_servers, topic, partitions=2)
    write(
        bootstrap_servers,
        topic,
        [letter("orders", i, partition=i % 2) for i in range(10)],
        batch=5,
    )
    assert len(table(ok(bootstrap_servers, "dlq", "show", topic))) == 10
    rows = table(ok(bootstrap_servers, "dlq", "show", topic, "--max", "3"))
    assert [(r[0], r[1]) for r in rows] == [("0", "0"), ("0", "1"), ("0", "2")]


# -- replay ----------------------------------------------------------------------------------


def test_replay_writes_dead_letters_back_to_their_origin_without_the_dead_letter_headers(
    bootstrap_servers: str, topic: str
) -> None:
    dlq, _written = dead_letters_of_a_real_run(bootstrap_servers, topic)
    done = run(bootstrap_servers, "dlq", "replay", dlq, script=True)
    assert done.returncode == 0, done.stderr
    assert table(done.stdout) == [[topic, "3"]]
    assert re.fullmatch(rf"replayed 3 messages from {re.escape(dlq)} in \d+\.\d\d s\n", done.stderr)

    messages = everything(bootstrap_servers, topic)
    assert len(messages) == COUNT + len(BAD)
    first: dict[str, dict[str, Any]] = {}
    for m in messages:
        first.setdefault(m["value"], m)
    replayed = [m for m in messages if first[m["value"]] is not m]
    assert sorted(m["value"] for m in replayed) == sorted(f"order-{i}" for i in BAD)
    for m in replayed:
        original = first[m["value"]]
        assert m["key"] == original["key"]
        assert m["headers"] == original["headers"]  # its own, and no aiomq.dlq.* header
        assert m["partition"] == original["partition"]  # placed by key, as its producer did
    # The dead-letter topic keeps its messages: Kafka cannot delete them one by one.
    assert len(table(ok(bootstrap_servers, "dlq", "show", dlq))) == len(BAD)


def test_replay_keeps_the_order_of_each_dead_letter_partition(
    bootstrap_servers: str, topic: str
) -> None:
    dlq = f"{topic}.dlq"
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, dlq)
    write(bootstrap_servers, dlq, [letter(topic, i) for i in range(1200)], batch=300)
    done = run(bootstrap_servers, "dlq", "replay", dlq)
    assert done.returncode == 0, done.stderr
    assert table(done.stdout) == [[topic, "1200"]]
    assert [m["value"] for m in everything(bootstrap_servers, topic)] == [
        f"v{i}" for i in range(1200)
    ]


def test_replay_to_writes_every_message_to_the_topic_given(
    bootstrap_servers: str, topic: str
) -> None:
    dlq, retry = f"{topic}.dlq", f"{topic}.retry"
    for name in (topic, dlq, retry):
        create_topic(bootstrap_servers, name)
    write(bootstrap_servers, dlq, [letter(topic, 0), letter(None, 1), letter("elsewhere", 2)])
    done = run(bootstrap_servers, "dlq", "replay", dlq, "--to", retry)
    assert done.returncode == 0, done.stderr
    assert table(done.stdout) == [[retry, "3"]]
    assert [(m["key"], m["value"], m["headers"]) for m in everything(bootstrap_servers, retry)] == [
        ("k0", "v0", [["trace", "t0"]]),
        ("k1", "v1", [["trace", "t1"]]),
        ("k2", "v2", [["trace", "t2"]]),
    ]
    assert everything(bootstrap_servers, topic) == []


def test_a_message_without_an_origin_is_skipped_and_counted(
    bootstrap_servers: str, topic: str
) -> None:
    dlq = f"{topic}.dlq"
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, dlq)
    write(bootstrap_servers, dlq, [letter(topic, 0), letter(None, 1), letter(topic, 2)])
    done = run(bootstrap_servers, "dlq", "replay", dlq)
    assert done.returncode == 0, done.stderr
    assert table(done.stdout) == [[topic, "2"]]
    assert "; 1 without an origin topic skipped (pass --to to replay them)" in done.stderr
    assert [m["value"] for m in everything(bootstrap_servers, topic)] == ["v0", "v2"]


def test_a_dry_run_counts_what_would_be_replayed_and_writes_nothing(
    bootstrap_servers: str, topic: str
) -> None:
    dlq, gone = f"{topic}.dlq", f"{topic}.gone"
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, dlq)
    write(bootstrap_servers, dlq, [letter(topic, 0), letter(None, 1), letter(gone, 2)])
    done = run(bootstrap_servers, "dlq", "replay", dlq, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert table(done.stdout) == [[topic, "1"], [gone, "1"]]
    assert done.stderr.splitlines() == [
        f"dry run: 2 messages of {dlq} would be replayed; 1 without an origin topic would be "
        "skipped (pass --to to replay them); nothing was written",
        f"note: topic {gone!r} does not exist; replaying to it would fail",
    ]
    assert everything(bootstrap_servers, topic) == []


def test_replay_with_a_group_goes_on_where_the_last_run_stopped(
    bootstrap_servers: str, topic: str
) -> None:
    dlq, group = f"{topic}.dlq", f"g-{topic}"
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, dlq, partitions=2)
    write(bootstrap_servers, dlq, [letter(topic, i, partition=i % 2) for i in range(6)], batch=3)
    replay = ["dlq", "replay", dlq, "--group", group]

    def progress() -> int:
        """Messages the group has committed, over both partitions."""
        return sum(max(0, o) for o in committed(bootstrap_servers, group, dlq).values())

    first = run(bootstrap_servers, *replay, "--max", "2")
    assert first.returncode == 0, first.stderr
    assert table(first.stdout) == [[topic, "2"]]
    assert progress() == 2

    dry = run(bootstrap_servers, *replay, "--dry-run")  # starts where the group is
    assert table(dry.stdout) == [[topic, "4"]]
    assert progress() == 2

    second = run(bootstrap_servers, *replay)
    assert table(second.stdout) == [[topic, "4"]]
    assert committed(bootstrap_servers, group, dlq) == {0: 3, 1: 3}
    third = run(bootstrap_servers, *replay)
    assert table(third.stdout) == []
    assert sorted(m["value"] for m in everything(bootstrap_servers, topic)) == [
        f"v{i}" for i in range(6)
    ]


def test_replay_reads_up_to_the_end_the_topic_had_when_it_started(
    bootstrap_servers: str, topic: str
) -> None:
    # Replaying a topic into itself would never end if the end moved with the writes.
    create_topic(bootstrap_servers, topic)
    write(bootstrap_servers, topic, [letter("orders", i) for i in range(50)], batch=10)
    done = run(bootstrap_servers, "dlq", "replay", topic, "--to", topic)
    assert done.returncode == 0, done.stderr
    assert table(done.stdout) == [[topic, "50"]]
    values = [m["value"] for m in everything(bootstrap_servers, topic)]
    assert values == [f"v{i}" for i in range(50)] * 2


def test_a_failed_write_stops_the_replay_and_names_the_message(
    bootstrap_servers: str, topic: str
) -> None:
    dlq, gone = f"{topic}.dlq", f"{topic}.gone"
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, dlq)
    write(
        bootstrap_servers,
        dlq,
        [letter(topic, 0), letter(topic, 1), letter(gone, 2), letter(topic, 3)],
        batch=4,
    )
    done = run(bootstrap_servers, "dlq", "replay", dlq)
    assert done.returncode == 1
    error, summary = done.stderr.splitlines()
    assert error.startswith(f"error: {dlq}[0]@2 not replayed to {gone}: UNKNOWN_TOPIC_OR_PARTITION")
    assert summary.startswith(f"replayed 2 messages from {dlq}")
    assert table(done.stdout) == [[topic, "2"]]
    assert [m["value"] for m in everything(bootstrap_servers, topic)] == ["v0", "v1"]


@pytest.mark.parametrize(
    "command",
    [["dlq", "show", "{topic}"], ["dlq", "replay", "{topic}"], ["dlq", "replay", "{topic}", "-n"]],
    ids=["show", "replay", "dry-run"],
)
def test_a_missing_dead_letter_topic_is_one_error_line_naming_it(
    bootstrap_servers: str, topic: str, command: list[str]
) -> None:
    args = [part.format(topic=topic) for part in command]
    args = ["--dry-run" if a == "-n" else a for a in args]
    line = one_error_line(run(bootstrap_servers, *args, timeout=30))
    assert "UNKNOWN_TOPIC_OR_PARTITION" in line and repr(topic) in line


def test_a_missing_to_topic_is_one_error_line_before_anything_is_read(
    bootstrap_servers: str, topic: str
) -> None:
    create_topic(bootstrap_servers, topic)
    write(bootstrap_servers, topic, [letter("orders", 0)])
    line = one_error_line(run(bootstrap_servers, "dlq", "replay", topic, "--to", f"{topic}.x"))
    assert repr(f"{topic}.x") in line and "--to" in line


@pytest.mark.parametrize(
    "command",
    [
        ["dlq", "show", "t", "--max", "0"],
        ["dlq", "show"],
        ["dlq", "replay", "t", "--to", ""],
        ["dlq", "replay", "t", "--group", ""],
        ["dlq", "replay", "t", "--max", "-1"],
        ["dlq", "nothing", "t"],
    ],
    ids=lambda c: " ".join(c),
)
def test_malformed_dlq_arguments_exit_2(command: list[str]) -> None:
    done = run("127.0.0.1:1", *command)
    assert done.returncode == 2, done.stderr
    assert "Error:" in done.stderr and "Traceback" not in done.stderr


def test_two_replays_with_one_group_share_the_work_and_both_end(
    bootstrap_servers: str, topic: str
) -> None:
    dlq, group = f"{topic}.dlq", f"g-{topic}"
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, dlq, partitions=4)
    count = 400
    write(
        bootstrap_servers, dlq, [letter(topic, i, partition=i % 4) for i in range(count)], batch=50
    )
    env = {
        **os.environ,
        "AIOMQ_BOOTSTRAP_SERVERS": bootstrap_servers,
        "AIOMQ_CLI_SESSION_TIMEOUT": "2",
    }
    command = [sys.executable, "-m", "aiomq", "dlq", "replay", dlq, "--group", group]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    try:
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    replayed = sum(int(row[1]) for out, _ in outputs for row in table(out.decode()))
    values = [m["value"] for m in everything(bootstrap_servers, topic)]
    # At least once: a rebalance while a batch is being written may repeat that batch.
    assert set(values) == {f"v{i}" for i in range(count)}
    assert replayed == len(values)
    assert committed(bootstrap_servers, group, dlq) == dict.fromkeys(range(4), count // 4)
