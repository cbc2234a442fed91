"""Moved to `aiomq._internal.kafka.errors`; kept until every importer has moved there."""

from __future__ import annotations

from aiomq._internal.kafka.errors import broker_error as broker_error
from aiomq._internal.kafka.errors import map_errors as map_errors
from aiomq._internal.kafka.errors import translate as translate

__all__ = ["broker_error", "map_errors", "translate"]
