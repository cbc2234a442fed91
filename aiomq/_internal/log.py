"""Structured logging for aiomq, through structlog, configured only by the application."""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["LOGGER_NAME", "get_logger"]

LOGGER_NAME = "aiomq"
"""The name every aiomq logger is created under (the stdlib logger name, when structlog is
routed to the standard library)."""


def get_logger(logger: Any = None, **context: Any) -> Any:
    """Return a structlog logger with `context` bound to it.

    Args:
        logger: A caller-supplied structlog logger to use instead of aiomq's own.
        **context: Key-value pairs to bind, such as `topic=` or `group_id=`.

    Returns:
        A bound logger. It is created at call time, never at import time, so the
        application's `structlog.configure()` always applies.
    """
    base = logger if logger is not None else structlog.get_logger(LOGGER_NAME)
    return base.bind(**context) if context else base
