"""Consume, transform, produce: read a topic, turn each message into others, write them.

```python
def enrich(message: aiomq.Message) -> aiomq.Message | None:
    if message.value is None:
        return None  # a message may produce nothing ...
    return aiomq.Message(topic="orders.enriched", key=message.key, value=...)

async with (
    aiomq.Reader(brokers=brokers, group_id="enricher", topic="orders",
                 isolation_level=aiomq.IsolationLevel.READ_COMMITTED) as reader,
    aiomq.Writer(brokers=brokers, transactional_id="enricher-0") as writer,
):
    await aiomq.transform(reader, writer, enrich)  # exactly once: the writer is transactional
```

With a transactional writer, each batch is one transaction: its outputs and its inputs'
offsets commit together, or neither does, so after any crash every input's outputs are
in the output topic exactly once for `READ_COMMITTED` readers. With a plain writer the
outputs are written, then the inputs committed: after a crash between the two, the
outputs of the last batch are written again (at least once).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiomq._internal.log import get_logger
from aiomq._internal.telemetry import outputs_in_context
from aiomq.errors import ClosedError, ConfigError
from aiomq.message import Message
from aiomq.reader import IsolationLevel, Reader, TopicPartition
from aiomq.writer import Writer

__all__ = ["TransformFunction", "TransformResult", "TransformStats", "transform"]

TransformResult: TypeAlias = Message | Iterable[Message] | None
"""What the function returns for one input: one message, several, or none."""

TransformFunction: TypeAlias = Callable[[Message], TransformResult | Awaitable[TransformResult]]
"""`fn(message)`, a plain function or a coroutine function."""


@dataclass(slots=True)
class TransformStats:
    """What a `transform` call did, returned when it ends."""

    batches: int = 0
    """Batches committed."""

    messages_read: int = 0
    """Input messages whose batch was committed."""

    messages_written: int = 0
    """Output messages written in committed batches."""

    batches_dropped: int = 0
    """Batches (or parts of them) dropped because a rebalance took their partitions first;
    their new owner reads them again."""


async def transform(
    reader: Reader,
    writer: Writer,
    fn: TransformFunction,
    *,
    exactly_once: bool | None = None,
    batch_size: int = 500,
    max_wait: float = 0.1,
) -> TransformStats:
    """Read batches from a group reader, call `fn` on each message, write what it returns,
    and commit the inputs; until the reader closes.

    A batch is up to `batch_size` messages, gathered for up to `max_wait` seconds after
    its first. `fn` is called on each message of a batch in order (the reader's order:
    per partition, by offset); outputs keep that order, and go where each output message
    says (its `topic`, or the writer's). With `exactly_once`, each batch is one
    transaction of the writer: its outputs and its inputs' offsets commit together
    (`Writer.send_offsets`), or neither does. Without, the outputs are written, then the
    inputs committed with `Reader.commit_messages` (at least once).

    Rebalances: a rebalance waits (up to the reader's `rebalance_timeout`) for the batch
    under way to commit before its partitions go. Inputs of partitions lost before their
    batch committed are left out of it (their outputs too), for their new owner to read.

    Failures: `fn` raising, a write failing or a commit failing ends the call with that
    exception; nothing of the batch was committed (with `exactly_once`, nothing of it is
    visible either), so its inputs are read again by whoever reads the partitions next.

    Cancellation ends the call after the batch under way is aborted (with
    `exactly_once`; the commit or abort runs to its end first) or left uncommitted.

    Args:
        reader: An open group reader (with `group_id`). For `exactly_once` its
            `isolation_level` must be `READ_COMMITTED`: inputs of aborted transactions
            must not be transformed.
        writer: An open writer: transactional (`transactional_id`) for `exactly_once`;
            otherwise one that waits for its writes (`async_mode=False`), so that inputs
            are committed only after their outputs are written.
        fn: Called with each input message; returns a `Message`, an iterable of them, or
            None for nothing; may be a coroutine function.
        exactly_once: Whether each batch is one transaction. Default: None, which means
            whether the writer is transactional.
        batch_size: The most messages in a batch. Default: 500.
        max_wait: The most seconds to wait for a batch to fill after its first message.
            Default: 0.1.

    Returns:
        What the call did, once the reader is closed.

    Raises:
        ConfigError: An argument does not fit (see Args), or `fn` returned something else
            than messages.
        TransactionError, ProducerFencedError: A transaction failed.
        WriteErrors, CommitError: A write or commit failed (at least once).
    """
    transactional = writer.config.transactional_id is not None
    if exactly_once is None:
        exactly_once = transactional
    _check(reader, writer, exactly_once=exactly_once, transactional=transactional)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be 1 or more, not {batch_size!r}")
    if max_wait < 0:
        raise ConfigError(f"max_wait must be 0 or more seconds, not {max_wait!r}")
    log = get_logger(None, group_id=reader.config.group_id)
    stats = TransformStats()
    batch_done = asyncio.Event()
    batch_done.set()
    rebalance_timeout = reader.config.rebalance_timeout

    async def let_batch_finish(revoked: set[TopicPartition]) -> None:
        # The partitions go once the batch under way has committed or aborted.
        try:
            async with asyncio.timeout(rebalance_timeout):
                await batch_done.wait()
        except TimeoutError:
            log.warning("transform_batch_outlived_rebalance", rebalance_timeout=rebalance_timeout)

    with reader._revocation_hook(let_batch_finish):
        while True:
            try:
                batch = await _next_batch(reader, batch_size, max_wait)
            except ClosedError:
                if reader._closing:
                    return stats
                raise
            batch_done.clear()
            try:
                written = await _commit_batch(reader, writer, fn, batch, exactly_once, stats, log)
            except ClosedError:
                if reader._closing:
                    return stats
                raise
            finally:
                batch_done.set()
            if written is not None:
                stats.batches += 1
                stats.messages_read += len(batch)
                stats.messages_written += written


async def _commit_batch(
    reader: Reader,
    writer: Writer,
    fn: TransformFunction,
    batch: list[Message],
    exactly_once: bool,
    stats: TransformStats,
    log: Any,
) -> int | None:
    """Transform one batch and commit it; return how many outputs were written, or None
    when a rebalance took every input first. Inputs left out are removed from `batch`."""
    observed = reader._telemetry
    if observed is None:
        outputs = [await _outputs(fn, message) for message in batch]
    else:
        outputs = []
        for message in batch:
            with observed.process(message):
                # The outputs carry the input's trace on to the next topic.
                produced = await _outputs(fn, message)
                outputs.append(outputs_in_context(produced, message))
    # Inputs of partitions a rebalance took meanwhile are their new owner's.
    owned = reader.assignment()
    kept = [i for i, m in enumerate(batch) if (m.topic, m.partition) in owned]
    if len(kept) != len(batch):
        stats.batches_dropped += 1
        log.info("transform_inputs_dropped", messages=len(batch) - len(kept))
        batch[:] = [batch[i] for i in kept]
        if not kept:
            return None
        outputs = [outputs[i] for i in kept]
    written = [message for produced in outputs for message in produced]
    if exactly_once:
        async with writer.transaction():
            if written:
                await writer.write_messages(*written)
            await writer.send_offsets(reader, batch)
    else:
        if written:
            await writer.write_messages(*written)
        await reader.commit_messages(*batch)
    return len(written)


def _check(reader: Reader, writer: Writer, *, exactly_once: bool, transactional: bool) -> None:
    if reader.config.group_id is None:
        raise ConfigError(
            "transform needs a consumer group reader: create the Reader with group_id"
        )
    if exactly_once and not transactional:
        raise ConfigError(
            "transform(exactly_once=True) needs a transactional writer: create the Writer "
            "with transactional_id"
        )
    if not exactly_once and transactional:
        raise ConfigError(
            "a transactional writer only writes in transactions: use exactly_once=True, or "
            "a Writer without transactional_id for at-least-once"
        )
    if not exactly_once and writer.config.async_mode:
        raise ConfigError(
            "transform commits each batch's inputs after its outputs are written: give it a "
            "Writer with async_mode=False (or a transactional one, for exactly_once)"
        )
    if exactly_once and reader.config.isolation_level is not IsolationLevel.READ_COMMITTED:
        raise ConfigError(
            "transform(exactly_once=True) needs a reader with "
            "isolation_level=IsolationLevel.READ_COMMITTED: otherwise it would transform "
            "messages of transactions that later abort"
        )


async def _next_batch(reader: Reader, batch_size: int, max_wait: float) -> list[Message]:
    """Up to `batch_size` messages: wait for the first, then up to `max_wait` for more."""
    batch = await reader.fetch_batch(batch_size)
    if len(batch) >= batch_size or max_wait <= 0:
        return batch
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait
    while len(batch) < batch_size and loop.time() < deadline:
        try:
            # A timed-out fetch takes no message: the next batch begins with it.
            async with asyncio.timeout_at(deadline):
                batch += await reader.fetch_batch(batch_size - len(batch))
        except TimeoutError:
            break
    return batch


async def _outputs(fn: TransformFunction, message: Message) -> list[Message]:
    """Call `fn` on one input, and return its outputs as a list."""
    result = fn(message)
    if result.__class__ is Message:
        return [result]  # the usual answer of a plain function: nothing more to check
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        return []
    if isinstance(result, Message):
        return [result]
    if isinstance(result, str | bytes | bytearray):
        outputs: list[Any] = [result]  # iterable, but surely a mistake: refused below
    else:
        try:
            outputs = list(result)
        except TypeError:
            outputs = [result]  # refused just below
    for output in outputs:
        if not isinstance(output, Message):
            raise ConfigError(
                f"the transform function must return a Message, an iterable of them, or "
                f"None; for {message.topic}[{message.partition}]@{message.offset} it "
                f"returned {output!r}"
            )
    return outputs
