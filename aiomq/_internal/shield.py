"""Run clean-up to completion even while the caller is being cancelled, and end tasks
within a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Coroutine
from typing import Any, Final, TypeVar

T = TypeVar("T")

__all__ = ["finish_shielded", "finish_tasks"]

# How long a cancelled task gets to finish its clean-up before closing gives up on it.
_CANCEL_GRACE: Final = 1.0


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


async def finish_tasks(tasks: Collection[asyncio.Task[Any]], deadline: float, log: Any) -> None:
    """Wait for `tasks` until `deadline` (event loop time), then cancel those still running
    and wait for them as well, for at most a second more; log any that outlive that."""
    if not tasks:
        return
    loop = asyncio.get_running_loop()
    _done, pending = await asyncio.wait(tasks, timeout=max(deadline - loop.time(), 0.0))
    if not pending:
        return
    for task in pending:
        task.cancel()
    _done, stuck = await asyncio.wait(pending, timeout=_CANCEL_GRACE)
    if stuck:
        # Only code that swallows cancellation gets here, such as a completion callback.
        log.error("tasks_left_running", tasks=sorted(task.get_name() for task in stuck))
