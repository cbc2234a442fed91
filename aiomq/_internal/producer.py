"""The Writer's engine: per-partition queues, record batches, produce requests and retries.

Each partition has a queue of accepted messages and at most one produce request in flight.
A drain task starts when a message reaches an idle partition and ends when its queue is
empty. While a request is in flight, newly queued messages wait and then leave together,
so batches grow with load without any fixed linger delay; `batch_timeout` adds an
optional linger on top. One request at a time per partition keeps per-partition order
across retries, with or without idempotence.

Every accepted message is settled exactly once: written (with its offset) or failed
(with an aiomq error), and counted in the stats either way.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, cast

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.protocol.transaction import InitProducerIdRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from aiomq._internal.backoff import backoff_delay
from aiomq._internal.errmap import broker_error, map_errors
from aiomq.errors import BrokerConnectionError, BrokerError, ClosedError, Error, RequestTimeoutError
from aiomq.message import Message, to_millis

__all__ = ["Completion", "Producer", "ProducerSettings", "WriteCall"]

_LEADER_NOT_AVAILABLE: Final = 5
_DUPLICATE_SEQUENCE: Final = 46
_MAX_SEQUENCE: Final = 2**31
_MAGIC: Final = 2

Completion = Callable[[list[Message], Error | None], Awaitable[None] | None]
"""An async-mode outcome callback: the messages of one batch, and the error if it failed."""


class WriteCall:
    """The outcomes of one synchronous `write_messages` call, aligned with its input."""

    __slots__ = ("done", "errors", "failed", "pending", "written")

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self.written: list[Message | None] = [None] * size
        self.errors: list[Error | None] = [None] * size
        self.failed = 0
        self.pending = 0
        self.done: asyncio.Future[None] = loop.create_future()

    def finish(self) -> None:
        # The caller may have been cancelled, which cancels this future too.
        if not self.done.done():
            self.done.set_result(None)


Queued = tuple[Message, WriteCall | None, int, int, float]
"""A queued message: (message, call or None, index in the call, record size, time queued)."""

_new_message = tuple.__new__
_record_size = operator.itemgetter(3)
# Shared by every message without headers; the batch builder only reads it.
_NO_HEADERS: Final[list[tuple[str, bytes]]] = []


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
        "idempotent",
        "max_attempts",
        "queue_capacity",
        "timeout_ms",
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
        self.brokers = tuple(brokers)


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
        "sequence",
        "task",
        "topic",
        "tp",
    )

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.tp = TopicPartition(topic, partition)
        self.queue: deque[Queued] = deque()
        self.queued_bytes = 0
        self.in_flight: list[Queued] = []
        self.in_flight_bytes = 0
        self.task: asyncio.Task[None] | None = None
        self.full = asyncio.Event()
        self.producer_id = -1
        self.producer_epoch = -1
        self.sequence = 0


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


class Producer:
    """Queues messages per partition and delivers them in batches, with retries."""

    def __init__(self, client: AIOKafkaClient, settings: ProducerSettings, log: Any) -> None:
        self._client = client
        self._settings = settings
        self._log = log
        self._loop = asyncio.get_running_loop()
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._space = asyncio.Event()
        self._space.set()
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False
        self._producer_id = -1
        self._producer_epoch = -1
        self._pid_lock = asyncio.Lock()
        self.counters = Counters()

    # -- accepting messages ---------------------------------------------------------------

    async def wait_for_space(self) -> None:
        """Wait until the writer buffers fewer messages than its queue capacity."""
        while self.counters.queued >= self._settings.queue_capacity:
            self._space.clear()
            await self._space.wait()

    def has_space(self) -> bool:
        return self.counters.queued < self._settings.queue_capacity

    def enqueue_many(
        self, topic: str, partition: int, items: list[Queued], call: WriteCall | None
    ) -> None:
        """Accept messages for one partition; from here on each is settled exactly once."""
        if self._closing:
            raise ClosedError("the writer is closing; no more messages are accepted")
        key = (topic, partition)
        state = self._partitions.get(key)
        if state is None:
            state = self._partitions[key] = _Partition(topic, partition)
        state.queue.extend(items)
        state.queued_bytes += sum(map(_record_size, items))
        count = len(items)
        self.counters.queued += count
        if call is not None:
            call.pending += count
        settings = self._settings
        if len(state.queue) >= settings.batch_size or state.queued_bytes >= settings.batch_bytes:
            state.full.set()
        if state.task is None:
            state.task = self._loop.create_task(self._drain(state))

    # -- idempotence ----------------------------------------------------------------------

    async def init_producer_id(self) -> None:
        """Ask the cluster for a producer id and epoch, for idempotent writes."""
        # No transactional id: the broker hands out a producer id for idempotence alone.
        request = InitProducerIdRequest(
            transactional_id=None,  # type: ignore[arg-type]
            transaction_timeout_ms=60_000,
        )
        with map_errors(brokers=self._settings.brokers):
            node = self._client.get_random_node()
            if node is None:
                raise BrokerConnectionError(
                    "no broker is known to ask for a producer id", brokers=self._settings.brokers
                )
            response = await self._client.send(node, request)
        if response.error_code:
            raise broker_error(response.error_code, detail="while asking for a producer id")
        self._producer_id = response.producer_id
        self._producer_epoch = response.producer_epoch

    # -- sending --------------------------------------------------------------------------

    async def _drain(self, state: _Partition) -> None:
        try:
            while state.queue:
                if self._settings.batch_timeout > 0 and not self._closing:
                    await self._linger(state)
                if self._settings.idempotent and state.producer_id != self._producer_id:
                    async with self._pid_lock:
                        if self._producer_id < 0:
                            await self.init_producer_id()
                    state.producer_id = self._producer_id
                    state.producer_epoch = self._producer_epoch
                    state.sequence = 0
                data, timestamp_ms = self._build_batch(state)
                await self._send(state, data, timestamp_ms)
        except BaseException as exc:
            reason: Error
            if isinstance(exc, Error):
                reason = exc
            elif isinstance(exc, Exception):
                reason = Error(
                    f"writing to topic {state.topic!r} partition {state.partition} "
                    f"failed unexpectedly: {exc!r}"
                )
            else:
                reason = ClosedError(
                    f"the writer closed before delivering to topic {state.topic!r} "
                    f"partition {state.partition}"
                )
            self._fail(state, state.in_flight, reason)
            self._fail(state, list(state.queue), reason)
            state.queue.clear()
            state.queued_bytes = 0
            if not isinstance(exc, Exception):
                raise
        finally:
            state.task = None

    async def _linger(self, state: _Partition) -> None:
        settings = self._settings
        deadline = state.queue[0][4] + settings.batch_timeout
        while (
            len(state.queue) < settings.batch_size
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
        settings = self._settings
        builder = DefaultRecordBatchBuilder(
            _MAGIC,
            settings.codec,
            0,
            state.producer_id,
            state.producer_epoch,
            state.sequence if state.producer_id >= 0 else -1,
            settings.batch_bytes,
        )
        # One clock reading per batch: every message without a time of its own gets it.
        now_ms = int(time.time() * 1000)
        queue = state.queue
        taken = state.in_flight
        append = builder.append
        popleft = queue.popleft
        keep = taken.append
        no_headers = _NO_HEADERS
        offset = 0
        size = 0
        for _ in range(min(settings.batch_size, len(queue))):
            item = queue[0]
            message = item[0]
            when = message[7]
            headers: list[Any] = message[6]  # type: ignore[assignment]
            if headers.__class__ is not list:
                headers = list(headers) if headers else no_headers
            if (
                append(
                    offset,
                    now_ms if when is None else to_millis(when),
                    message[4],
                    message[5],
                    headers,
                )
                is None
            ):
                break  # the batch is full in bytes
            offset += 1  # noqa: SIM113 - counts only the records the builder took
            size += item[3]
            keep(popleft())
        state.queued_bytes -= size
        state.in_flight_bytes = size
        return builder.build(), now_ms

    async def _send(self, state: _Partition, data: bytearray, timestamp_ms: int) -> None:
        settings = self._settings
        request = ProduceRequest(
            transactional_id=None,
            required_acks=settings.acks,
            timeout=settings.timeout_ms,
            topics=[(state.topic, [(state.partition, cast(bytes, data))])],
        )
        attempt = 0
        while True:
            attempt += 1
            error = await self._attempt(state, request)
            if isinstance(error, tuple):
                base_offset, append_time_ms = error
                self._succeed(state, base_offset, append_time_ms, timestamp_ms, len(data))
                return
            retriable = _is_retriable(error)
            if not retriable or attempt >= settings.max_attempts:
                if retriable:
                    error = _exhausted(error, attempt)
                if settings.idempotent:
                    # The broker's sequence for this producer id is now unknowable: start
                    # over with a fresh id rather than risk an out-of-order rejection.
                    self._producer_id = -1
                self._fail(state, state.in_flight, error)
                return
            self.counters.retries += 1
            self._log.warning(
                "write_retried",
                topic=state.topic,
                partition=state.partition,
                attempt=attempt,
                error=str(error),
            )
            # Leadership may have moved: refresh metadata while backing off.
            refreshed = self._client.force_metadata_update()
            await asyncio.sleep(backoff_delay(attempt, settings.backoff_min, settings.backoff_max))
            try:
                async with asyncio.timeout(settings.backoff_max):
                    await refreshed
            except Exception:  # the next attempt reports what is still wrong
                pass

    async def _attempt(self, state: _Partition, request: ProduceRequest) -> tuple[int, int] | Error:
        """Send the request once; return (base offset, append time) or the error."""
        leader = self._client.cluster.leader_for_partition(state.tp)
        if leader is None or leader < 0:
            return broker_error(_LEADER_NOT_AVAILABLE, topic=state.topic, partition=state.partition)
        try:
            with map_errors(
                brokers=self._settings.brokers, topic=state.topic, partition=state.partition
            ):
                response = await self._client.send(leader, request)
        except Error as exc:
            return exc
        if response is None:  # acks=0: the broker sends no answer
            return (-1, -1)
        partition_info = response.topics[0][1][0]
        code = partition_info[1]
        if code and code != _DUPLICATE_SEQUENCE:
            return broker_error(code, topic=state.topic, partition=state.partition)
        append_time = partition_info[3] if len(partition_info) > 3 else -1
        return (partition_info[2], append_time)

    # -- settling -------------------------------------------------------------------------

    def _succeed(
        self,
        state: _Partition,
        base_offset: int,
        append_time_ms: int,
        timestamp_ms: int,
        encoded_bytes: int,
    ) -> None:
        records = state.in_flight
        state.in_flight = []
        count = len(records)
        if state.producer_id >= 0:
            state.sequence = (state.sequence + count) % _MAX_SEQUENCE
        counters = self.counters
        now = self._loop.time()
        elapsed = now - records[0][4]
        counters.batches += 1
        counters.messages += count
        counters.batch_bytes += encoded_bytes
        counters.batch_time_total += elapsed
        counters.batch_messages_max = max(counters.batch_messages_max, count)
        counters.batch_time_max = max(counters.batch_time_max, elapsed)
        counters.bytes += state.in_flight_bytes
        completion = self._settings.completion
        wants_results = completion is not None
        # The broker's append time wins when the topic uses LogAppendTime.
        stamp_ms = append_time_ms if append_time_ms >= 0 else timestamp_ms
        batch_time = datetime.fromtimestamp(stamp_ms / 1000, UTC)
        topic, partition = state.topic, state.partition
        written_batch: list[Message] = []
        finished: list[WriteCall] = []
        if not wants_results and records[0][1] is None:
            # Async mode without a completion callback: nobody asks for the results.
            records = []
        offset = base_offset - 1
        known_offsets = base_offset >= 0
        own_times = append_time_ms < 0
        for message, call, index, _size, _queued in records:
            offset += 1
            when = message[7]
            written = _new_message(
                Message,
                (
                    topic,
                    partition,
                    offset if known_offsets else -1,
                    -1,
                    message[4],
                    message[5],
                    message[6],
                    when if own_times and when is not None else batch_time,
                    message[8],
                ),
            )
            if call is not None:
                call.written[index] = written
                call.pending -= 1
                if not call.pending:
                    finished.append(call)
            if wants_results:
                written_batch.append(written)
        for call in finished:
            call.finish()
        self._release(count)
        if completion is not None:
            self._complete(completion, written_batch, None)

    def _fail(self, state: _Partition, records: list[Queued], error: Error) -> None:
        if not records:
            return
        if records is state.in_flight:
            state.in_flight = []
        self.counters.errors += len(records)
        self._log.error(
            "write_failed",
            topic=state.topic,
            partition=state.partition,
            messages=len(records),
            error=str(error),
        )
        failed: list[Message] = []
        for message, call, index, _size, _queued in records:
            if call is not None:
                call.errors[index] = error
                call.failed += 1
                call.pending -= 1
                if not call.pending:
                    call.finish()
            failed.append(message)
        self._release(len(records))
        completion = self._settings.completion
        if completion is not None:
            self._complete(completion, failed, error)

    def _release(self, count: int) -> None:
        self.counters.queued -= count
        if self.counters.queued < self._settings.queue_capacity:
            self._space.set()

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
        """Deliver what is queued within `deadline` seconds; fail the rest with ClosedError."""
        self._closing = True
        for state in self._partitions.values():
            state.full.set()
        tasks = [s.task for s in self._partitions.values() if s.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=deadline)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._background:
            _done, late = await asyncio.wait(self._background, timeout=max(deadline, 0.1))
            for task in late:
                task.cancel()


def _is_retriable(error: Error) -> bool:
    if isinstance(error, BrokerError):
        return error.retriable
    return isinstance(error, BrokerConnectionError | RequestTimeoutError)


def _exhausted(error: Error, attempts: int) -> Error:
    """Keep the error's class, and say that the attempts ran out."""
    error.add_note(f"gave up after {attempts} attempts")
    return error
