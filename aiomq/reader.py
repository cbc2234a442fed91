"""The Reader: one partition, or a consumer group with explicit commits (kafka-go's `Reader`).

::

    async with aiomq.Reader(brokers=[...], topic="orders", group_id="billing") as r:
        async for message in r:          # commits each message it returns
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from aiokafka import AIOKafkaConsumer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition as _TP

from aiomq._internal.commits import OffsetStash, next_offsets
from aiomq._internal.config import (
    check_brokers,
    check_connection,
    check_positive_int,
    check_seconds,
    resolve_client_id,
)
from aiomq._internal.errmap import map_errors, translate
from aiomq._internal.log import get_logger
from aiomq._internal.records import MessageFactory
from aiomq._internal.records import install as install_record_hook
from aiomq._internal.security import connection_options, open_client
from aiomq._internal.shield import finish_shielded
from aiomq.dialer import Dialer
from aiomq.errors import ClosedError, CommitError, ConfigError, Error
from aiomq.message import Message, to_millis
from aiomq.stats import PartitionStats, ReaderStats

if TYPE_CHECKING:
    from aiomq.group import GroupHandler

__all__ = [
    "FIRST_OFFSET",
    "LAST_OFFSET",
    "IsolationLevel",
    "Reader",
    "ReaderConfig",
    "TopicPartition",
]

FIRST_OFFSET: Final = -2
"""Start from the oldest message still in the partition (kafka-go's `FirstOffset`)."""

LAST_OFFSET: Final = -1
"""Start after the newest message: read only what is written from now on (`LastOffset`)."""

_NEVER: Final = -1
_new_message = tuple.__new__

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
class ReaderConfig:
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

    close_timeout: float = 10.0
    """Seconds `aclose()` may spend flushing commits and leaving the group. Default: 10.0."""

    client_id: str | None = None
    """The client id sent to brokers, seen in their logs and quotas. Default: None (the
    dialer's client_id, else "aiomq")."""

    dialer: Dialer | None = None
    """TLS and SASL settings (see `aiomq.Dialer`). Default: None (plaintext, no
    authentication)."""

    @property
    def effective_client_id(self) -> str:
        """The client id actually sent: this one, else the dialer's, else "aiomq"."""
        return resolve_client_id(self.client_id, self.dialer)

    logger: Any = None
    """A structlog logger to log through instead of `structlog.get_logger("aiomq")`.
    Default: None."""

    def __post_init__(self) -> None:
        check_brokers(self.brokers)
        if isinstance(self.group_topics, str):
            raise ConfigError("group_topics must be a list of topic names, not a string")
        if self.group_id is not None and (not isinstance(self.group_id, str) or not self.group_id):
            raise ConfigError(f"group_id must be a non-empty string, not {self.group_id!r}")
        if self.group_id is not None and self.partition is not None:
            raise ConfigError(
                "set either partition or group_id, not both: a group assigns partitions itself"
            )
        if self.group_topics and self.group_id is None:
            raise ConfigError("group_topics needs group_id: only a consumer group reads topics")
        if self.group_topics and self.topic is not None:
            raise ConfigError("set either topic or group_topics, not both")
        if self.topic is None and not self.group_topics:
            raise ConfigError("topic is required (or group_topics, with group_id)")
        if self.topic is not None and (not isinstance(self.topic, str) or not self.topic):
            raise ConfigError(f"topic must be a non-empty string, not {self.topic!r}")
        if self.partition is not None and (
            not isinstance(self.partition, int)
            or isinstance(self.partition, bool)
            or self.partition < 0
        ):
            raise ConfigError(f"partition must be 0 or more, not {self.partition!r}")
        for name in ("min_bytes", "max_bytes", "queue_capacity"):
            check_positive_int(name, getattr(self, name))
        if self.min_bytes > self.max_bytes:
            raise ConfigError(
                f"min_bytes ({self.min_bytes}) is larger than max_bytes ({self.max_bytes})"
            )
        for name in ("max_wait", "commit_interval", "read_lag_interval", "close_timeout"):
            check_seconds(name, getattr(self, name), allow_zero=True)
        for name in ("heartbeat_interval", "session_timeout", "rebalance_timeout"):
            check_seconds(name, getattr(self, name), allow_zero=False)
        if self.heartbeat_interval >= self.session_timeout:
            raise ConfigError(
                f"heartbeat_interval ({self.heartbeat_interval}) must be shorter than "
                f"session_timeout ({self.session_timeout})"
            )
        if self.start_offset.__class__ is not int or self.start_offset not in (
            FIRST_OFFSET,
            LAST_OFFSET,
        ):
            raise ConfigError(
                f"start_offset must be FIRST_OFFSET or LAST_OFFSET, not {self.start_offset!r}; "
                "use set_offset() to start a single-partition reader at a given offset"
            )
        if not isinstance(self.isolation_level, IsolationLevel):
            raise ConfigError(
                f"isolation_level must be an IsolationLevel member, not {self.isolation_level!r}"
            )
        for name in ("on_assigned", "on_revoked"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ConfigError(f"{name} must be callable, not {value!r}")
        check_connection(self.client_id, self.dialer)

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic this configuration reads."""
        return tuple(self.group_topics) if self.group_topics else (self.topic or "",)


class _Listener(ConsumerRebalanceListener):
    """Routes aiokafka's rebalance notifications to the reader."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._reader._partitions_revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._reader._partitions_assigned({(tp.topic, tp.partition) for tp in assigned})


class Reader:
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
        if config is not None and options:
            raise ConfigError("pass either a ReaderConfig or keyword options, not both")
        self.config = config if config is not None else ReaderConfig(**options)
        cfg = self.config
        self._group = cfg.group_id is not None
        self._log = get_logger(
            cfg.logger,
            client_id=cfg.effective_client_id,
            group_id=cfg.group_id,
            topics=list(cfg.topics),
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._state = "new"
        self._buffer: deque[Message] = deque()
        self._stash = OffsetStash()
        # The highest offset this reader committed per partition under its assignment.
        self._committed: dict[_TP, int] = {}
        self._commit_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._assigned: set[TopicPartition] = set()
        # The offset after the last message fetched, per partition (not the last returned).
        self._fetched_next: dict[TopicPartition, int] = {}
        self._stashing = self._group and cfg.commit_interval > 0
        # None until the first read; True while read_message alone returns messages of a
        # stashing group reader (see _end_position_commits), False after that.
        self._position_commits: bool | None = None
        self._factory: MessageFactory | None = None
        self._pending_seek: int | None = None if self._group else cfg.start_offset
        self._read_lag: int = _NEVER
        self._handler_hooks: list[Callable[[set[TopicPartition]], Awaitable[None]]] = []
        self._counts = {"messages": 0, "bytes": 0, "fetches": 0, "errors": 0, "commits": 0}
        self._rebalances = 0
        self._last_ts = -1
        self._last_dt = datetime.fromtimestamp(0, UTC)
        self._assigned_event = asyncio.Event()
        self._tp: TopicPartition | None = None
        if not self._group:
            self._tp = (cfg.topic or "", cfg.partition or 0)
            self._assigned = {self._tp}

    def __repr__(self) -> str:
        what = f"group={self.config.group_id}" if self._tp is None else f"partition={self._tp}"
        return f"<Reader topics={list(self.config.topics)} {what} {self._state}>"

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise ClosedError(f"a Reader is opened once; this one is {self._state}")
        self._state = "opening"
        cfg = self.config
        # With the record hook in place, aiokafka builds our messages directly.
        factory = MessageFactory(self._high_water) if install_record_hook() else None
        self._factory = factory
        consumer = AIOKafkaConsumer(
            key_deserializer=factory,
            bootstrap_servers=list(cfg.brokers),
            client_id=cfg.effective_client_id,
            **connection_options(cfg.dialer),
            group_id=cfg.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if cfg.start_offset == FIRST_OFFSET else "latest",
            fetch_min_bytes=cfg.min_bytes,
            fetch_max_bytes=max(cfg.max_bytes, 52_428_800),
            max_partition_fetch_bytes=cfg.max_bytes,
            fetch_max_wait_ms=int(cfg.max_wait * 1000),
            max_poll_records=cfg.queue_capacity,
            heartbeat_interval_ms=int(cfg.heartbeat_interval * 1000),
            session_timeout_ms=int(cfg.session_timeout * 1000),
            rebalance_timeout_ms=int(cfg.rebalance_timeout * 1000),
            max_poll_interval_ms=max(int(cfg.rebalance_timeout * 1000), 300_000),
            isolation_level=(
                "read_committed"
                if cfg.isolation_level is IsolationLevel.READ_COMMITTED
                else "read_uncommitted"
            ),
        )
        try:
            with map_errors(brokers=cfg.brokers, topic=cfg.topic):
                await open_client(consumer.start, cfg.brokers, cfg.dialer)
                if self._tp is None:
                    consumer.subscribe(topics=list(cfg.topics), listener=_Listener(self))
                else:
                    consumer.assign([_TP(*self._tp)])
        except BaseException:
            self._state = "closed"
            await finish_shielded(_stop_consumer(consumer, self._log))
            raise
        self._consumer = consumer
        self._state = "open"
        loop = asyncio.get_running_loop()
        if self._group and cfg.commit_interval > 0:
            self._flusher = loop.create_task(self._flush_periodically())
        if not self._group and cfg.read_lag_interval > 0:
            self._lag_task = loop.create_task(self._update_lag_periodically())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Flush pending commits, leave the group and disconnect. Safe to call twice.

        Returns within `close_timeout` (plus at most a second to release connections) even
        when the broker is unreachable or another task waits in `fetch_message` (that task
        gets `ClosedError`). It runs to its end even
        if the calling task is cancelled meanwhile, then re-raises the cancellation.

        Raises:
            CommitError: The final flush of the offset stash failed; the offsets are named.
        """
        if self._state in ("closing", "closed"):
            return
        self._state = "closing"
        await finish_shielded(self._close())

    async def _close(self) -> None:
        for task in (self._flusher, self._lag_task):
            if task is not None:
                task.cancel()
        # One deadline for the whole close; leaving the group still gets a moment of its own
        # so that connections and background tasks are released.
        deadline = asyncio.get_running_loop().time() + self.config.close_timeout
        failure: CommitError | None = None
        consumer = self._consumer
        self._assigned_event.set()  # a consume() waiting for the next generation returns
        try:
            # A running group handler lets go of its claims first, so its marks are flushed.
            try:
                async with asyncio.timeout_at(deadline):
                    for hook in list(self._handler_hooks):
                        await hook(set(self._assigned))
            except TimeoutError:
                self._log.warning("group_handler_close_timed_out")
            if (
                consumer is not None
                and self._group
                and (len(self._stash) or self._position_commits)
            ):
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._flush(None)
                except CommitError as exc:
                    failure = exc
                except TimeoutError:
                    failure = CommitError(
                        f"the final commit did not finish within close_timeout "
                        f"({self.config.close_timeout:g} s)",
                        offsets={
                            (tp.topic, tp.partition): o for tp, o in self._stash.snapshot().items()
                        },
                    )
            if self._group and self._assigned:
                # Closing gives the partitions up too: say so, as a rebalance would.
                try:
                    async with asyncio.timeout_at(max(deadline, asyncio.get_running_loop().time())):
                        await _call(self.config.on_revoked, set(self._assigned), self._log)
                except TimeoutError:
                    self._log.warning("rebalance_callback_timed_out")
        finally:
            if consumer is not None:
                loop = asyncio.get_running_loop()
                try:
                    async with asyncio.timeout_at(max(deadline, loop.time() + 1.0)):
                        await _stop_consumer(consumer, self._log)
                except TimeoutError:
                    self._log.warning("reader_close_timed_out")
            self._buffer.clear()
            self._state = "closed"
        if failure is not None:
            raise failure

    def _open_consumer(self) -> AIOKafkaConsumer:
        consumer = self._consumer
        if self._state != "open" or consumer is None:
            raise ClosedError(f"the Reader is {self._state}")
        return consumer

    # -- reading --------------------------------------------------------------------------

    async def fetch_message(self) -> Message:
        """Return the next message, waiting for one; never commits.

        Cancellation: a cancelled or timed-out call takes no message, so the next call
        returns the message it would have returned.

        Raises:
            ClosedError: The reader is closed, or was closed while waiting.
            BrokerConnectionError: The cluster cannot be reached.
        """
        if self._position_commits:
            self._end_position_commits()
        buffer = self._buffer
        while not buffer:
            await self._fill()
        return buffer.popleft()

    async def fetch_batch(self, max_messages: int = 500) -> list[Message]:
        """Return between one and `max_messages` messages, waiting only for the first.

        Same guarantees as `fetch_message`, for throughput: one call, one list.

        Raises:
            ConfigError: `max_messages` is less than 1.
        """
        if max_messages < 1:
            raise ConfigError(f"max_messages must be 1 or more, not {max_messages!r}")
        if self._position_commits:
            self._end_position_commits()
        buffer = self._buffer
        while not buffer:
            await self._fill()
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
        the next read returns it again, even if the commit had already been sent.

        Raises:
            CommitError: The commit failed; `.messages` holds the message that was read.
        """
        buffer = self._buffer
        while not buffer:
            await self._fill()
        message = buffer.popleft()
        if self._group:
            if self._stashing:
                if self._position_commits is None:
                    self._position_commits = True
                if not self._position_commits:
                    self._stash_one(message)
                return message
            try:
                await self._commit([message])
            except asyncio.CancelledError:
                # The caller will not see this message: hand it to the next read. Its commit
                # may or may not have reached the broker; reading it again is at-least-once.
                buffer.appendleft(message)
                raise
        return message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.read_message()
        except ClosedError:
            if self._state in ("closing", "closed"):
                raise StopAsyncIteration from None
            raise

    async def _fill(self) -> None:
        consumer = self._open_consumer()
        if self._pending_seek is not None:
            await self._apply_seek(consumer)
        try:
            with map_errors(brokers=self.config.brokers, topic=self.config.topic):
                batch = await consumer.getmany(
                    timeout_ms=max(100, int(self.config.max_wait * 1000)),
                    max_records=self.config.queue_capacity,
                )
        except ClosedError:
            raise ClosedError(f"the Reader is {self._state}") from None
        except Error:
            self._counts["errors"] += 1
            raise
        if self._state != "open":
            raise ClosedError(f"the Reader is {self._state}")
        if not batch:
            return
        self._counts["fetches"] += 1
        for tp, records in batch.items():
            key = (tp.topic, tp.partition)
            if key not in self._assigned:
                # Fetched just before a revocation: another member owns these now.
                continue
            high_water = consumer.highwater(tp)
            self._buffer.extend(
                self._to_messages(key, records, -1 if high_water is None else high_water)
            )

    def _to_messages(
        self, key: TopicPartition, records: list[Any], high_water_mark: int
    ) -> list[Message]:
        """Take one partition's fetched records as messages, and count them as read.

        Records usually arrive as messages already (see `aiomq._internal.records`);
        otherwise they are converted here. Counting happens once per fetch rather than per
        message returned: what is still buffered is subtracted when `stats()` or `offset`
        ask (see `_position`).
        """
        if not records:
            return []
        counts = self._counts
        if records[0].__class__ is Message:
            messages: list[Message] = records
            factory = self._factory
            if factory is not None:
                counts["bytes"] += factory.bytes
                factory.bytes = 0
        else:
            messages = self._convert(key, records, high_water_mark)
        self._fetched_next[key] = messages[-1][2] + 1
        counts["messages"] += len(messages)
        return messages

    def _convert(
        self, key: TopicPartition, records: list[Any], high_water_mark: int
    ) -> list[Message]:
        topic, partition = key
        new = _new_message
        last_ts, last_dt = self._last_ts, self._last_dt
        size = 0
        messages: list[Message] = []
        append = messages.append
        for r in records:
            ts = r.timestamp
            if ts != last_ts:
                # Records of one batch usually share a millisecond: build each datetime once.
                last_ts, last_dt = ts, datetime.fromtimestamp(ts / 1000, UTC)
            k, v = r.key, r.value
            size += (0 if k is None else len(k)) + (0 if v is None else len(v))
            append(
                new(
                    Message,
                    (topic, partition, r.offset, high_water_mark, k, v, r.headers, last_dt, None),
                )
            )
        self._last_ts, self._last_dt = last_ts, last_dt
        self._counts["bytes"] += size
        return messages

    def _high_water(self, tp: _TP) -> int | None:
        consumer = self._consumer
        return None if consumer is None else consumer.highwater(tp)

    def _position(self, key: TopicPartition) -> int | None:
        """The offset of the next message this reader returns from a partition, if known."""
        for message in self._buffer:
            if message[0] == key[0] and message[1] == key[1]:
                return message[2]
        return self._fetched_next.get(key)

    def _stash_positions(self, partitions: set[TopicPartition]) -> None:
        """Stash each partition's read position: everything returned so far is committed."""
        for key in partitions:
            position = self._position(key)
            if position is not None:
                self._stash.add_one(key, position)

    def _end_position_commits(self) -> None:
        """Switch to stashing each message: the caller now also fetches without committing.

        As long as `read_message` is the only way messages leave a stashing group reader,
        the offsets to commit are just the read positions, computed when a flush needs
        them rather than for every message. Once `fetch_message` or `fetch_batch` is used
        too, positions would cover messages nobody asked to commit, so the positions
        reached so far are stashed and every later `read_message` stashes its own offset.
        """
        self._stash_positions(self._assigned)
        self._position_commits = False

    def _stash_one(self, message: Message) -> None:
        key = (message[0], message[1])
        if key in self._assigned:
            self._stash.add_one(key, message[2] + 1)
        else:
            self._log.warning("stale_commit_dropped", partitions=[key])

    # -- single-partition positioning -----------------------------------------------------

    def _require_partition_mode(self, what: str) -> TopicPartition:
        if self._tp is None:
            raise ConfigError(
                f"{what} is only for single-partition readers: a consumer group decides "
                "positions from committed offsets (reset them with the admin client)"
            )
        return self._tp

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
        self._pending_seek = offset
        self._buffer.clear()

    async def set_offset_at(self, when: datetime) -> None:
        """Make the next read start at the first message whose time is `when` or later.

        If every message is older, the next read waits for new ones.

        Raises:
            ConfigError: The reader is in group mode, or `when` is naive.
        """
        key = self._require_partition_mode("set_offset_at")
        if when.tzinfo is None:
            raise ConfigError("set_offset_at needs a timezone-aware datetime")
        consumer = self._open_consumer()
        tp = _TP(*key)
        with map_errors(brokers=self.config.brokers, topic=tp.topic, partition=tp.partition):
            found = await consumer.offsets_for_times({tp: to_millis(when)})
        entry = found.get(tp)
        self.set_offset(LAST_OFFSET if entry is None else entry.offset)

    async def _apply_seek(self, consumer: AIOKafkaConsumer) -> None:
        key = self._require_partition_mode("set_offset")
        offset = self._pending_seek
        tp = _TP(*key)
        with map_errors(brokers=self.config.brokers, topic=tp.topic, partition=tp.partition):
            # Look the offset up, then seek to it: aiokafka's seek_to_beginning/seek_to_end
            # can be overtaken by the answer to the reset it started when the partition was
            # assigned, which would leave the reader at the other end.
            if offset == FIRST_OFFSET:
                offset = (await consumer.beginning_offsets([tp]))[tp]
            elif offset == LAST_OFFSET:
                offset = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, offset)
        self._pending_seek = None
        self._buffer.clear()
        assert offset is not None
        self._fetched_next[key] = offset

    @property
    def offset(self) -> int:
        """The offset of the next message to be returned; -1 in group mode or before the
        position is known."""
        if self._tp is None:
            return -1
        position = self._position(self._tp)
        return -1 if position is None else position

    @property
    def lag(self) -> int:
        """Messages between the next offset and the high water mark, as of the last fetch;
        -1 in group mode or before the first fetch (see `stats()` for groups)."""
        if self._tp is None:
            return -1
        return self._partition_lag(self._tp)

    def _partition_lag(self, key: TopicPartition) -> int:
        consumer = self._consumer
        if consumer is None:
            return -1
        high_water = consumer.highwater(_TP(*key))
        position = self._position(key)
        if high_water is None or position is None:
            return self._read_lag if key == self._tp else -1
        lag: int = max(0, high_water - position)
        return lag

    async def read_lag(self) -> int:
        """Ask the broker for the partition's end offset and return the lag behind it.

        Raises:
            ConfigError: The reader is in group mode.
        """
        key = self._require_partition_mode("read_lag")
        consumer = self._open_consumer()
        tp = _TP(*key)
        with map_errors(brokers=self.config.brokers, topic=tp.topic, partition=tp.partition):
            end = (await consumer.end_offsets([tp]))[tp]
            position = self._position(key)
            if position is None:
                position = await consumer.position(tp)
        self._read_lag = max(0, end - position)
        return self._read_lag

    async def _update_lag_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.read_lag_interval)
            try:
                await self.read_lag()
            except Error as exc:
                self._log.warning("read_lag_failed", error=str(exc))

    # -- commits --------------------------------------------------------------------------

    async def commit_messages(self, *messages: Message) -> None:
        """Commit messages: each commits everything before it in its partition.

        The highest offset per partition wins. With `commit_interval` > 0 the offsets go to
        the stash and this returns at once; with 0 they are committed before returning.

        Cancellation: with a stash, nothing is awaited. Without, a cancelled commit may or
        may not have reached the broker; committing the same messages again is harmless.

        Raises:
            ConfigError: The reader is not in group mode.
            CommitError: The commit failed (only with `commit_interval` 0).
        """
        if not self._group:
            raise ConfigError(
                "commit_messages needs a consumer group: create the Reader with group_id"
            )
        self._open_consumer()
        if messages:
            await self._commit(messages)

    async def _commit(self, messages: Sequence[Message]) -> None:
        offsets = next_offsets(messages)
        if self.config.commit_interval > 0:
            self._stash_owned(offsets)
            return
        async with self._commit_lock:
            # The highest offset per partition wins across calls too: an older message
            # committed later must not move the group back.
            committed = self._committed
            offsets = {tp: o for tp, o in offsets.items() if committed.get(tp, -1) < o}
            if offsets:
                await self._commit_now(offsets, messages)

    def _stash_owned(self, offsets: dict[_TP, int]) -> None:
        """Stash offsets of partitions this reader owns; drop the others.

        An offset for a partition another member owns now is stale: stashed, it could be
        applied later, if the partition came back, and move the group's position back.
        """
        assigned = self._assigned
        owned = {tp: o for tp, o in offsets.items() if (tp.topic, tp.partition) in assigned}
        if len(owned) != len(offsets):
            stale = sorted((tp.topic, tp.partition) for tp in offsets if tp not in owned)
            self._log.warning("stale_commit_dropped", partitions=stale)
        self._stash.add(owned)

    async def _commit_now(self, offsets: dict[_TP, int], messages: Sequence[Message] = ()) -> None:
        consumer = self._open_consumer() if self._state == "open" else self._consumer
        assert consumer is not None
        try:
            await consumer.commit(offsets)
        except Exception as exc:
            self._counts["errors"] += 1
            mapped = translate(exc, brokers=self.config.brokers) or exc
            pairs = {(tp.topic, tp.partition): off for tp, off in offsets.items()}
            self._log.error("commit_failed", offsets=_describe(pairs), error=str(mapped))
            raise CommitError(
                f"committing {_describe(pairs)} failed: {mapped}", offsets=pairs, messages=messages
            ) from exc
        self._counts["commits"] += 1
        committed = self._committed
        for tp, offset in offsets.items():
            if committed.get(tp, -1) < offset:
                committed[tp] = offset

    async def _flush(self, partitions: set[TopicPartition] | None) -> None:
        """Commit what the stash holds for owned partitions (or just `partitions`)."""
        consumer = self._consumer
        if consumer is None:
            return
        owned = self._assigned if partitions is None else partitions & self._assigned
        owned_tps = {_TP(*key) for key in owned}
        async with self._commit_lock:
            if self._position_commits:
                self._stash_positions(owned)
            offsets = self._stash.snapshot(owned_tps)
            committed = self._committed
            behind = {tp: o for tp, o in offsets.items() if committed.get(tp, -1) >= o}
            self._stash.discard_committed(behind)
            offsets = {tp: o for tp, o in offsets.items() if tp not in behind}
            if not offsets:
                return
            await self._commit_now(offsets)
            self._stash.discard_committed(offsets)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.commit_interval)
            # A failure is logged in _commit_now; the offsets stay stashed for the next flush.
            with contextlib.suppress(CommitError):
                await self._flush(None)

    # -- rebalancing ----------------------------------------------------------------------

    async def _partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for hook in list(self._handler_hooks):
            await hook(revoked)
        if revoked and (len(self._stash) or self._position_commits):
            # A failure is logged; the next owner resumes from the last committed offset.
            with contextlib.suppress(CommitError):
                await self._flush(revoked)
        for key in revoked:
            # Another member may commit these partitions now, lower or higher.
            self._committed.pop(_TP(*key), None)
        dropped = self._stash.forget(_TP(*key) for key in revoked)
        if dropped:
            self._log.warning("stashed_offsets_dropped", partitions=dropped)
        self._assigned -= revoked
        if revoked and self._buffer:
            # Messages of revoked partitions will be read by their next owner.
            self._buffer = deque(m for m in self._buffer if (m.topic, m.partition) not in revoked)
        for key in revoked:
            self._fetched_next.pop(key, None)
        if revoked:  # the first join of a member revokes nothing: say nothing then
            self._log.info("partitions_revoked", partitions=sorted(revoked))
            await _call(self.config.on_revoked, set(revoked), self._log)

    async def _partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned = set(assigned)
        self._stash.keep_only({_TP(*key) for key in assigned})
        self._rebalances += 1
        self._assigned_event.set()
        self._log.info("partitions_assigned", partitions=sorted(assigned))
        await _call(self.config.on_assigned, set(assigned), self._log)

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
        if not self._group:
            raise ConfigError("consume needs a consumer group: create the Reader with group_id")
        from aiomq.group import run_handler  # the two modules refer to each other

        await run_handler(self, handler)

    # -- observing ------------------------------------------------------------------------

    def assignment(self) -> set[TopicPartition]:
        """The partitions this reader owns now."""
        return set(self._assigned)

    def stats(self) -> ReaderStats:
        """Return a snapshot of the reader's counters and per-partition lag."""
        parts = []
        total = 0
        known = False
        for key in sorted(self._assigned):
            lag = self._partition_lag(key)
            consumer = self._consumer
            hw = consumer.highwater(_TP(*key)) if consumer is not None else None
            parts.append(
                PartitionStats(
                    topic=key[0],
                    partition=key[1],
                    offset=-1 if (position := self._position(key)) is None else position,
                    high_water_mark=-1 if hw is None else hw,
                    lag=lag,
                )
            )
            if lag >= 0:
                total += lag
                known = True
        c = self._counts
        buffered_bytes = sum(
            (0 if m[4] is None else len(m[4])) + (0 if m[5] is None else len(m[5]))
            for m in self._buffer
        )
        return ReaderStats(
            messages=c["messages"] - len(self._buffer),
            bytes=c["bytes"] - buffered_bytes,
            fetches=c["fetches"],
            errors=c["errors"],
            commits=c["commits"],
            rebalances=self._rebalances,
            queued=len(self._buffer),
            lag=total if known else -1,
            partitions=tuple(parts),
        )


async def _stop_consumer(consumer: AIOKafkaConsumer, log: Any) -> None:
    """Stop an aiokafka consumer completely, even when a broker is unreachable.

    There, aiokafka's `stop()` re-raises the cancellation of its own fetch task and gives
    up before closing its client, whose metadata task would then keep reconnecting.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        log.warning("reader_close_interrupted")
        with contextlib.suppress(Exception):
            await consumer._client.close()


def _describe(offsets: dict[TopicPartition, int]) -> str:
    return ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(offsets.items()))


async def _call(
    callback: RebalanceCallback | None, partitions: set[TopicPartition], log: Any
) -> None:
    if callback is None:
        return
    try:
        result = callback(partitions)
        if result is not None:
            await result
    except Exception as exc:
        log.error("rebalance_callback_failed", error=repr(exc))
