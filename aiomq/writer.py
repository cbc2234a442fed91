"""The Writer: batched, balanced, retried writes to Kafka (kafka-go's `Writer`).

```python
async with aiomq.Writer(brokers=["localhost:9092"], topic="orders") as w:
    written = await w.write_messages(aiomq.Message(key=b"user-1", value=b"..."))
    print(written[0].partition, written[0].offset)
```

A transactional writer (`transactional_id`) writes inside transactions, which commit or
abort all their messages together, with a group reader's offsets if asked:

```python
async with aiomq.Writer(brokers=brokers, transactional_id="enricher-0") as w:
    async with w.transaction():
        await w.write_messages(*outputs)
        await w.send_offsets(reader, inputs)
```
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Final, Self

from aiomq._internal import registry, telemetry
from aiomq._internal.config import (
    ClientSettings,
    build_config,
    check_brokers,
    check_connection,
    check_positive_int,
    check_seconds,
)
from aiomq._internal.consumer.commits import GroupReader
from aiomq._internal.kafka.client import KafkaClient
from aiomq._internal.lifecycle import AsyncResource, Lifecycle
from aiomq._internal.log import get_logger
from aiomq._internal.producer.engine import Producer
from aiomq._internal.producer.planner import Planned, Planner, WriteCall
from aiomq._internal.producer.settings import Completion, Counters, ProducerSettings
from aiomq._internal.producer.transactions import Transactions
from aiomq._internal.shield import finish_shielded, finish_tasks
from aiomq._internal.telemetry import WriterTelemetry
from aiomq.balancer import (
    Balancer,
    BalancerLike,
    Murmur2Balancer,
    always_offers_a_member,
    as_balancer,
    balance_all,
    sticky_keyless,
)
from aiomq.errors import (
    BackgroundTaskError,
    ClosedError,
    ConfigError,
    Error,
    TransactionError,
    WriteErrors,
)
from aiomq.message import Message
from aiomq.stats import WriterStats

__all__ = ["Compression", "RequiredAcks", "Transaction", "Writer", "WriterConfig"]

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

    completion_written: bool = True
    """In async mode, whether `completion` receives the written messages with their
    partition, offset and time (True), or the messages as they were given (False): building
    the written ones costs about 0.3 µs a message, which a callback that only counts, or
    only looks at failures, does not need. Failures always come as given. Default: True."""

    queue_capacity: int = 100_000
    """The most messages the writer holds before `write_messages` waits for room (back
    pressure), in both modes. Default: 100000."""

    close_timeout: float = 30.0
    """Seconds `aclose()` spends delivering what is still queued before failing it.
    Default: 30.0."""

    transactional_id: str | None = None
    """Makes the writer transactional: every write belongs to a transaction
    (`transaction()`), whose messages, and the group offsets sent with `send_offsets`,
    are committed or aborted together. The id names the writer across restarts: opening
    a writer with it fences any older writer with the same id and aborts what that one
    left open. Give each concurrent instance its own (for example the service name and
    the instance's number). Implies idempotent writes and needs `required_acks=ALL`.
    Default: None."""

    tracing: bool | None = None
    """OpenTelemetry traces and metrics for this writer (needs `aiomq[otel]`): a `send`
    span per call, its trace context in each message's headers, and metrics per batch.
    None follows `aiomq.otel.instrument()`. Default: None."""

    transaction_timeout: float = 60.0
    """Seconds after which the transaction coordinator aborts a transaction of this writer
    that is still open (the writer died, or hangs). Only with `transactional_id`; the
    broker caps it (`transaction.max.timeout.ms`, 15 minutes by default). Default: 60.0."""

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
        if self.transactional_id is not None:
            if not isinstance(self.transactional_id, str) or not self.transactional_id:
                raise ConfigError(
                    "transactional_id must be a non-empty string or None, "
                    f"not {self.transactional_id!r}"
                )
            if self.required_acks is not RequiredAcks.ALL:
                raise ConfigError(
                    "a transactional writer (transactional_id) needs required_acks=RequiredAcks.ALL"
                )
        check_seconds("transaction_timeout", self.transaction_timeout, allow_zero=False)
        if not isinstance(self.completion_written, bool):
            raise ConfigError(
                f"completion_written must be True or False, not {self.completion_written!r}"
            )
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
            balance_all=partial(balance_all, balancer, sticky_run=self.config.batch_size),
            keyless=sticky_keyless(balancer, self.config.batch_size),
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
        self._transactions: Transactions | None = None
        self._telemetry: WriterTelemetry | None = None
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
            idempotent=config.idempotent or config.transactional_id is not None,
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
            transactional_id=config.transactional_id,
        )
        settings.completion_written = config.completion_written
        if telemetry.enabled(config.tracing):
            self._telemetry = WriterTelemetry(
                telemetry.telemetry(), self, config.effective_client_id, config.brokers
            )
            settings.observer = self._telemetry
        try:
            await client.start()
            producer = Producer(client, settings, self._log, self._failed)
            if config.transactional_id is not None:
                transactions = Transactions(
                    client,
                    producer,
                    transactional_id=config.transactional_id,
                    transaction_timeout=config.transaction_timeout,
                    timeout=config.write_timeout,
                    backoff=(config.write_backoff_min, config.write_backoff_max),
                    log=self._log,
                )
                await transactions.start()
                self._transactions = transactions
            elif config.idempotent:
                await producer.init_producer_id()
        except BaseException:
            self._life.open_failed()
            await finish_shielded(client.close())
            raise
        self._kafka, self._producer = client, producer
        self._life.opened()
        registry.opened(self)
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
        registry.closed(self)
        if self._telemetry is not None:
            self._telemetry.forget(self)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.close_timeout
        try:
            # Writes waiting for metadata end at once, with ClosedError: nothing of
            # theirs was accepted, so there is nothing to deliver.
            await finish_tasks(list(self._lookups.values()), loop.time(), self._log)
            transactions = self._transactions
            if transactions is not None and transactions.is_open:
                # Closed inside `transaction()`: nothing of it may be committed now.
                await transactions.abort()
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
            TransactionError: The writer is transactional and no transaction is open (or
                it is ending), or the coordinator refused the write's partitions.
            ProducerFencedError: The writer is transactional and a newer writer with its
                transactional id has started; close it.
        """
        producer = self._producer
        if producer is None or not self._life.is_open:
            raise self._refusal(f"write_messages on a Writer that is {self._life}")
        transactions = self._transactions
        if transactions is not None or self._telemetry is not None:
            return await self._write_wrapped(producer, transactions, messages)
        if not messages:
            return []
        return await self._write(producer, None, messages)

    async def _write_wrapped(
        self,
        producer: Producer,
        transactions: Transactions | None,
        messages: Sequence[Message],
    ) -> list[Message]:
        """A write wrapped in what the writer adds around it: the transaction it joins,
        the `send` span it makes, or both."""
        telemetry = self._telemetry
        if telemetry is None or not messages:
            if transactions is not None:
                return await self._write_in_transaction(producer, transactions, messages)
            return [] if not messages else await self._write(producer, None, messages)
        with telemetry.send(messages, self.config.topic) as (span, stamped):
            if transactions is not None:
                written = await self._write_in_transaction(producer, transactions, stamped)
            else:
                written = await self._write(producer, None, stamped)
            telemetry.written(span, written)
            return written

    async def _write_in_transaction(
        self, producer: Producer, transactions: Transactions, messages: Sequence[Message]
    ) -> list[Message]:
        transactions.check_open("write_messages")
        if not messages:
            return []
        transactions.call_started()
        try:
            return await self._write(producer, transactions, messages)
        except WriteErrors as exc:
            fenced = transactions.fenced_by(exc.errors)
            if fenced is not None:
                raise fenced from exc
            raise
        finally:
            transactions.call_ended()

    async def _write(
        self, producer: Producer, transactions: Transactions | None, messages: Sequence[Message]
    ) -> list[Message]:
        loop = asyncio.get_running_loop()
        call = None if self.config.async_mode else WriteCall(len(messages), loop)
        groups = await self._planner.plan(messages, call, loop.time())
        if transactions is not None:
            await transactions.add_partitions([where for where, _chunk in groups])
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

    # -- transactions ---------------------------------------------------------------------

    def transaction(self) -> Transaction:
        """Open a transaction for `async with`: it commits when the block ends, and aborts
        when the block raises or is cancelled.

        Every write while it is open belongs to it, whatever task makes it; so do the
        offsets sent with `send_offsets`. Readers with
        `isolation_level=IsolationLevel.READ_COMMITTED` see its messages only once it has
        committed, and never if it aborts; the group sees its offsets likewise.

        Ending: a commit first waits until every message written in the transaction is
        settled, then asks the coordinator to commit; if a write in it failed, or the
        writes did not settle within `write_timeout`, it aborts instead and raises
        `TransactionError`. Aborting waits for the writes the same way (up to
        `write_timeout`), then aborts; when the writes do not settle, the writer takes a
        new producer epoch instead, which aborts the transaction and fences its late
        batches. The commit or abort runs to its end even if the calling task is
        cancelled meanwhile; the cancellation is raised after it. An exception of the
        block (cancellation included) propagates unchanged; an abort that fails is logged
        (`transaction_abort_failed`) and completed by the next transaction's new epoch.

        Raises:
            ConfigError: The writer is not transactional.
            ClosedError: The writer is not open.
            TransactionError: On entry: a transaction is open already (they do not nest,
                and a writer has one at a time). On exit: the commit failed; the message
                says whether the transaction was aborted or its outcome is unknown.
            ProducerFencedError: A newer writer with the same transactional id has
                started; nothing more of this one is committed. Close it.
        """
        transactions = self._transactions
        if transactions is None:
            raise ConfigError(
                "transaction() needs a transactional writer: create the Writer with "
                "transactional_id"
            )
        return Transaction(self, transactions)

    async def send_offsets(self, reader: GroupReader, messages: Iterable[Message]) -> None:
        """Commit a group reader's offsets in the open transaction: each message commits
        everything before it in its partition, for the reader's consumer group, if and when
        the transaction commits.

        This is how consume-transform-produce is exactly once: the outputs and the inputs'
        offsets commit together, or neither does. The commit carries the reader's group
        generation and member id, so a broker that checks them (Kafka 2.5 and later)
        refuses it once the reader has lost the partitions in a rebalance; the reader
        also refuses, before asking, offsets of partitions it no longer owns and offsets
        at or below what the group has committed, because the outputs of those messages
        would be duplicates. Either refusal raises `TransactionError`; leaving the
        `async with` with it aborts the transaction.

        Cancellation: the offsets may or may not have reached the group's coordinator;
        either way they take effect only if the transaction commits, and the cancellation
        leaving the `async with` aborts it.

        Args:
            reader: A group reader (one with `group_id`), open.
            messages: Messages the reader returned.

        Raises:
            ConfigError: The writer is not transactional, the reader has no group, or a
                message could not have been read by it.
            TransactionError: No transaction is open, the offsets are stale (see above),
                or a coordinator refused them.
            ProducerFencedError: The writer was fenced.
            ClosedError: The writer or the reader is not open.
        """
        transactions = self._transactions
        if transactions is None:
            raise ConfigError(
                "send_offsets needs a transactional writer: create the Writer with transactional_id"
            )
        if not self._life.is_open:
            raise self._refusal(f"send_offsets on a Writer that is {self._life}")
        transactions.check_open("send_offsets")
        messages = list(messages)
        if not messages:
            return
        transactions.call_started()
        try:
            offsets = await reader._offsets_for_transaction(messages)
            if offsets.stale:
                step = "sending offsets to the transaction"
                raise TransactionError(
                    f"refused to commit {_describe(offsets.stale)} in the transaction of "
                    f"{transactions.transactional_id!r}: the reader no longer owns those "
                    "partitions, or the group has committed past them, so their outputs "
                    "would be duplicates; let the transaction abort",
                    transactional_id=transactions.transactional_id,
                    step=step,
                )
            if offsets.fresh:
                await transactions.send_offsets(
                    offsets.group_id, offsets.member, offsets.by_topic()
                )
                transactions.on_commit(offsets.committed)
        finally:
            transactions.call_ended()

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
            transactions=c.transactions,
            transactions_aborted=c.transactions_aborted,
        )


class Transaction:
    """An open transaction of a transactional `Writer`: use it with `async with`
    (see `Writer.transaction`)."""

    __slots__ = ("_transactions", "_writer")

    def __init__(self, writer: Writer, transactions: Transactions) -> None:
        self._writer = writer
        self._transactions = transactions

    async def __aenter__(self) -> Self:
        writer = self._writer
        if not writer._life.is_open:
            raise writer._refusal(f"transaction() on a Writer that is {writer._life}")
        await self._transactions.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        transactions = self._transactions
        if exc_type is not None:
            await finish_shielded(transactions.abort())
            return
        if not transactions.is_open:
            # aclose() aborted it while the block ran.
            raise ClosedError("the writer was closed inside the transaction, which was aborted")
        await finish_shielded(transactions.commit())


def _describe(offsets: dict[Any, int]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in sorted(offsets.items()))
