"""Waiting on a condition with a deadline, for tests whose conditions offer nothing to await."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["wait_until"]

# Generous: reaching it means a hang, not a slow machine.
DEADLINE = 30.0
POLL_INTERVAL = 0.02


async def wait_until(
    condition: Callable[[], bool], what: str, *, deadline: float = DEADLINE
) -> None:
    """Poll `condition` until it holds; fail the test if `deadline` seconds pass first.

    Args:
        condition: What must come true (a counter, a captured log line).
        what: The condition in words, for the failure message.
        deadline: Seconds to wait at most.
    """
    try:
        async with asyncio.timeout(deadline):
            while not condition():  # noqa: ASYNC110 - counters and log lists cannot be awaited
                await asyncio.sleep(POLL_INTERVAL)
    except TimeoutError:
        raise AssertionError(f"timed out after {deadline} s waiting until {what}") from None
