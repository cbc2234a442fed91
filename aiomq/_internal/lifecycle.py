"""The one lifecycle of aiomq's resources: opened once, closed once, refused after.

A Writer, a Reader, an admin Client and an EmbeddedBroker each go through the same
phases, and each refuses the same misuses with the same words: a second open, a call
before opening or after closing. `Lifecycle` holds the phase and those checks;
`close_once` runs a resource's teardown exactly once, to its end even while the caller is
being cancelled (see `aiomq._internal.shield`), the teardown bounding its own time.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self

from aiomq._internal.shield import finish_shielded
from aiomq.errors import ClosedError

__all__ = ["AsyncResource", "Lifecycle", "Phase", "StartStopResource"]


class Phase(enum.StrEnum):
    """Where a resource is in its life. Members compare equal to their names' text."""

    NEW = "new"
    OPENING = "opening"
    OPEN = "open"
    FAILED = "failed"
    """Open, but a background task failed: calls are refused, closing still works."""
    CLOSING = "closing"
    CLOSED = "closed"


class Lifecycle:
    """The phase of one resource, and the checks every resource makes.

    Args:
        what: The resource's name in messages ("Reader").
        reopened: The message for a second open, when "a <what> is opened once" does
            not fit. Default: None.
    """

    __slots__ = ("phase", "reopened", "what")

    def __init__(self, what: str, *, reopened: str | None = None) -> None:
        self.what = what
        self.reopened = reopened
        self.phase = Phase.NEW

    def __str__(self) -> str:
        return self.phase.value

    @property
    def is_open(self) -> bool:
        """Whether calls are accepted."""
        return self.phase is Phase.OPEN

    @property
    def ending(self) -> bool:
        """Whether the resource is closing or closed."""
        return self.phase is Phase.CLOSING or self.phase is Phase.CLOSED

    def start_opening(self) -> None:
        """Enter OPENING.

        Raises:
            ClosedError: The resource was opened before.
        """
        if self.phase is not Phase.NEW:
            raise ClosedError(
                self.reopened or f"a {self.what} is opened once; this one is {self.phase}"
            )
        self.phase = Phase.OPENING

    def opened(self) -> None:
        """Enter OPEN, once opening has succeeded."""
        self.phase = Phase.OPEN

    def open_failed(self) -> None:
        """Enter CLOSED: opening failed, and the resource cannot be used or opened again."""
        self.phase = Phase.CLOSED

    def check_open(self) -> None:
        """Raise `ClosedError` unless calls are accepted."""
        if self.phase is not Phase.OPEN:
            raise ClosedError(f"the {self.what} is {self.phase}")

    def fail(self) -> None:
        """Enter FAILED, from OPEN only: later calls are refused, closing still works."""
        if self.phase is Phase.OPEN:
            self.phase = Phase.FAILED

    def end(self) -> bool:
        """Enter CLOSED at once, for a resource whose close is synchronous.

        Returns:
            Whether the resource was neither closing nor closed before.
        """
        was_ending = self.ending
        self.phase = Phase.CLOSED
        return not was_ending

    async def close_once(self, teardown: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run `teardown()` if no close has started yet, shielded from cancellation.

        The phase is CLOSING while it runs and CLOSED after, whatever it raises.
        `teardown` must bound its own duration.

        Returns:
            Whether this call ran the teardown (False when a close had already started).
        """
        if self.ending:
            return False
        self.phase = Phase.CLOSING

        async def run() -> None:
            try:
                await teardown()
            finally:
                self.phase = Phase.CLOSED

        await finish_shielded(run())
        return True


class AsyncResource:
    """Gives a resource `async with`: leaving the block closes it with `aclose()`."""

    __slots__ = ()

    async def aclose(self) -> None:
        """Close the resource; safe to call more than once."""
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class StartStopResource:
    """Gives a resource that starts and stops synchronously (a process, a thread) both
    `with` and `async with`: `start()` or `astart()` on entry, `stop()` on exit."""

    __slots__ = ()

    def start(self) -> Self:
        """Start, blocking the calling thread; return the resource."""
        raise NotImplementedError

    async def astart(self) -> Self:
        """Start without blocking the event loop; return the resource."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop; safe to call more than once."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
