"""Moved to `aiomq._internal.kafka.metadata`; kept until every importer has moved there."""

from __future__ import annotations

from aiomq._internal.kafka.metadata import topic_partitions as topic_partitions

__all__ = ["topic_partitions"]
