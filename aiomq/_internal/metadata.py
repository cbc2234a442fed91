"""Topic metadata look-ups that honour the caller's choice about topic auto-creation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any, Final

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest

from aiomq._internal.backoff import backoff_delay
from aiomq._internal.errmap import broker_error, map_errors
from aiomq.errors import BrokerConnectionError, BrokerError, Error, RequestTimeoutError

__all__ = ["topic_partitions"]

_UNKNOWN_TOPIC_OR_PARTITION: Final = 3
_ATTEMPTS: Final = 6


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
    for attempt in range(1, _ATTEMPTS + 1):
        response = await _ask_any_broker(client, request, topic, brokers)
        if isinstance(response, Error):
            errors.append(response)
        else:
            found = _partitions_in(response, topic)
            if isinstance(found, tuple):
                return found
            if not found.retriable or (
                found.code == _UNKNOWN_TOPIC_OR_PARTITION and not allow_create
            ):
                raise found
            errors.append(found)
        if attempt < _ATTEMPTS:
            await asyncio.sleep(backoff_delay(attempt, 0.05, 1.0))
    raise errors[-1]


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


async def _ask_any_broker(
    client: AIOKafkaClient, request: MetadataRequest, topic: str, brokers: Sequence[str]
) -> Any:
    """Send `request` to one known broker after another; return the answer or the error."""
    nodes: list[Any] = [b.nodeId for b in client.cluster.brokers()]
    random.shuffle(nodes)
    if not nodes:
        node = client.get_random_node()
        nodes = [] if node is None else [node]
    last: Error = BrokerConnectionError("no broker is known to ask for metadata", brokers=brokers)
    for node in nodes:
        try:
            with map_errors(brokers=brokers, topic=topic):
                return await client.send(node, request)
        except (BrokerConnectionError, RequestTimeoutError) as exc:
            last = exc
        except BrokerError as exc:
            if not exc.retriable:
                raise
            last = exc
    return last


def _partitions_in(response: Any, topic: str) -> tuple[int, ...] | BrokerError:
    for entry in response.topics:
        error_code, name, partitions = entry[0], entry[1], entry[3]
        if name != topic:
            continue
        if error_code:
            return broker_error(error_code, topic=topic)
        return tuple(sorted(p[1] for p in partitions))
    return broker_error(
        _UNKNOWN_TOPIC_OR_PARTITION, topic=topic, detail="the broker's metadata does not mention it"
    )
