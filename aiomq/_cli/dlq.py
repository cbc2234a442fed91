"""What `aiomq dlq show` and `aiomq dlq replay` do with a dead-letter topic of
`Reader.process`: list its messages, or write them back where they came from.

A message without the dead-letter headers (see `dead_letter`) is still listed, its origin
unknown, and is replayed only to a topic given with --to.

Both commands read every partition from its first message up to its end, and the end is
the high water mark of the first fetch from the partition, not an answer to ListOffsets:
some brokers (the embedded one among them) answer ListOffsets "latest" wrongly once a
record batch holds several records. Taken at the first fetch, the end is that of the
topic when reading starts, so a replay never chases messages written while it runs, its
own included when --to names the dead-letter topic itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from aiomq._cli.admin import Connection, Output
from aiomq._cli.dead_letter import DeadLetter
from aiomq.admin import Client
from aiomq.errors import (
    Error,
    InvalidMessageError,
    MessageTooLargeError,
    UnknownTopicOrPartitionError,
    WriteErrors,
)
from aiomq.message import FIRST_OFFSET, Message
from aiomq.reader import Reader
from aiomq.writer import Writer

__all__ = ["ReplayOptions", "ReplayReport", "ShowReport", "replay", "show"]

_FETCH_MAX: Final = 500
_POLL: Final = 0.1
_MAX_WAIT: Final = 0.1


# -- reading up to the end -------------------------------------------------------------------

Key = tuple[str, int]

BatchHandler = Callable[[Reader, list[Message]], Awaitable[bool]]
"""Takes each batch read (with the reader it came from); returns False to stop reading."""


async def _partition_ids(client: Client, topic: str) -> list[int]:
    """The partitions of `topic`.

    Raises:
        UnknownTopicOrPartitionError: The topic does not exist.
    """
    info = (await client.describe_topics(topic))[0]
    return sorted(p.partition for p in info.partitions)


async def _read_partitions(
    conn: Connection,
    topic: str,
    partitions: Sequence[int],
    starts: dict[int, int],
    limit: int | None,
    handle: BatchHandler,
) -> None:
    """Read each partition in turn, from `starts` (default: its first message) to its end."""
    taken = 0
    for partition in partitions:
        if limit is not None and taken >= limit:
            return
        reader = Reader(
            brokers=conn.brokers,
            topic=topic,
            partition=partition,
            start_offset=FIRST_OFFSET,
            max_wait=_MAX_WAIT,
            read_lag_interval=0,
            close_timeout=conn.timeout,
            dialer=conn.dialer,
            logger=conn.logger,
        )
        if partition in starts:
            reader.set_offset(starts[partition])
        async with reader:
            count, stopped = await _drain(reader, None if limit is None else limit - taken, handle)
        taken += count
        if stopped:
            return


async def _group_starts(client: Client, group: str, topic: str) -> dict[int, int]:
    """Where `group` starts in each partition: its committed offset, else the first."""
    first = await client.list_offsets(topic, at=FIRST_OFFSET)
    committed = {
        o.partition: o.committed for o in await client.group_offsets(group, topics=[topic])
    }
    return {p: committed[p] if committed.get(p, -1) >= 0 else offset for p, offset in first.items()}


async def _drain(
    reader: Reader,
    limit: int | None,
    handle: BatchHandler,
    group_starts: Callable[[], Awaitable[dict[Key, int]]] | None = None,
) -> tuple[int, bool]:
    """Hand the reader's messages to `handle` until each of its partitions is read up to
    the end it had at the first fetch, `limit` messages were handed over, or `handle`
    says stop.

    Args:
        reader: A partition reader, or a group reader (then it stops when every partition
            the group gave it is read to its end).
        limit: The most messages to hand over; None for no limit.
        handle: Takes each batch.
        group_starts: For a group reader: looks up where the group starts in each
            partition (its committed offsets). Asked again after each rebalance, since a
            group reader knows its position only in the partitions it has returned a
            message from, and the previous owners of newly given partitions committed
            before letting them go.

    Returns:
        How many messages were handed over, and whether `handle` said stop.
    """
    ends = _Ends(reader)
    rebalances = 0
    taken = 0
    while limit is None or taken < limit:
        if group_starts is not None and reader.stats().rebalances != rebalances:
            rebalances = reader.stats().rebalances
            ends.starts = await group_starts()
        if ends.reached():
            break
        room = _FETCH_MAX if limit is None else min(_FETCH_MAX, limit - taken)
        try:
            async with asyncio.timeout(_POLL) as scope:
                batch = await reader.fetch_batch(room)
        except TimeoutError:
            if not scope.expired():
                raise
            continue
        kept = [m for m in batch if ends.before_end(m)]
        if kept:
            taken += len(kept)
            if not await handle(reader, kept):
                return taken, True
    return taken, False


class _Ends:
    """Where each partition a reader reads ends, and whether the reader got there.

    A partition's end is pinned at the first high water mark known for it: that of the
    first fetch, whose answer also carries the messages fetched.
    """

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.ends: dict[Key, int] = {}
        self.starts: dict[Key, int] = {}
        """Where a group reader starts in each partition, for those it has returned no
        message from (its position there is unknown to it)."""
        self.idle_since: float | None = None

    def before_end(self, message: Message) -> bool:
        """Whether the message comes before its partition's end."""
        key = (message.topic, message.partition)
        end = self.ends.get(key)
        if end is None:
            if message.high_water_mark < 0:
                return True
            end = self.ends[key] = message.high_water_mark
        return message.offset < end

    def reached(self) -> bool:
        """Whether the reader is at the end of every partition it owns, pinning the ends
        it learns; or, for a group reader, whether it was given no partition at all."""
        stats = self.reader.stats()
        if not stats.partitions:
            return self._given_nothing(stats.rebalances)
        self.idle_since = None
        done = True
        for part in stats.partitions:
            key = (part.topic, part.partition)
            if key not in self.ends:
                if part.high_water_mark < 0:
                    done = False
                    continue
                self.ends[key] = part.high_water_mark
            position = part.offset if part.offset >= 0 else self.starts.get(key)
            if position is None or position < self.ends[key]:
                done = False
        return done

    def _given_nothing(self, rebalances: int) -> bool:
        """Whether a group reader has owned no partition for a whole `rebalance_timeout`
        since it joined: the group has more members than the topic has partitions. A
        shorter wait could end a run in the middle of a rebalance, between giving its
        partitions up and being given new ones."""
        if not rebalances:
            return False  # not joined yet
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
        return now - self.idle_since >= self.reader.config.rebalance_timeout


