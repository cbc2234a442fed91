"""Backoff between attempts: doubling from a minimum up to a maximum, with jitter."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, minimum: float, maximum: float) -> float:
    """Return the seconds to wait after failed attempt number `attempt` (1 for the first).

    The delay doubles with each attempt, from `minimum` up to `maximum`, and is spread
    over the upper half of that value so that many clients retrying together do not hit
    a recovering broker at the same instant.
    """
    ceiling: float = min(maximum, minimum * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.random() * ceiling / 2
