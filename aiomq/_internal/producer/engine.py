"""The Writer's engine: per-partition queues, record batches, produce requests and retries.

Each partition has a queue of accepted messages and at most one produce request in flight.
A drain task starts when a message reaches an idle partition and ends when its queue is
empty. While a request is in flight, newly queued messages wait and then leave together,
so batches grow with load without any fixed linger delay; `batch_timeout` adds an
optional linger on top. One request at a time per partition keeps per-partition order
across retries, with or without idempotence.

Every accepted message is settled exactly once: written (with its offset) or failed
(with an aiomq error), and counted in the stats either way.

The engine's tasks (one drain per busy partition, one per pending coroutine completion)
are its own: `close` waits for them, cancels those still running at its deadline and waits
for those too. A drain that fails with anything but an aiomq error is a bug: it fails its
messages, logs `writer_failed` and tells the writer, which refuses further calls.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from itertools import accumulate, repeat
from operator import itemgetter
from typing import Any, Final

from aiomq._internal.backoff import backoff_delay
from aiomq._internal.kafka.client import KafkaClient
from aiomq._internal.kafka.produce import RECORD_FRAMING, RecordBatch
from aiomq._internal.producer.planner import FEW, Chunk
from aiomq._internal.producer.settings import Completion, Counters, ProducerSettings
from aiomq._internal.shield import finish_tasks
from aiomq.errors import BrokerConnectionError, BrokerError, ClosedError, Error, RequestTimeoutError
from aiomq.message import Message

__all__ = ["Producer"]

_MAX_SEQUENCE: Final = 2**31
# The least time coroutine completions get at close, even when the flush used it all up.
_COMPLETION_GRACE: Final = 0.1

_new_message = tuple.__new__
_key_of = itemgetter(4)
_value_of = itemgetter(5)
_headers_of = itemgetter(6)
_time_of = itemgetter(7)
_data_of = itemgetter(8)


class _Partition:
    """The queue and sender state of one topic partition."""

    __slots__ = (
        "full",
        "in_flight",
        "in_flight_bytes",
        "partition",
        "producer_epoch",
        "producer_id",
        "queue",
        "queued_bytes",
        "queued_messages",
        "sequence",
        "task",
        "topic",
    )

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.queue: deque[Chunk] = deque()
        self.queued_messages = 0
        self.queued_bytes = 0
        self.in_flight: list[Chunk] = []
        self.in_flight_bytes = 0
        self.task: asyncio.Task[None] | None = None
        self.full = asyncio.Event()
        self.producer_id = -1
        self.producer_epoch = -1
        self.sequence = 0


class Producer:
    """Queues messages per partition and delivers them in batches, with retries.

    Args:
        client: The writer's started client.
        settings: The writer's settings.
        log: The logger.
        on_failure: Called with an `Error` (caused by the original exception) when a
            drain fails unexpectedly; the writer refuses further calls from then on.
    """

    def __init__(
        self,
        client: KafkaClient,
        settings: ProducerSettings,
        log: Any,
        on_failure: Callable[[Error], None],
    ) -> None:
        self._kafka = client
        self._settings = settings
        self._log = log
        self._on_failure = on_failure
        self._loop = asyncio.get_running_loop()
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._space = asyncio.Event()
        self._space.set()
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False
        self._producer_id = -1
        self._producer_epoch = -1
        self._pid_lock = asyncio.Lock()
        self._transactional = settings.transactional_id is not None
        self._idle = asyncio.Event()
        self._idle.set()
        self.counters = Counters()
        self.first_failure: Error | None = None
        """The error of the first batch that failed since `first_failure` was last reset to
        None (a transactional writer resets it as each transaction begins)."""

    # -- accepting messages ---------------------------------------------------------------

    async def wait_for_space(self) -> None:
        """Wait until the writer buffers fewer messages than its queue capacity."""
        while self.counters.queued >= self._settings.queue_capacity:
            self._space.clear()
            await self._space.wait()

    def has_space(self) -> bool:
        return self.counters.queued < self._settings.queue_capacity

    def enqueue(self, topic: str, partition: int, chunk: Chunk) -> None:
        """Accept a chunk for one partition; from here on each message is settled once."""
        if self._closing:
            raise ClosedError("the writer is closing; no more messages are accepted")
        key = (topic, partition)
        state = self._partitions.get(key)
        if state is None:
            state = self._partitions[key] = _Partition(topic, partition)
        state.queue.append(chunk)
        count = len(chunk.messages)
        state.queued_messages += count
        state.queued_bytes += chunk.nbytes
        self.counters.queued += count
        self._idle.clear()
        call = chunk.call
        if call is not None:
            call.pending += count
        settings = self._settings
        if (
            state.queued_messages >= settings.batch_size
            or state.queued_bytes >= settings.batch_bytes
        ):
            state.full.set()
        if state.task is None:
            state.task = self._loop.create_task(self._drain(state))

    # -- idempotence ----------------------------------------------------------------------

    async def init_producer_id(self) -> None:
        """Ask the cluster for a producer id and epoch, for idempotent writes."""
        self._producer_id, self._producer_epoch = await self._kafka.init_producer_id()

    def use_producer_id(self, producer_id: int, producer_epoch: int) -> None:
        """Write as this producer id and epoch from the next batch on: a transactional
        writer's, from its coordinator. Each partition's sequence starts again at 0."""
        self._producer_id, self._producer_epoch = producer_id, producer_epoch

    async def wait_idle(self) -> None:
        """Wait until every accepted message is settled: written or failed."""
        await self._idle.wait()

    # -- sending --------------------------------------------------------------------------

    async def _drain(self, state: _Partition) -> None:
        try:
            while state.queue:
                if self._settings.batch_timeout > 0 and not self._closing:
                    await self._linger(state)
                if self._settings.idempotent and (
                    state.producer_id != self._producer_id
                    or state.producer_epoch != self._producer_epoch
                ):
                    async with self._pid_lock:
                        if self._producer_id < 0 and not self._transactional:
                            await self.init_producer_id()
                    state.producer_id = self._producer_id
                    state.producer_epoch = self._producer_epoch
                    state.sequence = 0
                data, timestamp_ms = self._build_batch(state)
                await self._send(state, data, timestamp_ms)
        except BaseException as exc:
            try:
                self._abandon(state, exc)
            except Exception as failure:  # failing the messages failed too: a bug
                self._crash(state, failure)
            if not isinstance(exc, Exception):
                raise
        finally:
            state.task = None

    def _abandon(self, state: _Partition, exc: BaseException) -> None:
        """Fail what the partition holds, after its drain stopped on `exc`."""
        reason: Error
        if isinstance(exc, Error):
            reason = exc
        elif isinstance(exc, Exception):
            reason = self._crash(state, exc)
        else:
            reason = ClosedError(
                f"the writer closed before delivering to topic {state.topic!r} "
                f"partition {state.partition}"
            )
        self._fail(state, state.in_flight, reason)
        self._fail(state, [chunk.whole() for chunk in state.queue], reason)
        state.queue.clear()
        state.queued_messages = 0
        state.queued_bytes = 0

    def _crash(self, state: _Partition, exc: Exception) -> Error:
        """Report a bug that stopped a drain: log it, tell the writer, and return the error
        that fails the partition's messages."""
        error = Error(
            f"writing to topic {state.topic!r} partition {state.partition} failed "
            f"unexpectedly: {exc!r}"
        )
        error.__cause__ = exc
        self._log.error(
            "writer_failed",
            topic=state.topic,
            partition=state.partition,
            error=repr(exc),
            exc_info=exc,
        )
        self._on_failure(error)
        return error

    async def _linger(self, state: _Partition) -> None:
        settings = self._settings
        deadline = state.queue[0].queued_at + settings.batch_timeout
        while (
            state.queued_messages < settings.batch_size
            and state.queued_bytes < settings.batch_bytes
            and not self._closing
        ):
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return
            state.full.clear()
            try:
                async with asyncio.timeout(remaining):
                    await state.full.wait()
            except TimeoutError:
                return

    def _build_batch(self, state: _Partition) -> tuple[bytearray, int]:
        """Move queued chunks into `state.in_flight` and encode them as one record batch."""
        settings = self._settings
        limit = settings.batch_bytes
        batch = RecordBatch(
            codec=settings.codec,
            producer_id=state.producer_id,
            producer_epoch=state.producer_epoch,
            base_sequence=state.sequence if state.producer_id >= 0 else -1,
            limit=limit,
            transactional=self._transactional,
        )
        # One clock reading per batch: every message without a time of its own gets it.
        now_ms = int(time.time() * 1000)
        queue = state.queue
        taken = state.in_flight
        size = batch.size
        room = min(settings.batch_size, state.queued_messages)
        count = 0
        nbytes = 0
        while count < room:
            chunk = queue[0]
            if len(chunk.messages) - chunk.start > room - count:
                chunk = chunk.split(room - count)
            else:
                chunk = queue.popleft().whole()
            messages = chunk.messages
            n = len(messages)
            if n >= FEW and chunk.plain:
                if size() + chunk.nbytes + n * RECORD_FRAMING <= limit:
                    # Every record fits for sure: encode them in one pass, no checks needed.
                    batch.append_plain(count, now_ms, messages)
                    fitted = n
                else:
                    # The batch fills up inside this chunk: the records that fit for sure
                    # in one pass, then one at a time until the batch is full.
                    fitted = _sure_to_fit(messages, limit - size())
                    if fitted:
                        batch.append_plain(count, now_ms, messages[:fitted])
                    if fitted < n:
                        fitted += batch.append_each(count + fitted, now_ms, messages[fitted:])
            else:
                fitted = batch.append_each(count, now_ms, messages)
            if fitted < n:
                # The batch is full in bytes: the rest of the chunk waits for the next one.
                queue.appendleft(chunk)
                if fitted == 0:
                    break
                chunk = chunk.split(fitted)
            taken.append(chunk)
            count += fitted
            nbytes += chunk.nbytes
            if fitted < n:
                break
        state.queued_messages -= count
        state.queued_bytes -= nbytes
        state.in_flight_bytes = nbytes
        return batch.build(), now_ms

    async def _send(self, state: _Partition, data: bytearray, timestamp_ms: int) -> None:
        settings = self._settings
        attempt = 0
        while True:
            attempt += 1
            error = await self._kafka.send_batch(
                state.topic,
                state.partition,
                data,
                acks=settings.acks,
                timeout_ms=settings.timeout_ms,
                transactional_id=settings.transactional_id,
            )
            if isinstance(error, tuple):
                base_offset, append_time_ms = error
                self._succeed(state, base_offset, append_time_ms, timestamp_ms, len(data))
                return
            retriable = _is_retriable(error)
            if not retriable or attempt >= settings.max_attempts:
                if retriable:
                    error = _exhausted(error, attempt)
                if settings.idempotent and not self._transactional:
                    # The broker's sequence for this producer id is now unknowable: start
                    # over with a fresh id rather than risk an out-of-order rejection. (A
                    # transactional writer aborts instead, and its coordinator gives it a
                    # new epoch.)
                    self._producer_id = -1
                self._fail(state, state.in_flight, error)
                return
            self.counters.retries += 1
            if settings.observer is not None:
                settings.observer.batch_retried(state.topic, state.partition)
            self._log.warning(
                "write_retried",
                topic=state.topic,
                partition=state.partition,
                attempt=attempt,
                error=str(error),
            )
            # Leadership may have moved: refresh metadata while backing off.
            refreshed = self._kafka.refresh_metadata()
            await asyncio.sleep(backoff_delay(attempt, settings.backoff_min, settings.backoff_max))
            try:
                async with asyncio.timeout(settings.backoff_max):
                    await refreshed
            except Exception:  # the next attempt reports what is still wrong
                pass

    # -- settling -------------------------------------------------------------------------

    def _succeed(
        self,
        state: _Partition,
        base_offset: int,
        append_time_ms: int,
        timestamp_ms: int,
        encoded_bytes: int,
    ) -> None:
        chunks = state.in_flight
        state.in_flight = []
        count = sum(len(chunk.messages) for chunk in chunks)
        if state.producer_id >= 0:
            state.sequence = (state.sequence + count) % _MAX_SEQUENCE
        self._count_batch(state, chunks, count, encoded_bytes)
        completion = self._settings.completion
        if chunks[0].call is None:
            if completion is None:
                # Async mode without a completion callback: nobody asks for the results.
                self._release(count)
                return
            if not self._settings.completion_written:
                # The callback takes the messages as given: nothing to build.
                given = (
                    chunks[0].messages
                    if len(chunks) == 1
                    else [m for chunk in chunks for m in chunk.messages]
                )
                self._release(count)
                self._complete(completion, given, None)
                return
        # The broker's append time wins when the topic uses LogAppendTime.
        stamp_ms = append_time_ms if append_time_ms >= 0 else timestamp_ms
        batch_time = datetime.fromtimestamp(stamp_ms / 1000, UTC)
        own_times = append_time_ms < 0
        written_batch: list[Message] = []
        offset = base_offset
        for chunk in chunks:
            messages = chunk.messages
            n = len(messages)
            if n == 1:
                message = messages[0]
                when = message[7]
                written = [
                    _new_message(
                        Message,
                        (
                            state.topic,
                            state.partition,
                            offset if base_offset >= 0 else -1,
                            -1,
                            message[4],
                            message[5],
                            message[6],
                            when if own_times and when is not None else batch_time,
                            message[8],
                        ),
                    )
                ]
            else:
                # With acks=0 the broker says nothing about offsets.
                first = offset if base_offset >= 0 else -1
                times = repeat(batch_time) if chunk.plain or not own_times else None
                written = _written(state.topic, state.partition, first, messages, times, batch_time)
            offset += n
            call = chunk.call
            if call is not None:
                slots = call.written
                if n == len(slots):  # the whole call went to this partition
                    call.written = written  # type: ignore[assignment]  # nothing is None
                else:
                    for index, message in zip(chunk.indices, written, strict=True):
                        slots[index] = message
                call.pending -= n
                if not call.pending:
                    call.finish()
            if completion is not None:
                written_batch += written
        self._release(count)
        if completion is not None:
            self._complete(completion, written_batch, None)

    def _count_batch(
        self, state: _Partition, chunks: list[Chunk], count: int, encoded_bytes: int
    ) -> None:
        """Count a written batch of `count` messages in the stats."""
        counters = self.counters
        elapsed = self._loop.time() - chunks[0].queued_at
        counters.batches += 1
        counters.messages += count
        counters.batch_bytes += encoded_bytes
        counters.batch_time_total += elapsed
        counters.batch_messages_max = max(counters.batch_messages_max, count)
        counters.batch_time_max = max(counters.batch_time_max, elapsed)
        counters.bytes += state.in_flight_bytes
        observer = self._settings.observer
        if observer is not None:
            observer.batch_written(
                state.topic, state.partition, count, state.in_flight_bytes, elapsed
            )

    def _fail(self, state: _Partition, chunks: list[Chunk], error: Error) -> None:
        if not chunks:
            return
        if chunks is state.in_flight:
            state.in_flight = []
        count = sum(len(chunk.messages) for chunk in chunks)
        self.counters.errors += count
        observer = self._settings.observer
        if observer is not None:
            observer.batch_failed(state.topic, state.partition, count, error)
        if self.first_failure is None:
            self.first_failure = error
        self._log.error(
            "write_failed",
            topic=state.topic,
            partition=state.partition,
            messages=count,
            error=str(error),
        )
        failed: list[Message] = []
        for chunk in chunks:
            call = chunk.call
            if call is not None:
                errors = call.errors
                for index in chunk.indices:
                    errors[index] = error
                n = len(chunk.messages)
                call.failed += n
                call.pending -= n
                if not call.pending:
                    call.finish()
            failed += chunk.messages
        self._release(count)
        completion = self._settings.completion
        if completion is not None:
            self._complete(completion, failed, error)

    def _release(self, count: int) -> None:
        queued = self.counters.queued = self.counters.queued - count
        if queued < self._settings.queue_capacity:
            self._space.set()
            if not queued:
                self._idle.set()

    def _complete(
        self, completion: Completion, messages: list[Message], error: Error | None
    ) -> None:
        try:
            result = completion(messages, error)
        except Exception as exc:
            self._log.error("completion_failed", error=repr(exc))
            return
        if result is not None:
            task = self._loop.create_task(self._await_completion(result))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _await_completion(self, result: Awaitable[None]) -> None:
        try:
            await result
        except Exception as exc:
            self._log.error("completion_failed", error=repr(exc))

    # -- closing --------------------------------------------------------------------------

    async def close(self, deadline: float) -> None:
        """Deliver what is queued by `deadline` (event loop time); fail the rest with
        ClosedError.

        Returns when every task of the engine has ended: those still running at the
        deadline are cancelled, and waited for (a little longer) too.
        """
        self._closing = True
        loop = self._loop
        for state in self._partitions.values():
            state.full.set()
        drains = [s.task for s in self._partitions.values() if s.task is not None]
        await finish_tasks(drains, deadline, self._log)
        # The drains are over, so no completion starts after this.
        completions = set(self._background)
        await finish_tasks(completions, max(deadline, loop.time() + _COMPLETION_GRACE), self._log)


