"""A group Reader's commits, and what rebalances and closing do to them.

A group `Reader` commits in one of two ways. With `commit_interval` 0, `commit` sends the
offsets before it returns. With more, offsets wait in the reader's `OffsetStash`, and
`flush` commits them every interval, before partitions are revoked, and on close; while
`read_message` is the only way messages leave the reader, the stash is filled from the
read positions only when a flush needs them (see `GroupCommits.end_position_commits`).
Either way the highest offset per partition wins, and only partitions the reader owns are
committed: an offset for a partition another member owns now is stale, and committing it
could move the group's position back.

`GroupCommits` keeps what only the commits use (the group's committed offsets as far as
the reader knows them, and the lock that orders commits). The rest (the assignment, the
stash, the buffer, the read positions, the consumer and the counters) is the reader's
`ReaderState`, which the read path uses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition as _TP

from aiomq._internal.consumer.positions import read_position
from aiomq._internal.consumer.stash import next_offsets
from aiomq._internal.kafka.consumer import GroupMember, committed_future, group_member
from aiomq._internal.kafka.errors import translate
from aiomq.errors import CommitError
from aiomq.message import Message

if TYPE_CHECKING:
    from aiomq._internal.consumer.state import Key, ReaderState, RebalanceCallback

__all__ = ["GroupCommits", "Listener", "describe_offsets", "run_callback"]


class Listener(ConsumerRebalanceListener):
    """Routes aiokafka's rebalance notifications to a reader's `GroupCommits`."""

    def __init__(self, commits: GroupCommits) -> None:
        self._commits = commits

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._commits.partitions_revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._commits.partitions_assigned({(tp.topic, tp.partition) for tp in assigned})


@dataclass(frozen=True, slots=True)
class TransactionOffsets:
    """What a transactional writer needs to commit a group reader's offsets in its
    transaction, and to tell the reader once it has."""

    group_id: str
    fresh: dict[_TP, int]
    """The offsets to commit (the next offset to read), of partitions the reader owns and
    above what the group has committed."""
    stale: dict[_TP, int]
    """The offsets refused: of partitions not owned now, or at or below the committed."""
    member: GroupMember
    commits: GroupCommits

    def by_topic(self) -> dict[str, dict[int, int]]:
        """The fresh offsets, by topic and partition."""
        offsets: dict[str, dict[int, int]] = {}
        for tp, offset in self.fresh.items():
            offsets.setdefault(tp.topic, {})[tp.partition] = offset
        return offsets

    def committed(self) -> None:
        """The transaction committed: the reader never commits below these offsets."""
        self.commits.committed_in_transaction(self.fresh)


class GroupReader(Protocol):
    """What `Writer.send_offsets` needs of a group `Reader`: a structural type, so that
    the writer's module need not import the reader's."""

    async def _offsets_for_transaction(self, messages: Sequence[Message]) -> TransactionOffsets:
        """The offsets that commit `messages` in a transaction."""
        ...


class GroupCommits:
    """Commits a group reader's offsets, at once or from its stash, across rebalances.

    Safe from several tasks of one event loop: a lock sends commits one at a time.
    """

    __slots__ = ("_committed", "_floors", "_lock", "_state")

    def __init__(self, state: ReaderState) -> None:
        self._state = state
        # The group's committed offset of each owned partition, as far as this reader
        # knows: learnt when the partition is assigned, raised by each commit it makes. A
        # commit at or below it would move the group back, or change nothing.
        self._committed: dict[_TP, int] = {}
        # Owned partitions whose committed offset is still being asked for.
        self._floors: dict[_TP, asyncio.Future[Any]] = {}
        self._lock = asyncio.Lock()

    async def commit(
        self, messages: Sequence[Message], offsets: dict[_TP, int] | None = None
    ) -> None:
        """Commit messages: stash them with a `commit_interval`, else commit them now.

        Offsets of partitions the reader does not own, and offsets at or below what the
        group has committed, are dropped (logged as `stale_commit_dropped` and counted),
        never sent: committing them could move the group back.

        Args:
            messages: The messages; each commits everything before it in its partition.
            offsets: `next_offsets(messages)`, when the caller has worked them out.

        Raises:
            CommitError: The commit failed, or did not finish within `commit_timeout`
                (only with `commit_interval` 0).
        """
        if offsets is None:
            offsets = next_offsets(messages)
        if self._state.settings.commit_interval > 0:
            self.stash_owned(offsets)
            return
        await self.commit_offsets(offsets, messages)

    async def commit_offsets(
        self, offsets: dict[_TP, int], messages: Sequence[Message] = (), *, derived: bool = False
    ) -> None:
        """Commit offsets now (the next offset to read, per partition), bounded by
        `commit_timeout`: those of partitions not owned, or at or below what the group has
        committed, are dropped as stale.

        Args:
            offsets: The offsets.
            messages: The messages they commit, for the error; may be empty.
            derived: The reader worked the offsets out itself (`process`'s watermarks):
                those dropped are not reported as stale, since nobody gave them.

        Raises:
            CommitError: The commit failed or timed out; it names the offsets and holds
                `messages`.
        """
        if derived:
            assigned = self._state.assigned
            offsets = {tp: o for tp, o in offsets.items() if (tp.topic, tp.partition) in assigned}
        else:
            offsets = self._owned(offsets)
        if not offsets:
            return
        timeout = self._state.settings.commit_timeout
        scope = asyncio.timeout(timeout)
        try:
            async with scope, self._lock:
                await self._learn_floors(offsets)
                offsets = self._above_floor(offsets, stale=not derived)
                if offsets:
                    await self.commit_now(offsets, messages)
        except TimeoutError:
            if not scope.expired():
                raise
            raise self._timed_out(offsets, messages) from None

    async def for_transaction(self, offsets: dict[_TP, int]) -> TransactionOffsets:
        """Split `offsets` (the next offset to read, per partition) into those a
        transaction may commit and the stale ones: of a partition this reader does not own
        now, or at or below what the group has committed. Stale ones are logged and
        counted as the reader's own would be; the caller refuses them, as their outputs
        would be duplicates.

        Waits for the committed offsets of newly assigned partitions up to
        `commit_timeout`; past it, offsets are checked against what is known.

        Raises:
            ClosedError: The reader is not open.
        """
        owned = self._owned(offsets)
        if owned:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._state.settings.commit_timeout):
                    await self._learn_floors(owned)
            self._settle_floors()
        fresh = self._above_floor(owned, stale=True)
        stale = {tp: o for tp, o in offsets.items() if tp not in fresh}
        consumer = self._state.open_consumer()
        group_id = self._state.settings.group_id
        assert group_id is not None
        return TransactionOffsets(group_id, fresh, stale, group_member(consumer), self)

    def committed_offset(self, key: Key) -> int:
        """The group's committed offset of an owned partition as far as this reader knows
        (learnt on assignment, raised by each commit it makes); -1 when unknown."""
        self._settle_floors()
        return self._committed.get(_TP(*key), -1)

    def committed_in_transaction(self, offsets: dict[_TP, int]) -> None:
        """Learn offsets a transaction committed for the group: the reader never commits
        below them afterwards."""
        self._state.counts["commits"] += 1
        committed = self._committed
        for tp, offset in offsets.items():
            if committed.get(tp, -1) < offset:
                committed[tp] = offset

    def _timed_out(self, offsets: dict[_TP, int], messages: Sequence[Message] = ()) -> CommitError:
        state = self._state
        state.counts["errors"] += 1
        pairs = {(tp.topic, tp.partition): off for tp, off in offsets.items()}
        timeout = state.settings.commit_timeout
        state.log.error("commit_timed_out", offsets=describe_offsets(pairs), timeout=timeout)
        return CommitError(
            f"committing {describe_offsets(pairs)} did not finish within commit_timeout "
            f"({timeout:g} s): the group coordinator did not answer",
            offsets=pairs,
            messages=messages,
        )

    def _owned(self, offsets: dict[_TP, int]) -> dict[_TP, int]:
        """Keep the offsets of partitions this reader owns; drop the others as stale."""
        assigned = self._state.assigned
        owned = {tp: o for tp, o in offsets.items() if (tp.topic, tp.partition) in assigned}
        if len(owned) != len(offsets):
            self._stale({tp: o for tp, o in offsets.items() if tp not in owned}, "not owned")
        return owned

    def _above_floor(self, offsets: dict[_TP, int], *, stale: bool) -> dict[_TP, int]:
        """Keep the offsets above the group's known committed offset.

        Args:
            offsets: The offsets to commit.
            stale: Whether the others were given by the caller, and so are reported as
                stale; offsets the reader derived itself are just dropped.
        """
        committed = self._committed
        above = {tp: o for tp, o in offsets.items() if committed.get(tp, -1) < o}
        if stale and len(above) != len(offsets):
            self._stale({tp: o for tp, o in offsets.items() if tp not in above}, "behind")
        return above

    def _stale(self, offsets: dict[_TP, int], why: str) -> None:
        state = self._state
        state.counts["stale_commits"] += len(offsets)
        state.log.warning(
            "stale_commit_dropped",
            partitions=sorted((tp.topic, tp.partition) for tp in offsets),
            offsets=describe_offsets({(tp.topic, tp.partition): o for tp, o in offsets.items()}),
            reason=why,
            committed={
                f"{tp.topic}[{tp.partition}]": self._committed[tp]
                for tp in offsets
                if tp in self._committed
            },
        )

    async def _learn_floors(self, offsets: dict[_TP, int]) -> None:
        """Wait until the group's committed offset of each partition in `offsets` is known.

        The caller bounds the wait (`commit_timeout`, or the close deadline).
        """
        floors = self._floors
        waiting = [floors[tp] for tp in offsets if tp in floors]
        if waiting:
            await asyncio.wait(waiting)
            self._settle_floors()

    def _settle_floors(self) -> None:
        """Take the committed offsets that have arrived since the last look."""
        floors = self._floors
        if not floors:
            return  # the usual case, once an assignment's offsets have arrived
        committed = self._committed
        for tp, future in list(floors.items()):
            if not future.done():
                continue
            del floors[tp]
            if future.cancelled() or future.exception() is not None:
                continue
            offset = future.result().offset
            if committed.get(tp, -1) < offset:
                committed[tp] = offset

    def stash_owned(self, offsets: dict[_TP, int]) -> None:
        """Stash offsets of partitions this reader owns; drop the others as stale.

        An offset for a partition another member owns now is stale: stashed, it could be
        applied later, if the partition came back, and move the group's position back. So
        is one at or below what the group is known to have committed.

        Args:
            offsets: The offset to commit next, per partition.
        """
        self._settle_floors()
        self._state.stash.add(self._above_floor(self._owned(offsets), stale=True))

    async def commit_now(self, offsets: dict[_TP, int], messages: Sequence[Message] = ()) -> None:
        """Send one commit to the group coordinator and remember what it committed.

        Args:
            offsets: The offset to commit, per partition.
            messages: The messages the offsets come from, for the error; may be empty.

        Raises:
            CommitError: The commit failed; it names the offsets and holds `messages`.
        """
        state = self._state
        # A closing reader still commits: its final flush runs before it disconnects.
        consumer = state.open_consumer() if state.life.is_open else state.consumer
        assert consumer is not None
        counts = state.counts
        observed = state.telemetry
        started = time.monotonic()
        try:
            await consumer.commit(offsets)
        except Exception as exc:
            if observed is not None:
                observed.committed(time.monotonic() - started, exc)
            counts["errors"] += 1
            mapped = translate(exc, brokers=state.settings.brokers) or exc
            pairs = {(tp.topic, tp.partition): off for tp, off in offsets.items()}
            state.log.error("commit_failed", offsets=describe_offsets(pairs), error=str(mapped))
            raise CommitError(
                f"committing {describe_offsets(pairs)} failed: {mapped}",
                offsets=pairs,
                messages=messages,
            ) from exc
        if observed is not None:
            observed.committed(time.monotonic() - started, None)
        counts["commits"] += 1
        committed = self._committed
        for tp, offset in offsets.items():
            if committed.get(tp, -1) < offset:
                committed[tp] = offset

    async def flush(self, partitions: set[Key] | None) -> None:
        """Commit what the stash holds for owned partitions (or just `partitions`).

        Bounded by `commit_timeout`, waiting for an earlier commit included.

        Args:
            partitions: The partitions to flush; None for every partition owned.

        Raises:
            CommitError: The commit failed or timed out; the offsets stay stashed for the
                next flush.
        """
        state = self._state
        if state.consumer is None:
            return
        scope = asyncio.timeout(state.settings.commit_timeout)
        offsets: dict[_TP, int] = {}
        try:
            async with scope, self._lock:
                owned = state.assigned if partitions is None else partitions & state.assigned
                owned_tps = {_TP(*key) for key in owned}
                stash = state.stash
                if state.position_commits:
                    self.stash_positions(owned)
                offsets = stash.snapshot(owned_tps)
                await self._learn_floors(offsets)
                # Read positions the reader stashed itself are dropped quietly when the
                # group is already there; offsets a caller gave are reported as stale.
                fresh = self._above_floor(offsets, stale=not state.position_commits)
                stash.discard_committed({tp: o for tp, o in offsets.items() if tp not in fresh})
                offsets = fresh
                if not offsets:
                    return
                await self.commit_now(offsets)
                stash.discard_committed(offsets)
        except TimeoutError:
            if not scope.expired():
                raise
            raise self._timed_out(offsets) from None

    async def flush_periodically(self) -> None:
        """Flush the stash every `commit_interval` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self._state.settings.commit_interval)
            # A failure is logged in commit_now; the offsets stay stashed for the next flush.
            with contextlib.suppress(CommitError):
                await self.flush(None)

    def stash_one(self, message: Message) -> None:
        """Stash the offset after a message read from a partition this reader owns.

        Args:
            message: The message `read_message` returns.
        """
        state = self._state
        key = (message[0], message[1])
        if key in state.assigned:
            state.stash.add_one(key, message[2] + 1)
        else:
            self._stale({_TP(*key): message[2] + 1}, "not owned")

    def end_position_commits(self) -> None:
        """Switch to stashing each message: the caller now also fetches without committing.

        As long as `read_message` is the only way messages leave a stashing group reader,
        the offsets to commit are just the read positions, computed when a flush needs
        them rather than for every message. Once `fetch_message` or `fetch_batch` is used
        too, positions would cover messages nobody asked to commit, so the positions
        reached so far are stashed and every later `read_message` stashes its own offset.
        """
        state = self._state
        self.stash_positions(state.assigned)
        state.position_commits = False

    def stash_positions(self, partitions: set[Key]) -> None:
        """Stash each partition's read position: everything returned so far is committed.

        Args:
            partitions: The partitions whose positions to stash.
        """
        state = self._state
        for key in partitions:
            position = read_position(state, key)
            if position is not None:
                state.stash.add_one(key, position)

    # -- rebalancing and leaving ------------------------------------------------------------

    async def partitions_revoked(self, revoked: set[Key]) -> None:
        """Give partitions up: flush their stash, then forget their offsets and messages.

        A running group handler lets go of the partitions first, so its marks are flushed.

        Args:
            revoked: The partitions this reader gives up; empty at a member's first join.
        """
        state = self._state
        for hook in list(state.handler_hooks):
            await hook(revoked)
        stash = state.stash
        if revoked and (len(stash) or state.position_commits):
            # A failure is logged; the next owner resumes from the last committed offset.
            with contextlib.suppress(CommitError):
                await self.flush(revoked)
        floors = self._floors
        for key in revoked:
            # Another member may commit these partitions now; what the group has committed
            # is learnt again if they come back.
            tp = _TP(*key)
            self._committed.pop(tp, None)
            future = floors.pop(tp, None)
            if future is not None:
                future.cancel()
        dropped = stash.forget(_TP(*key) for key in revoked)
        if dropped:
            state.log.warning("stashed_offsets_dropped", partitions=dropped)
        # Messages of revoked partitions will be read by their next owner.
        state.revoke(revoked)
        if revoked:  # the first join of a member revokes nothing: say nothing then
            state.log.info("partitions_revoked", partitions=sorted(revoked))
            await run_callback(state.settings.on_revoked, set(revoked), state.log)

    async def partitions_assigned(self, assigned: set[Key]) -> None:
        """Take partitions over after a rebalance, and wake a waiting group handler.

        Args:
            assigned: Every partition this reader owns now.
        """
        state = self._state
        tps = {_TP(*key) for key in assigned}
        state.stash.keep_only(tps)
        consumer = state.consumer
        if consumer is not None:
            for tp in tps:
                if tp not in self._committed and tp not in self._floors:
                    future = committed_future(consumer, tp)
                    if future is not None:
                        self._floors[tp] = future
        state.assign(assigned)
        state.log.info("partitions_assigned", partitions=sorted(assigned))
        await run_callback(state.settings.on_assigned, set(assigned), state.log)

    async def leave(self, deadline: float) -> CommitError | None:
        """Give every partition up as the reader closes: release, flush, tell `on_revoked`.

        Args:
            deadline: When to stop waiting, on the event loop's clock.

        Returns:
            None when everything stashed was committed (or nothing needed to be), else the
            final flush's error, for the reader to raise once it has disconnected.
        """
        state = self._state
        # A running group handler lets go of its claims first, so its marks are flushed.
        try:
            async with asyncio.timeout_at(deadline):
                for hook in list(state.handler_hooks):
                    await hook(set(state.assigned))
        except TimeoutError:
            state.log.warning("group_handler_close_timed_out")
        failure = await self._final_flush(deadline)
        if state.group and state.assigned:
            # Closing gives the partitions up too: say so, as a rebalance would.
            try:
                async with asyncio.timeout_at(max(deadline, asyncio.get_running_loop().time())):
                    await run_callback(state.settings.on_revoked, set(state.assigned), state.log)
            except TimeoutError:
                state.log.warning("rebalance_callback_timed_out")
        return failure

    async def _final_flush(self, deadline: float) -> CommitError | None:
        """Flush the stash as the reader closes; a flush out of time names what is left."""
        state = self._state
        if not (
            state.consumer is not None
            and state.group
            and (len(state.stash) or state.position_commits)
        ):
            return None
        try:
            async with asyncio.timeout_at(deadline):
                await self.flush(None)
        except CommitError as exc:
            return exc
        except TimeoutError:
            return CommitError(
                f"the final commit did not finish within close_timeout "
                f"({state.settings.close_timeout:g} s)",
                offsets={(tp.topic, tp.partition): o for tp, o in state.stash.snapshot().items()},
            )
        return None


def describe_offsets(offsets: dict[Key, int]) -> str:
    """Name offsets for a message, such as `orders[0]@42, orders[1]@7`."""
    return ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(offsets.items()))


async def run_callback(callback: RebalanceCallback | None, partitions: set[Key], log: Any) -> None:
    """Call an `on_assigned` or `on_revoked` callback, awaiting it when it is async.

    Its failure is logged, not raised: it must not stop the rebalance or the close.
    """
    if callback is None:
        return
    try:
        result = callback(partitions)
        if result is not None:
            await result
    except Exception as exc:
        log.error("rebalance_callback_failed", error=repr(exc))
