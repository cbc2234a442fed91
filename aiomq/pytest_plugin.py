"""The pytest plugin installed with aiomq: a real Kafka broker as a fixture.

pytest loads it through aiomq's `pytest11` entry point, so any suite that has
`aiomq[testing]` installed can simply ask for `kafka_broker`:

```python
async def test_round_trip(kafka_broker):
    async with aiomq.Writer(brokers=[kafka_broker.bootstrap_servers], topic="t") as w:
        ...
```

or, to rehearse outages, for `kafka_faulty_broker`, a broker of its own behind a fault
proxy:

```python
async def test_survives_an_outage(kafka_faulty_broker):
    kafka_faulty_broker.faults.cut()
    ...
```
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiomq.testing import EmbeddedBroker

__all__ = ["kafka_broker", "kafka_faulty_broker"]


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[EmbeddedBroker]:
    """A Kafka-protocol broker shared by the whole test session (see `EmbeddedBroker`).

    The fixture is synchronous, so it works with any async test plugin and loop scope.
    Topics live for the whole session: give each test a topic name of its own.
    """
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
def kafka_faulty_broker() -> Iterator[EmbeddedBroker]:
    """A fresh broker for one test, every client connection going through a fault proxy.

    It is `EmbeddedBroker(faults=True)`: `bootstrap_servers` names the proxy, the broker
    advertises the proxy too, and `faults` (a `FaultProxy`) cuts, blackholes or delays
    every connection on command. A fault applies to the whole broker, so each test gets a
    broker of its own, empty and healthy; it starts in milliseconds. Like `kafka_broker`,
    the fixture is synchronous and works with any async test plugin and loop scope.
    """
    with EmbeddedBroker(faults=True) as broker:
        yield broker
