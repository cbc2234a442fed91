"""Broker fixtures and the `external_broker` marker for aiomq's own test suite.

Integration tests run against the broker named by `AIOMQ_BOOTSTRAP_SERVERS` when it is
set (for example the Apache Kafka of compose.yaml), and against an embedded Tansu broker
otherwise. A test that needs what no local broker offers is marked
`@pytest.mark.external_broker("why")`: it runs only against an external broker, and the
run's summary counts the ones that did not run, with their reasons.
"""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from aiomq.testing import EmbeddedBroker

ENV_BOOTSTRAP = "AIOMQ_BOOTSTRAP_SERVERS"
_NOT_RUN_KEY = pytest.StashKey[Counter[str]]()


def external_bootstrap() -> str | None:
    """The bootstrap servers of an external broker, when the environment names one."""
    return os.environ.get(ENV_BOOTSTRAP) or None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "external_broker(reason): needs a real Apache Kafka (set AIOMQ_BOOTSTRAP_SERVERS); "
        "the reason says what the local brokers lack",
    )
    config.stash[_NOT_RUN_KEY] = Counter()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if external_bootstrap() is not None:
        return
    for item in items:
        marker = item.get_closest_marker("external_broker")
        if marker is None:
            continue
        if not marker.args:
            raise pytest.UsageError(f"{item.nodeid}: external_broker needs a reason")
        reason = str(marker.args[0])
        config.stash[_NOT_RUN_KEY][reason] += 1
        item.add_marker(pytest.mark.skip(reason=f"needs an external broker: {reason}"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    not_run = terminalreporter.config.stash.get(_NOT_RUN_KEY, Counter())
    if not not_run:
        return
    total = sum(not_run.values())
    terminalreporter.section("tests that need an external broker")
    terminalreporter.write_line(
        f"{total} test(s) did not run: no external broker (set {ENV_BOOTSTRAP}, "
        "for example with compose.yaml)"
    )
    for reason, count in sorted(not_run.items()):
        terminalreporter.write_line(f"  {count} x {reason}")


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    """The `host:port` of the broker that integration tests talk to."""
    external = external_bootstrap()
    if external is not None:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic name no other test uses, derived from the test's name."""
    stem = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[-60:].strip("-")
    return f"{stem}-{uuid.uuid4().hex[:8]}"
