"""The Reader: one partition, or a consumer group with explicit commits (kafka-go's `Reader`).

```python
async with aiomq.Reader(brokers=[...], topic="orders", group_id="billing") as r:
    async for message in r:          # commits each message it returns
        ...
```
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Self

from aiokafka.structs import TopicPartition as _TP

from aiomq._internal import registry, telemetry
from aiomq._internal.config import ClientSettings, build_config, check_positive_int
from aiomq._internal.consumer.commits import GroupCommits, Listener, TransactionOffsets
from aiomq._internal.consumer.fetch import check_partition, fill, new_consumer
from aiomq._internal.consumer.options import check_reader_options
from aiomq._internal.consumer.positions import (
    partition_lag,
    read_lag,
    read_position,
    stats_snapshot,
    update_lag_periodically,
)
from aiomq._internal.consumer.stash import readable_next_offsets
from aiomq._internal.consumer.state import ReaderState
from aiomq._internal.kafka.connect import open_client
from aiomq._internal.kafka.consumer import stop_consumer
from aiomq._internal.kafka.errors import map_errors
from aiomq._internal.kafka.record_hook import MessageFactory
from aiomq._internal.kafka.record_hook import install as install_record_hook
from aiomq._internal.lifecycle import AsyncResource, Phase
from aiomq._internal.log import get_logger
from aiomq._internal.shield import finish_shielded
from aiomq._internal.telemetry import ReaderTelemetry
from aiomq.errors import ClosedError, CommitError, ConfigError
from aiomq.group import GroupHandler, run_handler
from aiomq.message import FIRST_OFFSET, LAST_OFFSET, Message, to_millis
from aiomq.processing import Handler, Order, Retry, _dead_letter_writer, _Processor
from aiomq.stats import ReaderStats
from aiomq.writer import Writer

__all__ = [
    "FIRST_OFFSET",
    "LAST_OFFSET",
    "IsolationLevel",
    "Reader",
    "ReaderConfig",
    "TopicPartition",
]

_NEVER: Final = -1

_OPEN: Final = Phase.OPEN

# What stopping the client may take beyond a second: one LeaveGroup round trip.
_LEAVE_ROUND_TRIP: Final = 1.0

TopicPartition = tuple[str, int]
"""A `(topic, partition)` pair, as rebalance callbacks and `CommitError.offsets` give them."""

RebalanceCallback = Callable[[set[TopicPartition]], Awaitable[None] | None]
"""Called with the partitions assigned to, or revoked from, this reader."""


class IsolationLevel(enum.IntEnum):
    """Which records of transactional producers a reader sees."""

    READ_UNCOMMITTED = 0
    """Every record, including those of aborted and still-open transactions."""

    READ_COMMITTED = 1
    """Only records of committed transactions (and non-transactional records)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ReaderConfig(ClientSettings):
    """Every setting of a `Reader`, validated when created.

    A reader works in one of two modes: on one partition (`topic` and `partition`), or as
    a consumer group member (`group_id` with `topic` or `group_topics`).

    Raises:
        ConfigError: A value or a combination of values is invalid; the message names the
            fields.
    """

    brokers: Sequence[str]
    """Bootstrap addresses, as `host:port` strings. Required."""

    topic: str | None = None
    """The topic to read. Required, except in group mode with `group_topics`. Default: None."""

    partition: int | None = None
    """The partition to read, in single-partition mode. Default: None (0 when no group_id is
    set)."""

    group_id: str | None = None
    """The consumer group to join; enables group mode, commits and rebalancing.
    Default: None."""

    group_topics: Sequence[str] = ()
    """Several topics to read in group mode, instead of `topic`. Default: (). Only used
    when group_id is set."""

    min_bytes: int = 1
    """The least data the broker should gather before answering a fetch. Default: 1."""

    max_bytes: int = 1_048_576
    """The most data one fetch may return per partition; a larger message is still
    returned whole. Default: 1048576 (1 MiB)."""

    max_wait: float = 0.5
    """Seconds the broker may wait for `min_bytes` before answering. Default: 0.5."""

    commit_interval: float = 0.0
    """Seconds between commits of the offset stash. With 0, `commit_messages` commits at
    once and raises if the commit fails; with more, commits go to a stash flushed every
    interval, before partitions are revoked, and on close. Default: 0. Only used when
    group_id is set."""

    start_offset: int = FIRST_OFFSET
    """Where to start when the group has no committed offset for a partition (or, in
    single-partition mode, until `set_offset` says otherwise): FIRST_OFFSET or
    LAST_OFFSET. Default: FIRST_OFFSET."""

    heartbeat_interval: float = 3.0
    """Seconds between heartbeats to the group coordinator. Default: 3.0. Only used when
    group_id is set."""

    session_timeout: float = 30.0
    """Seconds without heartbeats after which the coordinator evicts this member.
    Default: 30.0. Only used when group_id is set."""

    rebalance_timeout: float = 30.0
    """Seconds members have to rejoin during a rebalance. Default: 30.0. Only used when
    group_id is set."""

    isolation_level: IsolationLevel = IsolationLevel.READ_UNCOMMITTED
    """Whether to hide records of aborted transactions. Default: READ_UNCOMMITTED."""

    tracing: bool | None = None
    """OpenTelemetry traces and metrics for this reader (needs `aiomq[otel]`): a
    `receive` span per message `read_message` or `fetch_message` returns, a `process`
    span per message `process`, the group handler or `transform` handles, each a child of
    the trace context in the message's headers, and metrics. None follows
    `aiomq.otel.instrument()`. Default: None."""

    read_lag_interval: float = 60.0
    """Seconds between background lag updates in single-partition mode, for `stats()`
    while nothing is read; 0 turns them off. Default: 60.0. Only used without group_id."""

    queue_capacity: int = 100
    """The most messages one fetch round hands over; more wait on the broker. Default:
    100."""

    on_assigned: RebalanceCallback | None = None
    """Called after a rebalance with the partitions now owned. May be async. Default: None.
    Only used when group_id is set."""

    on_revoked: RebalanceCallback | None = None
    """Called before owned partitions are given up, in a rebalance or on close, after their
    pending commits were flushed. May be async. Default: None. Only used when group_id is
    set."""

    commit_timeout: float = 10.0
    """Seconds one commit may take, waiting for an earlier commit and for the group
    coordinator included; past it, `commit_messages` raises `CommitError` (a stashed
    offset stays stashed for the next flush). Default: 10.0. Only used when group_id is
    set."""

    unavailable_timeout: float | None = None
    """Seconds reads may go on without any broker answering before they raise
    `BrokerConnectionError`. With None, reads keep retrying through an outage (a service
    survives a broker restart); either way each failed attempt is counted in
    `stats().errors` and the outage is logged (`broker_unreachable`, then
    `broker_reachable`). Default: None."""

    close_timeout: float = 10.0
    """Seconds `aclose()` may spend flushing commits and leaving the group. Default: 10.0."""

    def __post_init__(self) -> None:
        check_reader_options(self, IsolationLevel)

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic this configuration reads."""
        return tuple(self.group_topics) if self.group_topics else (self.topic or "",)


class Reader(AsyncResource):
    """Reads messages from one partition, or from the partitions a consumer group assigns.

    Open it with `async with`. `fetch_message` returns the next message without committing
    it; `read_message` (and `async for`) commits each message it returns when in a group.
    The arguments are those of `ReaderConfig` (pass `config=` instead to reuse one).

    Several tasks may fetch from one reader at once; each message goes to exactly one of
    them. Messages of one partition are returned in offset order.

    Args:
        config: A complete configuration; when given, no other argument is allowed.
        **options: `ReaderConfig` fields.

    Raises:
        ConfigError: An option is invalid.
    """

    def __init__(self, config: ReaderConfig | None = None, /, **options: Any) -> None:
        self.config = build_config(ReaderConfig, config, options)
        cfg = self.config
        log = get_logger(
            cfg.logger,
            client_id=cfg.effective_client_id,
            group_id=cfg.group_id,
            topics=list(cfg.topics),
        )
        partition = None if cfg.group_id is not None else (cfg.topic or "", cfg.partition or 0)
        # Everything the reader knows lives in one state object; fetching, commits,
        # positions and the group handler work on it.
        self._core = ReaderState(cfg, log, partition=partition, start_offset=cfg.start_offset)
        self._commits = GroupCommits(self._core)
        self._telemetry: ReaderTelemetry | None = None
        # The read calls' hot path: the state's buffer (changed in place, never replaced)
        # and its lifecycle, held here to save attribute look-ups per message.
        self._buffer = self._core.buffer
        self._life = self._core.life

    def __repr__(self) -> str:
        core = self._core
        what = f"group={self.config.group_id}" if core.group else f"partition={core.partition}"
        return f"<Reader topics={list(self.config.topics)} {what} {core.life}>"

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        core = self._core
        core.life.start_opening()
        cfg = self.config
        # With the record hook in place, aiokafka builds our messages directly.
        factory = MessageFactory(self._high_water) if install_record_hook() else None
        core.factory = factory
        consumer = new_consumer(
            cfg,
            factory,
            earliest=cfg.start_offset == FIRST_OFFSET,
            read_committed=cfg.isolation_level is IsolationLevel.READ_COMMITTED,
        )
        try:
            with map_errors(brokers=cfg.brokers, topic=cfg.topic):
                await open_client(consumer.start, cfg.brokers, cfg.dialer)
                if core.partition is None:
                    consumer.subscribe(topics=list(cfg.topics), listener=Listener(self._commits))
                else:
                    timeout = cfg.dialer.timeout if cfg.dialer is not None else 10.0
                    await check_partition(consumer, core.partition, cfg.brokers, timeout)
                    consumer.assign([_TP(*core.partition)])
        except BaseException:
            core.life.open_failed()
            await finish_shielded(stop_consumer(consumer, core.log, 1.0))
            raise
        core.consumer = consumer
        core.life.opened()
        registry.opened(self)
        if telemetry.enabled(cfg.tracing):
            self._telemetry = core.telemetry = ReaderTelemetry(
                telemetry.telemetry(), self, cfg.effective_client_id, cfg.group_id, cfg.brokers
            )
        if core.stashing:
            core.tasks.start_soon("commit flusher", self._commits.flush_periodically)
        if not core.group and cfg.read_lag_interval > 0:
            core.tasks.start_soon("lag updater", lambda: update_lag_periodically(core))
        await core.tasks.start()
        return self

    async def aclose(self) -> None:
        """Flush pending commits, leave the group and disconnect. Safe to call twice.

        Every call waiting in another task (`fetch_message`, `fetch_batch`,
        `read_message`, `commit_messages`) ends at once with `ClosedError`, and an
        `async for` loop ends. With nothing to flush, the close takes about a second plus
        one request round trip, also during a group join; it never takes more than
        `close_timeout` (plus a second to release connections), even when the broker is
        unreachable. When it returns, no task of the reader's, or of the aiokafka client
        under it, is left running. It runs to its end even if the calling task is
        cancelled meanwhile, then re-raises the cancellation.

        Raises:
            CommitError: The final flush of the offset stash failed; the offsets are named.
            BackgroundTaskError: A background task (the commit flusher or the lag
                updater) had failed; its exception is the cause.
        """
        await self._core.life.close_once(self._close)

    async def _close(self) -> None:
        registry.closed(self)
        if self._telemetry is not None:
            self._telemetry.forget(self)
        core = self._core
        loop = asyncio.get_running_loop()
        # One deadline for the whole close; releasing the client still gets a moment of its
        # own so that connections and background tasks end.
        deadline = loop.time() + self.config.close_timeout
        await core.tasks.aclose(1.0)
        # Calls waiting in other tasks end with ClosedError; their commits, if any, are
        # still in the stash for the final flush.
        core.calls.end()
        await core.calls.wait_ended(1.0)
        failure: CommitError | None = None
        consumer = core.consumer
        core.assigned_event.set()  # a consume() waiting for the next generation returns
        try:
            failure = await self._commits.leave(deadline)
        finally:
            if consumer is not None:
                budget = max(deadline - loop.time(), 1.0)
                await stop_consumer(consumer, core.log, min(budget, 1.0 + _LEAVE_ROUND_TRIP))
            core.drop_buffered()
        if failure is not None:
            raise failure
        core.tasks.check()

    # -- reading --------------------------------------------------------------------------

    def _fetching(self) -> ReaderState:
        """Check that the reader is open for a read that does not commit."""
        core = self._core
        core.check_open()
        if core.position_commits:
            # Positions would now cover messages nobody asked to commit.
            self._commits.end_position_commits()
        return core

    async def fetch_message(self) -> Message:
        """Return the next message, waiting for one; never commits.

        Cancellation: a cancelled or timed-out call takes no message, so the next call
        returns the message it would have returned.

        Raises:
            ClosedError: The reader is closed, or was closed while waiting.
            BrokerConnectionError: The cluster has been unreachable for longer than
                `unavailable_timeout`.
        """
        core = self._core
        if self._life.phase is not _OPEN or core.position_commits:
            self._fetching()
        buffer = self._buffer
        while not buffer:
            await fill(core)
        message = buffer.popleft()
        if self._telemetry is not None:
            self._telemetry.received(message)
        return message

    async def fetch_batch(self, max_messages: int = 500) -> list[Message]:
        """Return between one and `max_messages` messages, waiting only for the first.

        Same guarantees as `fetch_message`, for throughput: one call, one list.

        Raises:
            ConfigError: `max_messages` is less than 1.
        """
        if max_messages < 1:
            raise ConfigError(f"max_messages must be 1 or more, not {max_messages!r}")
        core = self._fetching()
        buffer = core.buffer
        while not buffer:
            taken = await fill(core, max_messages)
            if taken is not None:
                return taken
        if max_messages >= len(buffer):
            taken = list(buffer)
            buffer.clear()
            return taken
        popleft = buffer.popleft
        return [popleft() for _ in range(max_messages)]

    async def read_message(self) -> Message:
        """Return the next message; in group mode, also commit it.

        With `commit_interval` > 0 the commit goes to the stash and is flushed later. With
        0 it is made before returning; if it fails, `CommitError` is raised with the
        message in its `messages`, so the message is never silently lost.

        Cancellation: a cancelled or timed-out call returns its message to the reader, so
        the next read returns it again, even if the commit had already been sent (unless
        its partition was revoked meanwhile: its next owner reads it).

        Raises:
            CommitError: The commit failed; `.messages` holds the message that was read.
        """
        core = self._core
        if self._life.phase is not _OPEN:
            core.check_open()
        buffer = self._buffer
        while not buffer:
            await fill(core)
        message = buffer.popleft()
        if self._telemetry is not None:
            self._telemetry.received(message)
        if core.group:
            if core.stashing:
                if core.position_commits is None:
                    core.position_commits = True
                if not core.position_commits:
                    self._commits.stash_one(message)
                return message
            epoch = core.epoch
            try:
                with core.calls.wait("committing"):
                    await self._commits.commit([message])
            except asyncio.CancelledError:
                # The caller will not see this message: hand it to the next read. Its commit
                # may or may not have reached the broker; reading it again is at-least-once.
                core.give_back(message, epoch)
                raise
        return message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.read_message()
        except ClosedError:
            if self._core.life.ending:
                raise StopAsyncIteration from None
            raise

    def _high_water(self, tp: _TP) -> int | None:
        # Called by the record hook while aiokafka handles a fetch response.
        consumer = self._core.consumer
        if consumer is None:
            return None
        try:
            high_water: int | None = consumer.highwater(tp)
        except AssertionError:  # no longer assigned; its records will be dropped
            return None
        return high_water

    # -- single-partition positioning -----------------------------------------------------

    def _require_partition_mode(self, what: str) -> TopicPartition:
        key = self._core.partition
        if key is None:
            raise ConfigError(
                f"{what} is only for single-partition readers: a consumer group decides "
                "positions from committed offsets (reset them with the admin client)"
            )
        return key

    def set_offset(self, offset: int) -> None:
        """Make the next read start at `offset`, or at FIRST_OFFSET / LAST_OFFSET.

        Messages already fetched past the old position are dropped. Takes effect at the
        next read; may be called before the reader is opened.

        Raises:
            ConfigError: The reader is in group mode, or the offset is invalid.
        """
        self._require_partition_mode("set_offset")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < FIRST_OFFSET:
            raise ConfigError(
                f"offset must be 0 or more, FIRST_OFFSET or LAST_OFFSET, not {offset!r}"
            )
        self._core.pending_seek = offset
        self._core.drop_buffered()

    async def set_offset_at(self, when: datetime) -> None:
        """Make the next read start at the first message whose time is `when` or later.

        If every message is older, the next read waits for new ones.

        Raises:
            ConfigError: The reader is in group mode, or `when` is naive.
        """
        key = self._require_partition_mode("set_offset_at")
        if when.tzinfo is None:
            raise ConfigError("set_offset_at needs a timezone-aware datetime")
        consumer = self._core.open_consumer()
        tp = _TP(*key)
        with map_errors(brokers=self.config.brokers, topic=tp.topic, partition=tp.partition):
            found = await consumer.offsets_for_times({tp: to_millis(when)})
        entry = found.get(tp)
        self.set_offset(LAST_OFFSET if entry is None else entry.offset)

    @property
    def offset(self) -> int:
        """The offset of the next message to be returned; -1 in group mode or before the
        position is known."""
        key = self._core.partition
        if key is None:
            return -1
        position = read_position(self._core, key)
        return -1 if position is None else position

    @property
    def lag(self) -> int:
        """Messages between the next offset and the high water mark, as of the last fetch;
        -1 in group mode or before the first fetch (see `stats()` for groups)."""
        key = self._core.partition
        if key is None:
            return -1
        return partition_lag(self._core, key)

    async def read_lag(self) -> int:
        """Ask the broker for the partition's end offset and return the lag behind it.

        Raises:
            ConfigError: The reader is in group mode.
        """
        self._require_partition_mode("read_lag")
        return await read_lag(self._core)

    # -- commits --------------------------------------------------------------------------

    async def commit_messages(self, *messages: Message) -> None:
        """Commit messages: each commits everything before it in its partition.

        The highest offset per partition wins. With `commit_interval` > 0 the offsets go to
        the stash and this returns at once; with 0 they are committed before returning.

        Commits never move a partition backwards, across rebalances too: an offset at or
        below what the group has committed (learnt when the partition was assigned), or for
        a partition this reader does not own now, is dropped, never sent; it is logged as
        `stale_commit_dropped` and counted in `stats().stale_commits`.

        Each commit is bounded by `commit_timeout`. Safe from several tasks; commits are
        sent one at a time.

        Cancellation: with a stash, nothing is awaited. Without, a cancelled commit may or
        may not have reached the broker; committing the same messages again is harmless.
        Closing the reader from another task ends a waiting commit with `ClosedError`.

        Raises:
            ConfigError: The reader is not in group mode, or a message could not have been
                read by it (a negative offset or partition, a topic it does not read).
            CommitError: The commit failed or did not finish within `commit_timeout`
                (only with `commit_interval` 0); it names the offsets.
            ClosedError: The reader is closed, or was closed while the commit waited.
        """
        if not self._core.group:
            raise ConfigError(
                "commit_messages needs a consumer group: create the Reader with group_id"
            )
        core = self._core
        core.open_consumer()
        if not messages:
            return
        offsets = self._committable_offsets(messages)
        with core.calls.wait("committing"):
            await self._commits.commit(messages, offsets)

    def _committable_offsets(self, messages: Sequence[Message]) -> dict[_TP, int]:
        """The offsets that commit `messages`, once each is known to be one this reader
        could have returned (in one pass over them, for a batch).

        Raises:
            ConfigError: A message has a negative offset or partition, or a topic the reader
                does not read; the error names the first.
        """
        topics = self.config.topics
        offsets = readable_next_offsets(messages, topics)
        if offsets is not None:
            return offsets
        bad = next(m for m in messages if m.offset < 0 or m.partition < 0 or m.topic not in topics)
        raise ConfigError(
            f"cannot commit {bad.topic}[{bad.partition}]@{bad.offset}: only a message this "
            f"reader returned can be committed (it reads {', '.join(topics)})"
        )

    async def _offsets_for_transaction(self, messages: Sequence[Message]) -> TransactionOffsets:
        """The offsets that commit `messages`, for a transactional writer's `send_offsets`.

        Raises:
            ConfigError: The reader is not in group mode, or a message could not have been
                read by it.
            ClosedError: The reader is not open.
        """
        if not self._core.group:
            raise ConfigError(
                "send_offsets needs a consumer group reader: create the Reader with group_id"
            )
        self._core.open_consumer()
        offsets = self._committable_offsets(messages)
        with self._core.calls.wait("sending offsets to a transaction"):
            return await self._commits.for_transaction(offsets)

    @property
    def _closing(self) -> bool:
        """Whether the reader is closing or closed (not merely new or failed)."""
        return self._core.life.ending

    @contextlib.contextmanager
    def _revocation_hook(
        self, hook: Callable[[set[TopicPartition]], Awaitable[None]]
    ) -> Iterator[None]:
        """Have `hook` awaited with the partitions a rebalance or the closing takes from
        this reader, before their offsets are flushed and they go (as a group handler's
        claims are ended)."""
        hooks = self._core.handler_hooks
        hooks.append(hook)
        try:
            yield
        finally:
            hooks.remove(hook)

    # -- consumer-group handler (Sarama's model) ------------------------------------------

    async def consume(self, handler: GroupHandler) -> None:
        """Run a Sarama-style group handler until the reader closes or the call is cancelled.

        See `aiomq.group` for the handler interface and the guarantees. Returns when the
        reader closes; marks are flushed on the way.

        Cancellation: every claim's iteration ends, every `consume_claim` is awaited,
        `cleanup` runs, and then the cancellation goes on.

        Raises:
            ConfigError: The reader is not in group mode.
        """
        if not self._core.group:
            raise ConfigError("consume needs a consumer group: create the Reader with group_id")
        await run_handler(self._core, self._commits, handler)

    # -- concurrent processing ------------------------------------------------------------

    async def process(
        self,
        handler: Handler,
        *,
        concurrency: int = 64,
        order: Order = Order.KEY,
        retry: Retry | None = None,
        dead_letter: str | Writer | None = None,
        max_pending: int | None = None,
    ) -> None:
        """Handle messages concurrently until the reader closes, keeping order per key
        (or per partition), retrying failures and committing only what has finished.

        Up to `concurrency` handlers run at once. With `Order.KEY` (the default),
        messages with the same key in a partition are handled one after another in offset
        order, and messages without a key are one key of their partition. A partition's
        committed offset only ever moves to just past the longest run of finished
        messages from where it stood, never past a message still running or waiting
        for a retry. Commits follow `commit_interval`: with 0, one commit at a time, each
        carrying every watermark that moved meanwhile, a failed one tried again after a
        backoff; otherwise the stash and its flusher. After a crash, what finished at or
        beyond the committed offset is handled again (at least once): make handlers
        idempotent.

        A handler that raises is retried after a backoff (`retry`), holding back the
        later messages of its key. After the last attempt the message goes to
        `dead_letter` with headers saying where it came from and why
        (`aiomq.processing.DEAD_LETTER_HEADERS`), and counts as finished. Without a
        dead-letter topic, or when writing to it fails, `process` stops taking messages,
        lets the running handlers finish, commits what finished and raises
        `ProcessingError`: a message is never skipped silently.

        Back pressure: fetching pauses while `max_pending` messages are fetched and not
        finished, so a slow key holds back only its own messages until that limit.

        Rebalances: no new message of a revoked partition starts; running handlers get
        `rebalance_timeout` to finish, then are cancelled (logged as
        `handlers_cancelled`); the finished prefix is committed and the rest left for the
        next owner. Closing the reader from another task does the same for every
        partition, within `close_timeout`, and `process` then returns; cancelling
        `process` does it too, and the cancellation propagates.

        Args:
            handler: `async def handler(message) -> None`.
            concurrency: The most handlers running at once. Default: 64.
            order: Which messages are handled one after another. Default: Order.KEY.
            retry: When and how often to retry a failed handler. Default: Retry() (3
                attempts, backoff from 0.1 to 10 s, every Exception).
            dead_letter: A topic name (written with a Writer made from this reader's
                brokers and dialer; the topic must exist), or a Writer of your own with
                a topic; None stops with `ProcessingError` on a message that fails for
                good. Default: None.
            max_pending: The most messages fetched and not finished; each owned
                partition holds at most its share of them (its fetching pauses beyond
                it), so that a backlog runs the keys of every partition. Mind the size of
                your messages: this many are held in memory at most. Default: 64 x
                `concurrency`, at least 1,000.

        Raises:
            ConfigError: The reader is not in group mode, or an argument is invalid.
            ProcessingError: A message failed for good (see above); its `__cause__` is the
                handler's exception, or the dead-letter write's.
            UnknownTopicOrPartitionError: The dead-letter topic does not exist.
            ClosedError: The reader is not open.
        """
        core = self._core
        if not core.group:
            raise ConfigError("process needs a consumer group: create the Reader with group_id")
        if not callable(handler):
            raise ConfigError(f"handler must be an async function, not {handler!r}")
        check_positive_int("concurrency", concurrency)
        if not isinstance(order, Order):
            raise ConfigError(f"order must be an Order member, not {order!r}")
        if retry is None:
            retry = Retry()
        elif not isinstance(retry, Retry):
            raise ConfigError(f"retry must be a Retry or None, not {retry!r}")
        if max_pending is None:
            max_pending = max(1000, 64 * concurrency)
        check_positive_int("max_pending", max_pending)
        if core.processing is not None:
            raise ConfigError("process is already running on this reader")
        core.open_consumer()
        async with contextlib.AsyncExitStack() as stack:
            write_dead_letter = None
            if dead_letter is not None:
                cfg = self.config
                writer, owned = _dead_letter_writer(
                    dead_letter,
                    brokers=cfg.brokers,
                    dialer=cfg.dialer,
                    client_id=cfg.client_id,
                    logger=cfg.logger,
                )
                if owned:
                    await stack.enter_async_context(writer)
                topic = writer.config.topic
                assert topic is not None
                await writer._partitions(topic)  # the topic must exist before anything fails
                write_dead_letter = writer.write_messages
            processor = _Processor(
                state=core,
                commits=self._commits,
                fetch=self.fetch_batch,
                handler=handler,
                concurrency=concurrency,
                order=order,
                retry=retry,
                dead_letter=write_dead_letter,
                max_pending=max_pending,
            )
            await processor.run()

    # -- observing ------------------------------------------------------------------------

    def assignment(self) -> set[TopicPartition]:
        """The partitions this reader owns now."""
        return set(self._core.assigned)

    def stats(self) -> ReaderStats:
        """Return a snapshot of the reader's counters and per-partition lag."""
        return stats_snapshot(self._core)
