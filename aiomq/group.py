"""Sarama's consumer-group handler model, on top of a group `Reader`.

A handler sees the group one generation at a time. For each assignment, `setup` runs once,
then `consume_claim` runs in its own task for every claimed partition, so partitions are
processed concurrently while each keeps its order; when the partitions are about to be
revoked (a rebalance) or the reader closes, the claims' message streams end, every
`consume_claim` is awaited, `cleanup` runs, and marked offsets are committed before
another member can take the partitions over::

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
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from aiokafka.structs import TopicPartition as _TP

from aiomq._internal.commits import next_offsets
from aiomq._internal.errmap import map_errors
from aiomq._internal.fetch import to_messages
from aiomq.message import Message

if TYPE_CHECKING:
    from aiomq.reader import Reader, TopicPartition

__all__ = ["Claim", "GroupHandler", "GroupSession"]


class GroupSession:
    """One generation of the group, as seen by a handler: the claims and the marks."""

    def __init__(self, reader: Reader, claims: set[TopicPartition], generation: int) -> None:
        self._reader = reader
        self.claims: frozenset[TopicPartition] = frozenset(claims)
        """The `(topic, partition)` pairs this member owns in this generation."""
        self.generation = generation
        """A number that grows with each assignment this reader receives."""

    def mark_message(self, message: Message) -> None:
        """Mark a message as processed: it and everything before it will be committed.

        Marks go to the reader's offset stash, flushed every `commit_interval`, when the
        generation ends, and on close. Marks for partitions not claimed are ignored.
        """
        if (message.topic, message.partition) in self.claims:
            self._reader._commits.stash_owned(next_offsets((message,)))

    async def commit(self) -> None:
        """Commit every mark now, instead of waiting for the next flush.

        Raises:
            CommitError: The commit failed; the marks stay stashed.
        """
        await self._reader._commits.flush(set(self.claims))


class Claim:
    """The messages of one claimed partition, as an async iterator that ends with the claim."""

    def __init__(self, reader: Reader, key: TopicPartition, ended: asyncio.Event) -> None:
        self._reader = reader
        self._tp = _TP(*key)
        self._ended = ended
        self.topic, self.partition = key

    def __repr__(self) -> str:
        return f"<Claim {self.topic}[{self.partition}]>"

    @property
    def high_water_mark(self) -> int:
        """The partition's high water mark at the last fetch, or -1."""
        consumer = self._reader._consumer
        hw = consumer.highwater(self._tp) if consumer is not None else None
        return -1 if hw is None else hw

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        reader = self._reader
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            while not self._ended.is_set():
                consumer = reader._consumer
                if consumer is None or reader._state != "open":
                    return
                with map_errors(brokers=reader.config.brokers, topic=self.topic):
                    fetch = asyncio.ensure_future(
                        consumer.getmany(
                            self._tp,
                            timeout_ms=max(100, int(reader.config.max_wait * 1000)),
                            max_records=reader.config.queue_capacity,
                        )
                    )
                    await asyncio.wait((fetch, ended), return_when=asyncio.FIRST_COMPLETED)
                    if not fetch.done():
                        # The claim ended first; records not yet taken stay with the broker
                        # and go to the partition's next owner.
                        fetch.cancel()
                        await asyncio.gather(fetch, return_exceptions=True)
                        return
                    batch = fetch.result()
                hw = consumer.highwater(self._tp)
                records = batch.get(self._tp)
                if not records:
                    continue
                key = (self.topic, self.partition)
                for message in to_messages(reader, key, records, -1 if hw is None else hw):
                    yield message
                    if self._ended.is_set():
                        return
        finally:
            ended.cancel()


class GroupHandler(Protocol):
    """What `Reader.consume` drives (Sarama's `ConsumerGroupHandler`)."""

    async def setup(self, session: GroupSession) -> None:
        """Run when a generation starts, before any claim is consumed."""

    async def consume_claim(self, session: GroupSession, claim: Claim) -> None:
        """Consume one claimed partition; return when `claim`'s iteration ends."""

    async def cleanup(self, session: GroupSession) -> None:
        """Run when a generation ends, after every `consume_claim` has returned."""


async def run_handler(reader: Reader, handler: GroupHandler) -> None:
    """Drive `handler` through the reader's generations until it closes or is cancelled."""
    generation = 0
    while reader._state == "open":
        await reader._assigned_event.wait()
        reader._assigned_event.clear()
        if reader._state != "open":
            return
        claims = set(reader._assigned)
        if not claims:
            continue
        generation += 1
        await _run_generation(reader, handler, GroupSession(reader, claims, generation))


async def _run_generation(reader: Reader, handler: GroupHandler, session: GroupSession) -> None:
    ended = asyncio.Event()
    finished = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    log = reader._log

    async def on_revoke(revoked: set[TopicPartition]) -> None:
        # Called by the group coordinator before the partitions change hands: end every
        # claim and wait until the handler has let go of them, so marks can be committed.
        # A claim that does not let go within rebalance_timeout is cancelled: the group
        # would evict this member otherwise.
        ended.set()
        limit = reader.config.rebalance_timeout
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

    reader._handler_hooks.append(on_revoke)
    try:
        await handler.setup(session)
        tasks.extend(
            asyncio.create_task(handler.consume_claim(session, Claim(reader, key, ended)))
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
        reader._handler_hooks.remove(on_revoke)


async def _claims_done(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for every claim; raise the first failure. A claim cancelled on revoke is done."""
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
