"""Writer configuration: every invalid option and combination is refused, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

import aiomq
from aiomq import Compression, ConfigError, RequiredAcks, WriterConfig

BROKERS = ["127.0.0.1:9092"]


def test_defaults_are_safe_and_fast() -> None:
    config = WriterConfig(brokers=BROKERS)
    assert config.required_acks is RequiredAcks.ALL
    assert config.batch_timeout == 0.0
    assert isinstance(config.balancer, aiomq.Murmur2Balancer)
    assert config.allow_auto_topic_creation is False
    assert config.async_mode is False


def test_each_config_gets_its_own_default_balancer() -> None:
    assert WriterConfig(brokers=BROKERS).balancer is not WriterConfig(brokers=BROKERS).balancer


def test_config_is_frozen() -> None:
    config = WriterConfig(brokers=BROKERS)
    with pytest.raises(AttributeError):
        config.topic = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"brokers": []}, "brokers"),
        ({"brokers": "127.0.0.1:9092"}, "brokers"),
        ({"topic": ""}, "topic"),
        ({"balancer": 42}, "balancer"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_bytes": -1}, "batch_bytes"),
        ({"queue_capacity": 0}, "queue_capacity"),
        ({"write_backoff_min": -0.1}, "write_backoff_min"),
        ({"write_backoff_max": float("nan")}, "write_backoff_max"),
        ({"batch_timeout": -1}, "batch_timeout"),
        ({"write_timeout": 0}, "write_timeout"),
        ({"close_timeout": float("inf")}, "close_timeout"),
        ({"write_backoff_min": 2.0, "write_backoff_max": 1.0}, "write_backoff_min"),
        ({"required_acks": 1}, "required_acks"),
        ({"compression": "gzip"}, "compression"),
        ({"idempotent": True, "required_acks": RequiredAcks.ONE}, "idempotent"),
        ({"completion": "not callable"}, "completion"),
        ({"completion_written": "no"}, "completion_written"),
        ({"transactional_id": "t", "required_acks": RequiredAcks.ONE}, "required_acks"),
        ({"client_id": ""}, "client_id"),
        ({"batch_size": True}, "batch_size"),
    ],
)
def test_invalid_options_raise_config_error_naming_the_field(
    options: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {"brokers": BROKERS, **options}
    with pytest.raises(ConfigError, match=field):
        WriterConfig(**arguments)


def test_writer_refuses_a_config_and_options_together() -> None:
    with pytest.raises(ConfigError, match="not both"):
        aiomq.Writer(WriterConfig(brokers=BROKERS), topic="t")


def test_writer_builds_its_config_from_keyword_options() -> None:
    writer = aiomq.Writer(brokers=BROKERS, topic="orders", compression=Compression.GZIP)
    assert writer.config.topic == "orders"
    assert writer.config.compression is Compression.GZIP


def test_missing_codec_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cramjam", None)
    with pytest.raises(ConfigError, match=r"aiomq\[compression\]"):
        WriterConfig(brokers=BROKERS, compression=Compression.ZSTD)
    # gzip is in the standard library and needs nothing.
    WriterConfig(brokers=BROKERS, compression=Compression.GZIP)


async def test_write_before_open_is_a_closed_error() -> None:
    writer = aiomq.Writer(brokers=BROKERS, topic="t")
    with pytest.raises(aiomq.ClosedError, match="new"):
        await writer.write_messages(aiomq.Message(value=b"v"))


def test_stats_of_an_unopened_writer_are_zero() -> None:
    stats = aiomq.Writer(brokers=BROKERS).stats()
    assert (stats.writes, stats.messages, stats.errors, stats.queued) == (0, 0, 0, 0)
