"""aiokafka failures against real endpoints reach the caller as aiomq errors with context."""

from __future__ import annotations

import socket

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient

from aiomq import BrokerConnectionError, UnknownTopicOrPartitionError
from aiomq._internal.kafka.errors import map_errors
from aiomq._internal.kafka.metadata import topic_partitions


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_names_the_address_tried() -> None:
    address = f"127.0.0.1:{_closed_port()}"
    producer = AIOKafkaProducer(bootstrap_servers=address, request_timeout_ms=2000)
    with pytest.raises(BrokerConnectionError) as caught, map_errors(brokers=[address]):
        await producer.start()
    await producer.stop()
    assert address in str(caught.value)
    assert caught.value.brokers == (address,)
    assert caught.value.__cause__ is not None


async def test_unknown_topic_with_creation_off_names_the_topic(
    bootstrap_servers: str, topic: str
) -> None:
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers)
    await client.bootstrap()
    try:
        with pytest.raises(UnknownTopicOrPartitionError) as caught:
            await topic_partitions(client, topic, allow_create=False)
        # With creation allowed the same look-up succeeds, so the error above was about
        # the topic and not about the connection.
        assert len(await topic_partitions(client, topic, allow_create=True)) >= 1
    finally:
        await client.close()
    assert repr(topic) in str(caught.value)
    assert caught.value.code == 3
    assert caught.value.topic == topic