def _written(
    topic: str,
    partition: int,
    first: int,
    messages: list[Message],
    times: Iterator[datetime] | None,
    batch_time: datetime,
) -> list[Message]:
    """`messages` as written to `partition` of `topic`, at offsets from `first` (none when
    it is -1), at `times`, or when None at their own times, `batch_time` for those without.
    """
    if times is None:
        times = iter([batch_time if t is None else t for t in map(_time_of, messages)])
    no_mark = repeat(-1)
    return list(
        map(
            _new_message,
            repeat(Message),
            zip(
                repeat(topic),
                repeat(partition),
                range(first, first + len(messages)) if first >= 0 else no_mark,
                no_mark,
                map(_key_of, messages),
                map(_value_of, messages),
                map(_headers_of, messages),
                times,
                map(_data_of, messages),
                strict=False,  # the repeats are endless; the maps set the length
            ),
        )
    )


def _sure_to_fit(messages: list[Message], room: int) -> int:
    """How many of `messages` (without headers or times of their own) surely fit in `room`
    bytes, counting each record at its widest framing."""
    sizes = accumulate(
        (0 if key is None else len(key)) + (0 if value is None else len(value)) + RECORD_FRAMING
        for key, value in zip(map(_key_of, messages), map(_value_of, messages), strict=True)
    )
    return bisect_right(list(sizes), room)


def _is_retriable(error: Error) -> bool:
    if isinstance(error, BrokerError):
        return error.retriable
    return isinstance(error, BrokerConnectionError | RequestTimeoutError)


def _exhausted(error: Error, attempts: int) -> Error:
    """Keep the error's class, and say that the attempts ran out."""
    error.add_note(f"gave up after {attempts} attempts")
    return error
