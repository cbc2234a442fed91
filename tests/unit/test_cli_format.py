"""The command line's parsing and rendering: format strings, JSON lines, offsets, tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from aiomq import FIRST_OFFSET, LAST_OFFSET, Message
from aiomq._cli.format import (
    compile_format,
    decode_bytes,
    encode_bytes,
    parse_datetime,
    parse_header,
    parse_key_value,
    parse_offset,
    render_json,
    render_value,
    split_line,
    table_lines,
)

WHEN = datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC)
MESSAGE = Message(
    topic="orders",
    partition=2,
    offset=41,
    key=b"user-1",
    value=b"hello",
    headers=(("source", b"web"), ("trace", b"abc")),
    time=WHEN,
)


def test_a_format_string_renders_every_kcat_token() -> None:
    render = compile_format("%t|%p|%o|%T|%k|%s|%h|%K|%S|%%\\n")
    assert render(MESSAGE) == (
        b"orders|2|41|1714564800123|user-1|hello|source=web,trace=abc|6|5|%\n"
    )


def test_a_format_string_adds_nothing_after_the_message() -> None:
    assert compile_format("%s")(MESSAGE) == b"hello"


def test_format_escapes_stand_for_their_characters() -> None:
    assert compile_format("%k\\t%s\\r\\n\\\\\\0")(MESSAGE) == b"user-1\thello\r\n\\\0"


def test_null_key_and_value_print_as_nothing_with_length_minus_one() -> None:
    tombstone = MESSAGE._replace(key=None, value=None, headers=())
    assert compile_format("[%k][%s][%h] %K %S")(tombstone) == b"[][][] -1 -1"


def test_a_format_string_passes_raw_bytes_and_non_ascii_text_through() -> None:
    binary = MESSAGE._replace(value=b"\xff\x00")
    assert compile_format("é %s")(binary) == "é ".encode() + b"\xff\x00"


@pytest.mark.parametrize("spec", ["%x", "100%", "trailing \\", "\\q"])
def test_a_malformed_format_string_is_refused_with_the_reason(spec: str) -> None:
    with pytest.raises(ValueError, match="format string"):
        compile_format(spec)


def test_the_default_output_is_the_value_and_a_newline() -> None:
    assert render_value(MESSAGE) == b"hello\n"
    assert render_value(MESSAGE._replace(value=None)) == b"\n"


def test_a_json_line_holds_every_field_with_utf8_text_as_strings() -> None:
    line = render_json(MESSAGE)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "topic": "orders",
        "partition": 2,
        "offset": 41,
        "timestamp": "2024-05-01T12:00:00.123Z",
        "key": "user-1",
        "value": "hello",
        "headers": [["source", "web"], ["trace", "abc"]],
    }


def test_json_marks_bytes_that_are_not_utf8_as_base64() -> None:
    binary = MESSAGE._replace(key=None, value=b"\xff\x00", headers=(("bin", b"\xfe"),))
    record = json.loads(render_json(binary))
    assert record["key"] is None
    assert record["value"] == {"base64": "/wA="}
    assert record["headers"] == [["bin", {"base64": "/g=="}]]
    assert decode_bytes(record["value"]) == b"\xff\x00"


def test_json_keeps_non_ascii_text_readable() -> None:
    record = render_json(MESSAGE._replace(value="grüße".encode()))
    assert "grüße".encode() in record


@pytest.mark.parametrize(
    "data", [None, b"", b"text", "ünï".encode(), b"\x80\x81", bytes(range(256))]
)
def test_encoded_bytes_decode_back_to_the_same_bytes(data: bytes | None) -> None:
    assert decode_bytes(encode_bytes(data)) == data


def test_json_timestamps_are_utc_whatever_the_zone() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=2)))
    assert json.loads(render_json(MESSAGE._replace(time=local)))["timestamp"] == (
        "2024-05-01T12:00:00.123Z"
    )


def test_a_line_splits_at_the_first_key_separator() -> None:
    assert split_line(b"k:v:w", b":") == (b"k", b"v:w")
    assert split_line(b":v", b":") == (b"", b"v")
    assert split_line(b"k::v", b"::") == (b"k", b"v")


def test_a_line_without_the_separator_is_all_value_with_a_null_key() -> None:
    assert split_line(b"just a value", b":") == (None, b"just a value")
    assert split_line(b"k:v", None) == (None, b"k:v")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("beginning", FIRST_OFFSET),
        ("earliest", FIRST_OFFSET),
        ("end", LAST_OFFSET),
        ("latest", LAST_OFFSET),
        ("0", 0),
        ("42", 42),
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        (
            "2024-05-01T14:00:00+02:00",
            datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_an_offset_is_a_word_a_number_or_a_time(text: str, expected: object) -> None:
    assert parse_offset(text) == expected


@pytest.mark.parametrize("text", ["-3", "soon", "12abc", ""])
def test_a_malformed_offset_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="offset must be"):
        parse_offset(text)


def test_a_time_without_a_zone_is_local_time() -> None:
    parsed = parse_datetime("2024-05-01T12:00:00")
    assert parsed.tzinfo is not None
    assert parsed.replace(tzinfo=None) == datetime(2024, 5, 1, 12)


def test_a_malformed_time_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_datetime("yesterday")


def test_key_value_options_split_at_the_first_equals_sign() -> None:
    assert parse_key_value("retention.ms=1000", "a config") == ("retention.ms", "1000")
    assert parse_key_value("a=b=c", "a config") == ("a", "b=c")
    assert parse_key_value("empty=", "a config") == ("empty", "")
    assert parse_header("trace=x=1") == ("trace", b"x=1")


@pytest.mark.parametrize("text", ["novalue", "=value"])
def test_a_key_value_option_without_a_name_and_equals_sign_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_key_value(text, "a header")


def test_tables_align_columns_and_show_missing_values_as_dashes() -> None:
    assert table_lines(["TOPIC", "PARTITION", "LAG"], [("orders", 0, 12), ("o", 10, None)]) == [
        "TOPIC   PARTITION  LAG",
        "orders  0          12",
        "o       10         -",
    ]
