"""Parsing and rendering for the `aiomq` command line: pure functions, no I/O, no network.

Everything here turns text typed by a user into values, or messages into bytes to print,
so that it can be tested without a broker (tests/unit/test_cli_format.py).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from aiomq.message import FIRST_OFFSET, LAST_OFFSET, Header, Message, to_millis

__all__ = [
    "Renderer",
    "compile_format",
    "encode_bytes",
    "parse_datetime",
    "parse_header",
    "parse_key_value",
    "parse_offset",
    "render_json",
    "render_value",
    "split_line",
    "table_lines",
]

Renderer = Callable[[Message], bytes]
"""Turns one message into the bytes to write to stdout."""

FORMAT_TOKENS: Final = {
    "k": "key",
    "s": "value",
    "t": "topic",
    "p": "partition",
    "o": "offset",
    "T": "timestamp (milliseconds since the epoch)",
    "h": "headers (name=value,name=value)",
    "K": "key length in bytes (-1 for a null key)",
    "S": "value length in bytes (-1 for a null value)",
    "%": "a literal %",
}
"""The `%x` tokens of a `--format` string, kcat's, with what each prints."""

_ESCAPES: Final = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", "0": b"\0"}


# -- parsing ---------------------------------------------------------------------------------


def parse_key_value(text: str, what: str) -> tuple[str, str]:
    """Split `name=value` at the first '=', as `--config` and `-H` take them.

    Raises:
        ValueError: There is no '=' or the name is empty; the message quotes the input.
    """
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"{what} must look like NAME=VALUE, not {text!r}")
    return name, value


def parse_header(text: str) -> Header:
    """Parse `-H name=value` into a record header; the value is encoded as UTF-8."""
    name, value = parse_key_value(text, "a header")
    return name, value.encode()


