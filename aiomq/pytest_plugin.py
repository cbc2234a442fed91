"""The pytest plugin installed with aiomq: a real Kafka broker as a fixture.

pytest loads it through aiomq's `pytest11` entry point, so any suite that has
`aiomq[testing]` installed can simply ask for `kafka_broker`::

    async def test_round_trip(kafka_broker):
        async with aiomq.Writer(brokers=[kafka_broker.bootstrap_servers], topic="t") as w:
            ...
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiomq.testing import EmbeddedBroker

__all__ = ["kafka_broker"]


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[EmbeddedBroker]:
    """A Kafka-protocol broker shared by the whole test session (see `EmbeddedBroker`).

    The fixture is synchronous, so it works with any async test plugin and loop scope.
    Topics live for the whole session: give each test a topic name of its own.
    """
    with EmbeddedBroker() as broker:
        yield broker
