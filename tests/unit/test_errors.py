"""The exception tree and the single mapping point from aiokafka errors."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import errors as ak

import aiomq
from aiomq._internal.kafka.errors import broker_error, map_errors, translate


def test_config_error_is_also_a_value_error() -> None:
    assert issubclass(aiomq.ConfigError, ValueError)


def test_request_timeout_error_is_also_a_timeout_error() -> None:
    assert issubclass(aiomq.RequestTimeoutError, TimeoutError)


def test_connection_error_is_also_a_builtin_connection_error() -> None:
    assert issubclass(aiomq.BrokerConnectionError, ConnectionError)


def test_every_aiomq_exception_derives_from_the_root() -> None:
    for name in aiomq.__all__:
        obj = getattr(aiomq, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, aiomq.Error), name


def test_broker_error_carries_code_name_and_retriability() -> None:
    err = broker_error(6, topic="orders", partition=2)
    assert (err.code, err.retriable, err.topic, err.partition) == (6, True, "orders", 2)
    assert "Kafka error 6" in str(err) and "'orders' partition 2" in str(err)


def test_unknown_code_still_gives_a_broker_error_with_the_code() -> None:
    err = broker_error(9999)
    assert type(err) is aiomq.BrokerError and err.code == 9999


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (ak.KafkaConnectionError("Unable to bootstrap"), aiomq.BrokerConnectionError),
        (ak.NoBrokersAvailable(), aiomq.BrokerConnectionError),
        (ak.KafkaTimeoutError(), aiomq.RequestTimeoutError),
        (ak.UnknownTopicOrPartitionError(), aiomq.UnknownTopicOrPartitionError),
        (ak.MessageSizeTooLargeError("too big"), aiomq.MessageTooLargeError),
        (ak.RecordTooLargeError("too big"), aiomq.MessageTooLargeError),
        (ak.NotLeaderForPartitionError(), aiomq.BrokerError),
        (ak.ProducerClosed(), aiomq.ClosedError),
        (ak.KafkaConfigurationError("bad"), aiomq.ConfigError),
        (ak.IllegalStateError("odd"), aiomq.Error),
    ],
)
def test_aiokafka_errors_map_to_the_most_specific_aiomq_error(
    raised: Exception, expected: type[aiomq.Error]
) -> None:
    with pytest.raises(expected) as caught, map_errors(topic="orders", brokers=["b:9092"]):
        raise raised
    assert type(caught.value) is expected
    assert caught.value.__cause__ is raised


def test_not_leader_maps_to_a_retriable_broker_error_naming_the_partition() -> None:
    mapped = translate(ak.NotLeaderForPartitionError(), topic="orders", partition=1)
    assert isinstance(mapped, aiomq.BrokerError)
    assert mapped.retriable and mapped.code == 6 and mapped.partition == 1


def test_errors_that_are_not_aiokafkas_pass_through_unchanged() -> None:
    with pytest.raises(KeyError), map_errors():
        raise KeyError("mine")


def test_aiomq_errors_pass_through_unchanged() -> None:
    original = aiomq.ConfigError("set either partition or group_id, not both")
    with pytest.raises(aiomq.ConfigError) as caught, map_errors():
        raise original
    assert caught.value is original


def test_cancellation_passes_through_untouched() -> None:
    cancelled = asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError) as caught, map_errors():
        raise cancelled
    assert caught.value is cancelled


def test_message_too_large_names_size_and_limit() -> None:
    err = aiomq.MessageTooLargeError(size=2_000_000, limit=1_048_576, topic="t")
    assert "2000000 bytes" in str(err) and "1048576" in str(err) and "'t'" in str(err)


def test_aiokafkas_own_request_timeout_maps_to_a_timeout_error() -> None:
    mapped = translate(ak.RequestTimedOutError(), topic="orders")
    assert isinstance(mapped, aiomq.RequestTimeoutError)
    assert isinstance(mapped, TimeoutError)
    assert "'orders'" in str(mapped)