def parse_datetime(text: str) -> datetime:
    """Parse an ISO-8601 time, such as 2024-05-01T12:00:00Z or 2024-05-01T14:00+02:00.

    A time without a zone is read in the local time zone, as kafka-consumer-groups reads
    `--to-datetime`; a bare date means its midnight.

    Raises:
        ValueError: The text is not an ISO-8601 time.
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO-8601 time (for example 2024-05-01T12:00:00Z)"
        ) from None
    return when.astimezone() if when.tzinfo is None else when


def parse_offset(text: str) -> int | datetime:
    """Parse `--offset`: beginning, end, an offset (0 or more), or an ISO-8601 time.

    Returns:
        FIRST_OFFSET, LAST_OFFSET, the offset, or a timezone-aware datetime.

    Raises:
        ValueError: The text is none of these.
    """
    word = text.strip().lower()
    if word in ("beginning", "earliest", "first"):
        return FIRST_OFFSET
    if word in ("end", "latest", "last"):
        return LAST_OFFSET
    if word.isdigit():
        return int(word)
    try:
        return parse_datetime(text)
    except ValueError:
        raise ValueError(
            f"offset must be beginning, end, an offset (0 or more) or an ISO-8601 time, "
            f"not {text!r}"
        ) from None


def split_line(line: bytes, key_separator: bytes | None) -> tuple[bytes | None, bytes]:
    """Split one input line into key and value, as kcat's `-K` does.

    The line is split at the first separator; a line without one is all value, with a
    null key. Without a separator, every line is all value.
    """
    if key_separator is None:
        return None, line
    key, sep, value = line.partition(key_separator)
    if not sep:
        return None, line
    return key, value


# -- rendering messages ----------------------------------------------------------------------


def render_value(message: Message) -> bytes:
    """The default output: the value and a newline (a null value prints as an empty line)."""
    return (message.value or b"") + b"\n"


def compile_format(spec: str) -> Renderer:
    """Compile a kcat-style format string into a renderer.

    Tokens are those of `FORMAT_TOKENS`; the escapes \\n, \\t, \\r, \\0 and \\\\ stand
    for their characters. As in kcat, nothing is added at the end: finish the format with
    \\n for one message per line. Null keys and values print as nothing.

    Raises:
        ValueError: The string has an unknown token or ends in a lone % or \\.
    """
    parts: list[bytes | str] = []
    literal = bytearray()
    i = 0
    while i < len(spec):
        char = spec[i]
        if char in "%\\":
            if i + 1 >= len(spec):
                raise ValueError(f"format string {spec!r} ends with a lone {char!r}")
            code = spec[i + 1]
            i += 2
            if char == "\\":
                if code not in _ESCAPES:
                    raise ValueError(
                        f"unknown escape \\{code} in format string {spec!r}; "
                        "use \\n, \\t, \\r, \\0 or \\\\"
                    )
                literal += _ESCAPES[code]
            elif code == "%":
                literal += b"%"
            elif code in FORMAT_TOKENS:
                if literal:
                    parts.append(bytes(literal))
                    literal.clear()
                parts.append(code)
            else:
                known = " ".join(f"%{t}" for t in FORMAT_TOKENS)
                raise ValueError(
                    f"unknown token %{code} in format string {spec!r}; known tokens: {known}"
                )
            continue
        literal += char.encode()
        i += 1
    if literal:
        parts.append(bytes(literal))
    frozen = tuple(parts)

    def render(message: Message) -> bytes:
        out = bytearray()
        for part in frozen:
            if isinstance(part, bytes):
                out += part
            else:
                out += _token(part, message)
        return bytes(out)

    return render


def _token(code: str, message: Message) -> bytes:
    if code == "k":
        return message.key or b""
    if code == "s":
        return message.value or b""
    if code == "t":
        return message.topic.encode()
    if code == "p":
        return str(message.partition).encode()
    if code == "o":
        return str(message.offset).encode()
    if code == "T":
        millis = -1 if message.time is None else to_millis(message.time)
        return str(millis).encode()
    if code == "h":
        return b",".join(name.encode() + b"=" + bytes(value) for name, value in message.headers)
    if code == "K":
        return str(-1 if message.key is None else len(message.key)).encode()
    # "S", the only token left
    return str(-1 if message.value is None else len(message.value)).encode()


def encode_bytes(data: bytes | None) -> str | dict[str, str] | None:
    """Encode bytes for JSON: a string when they are UTF-8, else `{"base64": "..."}`."""
    if data is None:
        return None
    try:
        return bytes(data).decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def decode_bytes(value: str | dict[str, str] | None) -> bytes | None:
    """Undo `encode_bytes` (for tools that read `--json` output back).

    Raises:
        ValueError: The value is neither a string, None, nor a `{"base64": ...}` object.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and set(value) == {"base64"}:
        try:
            return base64.b64decode(value["base64"], validate=True)
        except binascii.Error as exc:
            raise ValueError(f"invalid base64 in {value!r}") from exc
    raise ValueError(f"not an encoded byte string: {value!r}")


def render_json(message: Message) -> bytes:
    """One JSON object and a newline: topic, partition, offset, timestamp, key, value,
    headers.

    Keys, values and header values are strings when they are valid UTF-8 and
    `{"base64": "..."}` objects otherwise; null stays null. The timestamp is ISO-8601 in
    UTC with milliseconds. Headers are `[name, value]` pairs, in order (names may repeat).
    """
    record: dict[str, Any] = {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": None if message.time is None else iso_time(message.time),
        "key": encode_bytes(message.key),
        "value": encode_bytes(message.value),
        "headers": [[name, encode_bytes(value)] for name, value in message.headers],
    }
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def iso_time(when: datetime) -> str:
    """An ISO-8601 UTC time with milliseconds, ending in Z."""
    text = when.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


# -- tables ----------------------------------------------------------------------------------


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Lay out rows under headers in columns separated by two spaces (plain text, for
    pipes and files: `awk` and `cut` can read it). Trailing spaces are trimmed."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _cell(value: object) -> str:
    return "-" if value is None else str(value)
