"""Run clean-up to completion even while the caller is being cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["finish_shielded"]


async def finish_shielded(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` in its own task and wait for it, even through cancellation.

    If the caller is cancelled (natively or by an anyio cancel scope, which keeps
    re-delivering its cancellation), the task still runs to its end, and then the
    cancellation is raised again. `coro` must bound its own duration.

    Returns:
        What `coro` returned.
    """
    task = asyncio.ensure_future(coro)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                # The task itself was cancelled, not only the caller.
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result
