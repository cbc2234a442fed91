"""Moved to `aiomq._internal.kafka.record_hook`; kept until every importer has moved there."""

from __future__ import annotations

from aiomq._internal.kafka.record_hook import MessageFactory as MessageFactory
from aiomq._internal.kafka.record_hook import install as install
from aiomq._internal.kafka.record_hook import message_bytes as message_bytes

__all__ = ["MessageFactory", "install", "message_bytes"]
