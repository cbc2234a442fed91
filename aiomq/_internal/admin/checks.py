"""The admin Client's argument checks, beyond those of `aiomq._internal.config`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aiomq._internal.config import check_topic_name
from aiomq.errors import ConfigError
from aiomq.message import FIRST_OFFSET, LAST_OFFSET

__all__ = ["check_group_id", "check_offset_spec", "unique_topics"]


def check_group_id(group_id: object) -> None:
    """Refuse a group id that is not a non-empty string.

    Raises:
        ConfigError: It is not.
    """
    if not isinstance(group_id, str) or not group_id:
        raise ConfigError(f"a group id must be a non-empty string, not {group_id!r}")


def check_offset_spec(name: str, at: object, *, allow_offset: bool) -> None:
    """Refuse anything but FIRST_OFFSET, LAST_OFFSET, an aware time, or (if allowed) an offset.

    Args:
        name: The argument's name, for the message.
        at: The argument.
        allow_offset: Whether an offset (0 or more) is allowed too.

    Raises:
        ConfigError: `at` is none of those.
    """
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ConfigError(
                f"{name} needs a timezone-aware datetime (for example datetime.now(UTC))"
            )
        return
    if (
        isinstance(at, int)
        and not isinstance(at, bool)
        and (at in (FIRST_OFFSET, LAST_OFFSET) or (allow_offset and at >= 0))
    ):
        return
    offsets = (
        "FIRST_OFFSET, LAST_OFFSET, an offset (0 or more)"
        if allow_offset
        else ("FIRST_OFFSET, LAST_OFFSET")
    )
    raise ConfigError(f"{name} must be {offsets} or a timezone-aware datetime, not {at!r}")


def unique_topics(names: Iterable[str]) -> list[str]:
    """Check topic names, and return them without repeats, in the order given.

    Raises:
        ConfigError: A name is not a valid topic name.
    """
    unique = list(dict.fromkeys(names))
    for name in unique:
        check_topic_name(name)
    return unique
