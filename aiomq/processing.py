"""Concurrent processing for a group `Reader`: many handlers at once, order kept per key,
retries, a dead-letter topic, and commits that never pass an unfinished message.

```python
async def handle(message: aiomq.Message) -> None:
    await charge(message.key, message.value)   # an HTTP call, a database write...

async with aiomq.Reader(brokers=brokers, group_id="billing", topic="orders") as r:
    await r.process(
        handle,
        concurrency=64,
        retry=aiomq.Retry(attempts=5, backoff_min=0.1, backoff_max=10.0),
        dead_letter="orders.dlq",
    )
```

How it works: fetched messages go into lanes, one per key of a partition (`Order.KEY`),
per partition (`Order.PARTITION`) or per message (`Order.NONE`). A lane hands its
messages to the handler one at a time, in offset order; up to `concurrency` handlers run
at once, across lanes. Each partition keeps the offsets it has fetched in order, and its
*finished watermark* is the first offset not finished yet: only that is ever committed, so
a commit never passes a message that is still running or waiting for a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from aiokafka.structs import TopicPartition as _TP

from aiomq._internal.backoff import backoff_delay
from aiomq._internal.consumer.commits import GroupCommits
from aiomq._internal.kafka.consumer import pause, resume
from aiomq._internal.shield import finish_shielded
from aiomq.errors import ClosedError, CommitError, ConfigError, Error, ProcessingError, WriteErrors
from aiomq.message import Header, Message
from aiomq.stats import PartitionProgress, ProcessingStats
from aiomq.writer import Writer

if TYPE_CHECKING:
    from aiomq._internal.consumer.state import Key, ReaderState

__all__ = ["DEAD_LETTER_HEADERS", "Handler", "Order", "Retry"]

Handler: TypeAlias = Callable[[Message], Awaitable[None]]
"""`async def handle(message) -> None`: process one message; raise to fail it."""

DEAD_LETTER_HEADERS: Final = (
    "aiomq.dlq.topic",
    "aiomq.dlq.partition",
    "aiomq.dlq.offset",
    "aiomq.dlq.error.type",
    "aiomq.dlq.error.message",
    "aiomq.dlq.attempts",
    "aiomq.dlq.first_failure",
    "aiomq.dlq.last_failure",
)
"""The headers a dead-lettered message carries after its own, in this order: where it came
from (topic, partition and offset, as decimal text), why (the exception's qualified type
and its text, at most 4,000 characters), how many attempts were made, and when the first
and the last failed (ISO 8601, UTC)."""

_ERROR_TEXT_LIMIT: Final = 4000
_FETCH_MAX: Final = 500
_COMMIT_RETRY_MIN: Final = 0.2
_COMMIT_RETRY_MAX: Final = 5.0


class Order(enum.Enum):
    """Which messages `Reader.process` handles one after another."""

    KEY = "key"
    """Messages with the same key in a partition, in offset order; different keys run
    concurrently. Messages without a key are one key of their partition: in order among
    themselves, concurrently with the keyed ones."""

    PARTITION = "partition"
    """Every message of a partition in offset order; partitions run concurrently."""

    NONE = "none"
    """No order: any message may run beside any other."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Retry:
    """How `Reader.process` retries a handler that raised.

    Raises:
        ConfigError: A value is out of range.
    """

    attempts: int = 3
    """Attempts per message, the first included; 1 never retries. Default: 3."""

    backoff_min: float = 0.1
    """Seconds before the first retry; doubles with each retry, with jitter. Default: 0.1."""

    backoff_max: float = 10.0
    """The most seconds between two attempts. Default: 10.0."""

    on: type[BaseException] | tuple[type[BaseException], ...] | Callable[[Exception], bool] = field(
        default=Exception
    )
    """Which failures are retried: an exception class or a tuple of them, or a predicate
    called with the exception. Others fail the message at once. Default: Exception."""

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigError(f"Retry.attempts must be 1 or more, not {self.attempts!r}")
        for name in ("backoff_min", "backoff_max"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"Retry.{name} must be 0 or more seconds, not {value!r}")
        if self.backoff_min > self.backoff_max:
            raise ConfigError(
                f"Retry.backoff_min ({self.backoff_min}) is larger than "
                f"backoff_max ({self.backoff_max})"
            )
        if not (isinstance(self.on, type | tuple) or callable(self.on)):
            raise ConfigError(
                f"Retry.on must be an exception class, a tuple or a callable, not {self.on!r}"
            )

    def retries(self, error: Exception) -> bool:
        """Tell whether `error` is one to retry."""
        on = self.on
        if isinstance(on, type | tuple):
            return isinstance(error, on)
        return bool(on(error))


