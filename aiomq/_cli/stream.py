"""What `aiomq produce` and `aiomq consume` do: lines in, messages out, and back.

Both are written so that Ctrl-C (the cancellation of the running task) loses nothing:
`produce` reports every line it read as written, failed or not sent, and `consume`
commits exactly what it printed, flushing the commits while it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Final

from aiomq._cli.admin import Connection, Output
from aiomq._cli.format import Renderer, split_line
from aiomq.errors import Error, MessageTooLargeError, UnknownTopicOrPartitionError
from aiomq.message import FIRST_OFFSET, LAST_OFFSET, Header, Message
from aiomq.reader import Reader
from aiomq.writer import Compression, RequiredAcks, Writer

__all__ = [
    "ConsumeOptions",
    "ConsumeReport",
    "ProduceOptions",
    "ProduceReport",
    "consume",
    "produce",
]

_READ_CHUNK: Final = 65_536
_QUEUED_CHUNKS: Final = 8
_FETCH_MAX: Final = 500
_POLL: Final = 0.1
# With --exit-at-end, a broker holding an empty fetch for long would delay learning that
# a partition has nothing more; shorter waits learn the high water marks sooner.
_MAX_WAIT_AT_END: Final = 0.1
_MAX_WAIT: Final = 0.5


# -- produce ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ProduceOptions:
    topic: str
    key_separator: bytes | None = None
    headers: tuple[Header, ...] = ()
    partition: int | None = None
    compression: Compression | None = None
    acks: RequiredAcks = RequiredAcks.ALL
    allow_auto_topic_creation: bool = False


@dataclass(kw_only=True, slots=True)
class ProduceReport:
    """What became of the lines of one `produce` run; every line read is in one count."""

    lines: int = 0
    """Lines read and handed to the writer (or refused by it)."""

    written: int = 0
    """Messages the broker acknowledged."""

    failed: int = 0
    """Messages that failed, each reported on stderr."""

    bytes: int = 0
    """Key and value bytes of the written messages."""

    started: float = 0.0
    finished: float = 0.0

    @property
    def not_sent(self) -> int:
        """Lines read but neither written nor failed: when the run was interrupted, or
        stopped by an error (reported) before handing them over."""
        return self.lines - self.written - self.failed

    def summary(self, topic: str) -> str:
        seconds = max(self.finished - self.started, 1e-9)
        text = (
            f"wrote {_count(self.written, 'message')} ({self.bytes} bytes) to {topic} in "
            f"{seconds:.2f} s ({self.written / seconds:.0f} messages/s)"
        )
        if self.failed:
            text += f"; {self.failed} failed"
        if self.not_sent:
            text += f"; {self.not_sent} not sent"
        return text


async def produce(
    conn: Connection,
    out: Output,
    options: ProduceOptions,
    source: IO[bytes],
    report: ProduceReport,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write one message per line of `source`, counting every outcome in `report`.

    Raises:
        UnknownTopicOrPartitionError: The topic (or the partition) does not exist.
        Error: The broker cannot be reached, or refused the writer.
    """
    if not options.allow_auto_topic_creation:
        # Fail before reading any input: a user typing lines learns at once.
        await _check_target(conn, options)

    def completed(messages: list[Message], error: Error | None) -> None:
        if error is None:
            report.written += len(messages)
            report.bytes += sum(len(m.key or b"") + len(m.value or b"") for m in messages)
            if progress is not None:
                progress(len(messages))
        else:
            report.failed += len(messages)
            lines = _describe_lines(m.writer_data for m in messages)
            out.note(f"error: {len(messages)} message(s) not written ({lines}): {error}")

    lines: asyncio.Queue[list[bytes] | BaseException | None] = asyncio.Queue(_QUEUED_CHUNKS)
    _start_line_reader(source, lines, asyncio.get_running_loop())
    partition = -1 if options.partition is None else options.partition
    try:
        async with Writer(
            brokers=conn.brokers,
            topic=options.topic,
            async_mode=True,
            completion=completed,
            required_acks=options.acks,
            compression=options.compression,
            allow_auto_topic_creation=options.allow_auto_topic_creation,
            dialer=conn.dialer,
            logger=conn.logger,
        ) as writer:
            report.started = time.monotonic()
            while True:
                chunk = await lines.get()
                if chunk is None:
                    break
                if isinstance(chunk, BaseException):
                    raise Error(f"reading the input failed: {chunk}") from chunk
                messages = _messages(chunk, report.lines + 1, partition, options)
                report.lines += len(messages)
                await _write(writer, messages, report, out)
    finally:
        if report.started:
            report.finished = time.monotonic()


async def _check_target(conn: Connection, options: ProduceOptions) -> None:
    """Make sure the topic (and the partition asked for) exists.

    Raises:
        UnknownTopicOrPartitionError: It does not; the message says what to do.
    """
    topic = options.topic
    async with conn.client() as client:
        try:
            info = (await client.describe_topics(topic))[0]
        except UnknownTopicOrPartitionError:
            raise UnknownTopicOrPartitionError(
                topic=topic,
                detail=f"create it with `aiomq topics create {topic}`, or pass "
                "--allow-auto-topic-creation",
            ) from None
    partitions = [p.partition for p in info.partitions]
    if options.partition is not None and options.partition not in partitions:
        raise UnknownTopicOrPartitionError(
            topic=topic,
            partition=options.partition,
            detail=f"the topic has partitions 0 to {len(partitions) - 1}",
        )


