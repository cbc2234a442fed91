"""Topic metadata: the partitions of a topic, and the one loop that asks any broker.

aiokafka's own metadata refresh always asks the broker to create missing topics; the
look-up here sends its own request, so that "do not create" really means it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest

from aiomq._internal.backoff import backoff_delay
from aiomq._internal.kafka.errors import ErrorCode, broker_error, map_errors
from aiomq._internal.kafka.requests import entries
from aiomq.errors import BrokerConnectionError, BrokerError, Error, RequestTimeoutError

__all__ = ["ask_any_broker", "topic_partitions"]

T = TypeVar("T")

_ATTEMPTS: Final = 6


async def ask_any_broker(
    client: AIOKafkaClient,
    send: Callable[[int], Awaitable[T]],
    *,
    skip: Callable[[Exception], bool],
    none_known: Callable[[], Exception] | None = None,
) -> T:
    """Call `send(node)` for one known broker after another, in random order, until one
    answers.

    A failure for which `skip(exc)` holds moves on to the next broker; any other is raised
    at once; when every broker failed, the last failure is raised.

    Args:
        client: A bootstrapped aiokafka client: its cluster metadata names the brokers.
        send: Sends the request to one broker, by node id, and returns its answer.
        skip: Tells whether a failure is the broker's alone, so another may answer.
        none_known: Makes the error raised when no broker is known at all; without it,
            `send` is called with aiokafka's pick (which may be None) and its failure
            raised.
    """
    nodes: list[int] = [broker.nodeId for broker in client.cluster.brokers()]
    random.shuffle(nodes)
    if not nodes:
        node = client.get_random_node()
        if node is None and none_known is not None:
            raise none_known()
        nodes = [node]
    for node in nodes[:-1]:
        try:
            return await send(node)
        except Exception as exc:
            if not skip(exc):
                raise
    return await send(nodes[-1])


async def topic_partitions(
    client: AIOKafkaClient,
    topic: str,
    *,
    allow_create: bool,
    brokers: Sequence[str] = (),
    # Not a cancel scope around the call: the look-up turns running out of time into an
    # error naming the topic and what went wrong last, which a caller's scope cannot see.
    timeout: float | None = None,  # noqa: ASYNC109
) -> tuple[int, ...]:
    """Return the partition ids of `topic`, in ascending order.

    aiokafka's own metadata refresh always asks the broker to create missing topics; this
    sends the request itself so that `allow_create=False` really means it. Any known broker
    can answer, so an unreachable one is skipped for the next; retriable answers (such as
    LEADER_NOT_AVAILABLE right after a topic is created) are asked again, with backoff.

    Args:
        client: A bootstrapped aiokafka client.
        topic: The topic to look up.
        allow_create: Whether the broker may create the topic if it does not exist.
        brokers: The bootstrap addresses, named in connection errors.
        timeout: The most seconds to spend, every attempt and backoff included; None for
            no limit but the attempts' own.

    Raises:
        UnknownTopicOrPartitionError: The topic does not exist and may not be created.
        BrokerError: The broker answered with another error for the topic.
        BrokerConnectionError: No broker could be reached, within `timeout` if given.
        RequestTimeoutError: No broker answered within `timeout`.
    """
    request = MetadataRequest([topic], allow_auto_topic_creation=allow_create)
    errors: list[Error] = []
    limit = asyncio.timeout(timeout)
    try:
        async with limit:
            return await _look_up(client, request, topic, allow_create, brokers, errors)
    except TimeoutError:
        if not limit.expired():
            raise
        raise _gave_up(topic, timeout, errors[-1] if errors else None) from None


async def _look_up(
    client: AIOKafkaClient,
    request: MetadataRequest,
    topic: str,
    allow_create: bool,
    brokers: Sequence[str],
    errors: list[Error],
) -> tuple[int, ...]:
    """`topic_partitions` without its time limit; appends each failed attempt's error."""

    async def send(node: int) -> object:
        with map_errors(brokers=brokers, topic=topic):
            return await client.send(node, request)

    def none_known() -> Error:
        return BrokerConnectionError("no broker is known to ask for metadata", brokers=brokers)

    for attempt in range(1, _ATTEMPTS + 1):
        try:
            response = await ask_any_broker(client, send, skip=_skip, none_known=none_known)
        except Error as exc:
            if not _skip(exc):
                raise
            errors.append(exc)
        else:
            found = _partitions_in(response, topic)
            if isinstance(found, tuple):
                return found
            if not found.retriable or (
                found.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and not allow_create
            ):
                raise found
            errors.append(found)
        if attempt < _ATTEMPTS:
            await asyncio.sleep(backoff_delay(attempt, 0.05, 1.0))
    raise errors[-1]


def _skip(exc: Exception) -> bool:
    """Tell whether another broker may answer after this failure of one."""
    if isinstance(exc, BrokerError):
        return exc.retriable
    return isinstance(exc, BrokerConnectionError | RequestTimeoutError)


def _gave_up(topic: str, timeout: float | None, last: Error | None) -> Error:
    """The error for a look-up of `topic` that ran out of time, after `last`."""
    within = f"within {timeout:g} s"
    if isinstance(last, BrokerConnectionError):
        error: Error = BrokerConnectionError(
            f"no broker could be reached for the metadata of topic {topic!r} {within}",
            brokers=last.brokers,
        )
    else:
        error = RequestTimeoutError(
            f"no broker answered for the metadata of topic {topic!r} {within}"
        )
    if last is not None:
        error.add_note(f"last error: {last}")
    return error


def _partitions_in(response: object, topic: str) -> tuple[int, ...] | BrokerError:
    for entry in entries(response, "topics"):
        if entry.topic != topic:
            continue
        if entry.error_code:
            return broker_error(entry.error_code, topic=topic)
        return tuple(sorted(p.partition for p in entry.partitions))
    return broker_error(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        topic=topic,
        detail="the broker's metadata does not mention it",
    )
