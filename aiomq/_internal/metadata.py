"""Topic metadata look-ups that honour the caller's choice about topic auto-creation."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest

from aiomq._internal.errmap import broker_error, map_errors
from aiomq.errors import BrokerConnectionError

__all__ = ["topic_partitions"]


async def topic_partitions(
    client: AIOKafkaClient,
    topic: str,
    *,
    allow_create: bool,
    brokers: Sequence[str] = (),
) -> tuple[int, ...]:
    """Return the partition ids of `topic`, in ascending order.

    aiokafka's own metadata refresh always asks the broker to create missing topics; this
    sends the request itself so that `allow_create=False` really means it.

    Args:
        client: A bootstrapped aiokafka client.
        topic: The topic to look up.
        allow_create: Whether the broker may create the topic if it does not exist.
        brokers: The bootstrap addresses, named in connection errors.

    Raises:
        UnknownTopicOrPartitionError: The topic does not exist and may not be created.
        BrokerError: The broker answered with another error for the topic.
        BrokerConnectionError: No broker could be reached.
    """
    with map_errors(brokers=brokers, topic=topic):
        node = client.get_random_node()
        if node is None:
            raise BrokerConnectionError("no broker is known to ask for metadata", brokers=brokers)
        request = MetadataRequest([topic], allow_auto_topic_creation=allow_create)
        response = await client.send(node, request)
    for entry in response.topics:
        error_code, name, partitions = entry[0], entry[1], entry[3]
        if name != topic:
            continue
        if error_code:
            raise broker_error(error_code, topic=topic)
        return tuple(sorted(p[1] for p in partitions))
    raise broker_error(3, topic=topic, detail="the broker's metadata does not mention it")