def _messages(
    chunk: list[bytes], first: int, partition: int, options: ProduceOptions
) -> list[Message]:
    """The messages of a chunk of lines, the first numbered `first` (in `writer_data`)."""
    messages = []
    for number, line in enumerate(chunk, start=first):
        key, value = split_line(line, options.key_separator)
        messages.append(
            Message(
                partition=partition,
                key=key,
                value=value,
                headers=options.headers,
                writer_data=number,
            )
        )
    return messages


async def _write(
    writer: Writer, messages: Sequence[Message], report: ProduceReport, out: Output
) -> None:
    try:
        await writer.write_messages(*messages)
    except MessageTooLargeError:
        # One line is too large, and the call refused the whole chunk: write the lines
        # one by one, so that only the large ones fail (each reported).
        for message in messages:
            try:
                await writer.write_messages(message)
            except MessageTooLargeError as exc:
                report.failed += 1
                out.note(f"error: line {message.writer_data} not written: {exc}")


def _describe_lines(numbers: Any) -> str:
    """Say which lines a batch held, compactly: "lines 3-5, 9"."""
    ordered = sorted(numbers)
    spans: list[str] = []
    start = prev = ordered[0]
    for n in [*ordered[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    shown = ", ".join(spans[:5]) + (", ..." if len(spans) > 5 else "")
    return f"line{'s' if len(ordered) > 1 else ''} {shown}"


def _start_line_reader(
    source: IO[bytes],
    lines: asyncio.Queue[list[bytes] | BaseException | None],
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Read `source` in a daemon thread, handing over whole lines in chunks.

    A daemon thread, because a read from a terminal or a pipe blocks until input comes;
    the process must still be able to exit (on Ctrl-C) while it waits. It reads the file
    descriptor itself: a thread blocked inside a buffered stream holds the stream's lock,
    and the interpreter aborts when it finds that lock held at exit. Each read takes what
    is available, so typed lines go out one by one and files in large chunks; the bounded
    queue holds the reading back while the writer is busy.
    """
    fd = source.fileno()

    def put(item: list[bytes] | BaseException | None) -> bool:
        try:
            asyncio.run_coroutine_threadsafe(lines.put(item), loop).result()
        except BaseException:  # the loop is gone or shutting down: nobody is listening
            return False
        return True

    def run() -> None:
        pending = b""
        try:
            while True:
                data = os.read(fd, _READ_CHUNK)
                if not data:
                    break
                complete = (pending + data).split(b"\n")
                pending = complete.pop()
                if complete and not put(complete):
                    return
            if pending and not put([pending]):
                return
        except Exception as exc:
            put(exc)
            return
        put(None)

    threading.Thread(target=run, name="aiomq-produce-input", daemon=True).start()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# -- consume ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsumeOptions:
    topic: str
    render: Renderer
    group: str | None = None
    partition: int | None = None
    offset: int | datetime | None = None
    """Where to start in partition mode: FIRST_OFFSET, LAST_OFFSET, an offset or a time."""
    from_beginning: bool = False
    max_messages: int | None = None
    exit_at_end: bool = False
    session_timeout: float = 10.0


@dataclass(kw_only=True, slots=True)
class ConsumeReport:
    messages: int = 0
    started: float = 0.0
    """When the readers were open; 0 while they are not."""
    pipe_closed: bool = False

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        return f"read {_count(self.messages, 'message')} in {seconds:.2f} s"


class _Done:
    """Put in the queue by a pump whose reader reached the end of its partitions."""


_Item = tuple[Reader, list[Message]] | BaseException | type[_Done]


async def consume(
    conn: Connection, options: ConsumeOptions, sink: IO[bytes], report: ConsumeReport
) -> None:
    """Print messages to `sink`; in a group, commit each message once it is printed.

    Without a group, every partition (or the one chosen) is read by its own reader,
    starting at `options.offset`. Messages of one partition come out in offset order.

    Raises:
        UnknownTopicOrPartitionError: The topic (or the partition) does not exist.
        Error: The broker cannot be reached or refused a request.
    """
    topic = options.topic
    async with conn.client() as client:
        info = (await client.describe_topics(topic))[0]
        partitions = [p.partition for p in info.partitions]
        if options.partition is not None and options.partition not in partitions:
            raise UnknownTopicOrPartitionError(
                topic=topic,
                partition=options.partition,
                detail=f"the topic has partitions 0 to {len(partitions) - 1}",
            )
        starts: dict[tuple[str, int], int | None] = {}
        if options.group is not None and options.exit_at_end:
            starts = await _group_starts(client, options, partitions)

    async with contextlib.AsyncExitStack() as stack:
        sources: list[tuple[Reader, Callable[[], bool] | None]] = []
        if options.group is not None:
            reader = await stack.enter_async_context(
                conn.group_reader(
                    options.topic,
                    options.group,
                    options.session_timeout,
                    start_offset=FIRST_OFFSET if options.from_beginning else LAST_OFFSET,
                    max_wait=_MAX_WAIT_AT_END if options.exit_at_end else _MAX_WAIT,
                )
            )
            at_end = _group_at_end(reader, starts) if options.exit_at_end else None
            sources.append((reader, at_end))
        else:
            chosen = partitions if options.partition is None else [options.partition]
            for partition in chosen:
                reader = await stack.enter_async_context(
                    _partition_reader(conn, options, partition)
                )
                if isinstance(options.offset, datetime):
                    await reader.set_offset_at(options.offset)
                at_end = _partition_at_end(reader) if options.exit_at_end else None
                sources.append((reader, at_end))
        report.started = time.monotonic()
        await _print_messages(sources, options, sink, report)


def _partition_reader(conn: Connection, options: ConsumeOptions, partition: int) -> Reader:
    offset = FIRST_OFFSET if options.from_beginning else options.offset
    reader = Reader(
        brokers=conn.brokers,
        topic=options.topic,
        partition=partition,
        start_offset=FIRST_OFFSET if offset == FIRST_OFFSET else LAST_OFFSET,
        max_wait=_MAX_WAIT_AT_END if options.exit_at_end else _MAX_WAIT,
        read_lag_interval=0,
        close_timeout=conn.timeout,
        dialer=conn.dialer,
        logger=conn.logger,
    )
    if isinstance(offset, int) and offset >= 0:
        reader.set_offset(offset)
    return reader


async def _group_starts(
    client: Any, options: ConsumeOptions, partitions: Sequence[int]
) -> dict[tuple[str, int], int | None]:
    """Where the group will start in each partition: its committed offset, else the
    first offset with --from-beginning, else None (the end, so nothing to catch up)."""
    assert options.group is not None
    committed = {
        (o.topic, o.partition): o.committed
        for o in await client.group_offsets(options.group, topics=[options.topic])
    }
    first: dict[int, int] = {}
    if options.from_beginning:
        first = await client.list_offsets(options.topic, at=FIRST_OFFSET)
    starts: dict[tuple[str, int], int | None] = {}
    for p in partitions:
        key = (options.topic, p)
        offset = committed.get(key, -1)
        starts[key] = offset if offset >= 0 else first.get(p)
    return starts


def _partition_at_end(reader: Reader) -> Callable[[], bool]:
    def at_end() -> bool:
        stats = reader.stats()
        (part,) = stats.partitions
        return (
            stats.queued == 0
            and part.high_water_mark >= 0
            and part.offset >= 0
            and part.offset >= part.high_water_mark
        )

    return at_end


def _group_at_end(reader: Reader, starts: dict[tuple[str, int], int | None]) -> Callable[[], bool]:
    """Caught up when every owned partition's position reaches its fetch high water mark.

    The reader knows its position only in partitions it has returned messages from; in
    the others the group is still where it started.
    """

    def at_end() -> bool:
        stats = reader.stats()
        if stats.queued or not stats.partitions:
            return False
        for part in stats.partitions:
            if part.high_water_mark < 0:
                return False
            position = part.offset if part.offset >= 0 else starts.get((part.topic, part.partition))
            if position is not None and position < part.high_water_mark:
                return False
        return True

    return at_end


async def _print_messages(
    sources: Sequence[tuple[Reader, Callable[[], bool] | None]],
    options: ConsumeOptions,
    sink: IO[bytes],
    report: ConsumeReport,
) -> None:
    queue: asyncio.Queue[_Item] = asyncio.Queue(len(sources))
    limit = options.max_messages

    def room() -> int:
        return _FETCH_MAX if limit is None else max(1, min(_FETCH_MAX, limit - report.messages))

    tasks = [asyncio.create_task(_pump(r, at_end, room, queue)) for r, at_end in sources]
    try:
        running = len(tasks)
        while running and (limit is None or report.messages < limit):
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if not isinstance(item, tuple):  # _Done
                running -= 1
                continue
            reader, batch = item
            if limit is not None:
                batch = batch[: limit - report.messages]
            try:
                sink.write(b"".join(options.render(m) for m in batch))
                sink.flush()
            except BrokenPipeError:
                # The reader of our output went away (`| head`): stop, committing only
                # what was printed before.
                report.pipe_closed = True
                return
            report.messages += len(batch)
            if options.group is not None:
                await reader.commit_messages(*batch)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pump(
    reader: Reader,
    at_end: Callable[[], bool] | None,
    room: Callable[[], int],
    queue: asyncio.Queue[_Item],
) -> None:
    """Fetch batches from one reader into the queue until the reader is at its end
    (with --exit-at-end) or the task is cancelled. A fetch cut short takes no message."""
    try:
        while at_end is None or not at_end():
            try:
                async with asyncio.timeout(None if at_end is None else _POLL) as scope:
                    batch = await reader.fetch_batch(room())
            except TimeoutError:
                if not scope.expired():
                    raise
                continue
            await queue.put((reader, batch))
    except Exception as exc:
        await queue.put(exc)
        return
    await queue.put(_Done)
