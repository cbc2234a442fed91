"""The message type shared by readers and writers, and the two symbolic offsets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Any, Final, NamedTuple

__all__ = ["FIRST_OFFSET", "LAST_OFFSET", "Header", "Message"]

FIRST_OFFSET: Final = -2
"""Start from the oldest message still in the partition (kafka-go's `FirstOffset`)."""

LAST_OFFSET: Final = -1
"""Start after the newest message: read only what is written from now on (`LastOffset`)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)


def to_millis(when: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime, exactly.

    Integer arithmetic on the timedelta avoids the float rounding of
    `int(when.timestamp() * 1000)`, which lands some instants a millisecond early.
    """
    return (when - _EPOCH) // _MILLISECOND


_new: Final = tuple.__new__


class _Endless:
    """An endless repetition of one value, made anew for each zip (unlike `repeat`)."""

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        self._value = value

    def __iter__(self) -> Any:
        return repeat(self._value)


_UNSET: Final = _Endless(-1)
_NONES: Final = _Endless(None)

Header = tuple[str, bytes]
"""One record header: a name and a raw value."""


class Message(NamedTuple):
    """One Kafka record, as read by a `Reader` or given to a `Writer`.

    Messages are immutable and cheap to create: they are built for every record read and
    for every record written, so the type is a named tuple rather than a class with
    validation. Use `message._replace(value=...)` to derive a changed copy.

    When writing, only `key`, `value`, `headers`, `time` and `writer_data` matter, plus
    `topic` when the writer has no topic of its own and `partition` when the balancer is
    bypassed on purpose. The remaining fields are filled in by the reader.
    """

    topic: str = ""
    """The topic the message belongs to. Default: "" (the writer's topic)."""

    partition: int = -1
    """The partition the message was read from or written to. When writing, -1 lets the
    writer's balancer choose, and a partition id bypasses it; anything but an int is refused
    with `InvalidMessageError`. Default: -1 (unknown)."""

    offset: int = -1
    """The offset of the message in its partition. Default: -1 (unknown)."""

    high_water_mark: int = -1
    """The partition's high water mark when the message was fetched. Default: -1."""

    key: bytes | None = None
    """The record key; `None` is Kafka's null key. Default: None."""

    value: bytes | None = None
    """The record value; `None` is Kafka's null value (a tombstone). Default: None."""

    headers: Sequence[Header] = ()
    """Record headers as `(name, value)` pairs, in order. Default: ()."""

    time: datetime | None = None
    """The record timestamp, timezone-aware. When writing, `None` lets the client stamp the
    current time. Default: None."""

    writer_data: Any = None
    """A free slot for the caller: a writer hands it back untouched with the message's
    outcome. It never leaves the process. Default: None."""

    @classmethod
    def many(
        cls,
        values: Iterable[bytes | None],
        keys: Iterable[bytes | None] | None = None,
        *,
        topic: str = "",
    ) -> list[Message]:
        """Build messages from values, and keys if given, for a Writer: the same as
        `[Message(topic=topic, key=k, value=v) for k, v in zip(keys, values)]`, in about a
        third of the time (0.11 µs a message against 0.3).

        Args:
            values: The values.
            keys: The keys, one per value; None for no keys.
            topic: The topic of every message; "" for the writer's.

        Raises:
            ValueError: `keys` and `values` are not of the same length.
        """
        values = list(values)
        if keys is None:
            keys = _NONES
        else:
            keys = list(keys)
            if len(keys) != len(values):
                raise ValueError(
                    f"Message.many needs one key per value: {len(keys)} keys, {len(values)} values"
                )
        return list(
            map(
                _new,
                repeat(cls),
                zip(
                    repeat(topic),
                    _UNSET,
                    _UNSET,
                    _UNSET,
                    keys,
                    values,
                    repeat(()),
                    _NONES,
                    _NONES,
                    strict=False,  # the repeats are endless; the values set the length
                ),
            )
        )
