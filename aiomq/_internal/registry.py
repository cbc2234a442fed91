"""The open Writers and Readers of the process, for collectors that read their stats when
scraped (`aiomq.prometheus`).

Weak references only: an object leaves the registry when it closes, or when it is
garbage-collected without being closed. Nothing here runs in the background.
"""

from __future__ import annotations

import weakref

__all__ = ["closed", "open_resources", "opened"]

_OPEN: weakref.WeakSet[object] = weakref.WeakSet()


def opened(resource: object) -> None:
    """Record a resource that has just opened."""
    _OPEN.add(resource)


def closed(resource: object) -> None:
    """Forget a resource that is closing."""
    _OPEN.discard(resource)


def open_resources() -> list[object]:
    """The resources open now, in no particular order."""
    return list(_OPEN)
