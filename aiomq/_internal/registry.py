"""The open Writers and Readers of the process, for collectors that read their stats when
scraped (`aiomq.prometheus`), and a way to read them on their own event loop.

Weak references only: an object leaves the registry when it closes, or when it is
garbage-collected without being closed. Nothing here runs in the background.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

__all__ = ["closed", "open_resources", "opened", "read_on"]

T = TypeVar("T")

_OPEN: weakref.WeakSet[object] = weakref.WeakSet()
# Collectors copy the set from threads of their own while the loop adds and removes.
_LOCK = threading.Lock()


def opened(resource: object) -> None:
    """Record a resource that has just opened."""
    with _LOCK:
        _OPEN.add(resource)


def closed(resource: object) -> None:
    """Forget a resource that is closing."""
    with _LOCK:
        _OPEN.discard(resource)


def open_resources() -> list[object]:
    """The resources open now, in no particular order."""
    with _LOCK:
        return list(_OPEN)


def read_on(
    loop: asyncio.AbstractEventLoop | None, read: Callable[[], T], timeout: float
) -> T | None:
    """Call `read` where it cannot race with `loop`, which changes what it reads.

    Directly when `loop` is None, not running, or the one this thread runs; otherwise the
    loop calls it, and this waits for the answer (a collector scraping from a thread of
    its own).

    Returns:
        What `read` returned; None when the loop did not get to it within `timeout`
        seconds.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None or running is loop or loop.is_closed() or not loop.is_running():
        return read()

    async def on_loop() -> T:
        return read()

    try:
        future = asyncio.run_coroutine_threadsafe(on_loop(), loop)
    except RuntimeError:  # the loop closed meanwhile: nothing of it runs any more
        return read()
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        return None
