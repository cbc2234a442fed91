"""Sarama's consumer-group handler model, on top of a group `Reader`.

A handler sees the group one generation at a time. For each assignment, `setup` runs once,
then `consume_claim` runs in its own task for every claimed partition, so partitions are
processed concurrently while each keeps its order; when the partitions are about to be
revoked (a rebalance) or the reader closes, the claims' message streams end, every
`consume_claim` is awaited, `cleanup` runs, and marked offsets are committed before
another member can take the partitions over:

```python
class Handler:
    async def setup(self, session): ...
    async def consume_claim(self, session, claim):
        async for message in claim:
            await process(message)
            session.mark_message(message)     # committed at the next flush
    async def cleanup(self, session): ...

async with aiomq.Reader(brokers=..., topic="orders", group_id="billing",
                        commit_interval=1.0) as reader:
    await reader.consume(Handler())
```
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from aiokafka.structs import TopicPartition as _TP

from aiomq._internal.consumer.fetch import fetch_partition
from aiomq._internal.consumer.stash import next_offsets
from aiomq.message import Message

if TYPE_CHECKING:
    from aiomq._internal.consumer.commits import GroupCommits
    from aiomq._internal.consumer.state import Key, ReaderState

__all__ = ["Claim", "GroupHandler", "GroupSession"]


class GroupSession:
    """One generation of the group, as seen by a handler: the claims and the marks."""

    def __init__(self, commits: GroupCommits, claims: set[Key], generation: int) -> None:
        self._commits = commits
        self.claims: frozenset[Key] = frozenset(claims)
        """The `(topic, partition)` pairs this member owns in this generation."""
        self.generation = generation
        """A number that grows with each assignment this reader receives."""

    def mark_message(self, message: Message) -> None:
        """Mark a message as processed: it and everything before it will be committed.

        Marks go to the reader's offset stash, flushed every `commit_interval`, when the
        generation ends, and on close. Marks for partitions not claimed are ignored.
        """
        if (message.topic, message.partition) in self.claims:
            self._commits.stash_owned(next_offsets((message,)))

    async def commit(self) -> None:
        """Commit every mark now, instead of waiting for the next flush.

        Raises:
            CommitError: The commit failed; the marks stay stashed.
        """
        await self._commits.flush(set(self.claims))


class Claim:
    """The messages of one claimed partition, as an async iterator that ends with the claim."""

    def __init__(self, state: ReaderState, key: Key, ended: asyncio.Event) -> None:
        self._state = state
        self._key = key
        self._ended = ended
        self.topic, self.partition = key

    def __repr__(self) -> str:
        return f"<Claim {self.topic}[{self.partition}]>"

    @property
    def high_water_mark(self) -> int:
        """The partition's high water mark at the last fetch, or -1."""
        consumer = self._state.consumer
        hw = consumer.highwater(_TP(*self._key)) if consumer is not None else None
        return -1 if hw is None else hw

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        state, key, ended = self._state, self._key, self._ended
        observed = state.telemetry
        while not ended.is_set() and state.life.is_open:
            for message in await fetch_partition(state, key, ended):
                if observed is None:
                    yield message
                else:
                    # The span covers the loop body that handles the message: from
                    # handing it over to asking for the next one.
                    span = observed.start_process(message)
                    try:
                        yield message
                    finally:
                        span.end()
                if ended.is_set():
                    return


class GroupHandler(Protocol):
    """What `Reader.consume` drives (Sarama's `ConsumerGroupHandler`)."""

    async def setup(self, session: GroupSession) -> None:
        """Run when a generation starts, before any claim is consumed."""

    async def consume_claim(self, session: GroupSession, claim: Claim) -> None:
        """Consume one claimed partition; return when `claim`'s iteration ends."""

    async def cleanup(self, session: GroupSession) -> None:
        """Run when a generation ends, after every `consume_claim` has returned."""


async def run_handler(state: ReaderState, commits: GroupCommits, handler: GroupHandler) -> None:
    """Drive `handler` through the reader's generations until it closes or is cancelled."""
    generation = 0
    while state.life.is_open:
        await state.assigned_event.wait()
        state.assigned_event.clear()
        if not state.life.is_open:
            return
        claims = set(state.assigned)
        if not claims:
            continue
        generation += 1
        await _run_generation(state, handler, GroupSession(commits, claims, generation))


async def _run_generation(state: ReaderState, handler: GroupHandler, session: GroupSession) -> None:
    ended = asyncio.Event()
    finished = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    log = state.log

    async def on_revoke(revoked: set[Key]) -> None:
        # Called by the group coordinator before the partitions change hands: end every
        # claim and wait until the handler has let go of them, so marks can be committed.
        # A claim that does not let go within rebalance_timeout is cancelled: the group
        # would evict this member otherwise.
        ended.set()
        limit = state.settings.rebalance_timeout
        try:
            async with asyncio.timeout(limit):
                await finished.wait()
            return
        except TimeoutError:
            pass
        stuck = [task for task in tasks if not task.done()]
        log.warning(
            "group_claim_cancelled",
            claims=sorted(session.claims),
            stuck=len(stuck),
            rebalance_timeout=limit,
        )
        for task in stuck:
            task.cancel()
        try:
            async with asyncio.timeout(limit):
                await finished.wait()
        except TimeoutError:
            log.warning("group_cleanup_timed_out", claims=sorted(session.claims))

    state.handler_hooks.append(on_revoke)
    try:
        await handler.setup(session)
        tasks.extend(
            asyncio.create_task(handler.consume_claim(session, Claim(state, key, ended)))
            for key in sorted(session.claims)
        )
        try:
            await _claims_done(tasks)
        except BaseException:
            ended.set()
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            raise
        finally:
            await handler.cleanup(session)
    finally:
        finished.set()
        state.handler_hooks.remove(on_revoke)


async def _claims_done(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for every claim; raise the first failure. A claim cancelled on revoke is done."""
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
