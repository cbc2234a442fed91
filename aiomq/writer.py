"""The Writer: batched, balanced, retried writes to Kafka (kafka-go's `Writer`).

::

    async with aiomq.Writer(brokers=["localhost:9092"], topic="orders") as w:
        written = await w.write_messages(aiomq.Message(key=b"user-1", value=b"..."))
        print(written[0].partition, written[0].offset)
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Self

from aiomq._internal.config import (
    ClientSettings,
    build_config,
    check_brokers,
    check_connection,
    check_positive_int,
    check_seconds,
)
from aiomq._internal.kafka.client import KafkaClient
from aiomq._internal.lifecycle import AsyncResource, Lifecycle
from aiomq._internal.log import get_logger
from aiomq._internal.producer.engine import Producer
from aiomq._internal.producer.planner import Planned, Planner, WriteCall
from aiomq._internal.producer.settings import Completion, Counters, ProducerSettings
from aiomq._internal.shield import finish_shielded, finish_tasks
from aiomq.balancer import (
    Balancer,
    BalancerLike,
    Murmur2Balancer,
    always_offers_a_member,
    as_balancer,
    balance_all,
)
from aiomq.errors import BackgroundTaskError, ClosedError, ConfigError, Error, WriteErrors
from aiomq.message import Message
from aiomq.stats import WriterStats

__all__ = ["Compression", "RequiredAcks", "Writer", "WriterConfig"]

_METADATA_MAX_AGE: Final = 300.0


class RequiredAcks(enum.IntEnum):
    """How many replicas must store a batch before the broker acknowledges it."""

    NONE = 0
    """No acknowledgement: fastest, and messages can be lost without anyone knowing."""

    ONE = 1
    """The partition leader alone: a message is lost if the leader fails before replicating."""

    ALL = -1
    """Every in-sync replica: nothing acknowledged is lost while one replica survives."""


class Compression(enum.IntEnum):
    """Record batch compression codecs. Snappy, LZ4 and Zstandard need `aiomq[compression]`."""

    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


async def _hand_over(producer: Producer, groups: Planned, call: WriteCall) -> None:
    """Queue a synchronous call's chunks one partition at a time, waiting for room.

    Raises:
        ClosedError: The writer began closing before the first chunk was queued; once
            some were, the others fail with it in `call` instead.
    """
    accepted = 0
    try:
        for (topic, partition), chunk in groups:
            if not producer.has_space():
                await producer.wait_for_space()
            producer.enqueue(topic, partition, chunk)
            accepted += 1
    except ClosedError as exc:
        # The writer began closing while this call waited for room: what was accepted
        # is still delivered, the rest never leaves, and the caller learns which is which.
        if not accepted:
            raise
        for _where, chunk in groups[accepted:]:
            for index in chunk.indices:
                call.errors[index] = exc
            call.failed += len(chunk.indices)
        if not call.pending:
            call.finish()
    finally:
        if accepted:
            producer.counters.writes += 1


def _codec_available(codec: Compression) -> bool:
    if codec is Compression.GZIP:
        return True
    try:
        import cramjam  # noqa: F401 - optional; checked only when asked for
    except ImportError:
        return False
    return True


def _murmur2_default() -> Balancer:
    return Murmur2Balancer()


@dataclass(frozen=True, kw_only=True, slots=True)
class WriterConfig(ClientSettings):
    """Every setting of a `Writer`, validated when created.

    Raises:
        ConfigError: A value or a combination of values is invalid; the message names the
            field.
    """

    brokers: Sequence[str]
    """Bootstrap addresses, as `host:port` strings. Required."""

    topic: str | None = None
    """The topic every message goes to. When None, each message names its own topic, and a
    message naming a topic while this is set is an error (as in kafka-go). Default: None."""

    balancer: BalancerLike = field(default_factory=_murmur2_default)
    """Picks each message's partition: a `Balancer` or a `(message, partitions) -> int`
    callable. The default, `Murmur2Balancer()`, keeps every key on one partition and agrees
    with the Java and aiokafka producers (kafka-go's default, `RoundRobin`, ignores keys).
    A message whose `partition` is 0 or more bypasses the balancer. Default: Murmur2Balancer()."""

    max_attempts: int = 10
    """Attempts per batch before a retriable error becomes final. Default: 10."""

    write_backoff_min: float = 0.1
    """Seconds to wait before the first retry; doubles with each retry. Default: 0.1."""

    write_backoff_max: float = 1.0
    """The most seconds to wait between retries. Default: 1.0."""

    batch_size: int = 1000
    """The most messages in one record batch. Default: 1000."""

    batch_bytes: int = 1_048_576
    """The most bytes in one record batch; a single message larger than this is refused
    with `MessageTooLargeError`. Default: 1048576 (1 MiB, Kafka's default message limit)."""

    batch_timeout: float = 0.0
    """Seconds a partition's first queued message may wait for more to join its batch. With
    0, a batch leaves as soon as the partition's previous request is answered, so batches
    still grow under load while a lone write returns in milliseconds. Default: 0.0."""

    write_timeout: float = 10.0
    """Seconds to wait for the broker to answer one produce request, and the most a write
    waits for a topic's metadata, every attempt included (the first write to a topic, and
    one every five minutes after, look its partitions up). Default: 10.0."""

    required_acks: RequiredAcks = RequiredAcks.ALL
    """Which replicas must store a batch before it counts as written. Default: ALL."""

    compression: Compression | None = None
    """The codec for record batches, or None for no compression. Default: None."""

    idempotent: bool = False
    """Ask the broker to drop duplicates that retries would otherwise create (Kafka's
    idempotent producer; needs `required_acks=ALL` and a broker that supports it). Off by
    default because not every Kafka-protocol broker offers it; per-partition order is kept
    either way. Default: False."""

    allow_auto_topic_creation: bool = False
    """Let the broker create a missing topic on first write, with its default settings.
    When False, writing to a missing topic raises `UnknownTopicOrPartitionError` naming it.
    Default: False."""

    async_mode: bool = False
    """When True, `write_messages` returns as soon as the messages are queued, and each
    batch's outcome goes to `completion` (kafka-go's `Async`). Default: False."""

    completion: Completion | None = None
    """Called with each batch's messages (with partition and offset once written) and the
    error that failed them, or None. May be a plain function or a coroutine function; it
    runs on the event loop and should return quickly. Default: None."""

    queue_capacity: int = 100_000
    """The most messages the writer holds before `write_messages` waits for room (back
    pressure), in both modes. Default: 100000."""

    close_timeout: float = 30.0
    """Seconds `aclose()` spends delivering what is still queued before failing it.
    Default: 30.0."""

    def __post_init__(self) -> None:
        check_brokers(self.brokers)
        if self.topic is not None and (not isinstance(self.topic, str) or not self.topic):
            raise ConfigError(f"topic must be a non-empty string or None, not {self.topic!r}")
        try:
            as_balancer(self.balancer)
        except TypeError as exc:
            raise ConfigError(f"balancer: {exc}") from None
        check_positive_int("max_attempts", self.max_attempts)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("batch_bytes", self.batch_bytes)
        check_positive_int("queue_capacity", self.queue_capacity)
        check_seconds("write_backoff_min", self.write_backoff_min, allow_zero=True)
        check_seconds("write_backoff_max", self.write_backoff_max, allow_zero=True)
        check_seconds("batch_timeout", self.batch_timeout, allow_zero=True)
        check_seconds("write_timeout", self.write_timeout, allow_zero=False)
        check_seconds("close_timeout", self.close_timeout, allow_zero=True)
        if self.write_backoff_min > self.write_backoff_max:
            raise ConfigError(
                f"write_backoff_min ({self.write_backoff_min}) is larger than "
                f"write_backoff_max ({self.write_backoff_max})"
            )
        if not isinstance(self.required_acks, RequiredAcks):
            raise ConfigError(
                f"required_acks must be a RequiredAcks member, not {self.required_acks!r}"
            )
        if self.compression is not None:
            if not isinstance(self.compression, Compression):
                raise ConfigError(
                    f"compression must be a Compression member or None, not {self.compression!r}"
                )
            if not _codec_available(self.compression):
                raise ConfigError(
                    f"compression {self.compression.name} needs the cramjam package: "
                    "pip install 'aiomq[compression]'"
                )
        if self.idempotent and self.required_acks is not RequiredAcks.ALL:
            raise ConfigError("idempotent writes need required_acks=RequiredAcks.ALL")
        if self.completion is not None and not callable(self.completion):
            raise ConfigError(f"completion must be callable, not {self.completion!r}")
        check_connection(self.client_id, self.dialer)


class Writer(AsyncResource):
    """Writes messages to Kafka in batches, choosing partitions with a balancer.

    Open it with `async with`; it connects on entry and flushes on exit. The arguments are
    those of `WriterConfig` (pass `config=` instead to reuse one).

    `write_messages` may be called from many tasks at once: their messages are grouped
    into per-partition batches, at most one request in flight per partition, so messages
    of one partition are written in the order they were accepted.

    Args:
        config: A complete configuration; when given, no other argument is allowed.
        **options: `WriterConfig` fields.

    Raises:
        ConfigError: An option is invalid.
    """

    def __init__(self, config: WriterConfig | None = None, /, **options: Any) -> None:
        self.config = build_config(WriterConfig, config, options)
        balancer = as_balancer(self.config.balancer)
        self._planner = Planner(
            topic=self.config.topic,
            balancer=balancer,
            balance_all=partial(balance_all, balancer),
            trusted=always_offers_a_member(balancer),
            batch_bytes=self.config.batch_bytes,
            partitions=self._partitions,
        )
        self._log = get_logger(self.config.logger, client_id=self.config.effective_client_id)
        self._kafka: KafkaClient | None = None
        self._producer: Producer | None = None
        self._topics: dict[str, tuple[tuple[int, ...], float]] = {}
        self._lookups: dict[str, asyncio.Task[tuple[int, ...]]] = {}
        self._failure: Error | None = None
        self._life = Lifecycle("Writer")

    def __repr__(self) -> str:
        topic = self.config.topic or "(per message)"
        return f"<Writer topic={topic} brokers={','.join(self.config.brokers)} {self._life}>"

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._life.start_opening()
        config = self.config
        client = KafkaClient(
            brokers=config.brokers,
            client_id=config.effective_client_id,
            dialer=config.dialer,
            request_timeout=config.write_timeout,
            metadata_max_age=_METADATA_MAX_AGE,
        )
        settings = ProducerSettings(
            acks=int(config.required_acks),
            codec=int(config.compression or 0),
            idempotent=config.idempotent,
            max_attempts=config.max_attempts,
            backoff_min=config.write_backoff_min,
            backoff_max=config.write_backoff_max,
            batch_size=config.batch_size,
            batch_bytes=config.batch_bytes,
            batch_timeout=config.batch_timeout,
            timeout=config.write_timeout,
            queue_capacity=config.queue_capacity,
            completion=config.completion,
            brokers=config.brokers,
        )
        try:
            await client.start()
            producer = Producer(client, settings, self._log, self._failed)
            if config.idempotent:
                await producer.init_producer_id()
        except BaseException:
            self._life.open_failed()
            await finish_shielded(client.close())
            raise
        self._kafka, self._producer = client, producer
        self._life.opened()
        return self

    async def aclose(self) -> None:
        """Deliver everything queued, then disconnect. Safe to call more than once.

        Writes still waiting for a topic's metadata end at once with `ClosedError`: none of
        their messages was accepted. The flush is bounded by `close_timeout`; messages
        still undelivered then fail with `ClosedError` (counted in `stats().errors`, and
        reported to `completion`). It runs to its end even if the calling task is
        cancelled meanwhile, and the cancellation is raised afterwards. When it returns,
        every task the writer started has ended.

        Raises:
            BackgroundTaskError: A background task of the writer failed unexpectedly (a
                bug, logged as `writer_failed`); the error is caused by the original
                exception. Raised once, after closing; the writer is closed all the same.
        """
        if await self._life.close_once(self._close) and self._failure is not None:
            raise self._failed_error()

    async def _close(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.close_timeout
        try:
            # Writes waiting for metadata end at once, with ClosedError: nothing of
            # theirs was accepted, so there is nothing to deliver.
            await finish_tasks(list(self._lookups.values()), loop.time(), self._log)
            if self._producer is not None:
                await self._producer.close(deadline)
        finally:
            if self._kafka is not None:
                await self._kafka.close()

    def _failed(self, error: Error) -> None:
        """Refuse every later call: a background task failed unexpectedly with `error`."""
        if self._failure is None:
            self._failure = error
        self._life.fail()

    def _failed_error(self) -> BackgroundTaskError:
        """A fresh error saying why the writer stopped, caused by the original exception."""
        failure = self._failure
        assert failure is not None
        error = BackgroundTaskError(f"the writer stopped accepting messages: {failure}")
        error.__cause__ = failure.__cause__
        return error

    def _refusal(self, why: str) -> Error:
        """The error for a call that finds the writer no longer open."""
        if self._failure is not None:
            return self._failed_error()
        return ClosedError(why)

    # -- writing --------------------------------------------------------------------------

    async def write_messages(self, *messages: Message) -> list[Message]:
        """Write messages, returning them as written: with partition, offset and time.

        Messages to one partition are written in the order given. Messages to several
        partitions are written concurrently, and some may succeed while others fail. A
        message whose `time` is set must carry a timezone.

        In async mode the call returns an empty list as soon as every message is queued,
        and outcomes reach `completion`. It accepts its messages all at once, after waiting
        for room in the queue: a call that returns has handed over every message, and a
        call that raises (`ClosedError` because the writer began closing, or any other
        error, or its cancellation) has handed over none, and `completion` hears nothing of
        them.

        Cancellation: a message is either not sent at all, or its delivery finishes in the
        background and is counted in `stats()` (and logged as `write_failed` if it fails).
        A synchronous call accepts its messages one partition at a time: cancelled while it
        waits for metadata or for room in the queue, it may have handed over the messages
        of some partitions and not of others, and those handed over are delivered. Nothing
        accepted is ever dropped without being counted.

        Args:
            *messages: The messages to write.

        Returns:
            The written messages, aligned with the input (empty in async mode).

        Raises:
            WriteErrors: Some messages failed; `.errors` and `.written` say which.
            InvalidMessageError: A message is malformed or its topic is missing or
                conflicting; nothing of the call was written.
            MessageTooLargeError: A message is larger than `batch_bytes`; nothing of the
                call was written.
            UnknownTopicOrPartitionError: A topic does not exist and auto-creation is off.
            RequestTimeoutError: No broker answered for a topic's metadata within
                `write_timeout`; nothing of the call was written.
            BrokerConnectionError: No broker could be reached for a topic's metadata
                within `write_timeout`; nothing of the call was written.
            ClosedError: The writer is not open, or began closing while the call waited
                for metadata or, in async mode, for room (nothing of the call was
                accepted). A synchronous call that the closing interrupts after handing
                over some messages raises `WriteErrors` instead, with `ClosedError` for the
                others.
            BackgroundTaskError: A background task of the writer failed unexpectedly (a
                bug, logged as `writer_failed`), and the writer accepts nothing more; the
                error is caused by the original exception. Close the writer and open another.
        """
        producer = self._producer
        if producer is None or not self._life.is_open:
            raise self._refusal(f"write_messages on a Writer that is {self._life}")
        if not messages:
            return []
        loop = asyncio.get_running_loop()
        call = None if self.config.async_mode else WriteCall(len(messages), loop)
        groups = await self._planner.plan(messages, call, loop.time())
        if not self._life.is_open:
            raise self._refusal("the writer was closed while the write waited for metadata")
        if call is None:
            # Let the partitions' senders run between calls, so that a loop of async
            # writes keeps the pipeline moving instead of filling the whole queue first.
            await asyncio.sleep(0)
            if not producer.has_space():
                await producer.wait_for_space()
            if not self._life.is_open:
                raise self._refusal("the writer was closed while the write waited for room")
            # Nothing awaits from here on: the call is accepted whole, so an async-mode
            # caller that sees an exception knows that none of its messages was taken.
            for (topic, partition), chunk in groups:
                producer.enqueue(topic, partition, chunk)
            producer.counters.writes += 1
            return []
        await _hand_over(producer, groups, call)
        # No shield needed: delivery runs in the partitions' own tasks, whatever happens to
        # this caller, and settling skips a future the caller's cancellation has cancelled.
        await call.done
        if call.failed:
            raise WriteErrors(call.errors, call.written)
        return call.written  # type: ignore[return-value]  # every slot is filled here

    async def _partitions(self, topic: str) -> tuple[int, ...]:
        """The partitions of `topic`, from the cache or from one look-up shared by the
        writes that wait for it.

        Raises:
            ClosedError: The writer began closing while the look-up ran.
        """
        entry = self._topics.get(topic)
        if entry is not None and entry[1] > asyncio.get_running_loop().time():
            return entry[0]
        lookup = self._lookups.get(topic)
        if lookup is None:
            lookup = asyncio.get_running_loop().create_task(self._look_up(topic))
            self._lookups[topic] = lookup
            lookup.add_done_callback(partial(self._looked_up, topic))
        try:
            # Shielded: a write cancelled meanwhile leaves the look-up to the others
            # waiting for it (it ends within write_timeout, or when the writer closes).
            return await asyncio.shield(lookup)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if lookup.cancelled() and (current is None or not current.cancelling()):
                # aclose() cancelled the look-up, not this write's own caller.
                raise ClosedError(
                    f"the writer was closed while the write waited for the metadata of "
                    f"topic {topic!r}"
                ) from None
            raise

    async def _look_up(self, topic: str) -> tuple[int, ...]:
        """Ask the cluster for the partitions of `topic`, within `write_timeout` in all."""
        loop = asyncio.get_running_loop()
        client = self._kafka
        assert client is not None
        write_timeout = self.config.write_timeout
        deadline = loop.time() + write_timeout
        partitions = await client.topic_partitions(
            topic, allow_create=self.config.allow_auto_topic_creation, timeout=write_timeout
        )
        # Worth no more than what is left of the write's time.
        await client.follow(topic, deadline)
        self._topics[topic] = (partitions, loop.time() + _METADATA_MAX_AGE)
        return partitions

    def _looked_up(self, topic: str, lookup: asyncio.Task[tuple[int, ...]]) -> None:
        if self._lookups.get(topic) is lookup:
            del self._lookups[topic]
        if not lookup.cancelled():
            # Retrieved here, so a failure whose every waiter was cancelled is not
            # reported by asyncio as never retrieved.
            lookup.exception()

    # -- observing ------------------------------------------------------------------------

    def stats(self) -> WriterStats:
        """Return a snapshot of the writer's counters since it was opened."""
        c = self._producer.counters if self._producer is not None else Counters()
        batches = c.batches or 1
        return WriterStats(
            writes=c.writes,
            messages=c.messages,
            bytes=c.bytes,
            errors=c.errors,
            retries=c.retries,
            batches=c.batches,
            batch_messages_avg=c.messages / batches,
            batch_messages_max=c.batch_messages_max,
            batch_bytes_avg=c.batch_bytes / batches,
            batch_time_avg=c.batch_time_total / batches,
            batch_time_max=c.batch_time_max,
            queued=c.queued,
        )
