"""The fault proxy's arguments and life cycle, checked without a broker."""

from __future__ import annotations

import math

import pytest

from aiomq import ClosedError, ConfigError
from aiomq.testing import EmbeddedBroker, FaultProxy


@pytest.mark.parametrize("target", ["kafka", "kafka:", ":9092", "kafka:port", "kafka:0", "h:70000"])
def test_a_target_that_is_not_host_and_port_is_refused(target: str) -> None:
    with pytest.raises(ConfigError, match="host:port"):
        FaultProxy(target=target)


def test_an_ipv6_target_keeps_its_brackets() -> None:
    assert FaultProxy(target="[::1]:9092").target == "[::1]:9092"


@pytest.mark.parametrize("seconds", [-0.1, math.inf, math.nan])
def test_a_delay_that_is_not_a_finite_number_of_seconds_is_refused(seconds: float) -> None:
    with pytest.raises(ConfigError, match="delay"):
        FaultProxy(target="127.0.0.1:9092").delay(seconds)


def test_faults_of_a_proxy_that_is_not_running_are_a_clear_error() -> None:
    proxy = FaultProxy(target="127.0.0.1:9092")
    for fault in (proxy.cut, proxy.blackhole, proxy.heal, lambda: proxy.delay(1.0)):
        with pytest.raises(ClosedError, match="not running"):
            fault()
    with pytest.raises(ClosedError, match="not running"):
        _ = proxy.address


def test_a_proxy_runs_once() -> None:
    proxy = FaultProxy(target="127.0.0.1:9092")
    with proxy:
        assert proxy.running
        assert repr(proxy).startswith(f"<FaultProxy {proxy.address} -> 127.0.0.1:9092 healthy")
    assert repr(proxy) == "<FaultProxy ? -> 127.0.0.1:9092 stopped>"
    with pytest.raises(ClosedError, match="runs once"):
        proxy.start()


def test_stopping_a_proxy_that_never_started_is_harmless() -> None:
    proxy = FaultProxy(target="127.0.0.1:9092")
    proxy.stop()
    proxy.stop()
    assert not proxy.running


def test_faults_cannot_be_combined_with_an_advertised_address() -> None:
    with pytest.raises(ConfigError, match="not both"):
        EmbeddedBroker(faults=True, advertised_port=9092)


def test_a_broker_without_faults_has_no_fault_proxy() -> None:
    with pytest.raises(ConfigError, match=r"faults=True"):
        _ = EmbeddedBroker().faults
