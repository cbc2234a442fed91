"""How `aiomq dlq` takes a dead letter apart, lists it and rebuilds the message to replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiomq import DEAD_LETTER_HEADERS, Message
from aiomq._cli.dead_letter import HEADER_PREFIX, SHOW_COLUMNS, DeadLetter

ORIGIN = (
    "orders",
    "2",
    "41",
    "billing.errors.Unpayable",
    "card declined:\n  insufficient funds",
    "5",
    "2024-05-01T12:00:00.000001+00:00",
    "2024-05-01T12:00:09.876543+00:00",
)


def dead_letter(*extra: tuple[str, bytes], key: bytes | None = b"user-1") -> Message:
    headers = [("trace", b"abc"), ("source", b"web")]
    headers += [(n, v.encode()) for n, v in zip(DEAD_LETTER_HEADERS, ORIGIN, strict=True)]
    return Message(
        topic="orders.dlq",
        partition=1,
        offset=7,
        key=key,
        value=b'{"id": 1}',
        headers=[*headers, *extra],
        time=datetime(2024, 5, 1, 12, 0, 10, tzinfo=UTC),
    )


def test_every_dead_letter_header_fills_its_field() -> None:
    assert all(name.startswith(HEADER_PREFIX) for name in DEAD_LETTER_HEADERS)
    letter = DeadLetter.of(dead_letter())
    assert (letter.origin_topic, letter.origin_partition, letter.origin_offset) == ("orders", 2, 41)
    assert letter.error_type == "billing.errors.Unpayable"
    assert letter.error_message == "card declined:\n  insufficient funds"
    assert letter.attempts == 5
    assert letter.first_failure == "2024-05-01T12:00:00.000001+00:00"
    assert letter.last_failure == "2024-05-01T12:00:09.876543+00:00"
    assert letter.headers == (("trace", b"abc"), ("source", b"web"))


def test_the_last_of_repeated_headers_counts_and_every_aiomq_dlq_header_is_dropped() -> None:
    letter = DeadLetter.of(
        dead_letter(
            ("after", b"1"),
            ("aiomq.dlq.topic", b"orders.dlq"),
            ("aiomq.dlq.something.new", b"x"),
        )
    )
    assert letter.origin_topic == "orders.dlq"
    assert letter.headers == (("trace", b"abc"), ("source", b"web"), ("after", b"1"))


def test_a_message_without_dead_letter_headers_has_no_origin() -> None:
    plain = Message(topic="t", partition=0, offset=3, key=b"k", value=b"v", headers=[("h", b"1")])
    letter = DeadLetter.of(plain)
    assert letter.origin_topic is None
    assert letter.origin_offset is letter.attempts is None
    assert letter.headers == (("h", b"1"),)
    assert letter.to_row() == (0, 3, None, None, None, None, None, None, "k", None)


def test_numbers_that_are_not_numbers_are_unknown() -> None:
    letter = DeadLetter.of(
        dead_letter(("aiomq.dlq.partition", b"two"), ("aiomq.dlq.attempts", b"\xff"))
    )
    assert (letter.origin_partition, letter.attempts) == (None, None)
    assert letter.origin_offset == 41


def test_the_replayed_message_has_the_same_key_and_value_and_only_its_own_headers() -> None:
    replayed = DeadLetter.of(dead_letter()).replayed_to("orders.retry")
    assert replayed == Message(
        topic="orders.retry",
        key=b"user-1",
        value=b'{"id": 1}',
        headers=(("trace", b"abc"), ("source", b"web")),
    )
    assert (replayed.partition, replayed.time) == (-1, None)  # placed and stamped anew


def test_a_row_shortens_the_error_to_one_line_and_the_type_to_its_name() -> None:
    row = DeadLetter.of(
        dead_letter(("aiomq.dlq.error.message", b"why " * 30 + b"\n\tand more"))
    ).to_row()
    assert len(row) == len(SHOW_COLUMNS)
    assert row[:8] == (1, 7, "orders", 2, 41, 5, "2024-05-01T12:00:09.876Z", "Unpayable")
    assert row[8] == "user-1"
    assert isinstance(row[9], str)
    assert len(row[9]) == 60 and row[9].endswith("...") and "\n" not in row[9]
    short = DeadLetter.of(dead_letter()).to_row()
    assert short[9] == "card declined: insufficient funds"


def test_a_row_shows_odd_keys_so_that_the_columns_hold() -> None:
    def key_cell(key: bytes | None) -> object:
        return DeadLetter.of(dead_letter(key=key)).to_row()[8]

    assert key_cell(None) is None
    assert key_cell(b"") == '""'
    assert key_cell(b"two\nlines") == '"two\\nlines"'
    assert key_cell(b"\xff\x00") == "base64:/wA="
    assert key_cell("clé".encode()) == "clé"


def test_a_failure_time_that_is_not_iso_8601_is_shown_as_written() -> None:
    row = DeadLetter.of(dead_letter(("aiomq.dlq.last_failure", b"yesterday"))).to_row()
    assert row[6] == "yesterday"


def test_the_json_line_holds_everything_in_full() -> None:
    record = json.loads(DeadLetter.of(dead_letter(key=b"\xff")).to_json())
    assert record == {
        "topic": "orders.dlq",
        "partition": 1,
        "offset": 7,
        "timestamp": "2024-05-01T12:00:10.000Z",
        "origin_topic": "orders",
        "origin_partition": 2,
        "origin_offset": 41,
        "attempts": 5,
        "error_type": "billing.errors.Unpayable",
        "error_message": "card declined:\n  insufficient funds",
        "first_failure": "2024-05-01T12:00:00.000001+00:00",
        "last_failure": "2024-05-01T12:00:09.876543+00:00",
        "key": {"base64": "/w=="},
        "value": '{"id": 1}',
        "headers": [["trace", "abc"], ["source", "web"]],
    }
