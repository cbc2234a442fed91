"""The checks a Reader's settings pass when they are created (see `aiomq.ReaderConfig`)."""

from __future__ import annotations

from typing import Any

from aiomq._internal.config import (
    check_brokers,
    check_connection,
    check_positive_int,
    check_seconds,
    check_topic_name,
)
from aiomq.errors import ConfigError
from aiomq.message import FIRST_OFFSET, LAST_OFFSET

__all__ = ["check_reader_options"]


def check_reader_options(options: Any, isolation_levels: type) -> None:
    """Refuse an invalid value or combination of a Reader's settings.

    Args:
        options: The `ReaderConfig` being created (its values are the user's, unchecked).
        isolation_levels: The `IsolationLevel` enum `options.isolation_level` must be of.

    Raises:
        ConfigError: The message names the fields and says how to fix them.
    """
    check_brokers(options.brokers)
    if isinstance(options.group_topics, str):
        raise ConfigError("group_topics must be a list of topic names, not a string")
    if options.group_id is not None and (
        not isinstance(options.group_id, str) or not options.group_id
    ):
        raise ConfigError(f"group_id must be a non-empty string, not {options.group_id!r}")
    if options.group_id is not None and options.partition is not None:
        raise ConfigError(
            "set either partition or group_id, not both: a group assigns partitions itself"
        )
    if options.group_topics and options.group_id is None:
        raise ConfigError("group_topics needs group_id: only a consumer group reads topics")
    if options.group_topics and options.topic is not None:
        raise ConfigError("set either topic or group_topics, not both")
    if options.topic is None and not options.group_topics:
        raise ConfigError("topic is required (or group_topics, with group_id)")
    if options.topic is not None and (not isinstance(options.topic, str) or not options.topic):
        raise ConfigError(f"topic must be a non-empty string, not {options.topic!r}")
    for name in (options.topic, *options.group_topics):
        if name is not None:
            check_topic_name(name)
    if options.partition is not None and (
        not isinstance(options.partition, int)
        or isinstance(options.partition, bool)
        or options.partition < 0
    ):
        raise ConfigError(f"partition must be 0 or more, not {options.partition!r}")
    for name in ("min_bytes", "max_bytes", "queue_capacity"):
        check_positive_int(name, getattr(options, name))
    if options.min_bytes > options.max_bytes:
        raise ConfigError(
            f"min_bytes ({options.min_bytes}) is larger than max_bytes ({options.max_bytes})"
        )
    for name in ("max_wait", "commit_interval", "read_lag_interval", "close_timeout"):
        check_seconds(name, getattr(options, name), allow_zero=True)
    if options.unavailable_timeout is not None:
        check_seconds("unavailable_timeout", options.unavailable_timeout, allow_zero=False)
    for name in (
        "heartbeat_interval",
        "session_timeout",
        "rebalance_timeout",
        "commit_timeout",
    ):
        check_seconds(name, getattr(options, name), allow_zero=False)
    if options.heartbeat_interval >= options.session_timeout:
        raise ConfigError(
            f"heartbeat_interval ({options.heartbeat_interval}) must be shorter than "
            f"session_timeout ({options.session_timeout})"
        )
    if options.start_offset.__class__ is not int or options.start_offset not in (
        FIRST_OFFSET,
        LAST_OFFSET,
    ):
        raise ConfigError(
            f"start_offset must be FIRST_OFFSET or LAST_OFFSET, not {options.start_offset!r}; "
            "use set_offset() to start a single-partition reader at a given offset"
        )
    if not isinstance(options.isolation_level, isolation_levels):
        raise ConfigError(
            f"isolation_level must be an IsolationLevel member, not {options.isolation_level!r}"
        )
    for name in ("on_assigned", "on_revoked"):
        value = getattr(options, name)
        if value is not None and not callable(value):
            raise ConfigError(f"{name} must be callable, not {value!r}")
    check_connection(options.client_id, options.dialer)
