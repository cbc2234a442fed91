"""Dead letters as `Reader.process` writes them, taken apart for `aiomq dlq`: pure
functions, no I/O, so that they can be tested without a broker (tests/unit/test_cli_dlq.py).

A dead letter holds the key, value and headers of the message that failed, followed by
the headers of `aiomq.processing.DEAD_LETTER_HEADERS`: where it came from, why and when it
failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from aiomq._cli.format import encode_bytes, iso_time
from aiomq.message import Header, Message

__all__ = ["HEADER_PREFIX", "SHOW_COLUMNS", "DeadLetter"]

HEADER_PREFIX: Final = "aiomq.dlq."
"""Every header `Reader.process` adds to a dead letter starts with this; replay removes
every header that does."""

_FIELDS: Final = {
    "aiomq.dlq.topic": "origin_topic",
    "aiomq.dlq.partition": "origin_partition",
    "aiomq.dlq.offset": "origin_offset",
    "aiomq.dlq.error.type": "error_type",
    "aiomq.dlq.error.message": "error_message",
    "aiomq.dlq.attempts": "attempts",
    "aiomq.dlq.first_failure": "first_failure",
    "aiomq.dlq.last_failure": "last_failure",
}
"""Which `DeadLetter` field each header of `DEAD_LETTER_HEADERS` fills."""

_NUMBERS: Final = frozenset({"origin_partition", "origin_offset", "attempts"})

SHOW_COLUMNS: Final = (
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
)
"""The columns of `aiomq dlq show`; the error comes last, since it holds spaces."""

_ERROR_WIDTH: Final = 60
"""The most characters of an error's text in a row."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetter:
    """One message of a dead-letter topic, with its dead-letter headers taken apart.

    Every field read from a header is None when the header is missing (or, for numbers,
    not a decimal number). When a header occurs more than once (a message dead-lettered
    again from a dead-letter topic), the last one counts: it describes the latest failure.
    """

    message: Message
    """The message as read from the dead-letter topic."""

    headers: tuple[Header, ...]
    """The message's own headers: those not starting with `HEADER_PREFIX`, in order."""

    origin_topic: str | None = None
    origin_partition: int | None = None
    origin_offset: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    attempts: int | None = None
    first_failure: str | None = None
    last_failure: str | None = None

    @classmethod
    def of(cls, message: Message) -> DeadLetter:
        """Take a message of a dead-letter topic apart; never fails."""
        own: list[Header] = []
        found: dict[str, Any] = {}
        for name, value in message.headers:
            if not name.startswith(HEADER_PREFIX):
                own.append((name, value))
                continue
            target = _FIELDS.get(name)
            if target is None:
                continue
            text = "" if value is None else bytes(value).decode(errors="replace")
            found[target] = _number(text) if target in _NUMBERS else text
        return cls(message=message, headers=tuple(own), **found)

    def replayed_to(self, topic: str) -> Message:
        """The message to write to `topic`: the same key and value, its own headers only,
        and no partition (the writer's balancer places it by key, as a producer would)."""
        return Message(
            topic=topic, key=self.message.key, value=self.message.value, headers=self.headers
        )

    @property
    def where(self) -> str:
        """The message's place in the dead-letter topic: `topic[partition]@offset`."""
        m = self.message
        return f"{m.topic}[{m.partition}]@{m.offset}"

    def to_row(self) -> tuple[object, ...]:
        """The message as a row under `SHOW_COLUMNS`; None where a value is unknown."""
        error = None
        if self.error_message is not None:
            error = " ".join(self.error_message.split())
            if len(error) > _ERROR_WIDTH:
                error = error[: _ERROR_WIDTH - 3] + "..."
        return (
            self.message.partition,
            self.message.offset,
            self.origin_topic,
            self.origin_partition,
            self.origin_offset,
            self.attempts,
            None if self.last_failure is None else _time(self.last_failure),
            None if self.error_type is None else self.error_type.rpartition(".")[2],
            _key(self.message.key),
            error,
        )

    def to_json(self) -> str:
        """The message as one JSON object (without a newline): the fields of `consume
        --json`, with `headers` holding only the message's own, and the dead-letter
        headers as fields of their own, in full, null when missing."""
        m = self.message
        record: dict[str, Any] = {
            "topic": m.topic,
            "partition": m.partition,
            "offset": m.offset,
            "timestamp": None if m.time is None else iso_time(m.time),
            "origin_topic": self.origin_topic,
            "origin_partition": self.origin_partition,
            "origin_offset": self.origin_offset,
            "attempts": self.attempts,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "first_failure": self.first_failure,
            "last_failure": self.last_failure,
            "key": encode_bytes(m.key),
            "value": encode_bytes(m.value),
            "headers": [[name, encode_bytes(value)] for name, value in self.headers],
        }
        return json.dumps(record, ensure_ascii=False)


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdecimal() and text.isascii() else None


def _time(text: str) -> str:
    """An ISO-8601 time as `iso_time` writes it (UTC, milliseconds); anything else as is."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return text
    return text if when.tzinfo is None else iso_time(when)


def _key(key: bytes | None) -> str | None:
    """A key for a table cell: its text, quoted when it is empty or not printable, and
    `base64:...` when it is not UTF-8."""
    shown = encode_bytes(key)
    if shown is None or (isinstance(shown, str) and shown and shown.isprintable()):
        return shown
    if isinstance(shown, dict):
        return "base64:" + shown["base64"]
    return json.dumps(shown, ensure_ascii=False)
