"""One owner for everything a Reader knows while it reads.

The buffer of fetched messages, the partitions owned and the generation they were
assigned in, the read positions, the counters, the offset stash and the lifecycle all
live in one `ReaderState`. Fetching, commits, positions, the outage watch and the group
handler read it and change it through its methods; none of them knows the `Reader`
class, which only wires them together and keeps the public calls.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from aiomq._internal.calls import WaitingCalls
from aiomq._internal.consumer.convert import RecordConverter
from aiomq._internal.consumer.health import Reachability
from aiomq._internal.consumer.stash import OffsetStash
from aiomq._internal.kafka.record_hook import message_bytes
from aiomq._internal.lifecycle import Lifecycle
from aiomq._internal.tasks import BackgroundTasks
from aiomq._internal.telemetry import ReaderTelemetry
from aiomq.errors import ClosedError
from aiomq.message import Message
from aiomq.stats import ProcessingStats

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

    from aiomq._internal.kafka.record_hook import MessageFactory
    from aiomq.dialer import Dialer

__all__ = ["Key", "RebalanceCallback", "ReaderSettings", "ReaderState"]

Key = tuple[str, int]
"""A `(topic, partition)` pair."""

RebalanceCallback = Callable[[set[Key]], Awaitable[None] | None]
"""An `on_assigned` or `on_revoked` callback."""

_UNKNOWN: Final = -1


class ReaderSettings(Protocol):
    """The settings the reading machinery uses; `aiomq.ReaderConfig` provides them."""

    @property
    def brokers(self) -> Sequence[str]: ...
    @property
    def topic(self) -> str | None: ...
    @property
    def topics(self) -> tuple[str, ...]: ...
    @property
    def group_id(self) -> str | None: ...
    @property
    def effective_client_id(self) -> str: ...
    @property
    def dialer(self) -> Dialer | None: ...
    @property
    def min_bytes(self) -> int: ...
    @property
    def max_bytes(self) -> int: ...
    @property
    def max_wait(self) -> float: ...
    @property
    def queue_capacity(self) -> int: ...
    @property
    def commit_interval(self) -> float: ...
    @property
    def commit_timeout(self) -> float: ...
    @property
    def heartbeat_interval(self) -> float: ...
    @property
    def session_timeout(self) -> float: ...
    @property
    def rebalance_timeout(self) -> float: ...
    @property
    def read_lag_interval(self) -> float: ...
    @property
    def unavailable_timeout(self) -> float | None: ...
    @property
    def close_timeout(self) -> float: ...
    @property
    def on_assigned(self) -> RebalanceCallback | None: ...
    @property
    def on_revoked(self) -> RebalanceCallback | None: ...


class ReaderState:
    """Everything one reader knows. One event loop's tasks share it; no thread may.

    Args:
        settings: The reader's settings.
        log: The reader's structlog logger.
        partition: The `(topic, partition)` of a single-partition reader; None in a group.
        start_offset: Where a single-partition reader starts (FIRST_OFFSET or
            LAST_OFFSET); ignored in a group.
    """

    __slots__ = (
        "assigned",
        "assigned_event",
        "buffer",
        "calls",
        "consumer",
        "converter",
        "counts",
        "epoch",
        "factory",
        "fetched_next",
        "group",
        "handler_hooks",
        "health",
        "life",
        "log",
        "partition",
        "pending_seek",
        "position_commits",
        "processing",
        "read_lag",
        "rebalances",
        "settings",
        "stash",
        "stashing",
        "tasks",
        "telemetry",
    )

    def __init__(
        self, settings: ReaderSettings, log: Any, *, partition: Key | None, start_offset: int
    ) -> None:
        self.settings = settings
        self.log = log
        self.group = partition is None
        self.partition = partition
        self.life = Lifecycle("Reader")
        self.consumer: AIOKafkaConsumer | None = None
        self.buffer: deque[Message] = deque()
        """Fetched messages not yet returned, in the order they are returned."""
        self.assigned: set[Key] = set() if partition is None else {partition}
        self.epoch = 0
        """Grows at every revocation and assignment: a message taken under an older value
        must not go back to the buffer."""
        self.fetched_next: dict[Key, int] = {}
        """The offset after the last message fetched, per partition (not the last returned)."""
        self.stash = OffsetStash()
        self.stashing = self.group and settings.commit_interval > 0
        self.position_commits: bool | None = None
        """None until the first read; True while read_message alone returns messages of a
        stashing group reader (commits are then taken from the read positions), False
        once anything else has returned messages."""
        self.pending_seek: int | None = None if self.group else start_offset
        self.read_lag = _UNKNOWN
        self.rebalances = 0
        self.assigned_event = asyncio.Event()
        self.handler_hooks: list[Callable[[set[Key]], Awaitable[None]]] = []
        self.processing: Callable[[], ProcessingStats] | None = None
        self.telemetry: ReaderTelemetry | None = None
        """The reader's tracing and metrics, when on."""
        """The running `Reader.process`'s stats, while it runs."""
        self.counts = {
            "messages": 0,
            "bytes": 0,
            "fetches": 0,
            "errors": 0,
            "commits": 0,
            "stale_commits": 0,
        }
        """Counted once per fetch; what is still buffered is subtracted when asked."""
        self.factory: MessageFactory | None = None
        """The record hook's marker, when aiokafka builds the messages itself."""
        self.converter = RecordConverter(self.counts)
        self.tasks = BackgroundTasks("Reader", log)
        self.calls = WaitingCalls("Reader")
        self.health = Reachability(
            log=log,
            counts=self.counts,
            brokers=settings.brokers,
            unavailable_timeout=settings.unavailable_timeout,
            quiet=max(2.0, 3 * settings.max_wait),
        )

    # -- lifecycle ------------------------------------------------------------------------

    def check_open(self) -> None:
        """Raise `ClosedError` unless the reader is open."""
        self.life.check_open()

    def open_consumer(self) -> AIOKafkaConsumer:
        """The aiokafka consumer of an open reader.

        Raises:
            ClosedError: The reader is not open.
        """
        consumer = self.consumer
        if consumer is None or not self.life.is_open:
            raise ClosedError(f"the Reader is {self.life}")
        return consumer

    # -- the buffer ---------------------------------------------------------------------------

    def drop_buffered(self, which: Callable[[Message], bool] | None = None) -> int:
        """Take messages out of the buffer without returning them, and uncount them.

        The buffer is changed in place: tasks waiting to read hold on to it.

        Args:
            which: Which messages to drop; None drops them all.

        Returns:
            How many were dropped.
        """
        buffer = self.buffer
        if not buffer:
            return 0
        dropped: list[Message] = []
        if which is None:
            dropped.extend(buffer)
            buffer.clear()
        else:
            kept: list[Message] = []
            for message in buffer:
                (dropped if which(message) else kept).append(message)
            if not dropped:
                return 0
            buffer.clear()
            buffer.extend(kept)
        self.counts["messages"] -= len(dropped)
        self.counts["bytes"] -= message_bytes(dropped)
        return len(dropped)

    def give_back(self, message: Message, epoch: int) -> None:
        """Put a message a cancelled read took back at the front of the buffer.

        Only if its partition was not revoked since (`epoch` is the epoch it was taken in)
        and the reader is still open: otherwise the partition's owner reads it again.
        """
        if self.epoch == epoch and self.life.is_open:
            self.buffer.appendleft(message)

    # -- the assignment -----------------------------------------------------------------------

    def assign(self, partitions: set[Key]) -> None:
        """Take a new assignment: every partition owned now."""
        self.assigned = set(partitions)
        self.epoch += 1
        self.rebalances += 1
        self.assigned_event.set()

    def revoke(self, partitions: set[Key]) -> None:
        """Give partitions up: forget their buffered messages and read positions."""
        self.assigned -= partitions
        self.epoch += 1
        if partitions:
            self.drop_buffered(lambda m: (m[0], m[1]) in partitions)
        for key in partitions:
            self.fetched_next.pop(key, None)
