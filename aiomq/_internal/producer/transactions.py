"""A transactional writer's transactions: its producer id and the coordinator's protocol.

One `Transactions` belongs to one transactional Writer. It holds the producer id and
epoch the coordinator gave the writer's transactional id, the state of the one
transaction that may be open, and the partitions and groups added to it; it runs each
step of the protocol (`aiomq._internal.kafka.transaction`) with retries and turns
refusals into `TransactionError` or `ProducerFencedError`, naming the step.

States:

```text
READY --begin--> OPEN --commit/abort--> ENDING --> READY
  any state --a fenced answer--> FENCED (for good)
```

After an abort, or a commit whose outcome is unknown, the next `begin` first asks the
coordinator for the producer id again: the epoch goes up, which aborts anything the old
epoch left open and fences its batches still in flight, and every partition's sequence
starts again at 0.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from aiomq._internal.backoff import backoff_delay
from aiomq._internal.kafka.admin import find_coordinator_request
from aiomq._internal.kafka.client import KafkaClient
from aiomq._internal.kafka.consumer import GroupMember
from aiomq._internal.kafka.errors import ErrorCode, broker_error, map_errors
from aiomq._internal.kafka.transaction import (
    add_offsets,
    add_partitions,
    commit_offsets_in_transaction,
    end_transaction,
    find_transaction_coordinator,
    init_transactional_producer,
)
from aiomq._internal.producer.engine import Producer
from aiomq.errors import (
    BrokerConnectionError,
    BrokerError,
    Error,
    ProducerFencedError,
    RequestTimeoutError,
    TransactionError,
)

__all__ = ["Transactions"]

T = TypeVar("T")

_FENCED: Final = frozenset({ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH})
"""Answers that mean a newer producer with the same transactional id has taken over."""

_COORDINATOR_MOVED: Final = frozenset(
    {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE}
)
"""Answers after which the coordinator is looked up again."""

_NO_RENEWAL: Final = frozenset({ErrorCode.UNSUPPORTED_VERSION, ErrorCode.UNKNOWN_SERVER_ERROR})
"""Answers of a broker that cannot renew a producer's epoch (KIP-360): it lacks
InitProducerId v3, or fails on a producer id and epoch in it (the embedded broker)."""

_RETRIABLE: Final = frozenset(
    {
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        *_COORDINATOR_MOVED,
    }
)
"""Answers after which the same step is tried again (besides those marked retriable)."""


class _State(enum.Enum):
    READY = "ready"
    OPEN = "open"
    ENDING = "ending"
    FENCED = "fenced"


class Transactions:
    """The transactions of one transactional writer.

    Args:
        client: The writer's started client.
        producer: The writer's engine; its batches carry the producer id given here.
        transactional_id: The writer's transactional id.
        transaction_timeout: Seconds after which the coordinator aborts a transaction
            this writer left open.
        timeout: Seconds each step may take, retries included (`write_timeout`).
        backoff: `(min, max)` seconds between retries.
        log: The writer's logger.
    """

    def __init__(
        self,
        client: KafkaClient,
        producer: Producer,
        *,
        transactional_id: str,
        transaction_timeout: float,
        timeout: float,
        backoff: tuple[float, float],
        log: Any,
    ) -> None:
        self._kafka = client
        self._producer = producer
        self.transactional_id = transactional_id
        self._transaction_timeout = transaction_timeout
        self._timeout = timeout
        self._backoff = backoff
        self._log = log.bind(transactional_id=transactional_id)
        self._state = _State.READY
        self._fenced: ProducerFencedError | None = None
        self._node: int | None = None
        self._producer_id = -1
        self._epoch = -1
        self._stale_epoch = True
        self._partitions: set[tuple[str, int]] = set()
        self._groups: set[str] = set()
        self._on_commit: list[Callable[[], None]] = []
        self._adding = asyncio.Lock()
        self._calls = 0
        self._no_calls = asyncio.Event()
        self._no_calls.set()

    # -- state ------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether a transaction is open and takes writes."""
        return self._state is _State.OPEN

    def check_open(self, what: str) -> None:
        """Raise unless a transaction is open for `what` (a write, offsets) to join.

        Raises:
            ProducerFencedError: The writer was fenced.
            TransactionError: No transaction is open, or it is ending.
        """
        state = self._state
        if state is _State.OPEN:
            return
        if state is _State.FENCED:
            raise self._fenced_again(what)
        if state is _State.ENDING:
            why = "its transaction is ending; wait for the `async with` to end first"
        else:
            why = "it is transactional: call it inside `async with writer.transaction():`"
        raise TransactionError(
            f"{what} refused on the writer with transactional id {self.transactional_id!r}: {why}",
            transactional_id=self.transactional_id,
            step=what,
        )

    def call_started(self) -> None:
        """A write or `send_offsets` joined the open transaction: it ends only after it."""
        self._calls += 1
        self._no_calls.clear()

    def call_ended(self) -> None:
        self._calls -= 1
        if not self._calls:
            self._no_calls.set()

    # -- steps --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Get a producer id and epoch for the transactional id, fencing older writers
        with it and aborting a transaction one of them left open.

        Raises:
            ProducerFencedError, TransactionError: The coordinator refused, or did not
                answer within `write_timeout`.
        """
        await self._init("initializing the transactional producer")

    async def begin(self) -> None:
        """Open a transaction.

        Raises:
            TransactionError: A transaction is open already (they do not nest, and a
                writer has one at a time), or getting a fresh epoch failed.
            ProducerFencedError: The writer was fenced.
        """
        if self._state is _State.FENCED:
            raise self._fenced_again("beginning a transaction")
        if self._state is not _State.READY:
            raise TransactionError(
                f"a transaction is already open on the writer with transactional id "
                f"{self.transactional_id!r}: transactions do not nest, and a writer has one "
                "at a time (use one writer per concurrent stream of transactions)",
                transactional_id=self.transactional_id,
                step="beginning a transaction",
            )
        self._state = _State.OPEN
        try:
            if self._stale_epoch:
                await self._init("renewing the producer epoch before a transaction", renew=True)
        except BaseException:
            if self._state is _State.OPEN:
                self._state = _State.READY
            raise
        self._partitions.clear()
        self._groups.clear()
        self._on_commit.clear()
        self._producer.first_failure = None
        self._log.debug("transaction_begun")

    async def add_partitions(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Add the partitions a write goes to, those not added yet, to the transaction.

        Raises:
            ProducerFencedError, TransactionError: The coordinator refused.
        """
        if self._partitions.issuperset(partitions):
            return
        async with self._adding:
            missing = set(partitions) - self._partitions
            if not missing:
                return
            by_topic: dict[str, list[int]] = {}
            for topic, partition in sorted(missing):
                by_topic.setdefault(topic, []).append(partition)
            await self._retrying(
                "adding partitions to the transaction",
                lambda node: add_partitions(
                    self._kafka,
                    node,
                    self.transactional_id,
                    self._producer_id,
                    self._epoch,
                    by_topic,
                ),
            )
            self._partitions |= missing

    async def send_offsets(
        self, group_id: str, member: GroupMember, offsets: Mapping[str, Mapping[int, int]]
    ) -> None:
        """Commit a group's offsets in the transaction (seen by the group on commit).

        Raises:
            ProducerFencedError, TransactionError: A coordinator refused: a group
                coordinator answering ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID means the
                reader lost its partitions in a rebalance.
        """
        if group_id not in self._groups:
            await self._retrying(
                f"adding the offsets of group {group_id!r} to the transaction",
                lambda node: add_offsets(
                    self._kafka,
                    node,
                    self.transactional_id,
                    self._producer_id,
                    self._epoch,
                    group_id,
                ),
            )
            self._groups.add(group_id)
        coordinator = member.coordinator

        async def commit(node: int) -> None:
            nonlocal coordinator
            if coordinator is None:
                coordinator = await self._group_coordinator(group_id)
            try:
                await commit_offsets_in_transaction(
                    self._kafka,
                    coordinator,
                    self.transactional_id,
                    group_id,
                    self._producer_id,
                    self._epoch,
                    offsets,
                    generation_id=member.generation,
                    member_id=member.member_id,
                    group_instance_id=member.group_instance_id,
                )
            except (BrokerError, BrokerConnectionError, RequestTimeoutError) as exc:
                if not isinstance(exc, BrokerError) or exc.code in _COORDINATOR_MOVED:
                    coordinator = None  # the group's coordinator moved: look it up again
                raise

        await self._retrying(
            f"committing the offsets of group {group_id!r} in the transaction", commit
        )

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` if, and once, the open transaction commits."""
        self._on_commit.append(callback)

    async def commit(self) -> None:
        """Commit the open transaction, once every write in it is settled.

        Bounded by `write_timeout` in all; a commit that cannot finish aborts instead.

        Raises:
            TransactionError: A write in the transaction failed, or the writes did not
                settle in time (the transaction was aborted), or the coordinator refused
                or did not answer (the message says whether the outcome is unknown).
            ProducerFencedError: The writer was fenced; nothing of it is committed.
        """
        if self._state is _State.FENCED:
            raise self._fenced_again("committing the transaction")
        self._state = _State.ENDING
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            settled = await self._settle(deadline)
            failure = self._producer.first_failure
            if failure is not None or not settled:
                fenced = _is_fenced(failure)
                await self._abort_quietly()
                if fenced:
                    raise self._fence("committing the transaction", failure)
                why = (
                    f"a write in it failed ({failure})"
                    if failure is not None
                    else f"its writes did not settle within write_timeout ({self._timeout:g} s)"
                )
                raise TransactionError(
                    f"the transaction of {self.transactional_id!r} was aborted instead of "
                    f"committed: {why}",
                    transactional_id=self.transactional_id,
                    step="committing the transaction",
                ) from failure
            try:
                await self._end(commit=True, deadline=deadline)
            except ProducerFencedError:
                raise
            except TransactionError as exc:
                # Maybe committed, maybe not: the next transaction's new epoch settles it.
                self._stale_epoch = True
                exc.add_note(
                    "the outcome of the commit is unknown: the coordinator completes or "
                    "aborts it, and the writer's next transaction waits for that"
                )
                raise
            self._log.debug("transaction_committed")
            self._producer.counters.transactions += 1
            for callback in self._on_commit:
                callback()
        finally:
            if self._state is _State.ENDING:
                self._state = _State.READY

    async def abort(self) -> None:
        """Abort the open transaction; never raises an `Exception` (a failure is logged,
        and the next transaction's new epoch completes the abort)."""
        if self._state is _State.FENCED:
            # A newer writer took over, and aborted this one's transaction doing so.
            return
        self._state = _State.ENDING
        try:
            await self._abort_quietly()
        finally:
            if self._state is _State.ENDING:
                self._state = _State.READY

    async def _abort_quietly(self) -> None:
        """Wait for the transaction's writes (within `write_timeout`), then abort it."""
        self._producer.counters.transactions_aborted += 1
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            if not await self._settle(deadline):
                # Batches still in flight could land after an abort marker; a new epoch
                # fences them and aborts the transaction in one step.
                self._stale_epoch = True
                await self._init(
                    "aborting the transaction with a new epoch", deadline=deadline, renew=True
                )
                self._log.warning("transaction_aborted", by="new epoch")
                return
            if self._producer.first_failure is not None:
                # A batch failed half-way: the broker's sequence for it is unknown, so
                # the next transaction starts from a new epoch (sequences from 0).
                self._stale_epoch = True
            await self._end(commit=False, deadline=deadline)
        except TransactionError as exc:
            # The next transaction's new epoch completes the abort.
            self._stale_epoch = True
            self._log.warning("transaction_abort_failed", error=str(exc))
            return
        self._log.info("transaction_aborted")

    async def _end(self, *, commit: bool, deadline: float) -> None:
        """Commit or abort the transaction at the coordinator (EndTxn), with retries."""
        await self._retrying(
            "committing the transaction" if commit else "aborting the transaction",
            lambda node: end_transaction(
                self._kafka,
                node,
                self.transactional_id,
                self._producer_id,
                self._epoch,
                commit=commit,
            ),
            deadline=deadline,
        )

    async def _settle(self, deadline: float) -> bool:
        """Wait until no call is joining the transaction and every accepted message is
        settled; False if that takes past `deadline` (event loop time)."""
        try:
            async with asyncio.timeout_at(deadline):
                await self._no_calls.wait()
                await self._producer.wait_idle()
        except TimeoutError:
            return False
        return True

    # -- the protocol, with retries --------------------------------------------------------

    async def _init(self, step: str, *, deadline: float | None = None, renew: bool = False) -> None:
        """Get a producer id and epoch: a new producer's at start, and the next epoch of
        this one's when `renew` (after a failure left its sequence or its transaction's
        outcome unknown).

        Renewing sends the current id and epoch (KIP-360), so that a coordinator whose
        transactional id a newer writer has taken answers fenced. Asking as a new
        producer instead would fence that newer writer: a writer that was itself fenced
        would take the transactional id back.

        Raises:
            ProducerFencedError: A newer writer has the transactional id.
            TransactionError: The coordinator refused, or cannot renew an epoch safely.
        """
        current = (self._producer_id, self._epoch) if renew else (-1, -1)

        async def init(node: int) -> tuple[int, int]:
            return await init_transactional_producer(
                self._kafka, node, self.transactional_id, self._transaction_timeout, current
            )

        try:
            self._producer_id, self._epoch = await self._retrying(step, init, deadline=deadline)
        except ProducerFencedError:
            raise
        except TransactionError as exc:
            cause = exc.__cause__
            if renew and isinstance(cause, BrokerError) and cause.code in _NO_RENEWAL:
                raise TransactionError(
                    f"the broker cannot renew the epoch of the writer with transactional id "
                    f"{self.transactional_id!r} ({cause.name}; renewing needs InitProducerId "
                    "v3 with the producer's id and epoch, Kafka 2.5 and later), which this "
                    "writer needs after a failed write or an unknown outcome: close it and "
                    "open a new writer with the same transactional id",
                    transactional_id=self.transactional_id,
                    step=step,
                ) from cause
            raise
        self._producer.use_producer_id(self._producer_id, self._epoch)
        self._stale_epoch = False
        self._log.debug("producer_id_initialized", producer_id=self._producer_id, epoch=self._epoch)

    async def _retrying(
        self,
        step: str,
        call: Callable[[int], Awaitable[T]],
        *,
        deadline: float | None = None,
    ) -> T:
        """Run one step against the transaction coordinator until it succeeds, it is
        refused for good, or `deadline` (default: `write_timeout` from now) passes.

        Raises:
            ProducerFencedError: A newer producer has fenced this one.
            TransactionError: The step was refused, or did not succeed in time; caused
                by the last error.
        """
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self._timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout_at(deadline):
                    if self._node is None:
                        self._node = await find_transaction_coordinator(
                            self._kafka, self.transactional_id
                        )
                    return await call(self._node)
            except TimeoutError as exc:
                error: Error = RequestTimeoutError(f"{step} did not finish in time")
                error.__cause__ = exc
            except BrokerError as exc:
                if exc.code in _FENCED:
                    raise self._fence(step, exc) from exc
                if exc.code in _COORDINATOR_MOVED:
                    self._node = None
                if not (exc.retriable or exc.code in _RETRIABLE):
                    raise TransactionError(
                        f"{step} failed for transactional id {self.transactional_id!r}: {exc}",
                        transactional_id=self.transactional_id,
                        step=step,
                    ) from exc
                error = exc
            except (BrokerConnectionError, RequestTimeoutError) as exc:
                self._node = None
                error = exc
            delay = backoff_delay(attempt, *self._backoff)
            if loop.time() + delay >= deadline:
                raise TransactionError(
                    f"{step} did not succeed within write_timeout ({self._timeout:g} s) for "
                    f"transactional id {self.transactional_id!r}; last error: {error}",
                    transactional_id=self.transactional_id,
                    step=step,
                ) from error
            self._log.warning("transaction_step_retried", step=step, error=str(error))
            await asyncio.sleep(delay)

    async def _group_coordinator(self, group_id: str) -> int:
        async def ask(node: int) -> int:
            with map_errors(brokers=self._kafka.brokers):
                response = await self._kafka.send(node, find_coordinator_request(group_id))
            if response.error_code:
                raise broker_error(
                    response.error_code, detail=f"while finding the coordinator of {group_id!r}"
                )
            coordinator: int = response.coordinator_id
            return coordinator

        return await self._kafka.ask_any_broker(
            ask, skip=lambda exc: isinstance(exc, BrokerConnectionError | RequestTimeoutError)
        )

    # -- fencing ------------------------------------------------------------------------------

    def _fence(self, step: str, cause: BaseException | None) -> ProducerFencedError:
        """Mark the writer fenced for good, and return the error saying so."""
        self._state = _State.FENCED
        error = ProducerFencedError(
            f"the writer with transactional id {self.transactional_id!r} was fenced while "
            f"{step}: a newer writer with the same transactional id has started, and this "
            "one may no longer write or commit; close it",
            transactional_id=self.transactional_id,
            step=step,
        )
        error.__cause__ = cause
        if self._fenced is None:
            self._fenced = error
            self._log.error("producer_fenced", step=step)
        return error

    def _fenced_again(self, what: str) -> ProducerFencedError:
        first = self._fenced
        error = ProducerFencedError(
            f"{what} refused: the writer with transactional id {self.transactional_id!r} "
            f"was fenced (while {first.step if first else 'writing'}); close it",
            transactional_id=self.transactional_id,
            step=what,
        )
        error.__cause__ = first
        return error

    def fenced_by(self, errors: Iterable[Error | None]) -> ProducerFencedError | None:
        """If one of a write's errors says that the writer was fenced, mark it fenced and
        return the error to raise instead."""
        for error in errors:
            if _is_fenced(error):
                return self._fence("writing", error)
        return None


def _is_fenced(error: BaseException | None) -> bool:
    return isinstance(error, BrokerError) and error.code in _FENCED
