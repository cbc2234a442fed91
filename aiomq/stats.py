"""Snapshots of what a writer or reader has done, for metrics and monitoring."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PartitionProgress",
    "PartitionStats",
    "ProcessingStats",
    "ReaderStats",
    "WriterStats",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class WriterStats:
    """Counters of a `Writer` since it was opened, taken at one moment.

    Counters only grow, so a metrics system can turn them into rates; unlike kafka-go's
    `Stats()`, taking a snapshot does not reset anything.
    """

    writes: int
    """Calls to `write_messages` that queued at least one message."""

    messages: int
    """Messages the broker acknowledged (or, with `RequiredAcks.NONE`, that were sent)."""

    bytes: int
    """Key, value and header bytes of the acknowledged messages (header names counted
    in UTF-8), without record framing and before compression."""

    errors: int
    """Messages that failed for good: retries exhausted, a non-retriable error, or a
    close that could not deliver them in time."""

    retries: int
    """Produce requests sent again after a retriable error."""

    batches: int
    """Record batches the broker acknowledged."""

    batch_messages_avg: float
    """Mean number of messages per acknowledged batch."""

    batch_messages_max: int
    """Largest number of messages in one acknowledged batch."""

    batch_bytes_avg: float
    """Mean encoded size of an acknowledged batch in bytes, after compression."""

    batch_time_avg: float
    """Mean seconds from a batch's first message being queued to its acknowledgement."""

    batch_time_max: float
    """Longest such time in seconds."""

    queued: int
    """Messages accepted and not yet settled (in a batch being sent, or waiting for one)."""

    transactions: int = 0
    """Transactions committed (a transactional writer's; 0 for the others)."""

    transactions_aborted: int = 0
    """Transactions aborted: by an exception or cancellation in the block, by a write that
    failed in them, or by closing the writer inside one."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PartitionStats:
    """Where a reader stands in one partition."""

    topic: str
    partition: int
    offset: int
    """The next offset the reader will return; -1 before the first message."""

    high_water_mark: int
    """The partition's high water mark at the last fetch; -1 before the first fetch."""

    lag: int
    """Messages between `offset` and the high water mark; -1 when unknown."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PartitionProgress:
    """How far `Reader.process` has come in one partition."""

    topic: str
    partition: int
    committed: int
    """The group's committed offset as far as the reader knows; -1 when unknown."""

    finished: int
    """The finished watermark: every message before this offset has finished (handled or
    dead-lettered), so this is what the next commit will say; -1 before the first."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProcessingStats:
    """What a running `Reader.process` is doing, and has done since it started.

    `running` and `waiting` describe the present; the other counters only grow.
    """

    running: int
    """Handlers running now."""

    waiting: int
    """Messages fetched and not finished that are not running: queued behind an earlier
    message of their key (or partition), waiting for a free handler, or backing off
    before a retry."""

    finished: int
    """Messages finished: handled, or written to the dead-letter topic."""

    retried: int
    """Handler attempts that failed and were tried again."""

    dead_lettered: int
    """Messages written to the dead-letter topic."""

    partitions: tuple[PartitionProgress, ...] = ()
    """Progress per owned partition, sorted."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ReaderStats:
    """Counters of a `Reader` since it was opened, taken at one moment.

    Counters only grow; `lag` and `partitions` describe the present.
    """

    messages: int
    """Messages returned to the caller."""

    bytes: int
    """Key and value bytes of the messages returned."""

    fetches: int
    """Fetch rounds that returned messages."""

    errors: int
    """Failed fetches and failed commits."""

    commits: int
    """Successful offset commits (each may cover several partitions)."""

    stale_commits: int
    """Partition offsets given to commit and dropped, never sent: the partition was not
    owned when they were given, or the group had already committed that far (see
    `Reader.commit_messages`)."""

    rebalances: int
    """Partition assignments received from the group coordinator."""

    queued: int
    """Messages fetched and waiting to be returned."""

    lag: int
    """Total lag over the partitions the reader owns; -1 when unknown."""

    partitions: tuple[PartitionStats, ...]
    """Per-partition position and lag, for the partitions the reader owns."""

    processing: ProcessingStats | None = None
    """What `Reader.process` is doing, while it runs; None otherwise."""