class _Partition:
    """The offsets of one partition between fetched and committed."""

    __slots__ = ("finished", "first", "gone", "open", "revoked", "running", "watermark")

    def __init__(self) -> None:
        self.open: deque[int] = deque()
        """Fetched offsets not yet below the watermark, in order."""
        self.finished: set[int] = set()
        """Offsets in `open` that have finished."""
        self.watermark = -1
        """The first offset not finished (every one before it has); -1 before any."""
        self.first = -1
        """The first offset fetched: nothing is committed until the watermark passes it."""
        self.running = 0
        self.revoked = False
        self.gone = asyncio.Event()
        """Set with `revoked`: ends a retry's backoff at once."""


class _Lane:
    __slots__ = ("key", "queue", "task")

    def __init__(self, key: Key) -> None:
        self.key = key
        self.queue: deque[Message] = deque()
        self.task: asyncio.Task[None] | None = None


class _Processor:
    """One run of `Reader.process`. Internal: made and run by the reader.

    Args:
        state: The reader's state.
        commits: The reader's commits.
        fetch: The reader's `fetch_batch`.
        handler: The user's handler.
        concurrency: The most handlers at once.
        order: Which messages run one after another.
        retry: The retry policy.
        dead_letter: Writes a message to the dead-letter topic, or None.
        max_pending: The most messages fetched and not finished.
    """

    def __init__(
        self,
        *,
        state: ReaderState,
        commits: GroupCommits,
        fetch: Callable[[int], Awaitable[list[Message]]],
        handler: Handler,
        concurrency: int,
        order: Order,
        retry: Retry,
        dead_letter: Callable[[Message], Awaitable[Any]] | None,
        max_pending: int,
    ) -> None:
        self._state = state
        self._commits = commits
        self._fetch = fetch
        self._handler = handler
        self._order = order
        self._retry = retry
        self._dead_letter = dead_letter
        self._max_pending = max_pending
        self._slots = asyncio.Semaphore(concurrency)
        self._telemetry = state.telemetry
        self._log = state.log
        self._partitions: dict[Key, _Partition] = {}
        self._paused: set[Key] = set()
        """Partitions whose fetching is paused: they hold their share of `max_pending`."""
        self._gone: dict[Key, int] = {}
        """Partitions let go of, with the reader's epoch then: their messages fetched
        before the reader drops them are skipped, until an assignment gives them back."""
        self._lanes: dict[Any, _Lane] = {}
        self._pending = 0
        self._room = asyncio.Event()
        self._room.set()
        self._dirty: set[Key] = set()
        self._commit_wanted = asyncio.Event()
        self._failure: ProcessingError | None = None
        self._failed = asyncio.Event()
        self._running = 0
        self._finished = 0
        self._retried = 0
        self._dead_lettered = 0

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Fetch and process until the reader closes, a message fails for good, or the
        call is cancelled; then stop taking messages, let the running ones finish (within
        `close_timeout`), and commit what finished.

        Raises:
            ProcessingError: A message failed for good.
        """
        state = self._state
        state.handler_hooks.append(self._revoke)
        state.processing = self.stats
        fetching = asyncio.create_task(self._fetch_loop(), name="aiomq process: fetch")
        committing = asyncio.create_task(self._commit_loop(), name="aiomq process: commit")
        failed = asyncio.create_task(self._failed.wait())
        try:
            done, _ = await asyncio.wait({fetching, failed}, return_when=asyncio.FIRST_COMPLETED)
            if fetching in done:
                fetching.result()  # raises what ended the fetching, if anything did
        finally:
            for task in (fetching, failed):
                task.cancel()
            await asyncio.wait({fetching, failed})
            await finish_shielded(self._stop(committing))
            state.handler_hooks.remove(self._revoke)
            state.processing = None
        if self._failure is not None:
            raise self._failure

    async def _fetch_loop(self) -> None:
        while self._failure is None:
            while self._pending >= self._max_pending:
                self._room.clear()
                await self._room.wait()
            try:
                batch = await self._fetch(min(self._max_pending - self._pending, _FETCH_MAX))
            except ClosedError:
                if self._state.life.ending:
                    return  # the reader is closing: process returns
                raise
            self._take(batch)

    def _take(self, batch: list[Message]) -> None:
        """Put fetched messages into their lanes, and start the idle lanes."""
        order = self._order
        assigned = self._state.assigned
        kept = 0
        for message in batch:
            where = (message[0], message[1])
            if where not in assigned:
                continue  # revoked since it was fetched: its next owner reads it
            part = self._partitions.get(where)
            if part is None:
                gone = self._gone.get(where)
                if gone is not None:
                    # The revoke moves the epoch on once, a new assignment once more.
                    if self._state.epoch < gone + 2:
                        continue
                    del self._gone[where]
                part = self._partitions[where] = _Partition()
            if part.revoked:
                continue
            part.open.append(message[2])
            if part.watermark < 0:
                part.watermark = part.first = message[2]
            if order is Order.KEY:
                lane_key: Any = (where, message[4])
            elif order is Order.PARTITION:
                lane_key = where
            else:
                lane_key = (where, message[2])
            lane = self._lanes.get(lane_key)
            if lane is None:
                lane = self._lanes[lane_key] = _Lane(where)
            lane.queue.append(message)
            kept += 1
            if lane.task is None:
                lane.task = asyncio.create_task(self._run_lane(lane_key, lane))
        self._pending += kept
        if kept:
            self._pause_full({(m[0], m[1]) for m in batch})

    async def _run_lane(self, lane_key: Any, lane: _Lane) -> None:
        part = self._partitions[lane.key]
        try:
            while lane.queue and self._failure is None and not part.revoked:
                message = lane.queue[0]
                if not await self._process(message, part):
                    return
                lane.queue.popleft()
                self._finish(message, part)
        except Exception as exc:  # a bug, or a dead-letter writer's own failure
            self._fail(message, 0, repr(exc), exc)
        finally:
            lane.task = None
            if self._lanes.get(lane_key) is lane and (not lane.queue or part.revoked):
                del self._lanes[lane_key]
                self._release(len(lane.queue))
                lane.queue.clear()

    async def _process(self, message: Message, part: _Partition) -> bool:
        """Handle one message, with retries, and dead-letter it if it fails for good.

        Returns:
            True when it finished; False when it failed for good without a dead-letter
            topic (the processor then stops).
        """
        retry = self._retry
        attempt = 0
        first_failure: datetime | None = None
        while True:
            attempt += 1
            async with self._slots:
                self._running += 1
                part.running += 1
                try:
                    if self._telemetry is None:
                        await self._handler(message)
                    else:
                        with self._telemetry.process(message):
                            await self._handler(message)
                    return True
                except Exception as exc:
                    error = exc
                finally:
                    self._running -= 1
                    part.running -= 1
            last_failure = datetime.now(UTC)
            first_failure = first_failure or last_failure
            if attempt >= retry.attempts or not retry.retries(error) or part.revoked:
                break
            self._retried += 1
            self._log.warning(
                "handler_retried",
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                attempt=attempt,
                error=repr(error),
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                    backoff_delay(attempt, retry.backoff_min, retry.backoff_max)
                ):
                    await part.gone.wait()  # a revoke ends the wait
        if part.revoked:
            return False  # its next owner handles it again
        if self._dead_letter is None:
            self._fail(message, attempt, f"there is no dead-letter topic: {error!r}", error)
            return False
        letter = _dead_letter(message, error, attempt, first_failure, last_failure)
        try:
            await self._dead_letter(letter)
        except (WriteErrors, Error) as exc:
            why = f"writing it to the dead-letter topic failed too: {exc}"
            self._fail(message, attempt, why, exc)
            return False
        self._dead_lettered += 1
        self._log.warning(
            "message_dead_lettered",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            attempts=attempt,
            error=repr(error),
        )
        return True

    def _fail(self, message: Message, attempts: int, why: str, cause: BaseException) -> None:
        """Stop the run for a message that failed for good: `why` ends the error's text."""
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        if attempts:
            text = f"handling {where} failed after {attempts} attempt(s), and {why}"
        else:
            text = f"processing {where} failed unexpectedly: {why}"
        failure = ProcessingError(text, message=message, attempts=attempts)
        failure.__cause__ = cause
        self._log.error(
            "processing_failed",
            topic=failure.message.topic,
            partition=failure.message.partition,
            offset=failure.message.offset,
            attempts=failure.attempts,
            error=repr(cause),
        )
        if self._failure is None:
            self._failure = failure
            self._failed.set()

    # -- finishing and committing ----------------------------------------------------------

    def _finish(self, message: Message, part: _Partition) -> None:
        """Count a finished message, and move its partition's watermark if it can."""
        self._finished += 1
        self._release(1)
        offset = message[2]
        finished = part.finished
        finished.add(offset)
        opened = part.open
        key = (message[0], message[1])
        if key in self._paused and len(opened) - len(finished) <= self._share() // 2:
            self._resume({key})
        if opened[0] != offset:
            return
        while opened and opened[0] in finished:
            finished.discard(opened[0])
            part.watermark = opened.popleft() + 1
        # The committer takes every watermark that moved meanwhile at once.
        self._dirty.add(key)
        self._commit_wanted.set()

    # -- fair fetching ------------------------------------------------------------------------

    def _share(self) -> int:
        """Each owned partition's share of `max_pending`."""
        return max(1, self._max_pending // max(1, len(self._state.assigned)))

    def _pause_full(self, keys: set[Key]) -> None:
        """Stop fetching partitions that hold their share of the pending messages.

        A fetch brings a block of one partition at a time; without this, the pending
        messages would all be of one partition, and only its keys could run.
        """
        consumer = self._state.consumer
        if consumer is None:
            return
        share = self._share()
        full = {
            key
            for key in keys
            if key not in self._paused
            and (part := self._partitions.get(key)) is not None
            and len(part.open) - len(part.finished) >= share
        }
        if full:
            self._paused |= full
            pause(consumer, full)

    def _resume(self, keys: set[Key]) -> None:
        consumer = self._state.consumer
        self._paused -= keys
        if consumer is not None:
            resume(consumer, keys)

    def _release(self, count: int) -> None:
        self._pending -= count
        if self._pending < self._max_pending:
            self._room.set()

    async def _commit_loop(self) -> None:
        """Commit the watermarks that moved, one commit at a time, those that move
        meanwhile going into the next; with a `commit_interval`, stash them for the
        reader's flusher (a revoke and the close flush the stash too)."""
        failures = 0
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            if await self._commit(set(self._dirty)):
                failures = 0
                continue
            # The watermarks stay dirty: try again after a backoff, even if none moves.
            failures += 1
            await asyncio.sleep(backoff_delay(failures, _COMMIT_RETRY_MIN, _COMMIT_RETRY_MAX))
            self._commit_wanted.set()

    async def _commit(self, keys: Iterable[Key]) -> bool:
        """Commit (or stash) the watermarks of `keys` that moved; False if the commit
        failed, the watermarks then marked dirty again."""
        offsets = {}
        committed = self._commits.committed_offset
        for key in keys:
            part = self._partitions.get(key)
            self._dirty.discard(key)
            if part is not None and part.watermark > max(committed(key), part.first):
                offsets[_TP(*key)] = part.watermark
        if not offsets:
            return True
        if self._state.settings.commit_interval > 0:
            self._commits.stash_owned(offsets)
            return True
        try:
            await self._commits.commit_offsets(offsets, derived=True)
        except CommitError:
            # Logged by the commit; tried again after a backoff, and by the final commit.
            self._dirty.update((tp.topic, tp.partition) for tp in offsets)
            return False
        return True

    # -- rebalances and stopping -----------------------------------------------------------

    async def _revoke(self, revoked: set[Key]) -> None:
        """Before partitions go: start nothing more of them, give the running handlers
        `rebalance_timeout` to finish (then cancel them), and commit what finished."""
        await self._let_go(revoked, self._state.settings.rebalance_timeout)
        epoch = self._state.epoch
        for key in revoked:
            if self._partitions.pop(key, None) is not None:
                self._gone[key] = epoch

    async def _let_go(self, keys: set[Key], within: float) -> None:
        parts = {key: self._partitions[key] for key in keys if key in self._partitions}
        for part in parts.values():
            part.revoked = True
            part.gone.set()
        self._resume(self._paused & parts.keys())
        lanes = [
            lane.task
            for lane in self._lanes.values()
            if lane.key in parts and lane.task is not None
        ]
        if lanes:
            _done, stuck = await asyncio.wait(lanes, timeout=within)
            if stuck:
                self._log.warning(
                    "handlers_cancelled",
                    partitions=sorted(parts),
                    handlers=len(stuck),
                    timeout=within,
                )
                for task in stuck:
                    task.cancel()
                await asyncio.wait(stuck)
        await self._commit(parts)

    async def _stop(self, committing: asyncio.Task[None]) -> None:
        """Let every partition go, within `close_timeout`, then end the committer."""
        await self._let_go(set(self._partitions), self._state.settings.close_timeout)
        committing.cancel()
        await asyncio.wait({committing})

    def stats(self) -> ProcessingStats:
        """What the run is doing now."""
        commits = self._commits
        return ProcessingStats(
            running=self._running,
            waiting=self._pending - self._running,
            finished=self._finished,
            retried=self._retried,
            dead_lettered=self._dead_lettered,
            partitions=tuple(
                PartitionProgress(
                    topic=key[0],
                    partition=key[1],
                    committed=commits.committed_offset(key),
                    finished=part.watermark,
                )
                for key, part in sorted(self._partitions.items())
            ),
        )


def _dead_letter(
    message: Message, error: Exception, attempts: int, first: datetime, last: datetime
) -> Message:
    """The message to write to the dead-letter topic: the original key, value and headers,
    then the headers that say where it came from and why it failed."""
    kind = type(error)
    values = (
        message.topic,
        str(message.partition),
        str(message.offset),
        f"{kind.__module__}.{kind.__qualname__}",
        str(error)[:_ERROR_TEXT_LIMIT],
        str(attempts),
        first.isoformat(),
        last.isoformat(),
    )
    headers: list[Header] = list(message.headers)
    headers += [
        (name, value.encode()) for name, value in zip(DEAD_LETTER_HEADERS, values, strict=True)
    ]
    return Message(key=message.key, value=message.value, headers=headers)


def _dead_letter_writer(
    dead_letter: str | Writer,
    *,
    brokers: Iterable[str],
    dialer: Any,
    client_id: str | None,
    logger: Any,
) -> tuple[Writer, bool]:
    """The writer of dead letters, and whether it is made here (to be opened and closed
    by the caller) rather than the user's own.

    Raises:
        ConfigError: A Writer without a topic of its own, or neither a topic nor a Writer.
    """
    if isinstance(dead_letter, Writer):
        if dead_letter.config.topic is None:
            raise ConfigError(
                "dead_letter: the Writer must have a topic of its own (Writer(topic=...))"
            )
        return dead_letter, False
    if not isinstance(dead_letter, str) or not dead_letter:
        raise ConfigError(
            f"dead_letter must be a topic name, a Writer or None, not {dead_letter!r}"
        )
    writer = Writer(
        brokers=list(brokers),
        dialer=dialer,
        topic=dead_letter,
        client_id=client_id,
        logger=logger,
    )
    return writer, True
