"""A resource's background tasks, owned by one anyio task group.

A reader's commit flusher and lag updater run while the reader is open and never outlive
it. They all belong to one anyio task group that a supervising task holds: anyio's rule
that a task group is entered and left by the same task then holds even when the resource
is opened in one task and closed in another. `BackgroundTasks.aclose` ends the group
inside a shielded, time-bounded cancel scope and awaits every task in it.

A task that fails does not die silently: the failure is logged, the group cancels the
others, and `BackgroundTasks.check` raises it to the resource's next call and to its close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

from aiomq.errors import BackgroundTaskError

__all__ = ["BackgroundTasks"]


class BackgroundTasks:
    """The task group of one resource. Not thread-safe; one event loop's tasks.

    Args:
        owner: What the resource is, for messages ("Reader").
        log: The resource's structlog logger.
    """

    __slots__ = ("_failure", "_group", "_log", "_owner", "_pending", "_stop", "_supervisor")

    def __init__(self, owner: str, log: Any) -> None:
        self._owner = owner
        self._log = log
        self._group: anyio.abc.TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._pending: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._failure: BackgroundTaskError | None = None

    def start_soon(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run()` in the group until it returns or the group ends.

        Tasks added before `start` begin when it runs.
        """
        if self._group is None:
            self._pending.append((name, run))
        else:
            self._group.start_soon(self._guard, name, run, name=name)

    async def start(self) -> None:
        """Open the task group and start the tasks added so far."""
        started = asyncio.Event()
        self._stop = asyncio.Event()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(started))
        self._supervisor.add_done_callback(_retrieve)
        await started.wait()

    async def _supervise(self, started: asyncio.Event) -> None:
        assert self._stop is not None
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                pending, self._pending = self._pending, []
                for name, run in pending:
                    group.start_soon(self._guard, name, run, name=name)
                started.set()
                await self._stop.wait()
                group.cancel_scope.cancel()
        finally:
            self._group = None
            started.set()

    async def _guard(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        try:
            await run()
        except Exception as exc:
            self._log.error("background_task_failed", task=name, error=repr(exc))
            if self._failure is None:
                failure = BackgroundTaskError(f"the {self._owner}'s {name} task failed: {exc!r}")
                failure.__cause__ = exc
                self._failure = failure
            raise

    def check(self) -> None:
        """Raise the failure of a background task, if one failed.

        Raises:
            BackgroundTaskError: A task failed; its exception is the cause.
        """
        if self._failure is not None:
            raise self._failure

    async def aclose(self, within: float) -> None:
        """Cancel every task and wait for them all, at most `within` seconds.

        Runs to its end even if the caller is cancelled meanwhile.
        """
        supervisor = self._supervisor
        if supervisor is None:
            return
        assert self._stop is not None
        self._stop.set()
        with anyio.move_on_after(within, shield=True):
            await asyncio.wait({supervisor})
        if not supervisor.done():
            supervisor.cancel()
            with anyio.move_on_after(1.0, shield=True):
                await asyncio.wait({supervisor})
            if not supervisor.done():
                self._log.warning("background_tasks_still_running", owner=self._owner)


def _retrieve(task: asyncio.Task[None]) -> None:
    # A failure is logged and raised through check(); the supervisor's own exception
    # group would only repeat it.
    if not task.cancelled():
        task.exception()