# -- show ------------------------------------------------------------------------------------


@dataclass(kw_only=True, slots=True)
class ShowReport:
    letters: list[DeadLetter] = field(default_factory=list)
    """What was read, for the table (empty with --json: those are printed at once)."""

    count: int = 0
    started: float = 0.0
    """When reading started; 0 before."""

    pipe_closed: bool = False

    def summary(self, topic: str) -> str:
        seconds = time.monotonic() - self.started
        return f"read {_count(self.count, 'message')} from {topic} in {seconds:.2f} s"


async def show(
    conn: Connection,
    out: Output,
    topic: str,
    *,
    as_json: bool,
    limit: int | None,
    report: ShowReport,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Read the dead-letter topic to its end: print each message as a JSON line at once
    with `as_json`, else collect them in `report` for the table.

    Raises:
        UnknownTopicOrPartitionError: The topic does not exist.
        Error: The broker cannot be reached or refused a request.
    """
    async with conn.client() as client:
        partitions = await _partition_ids(client, topic)

    async def handle(reader: Reader, batch: list[Message]) -> bool:
        letters = [DeadLetter.of(m) for m in batch]
        if as_json:
            try:
                for letter in letters:
                    out.line(letter.to_json())
                out.stdout.flush()
            except BrokenPipeError:
                # The reader of our output went away (`| head`): stop quietly.
                report.pipe_closed = True
                return False
        else:
            report.letters += letters
        report.count += len(letters)
        if progress is not None:
            progress(len(letters))
        return True

    report.started = time.monotonic()
    await _read_partitions(conn, topic, partitions, {}, limit, handle)


# -- replay ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplayOptions:
    topic: str
    to: str | None = None
    dry_run: bool = False
    max_messages: int | None = None
    group: str | None = None
    session_timeout: float = 10.0


@dataclass(kw_only=True, slots=True)
class ReplayReport:
    """What one replay did; the counts cover every message read."""

    replayed: Counter[str] = field(default_factory=Counter)
    """Messages written (or, in a dry run, to be written), per target topic."""

    skipped: int = 0
    """Messages without an origin topic, when no --to was given."""

    failure: str | None = None
    """The message whose write failed, and why; reading stopped there."""

    missing: list[str] = field(default_factory=list)
    """In a dry run: target topics that do not exist."""

    started: float = 0.0
    """When reading started; 0 before."""

    def rows(self) -> list[tuple[str, int]]:
        return sorted(self.replayed.items())

    def summary(self, options: ReplayOptions) -> str:
        seconds = time.monotonic() - self.started
        total = sum(self.replayed.values())
        if options.dry_run:
            text = f"dry run: {_count(total, 'message')} of {options.topic} would be replayed"
        else:
            text = f"replayed {_count(total, 'message')} from {options.topic} in {seconds:.2f} s"
        if self.skipped:
            skipped = "would be skipped" if options.dry_run else "skipped"
            text += f"; {self.skipped} without an origin topic {skipped} (pass --to to replay them)"
        if options.dry_run:
            text += "; nothing was written"
        return text


async def replay(
    conn: Connection,
    options: ReplayOptions,
    report: ReplayReport,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write the dead-letter topic's messages, up to its end, back to their origin topics
    (or to `options.to`), in order per dead-letter partition, each write acknowledged.

    With a group, reading starts at the group's committed offsets, and each message is
    committed once written (or skipped), so that the next run with the group goes on after
    it. A write that fails stops the replay; `report.failure` names the message, and no
    offset at or after it in its partition is committed.

    Raises:
        UnknownTopicOrPartitionError: The dead-letter topic, or the --to topic, does not exist.
        Error: The broker cannot be reached or refused a request.
    """
    topic = options.topic
    async with conn.client() as client:
        partitions = await _partition_ids(client, topic)
        if options.to is not None:
            await _check_target(client, options.to)
        starts: dict[int, int] = {}
        if options.group is not None and options.dry_run:
            starts = await _group_starts(client, options.group, topic)

    async with contextlib.AsyncExitStack() as stack:
        writer = None
        if not options.dry_run:
            writer = await stack.enter_async_context(
                Writer(brokers=conn.brokers, dialer=conn.dialer, logger=conn.logger)
            )
        commit = options.group is not None and not options.dry_run

        async def handle(reader: Reader, batch: list[Message]) -> bool:
            letters = [DeadLetter.of(m) for m in batch]
            targets = [options.to or letter.origin_topic for letter in letters]
            outgoing = [
                letter.replayed_to(target)
                for letter, target in zip(letters, targets, strict=True)
                if target is not None
            ]
            errors: list[Error | None] = [None] * len(outgoing)
            if writer is not None:
                errors = await _write(writer, outgoing)
            done = _settle(letters, targets, errors, report)
            if commit and done:
                await reader.commit_messages(*done)
            if progress is not None:
                progress(len(batch))
            return report.failure is None

        report.started = time.monotonic()
        if commit:
            assert options.group is not None
            group = options.group
            reader = await stack.enter_async_context(
                conn.group_reader(
                    topic,
                    group,
                    options.session_timeout,
                    start_offset=FIRST_OFFSET,
                    max_wait=_MAX_WAIT,
                )
            )

            async def group_starts() -> dict[Key, int]:
                async with conn.client() as client:
                    starts = await _group_starts(client, group, topic)
                return {(topic, p): offset for p, offset in starts.items()}

            await _drain(reader, options.max_messages, handle, group_starts)
        else:
            await _read_partitions(conn, topic, partitions, starts, options.max_messages, handle)

    if options.dry_run and report.replayed:
        async with conn.client() as client:
            existing = set(await client.list_topics(include_internal=True))
        report.missing = sorted(set(report.replayed) - existing)


async def _check_target(client: Client, topic: str) -> None:
    try:
        await client.describe_topics(topic)
    except UnknownTopicOrPartitionError:
        raise UnknownTopicOrPartitionError(
            topic=topic,
            detail=f"the --to topic does not exist: create it with `aiomq topics create {topic}`",
        ) from None


_NOT_TRIED: Final = Error("not tried: an earlier message of the batch failed")


async def _write(writer: Writer, messages: list[Message]) -> list[Error | None]:
    """Write messages in one call; return for each the error that stopped it, or None.

    Where the call is refused before anything is written because of one message (a
    missing topic, a message too large or malformed), the messages are written one at a
    time up to that one, so that the failure names it and those before it still go out.
    """
    if not messages:
        return []
    try:
        await writer.write_messages(*messages)
    except WriteErrors as exc:
        return exc.errors
    except (UnknownTopicOrPartitionError, MessageTooLargeError, InvalidMessageError) as exc:
        if len(messages) == 1:
            return [exc]
        errors: list[Error | None] = [_NOT_TRIED] * len(messages)
        for index, message in enumerate(messages):
            try:
                await writer.write_messages(message)
            except WriteErrors as one:
                errors[index] = one.errors[0] or one
                break
            except Error as one:
                errors[index] = one
                break
            errors[index] = None
        return errors
    except Error as exc:
        # Nothing of the call was written (the writer could not learn a topic's
        # partitions, say): the batch's first message is where the replay stopped.
        return [exc] * len(messages)
    return [None] * len(messages)


def _settle(
    letters: list[DeadLetter],
    targets: list[str | None],
    errors: list[Error | None],
    report: ReplayReport,
) -> list[Message]:
    """Count what became of a batch, and return the messages done: in each dead-letter
    partition, those before its first failed write (written or skipped)."""
    outcomes = iter(errors)
    stopped: set[int] = set()
    done: list[Message] = []
    for letter, target in zip(letters, targets, strict=True):
        partition = letter.message.partition
        if target is None:
            if partition not in stopped:
                report.skipped += 1
                done.append(letter.message)
            continue
        error = next(outcomes)
        if error is None:
            report.replayed[target] += 1
            if partition not in stopped:
                done.append(letter.message)
            continue
        stopped.add(partition)
        if report.failure is None:
            report.failure = f"{letter.where} not replayed to {target}: {error}"
    return done


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
