"""What the Writer hands its engine (settings, completion callback) and reads back (counters)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from aiomq.errors import Error
from aiomq.message import Message

__all__ = ["BatchObserver", "Completion", "Counters", "ProducerSettings"]

Completion = Callable[[list[Message], Error | None], Awaitable[None] | None]
"""An async-mode outcome callback: the messages of one batch, and the error if it failed."""


class BatchObserver(Protocol):
    """What the engine tells a writer's metrics, per batch (never per message)."""

    def batch_written(
        self, topic: str, partition: int, count: int, nbytes: int, seconds: float
    ) -> None: ...

    def batch_failed(
        self, topic: str, partition: int, count: int, error: BaseException
    ) -> None: ...

    def batch_retried(self, topic: str, partition: int) -> None: ...


class ProducerSettings:
    """The parts of a writer's configuration the engine needs, resolved once."""

    __slots__ = (
        "acks",
        "backoff_max",
        "backoff_min",
        "batch_bytes",
        "batch_size",
        "batch_timeout",
        "brokers",
        "codec",
        "completion",
        "completion_written",
        "idempotent",
        "max_attempts",
        "observer",
        "queue_capacity",
        "timeout_ms",
        "transactional_id",
    )

    def __init__(
        self,
        *,
        acks: int,
        codec: int,
        idempotent: bool,
        max_attempts: int,
        backoff_min: float,
        backoff_max: float,
        batch_size: int,
        batch_bytes: int,
        batch_timeout: float,
        timeout: float,
        queue_capacity: int,
        completion: Completion | None,
        brokers: Sequence[str],
        transactional_id: str | None = None,
    ) -> None:
        self.acks = acks
        self.codec = codec
        self.idempotent = idempotent
        self.max_attempts = max_attempts
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.batch_timeout = batch_timeout
        self.timeout_ms = int(timeout * 1000)
        self.queue_capacity = queue_capacity
        self.completion = completion
        self.completion_written = True
        """Whether async-mode completions get the messages as written (else as given)."""
        self.brokers = tuple(brokers)
        self.transactional_id = transactional_id
        self.observer: BatchObserver | None = None
        """Told of each batch written, failed or retried (a traced writer's metrics)."""


class Counters:
    """Mutable running totals behind `WriterStats`."""

    __slots__ = (
        "batch_bytes",
        "batch_messages_max",
        "batch_time_max",
        "batch_time_total",
        "batches",
        "bytes",
        "errors",
        "messages",
        "queued",
        "retries",
        "transactions",
        "transactions_aborted",
        "writes",
    )

    def __init__(self) -> None:
        self.writes = 0
        self.messages = 0
        self.bytes = 0
        self.errors = 0
        self.retries = 0
        self.batches = 0
        self.batch_bytes = 0
        self.batch_messages_max = 0
        self.batch_time_total = 0.0
        self.batch_time_max = 0.0
        self.queued = 0
        self.transactions = 0
        self.transactions_aborted = 0
