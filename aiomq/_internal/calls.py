"""Calls waiting inside a resource, so that closing the resource can end them.

A reader's `fetch_message` may wait for data, and its `commit_messages` for the group
coordinator, in tasks other than the one that closes it. Closing must not leave them
waiting on a client that is gone, so each wait is entered through `WaitingCalls.wait`,
and `WaitingCalls.end` cancels every task still inside one. The cancellation is turned
into `ClosedError` where it lands, so the caller sees why its call ended; a cancellation
that came from elsewhere at the same time still propagates as it is.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from aiomq.errors import ClosedError

__all__ = ["WaitingCalls"]


class WaitingCalls:
    """The tasks waiting in a resource's calls. Not thread-safe; one event loop's tasks."""

    __slots__ = ("_ended", "_inside", "_left", "_what")

    def __init__(self, what: str) -> None:
        self._what = what
        # Task -> how many waits it is inside (a read may wait inside a commit).
        self._inside: dict[asyncio.Task[object], int] = {}
        self._ended: set[asyncio.Task[object]] = set()
        # Set each time a task ended by `end` leaves its call.
        self._left = asyncio.Event()

    def wait(self, doing: str) -> _Wait:
        """Return a context manager around one wait of the current task.

        Args:
            doing: What the call was doing, for the `ClosedError` message ("fetching").
        """
        return _Wait(self, doing)

    def end(self) -> int:
        """Cancel every task waiting in a call; each will raise `ClosedError`.

        Returns:
            How many tasks were cancelled.
        """
        current = asyncio.current_task()
        ended = 0
        for task in list(self._inside):
            if task is current or task in self._ended:
                continue
            self._ended.add(task)
            task.cancel()
            ended += 1
        return ended

    async def wait_ended(self, within: float) -> bool:
        """Wait until no task ended by `end` is still inside a call.

        Returns:
            Whether they all left within `within` seconds.
        """
        try:
            async with asyncio.timeout(within):
                while self._ended & self._inside.keys():
                    self._left.clear()
                    await self._left.wait()
        except TimeoutError:
            return False
        return True


class _Wait:
    __slots__ = ("_calls", "_doing", "_task")

    def __init__(self, calls: WaitingCalls, doing: str) -> None:
        self._calls = calls
        self._doing = doing
        self._task: asyncio.Task[object] | None = None

    def __enter__(self) -> None:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task under asyncio
            return
        self._task = task
        inside = self._calls._inside
        inside[task] = inside.get(task, 0) + 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        if task is None:  # pragma: no cover
            return
        calls = self._calls
        inside = calls._inside
        left = inside[task] - 1
        if left:
            inside[task] = left
            if task in calls._ended:
                return  # the outermost wait turns the cancellation into ClosedError
        else:
            del inside[task]
        if task not in calls._ended:
            return
        calls._ended.discard(task)
        calls._left.set()
        if exc_type is None:
            # Finished before the cancellation landed: it would hit the caller's next
            # await instead, so let it, rather than hide a cancellation.
            return
        if task.uncancel() > 0:
            return  # cancelled from elsewhere too: that cancellation goes on
        raise ClosedError(f"the {calls._what} was closed while {self._doing}") from None
