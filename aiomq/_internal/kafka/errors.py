"""Kafka's error codes as aiomq acts on them, and the one place where aiokafka's
exceptions become aiomq's.

Call sites wrap every call into aiokafka in `map_errors(...)`, giving whatever context
they have (brokers, topic, partition) so the resulting message can name it:

```python
with map_errors(brokers=self._brokers, topic=topic):
    await producer.send_batch(...)
```

Only `Exception` is caught, so cancellation always passes through untouched, and
exceptions that are already aiomq's are re-raised as they are.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from types import TracebackType
from typing import Final

from aiokafka import errors as ak

from aiomq.errors import (
    BrokerConnectionError,
    BrokerError,
    ClosedError,
    ConfigError,
    Error,
    MessageTooLargeError,
    RequestTimeoutError,
    UnknownTopicOrPartitionError,
)

__all__ = ["ErrorCode", "broker_error", "map_errors", "translate"]


class ErrorCode(enum.IntEnum):
    """The Kafka error codes aiomq acts on, by the names of Kafka's protocol guide.

    Any other code still becomes a `BrokerError` naming it; these are the ones some part
    of aiomq tests for.
    """

    UNKNOWN_SERVER_ERROR = -1
    """The broker failed in a way it does not say."""

    NONE = 0
    """No error."""

    UNKNOWN_TOPIC_OR_PARTITION = 3
    """The topic or partition does not exist (retriable: it may be being created)."""

    LEADER_NOT_AVAILABLE = 5
    """The partition has no leader right now, as during an election or just after creation."""

    MESSAGE_TOO_LARGE = 10
    """A record batch is larger than the broker or the topic accepts."""

    COORDINATOR_LOAD_IN_PROGRESS = 14
    """The coordinator is still loading its state (retriable)."""

    COORDINATOR_NOT_AVAILABLE = 15
    """No coordinator is available for the group or transactional id yet (retriable)."""

    NOT_COORDINATOR = 16
    """The broker asked is not the coordinator of the group or transactional id (retriable)."""

    ILLEGAL_GENERATION = 22
    """A group request named a generation that is no longer the group's."""

    UNKNOWN_MEMBER_ID = 25
    """A group request named a member the coordinator does not know."""

    REBALANCE_IN_PROGRESS = 27
    """The group is rebalancing."""

    UNSUPPORTED_SASL_MECHANISM = 33
    """The broker does not offer the SASL mechanism asked for."""

    ILLEGAL_SASL_STATE = 34
    """A SASL request came at the wrong point of the handshake."""

    UNSUPPORTED_VERSION = 35
    """The broker does not speak the request's version."""

    TOPIC_ALREADY_EXISTS = 36
    """A topic to create exists already."""

    DUPLICATE_SEQUENCE_NUMBER = 46
    """An idempotent producer's batch was written already: a retry's success."""

    INVALID_PRODUCER_EPOCH = 47
    """The producer's epoch is older than the transactional id's: a newer producer with the
    same transactional id has fenced it (what brokers before Kafka 2.7 answer)."""

    INVALID_TXN_STATE = 48
    """The transaction request does not fit the transaction's state."""

    CONCURRENT_TRANSACTIONS = 51
    """The coordinator is still ending the transactional id's previous transaction."""

    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
    """The client may not use the transactional id."""

    SASL_AUTHENTICATION_FAILED = 58
    """The broker refused the SASL credentials."""

    PRODUCER_FENCED = 90
    """A newer producer with the same transactional id has fenced this one (Kafka 2.7 and
    later; aiokafka's table of codes stops before it)."""


_NAMED_CODES: Final = frozenset(ErrorCode)

_CONNECTION_ERRORS: Final = (
    ak.KafkaConnectionError,
    ak.NoBrokersAvailable,
    ak.NodeNotReadyError,
    ak.KafkaUnavailableError,
    ak.MetadataEmptyBrokerList,
)
_CLOSED_ERRORS: Final = (ak.ProducerClosed, ak.ConsumerStoppedError)
_CONFIG_ERRORS: Final = (ak.KafkaConfigurationError, ak.IllegalArgumentError)


def broker_error(
    code: int,
    *,
    topic: str | None = None,
    partition: int | None = None,
    detail: str | None = None,
) -> BrokerError:
    """Build the most specific aiomq error for a Kafka error code found in a response.

    Args:
        code: The non-zero Kafka error code.
        topic: The topic the response was about, if any.
        partition: The partition the response was about, if any.
        detail: Extra text to append to the message.

    Returns:
        The error, ready to raise.
    """
    cls = ak.for_code(code)
    if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        return UnknownTopicOrPartitionError(
            topic=topic, partition=partition, retriable=cls.retriable, detail=detail
        )
    if code == ErrorCode.MESSAGE_TOO_LARGE:
        return MessageTooLargeError(topic=topic, partition=partition, detail=detail)
    if cls is not ak.UnknownError:
        name = cls.message
    elif code in _NAMED_CODES:  # -1, and the codes newer than the client library's table
        name = ErrorCode(code).name
    else:
        name = f"KAFKA_ERROR_{code}"  # a code newer than the client library's table
    return BrokerError(
        code, name, retriable=cls.retriable, topic=topic, partition=partition, detail=detail
    )


def translate(
    exc: Exception,
    *,
    brokers: Sequence[str] = (),
    topic: str | None = None,
    partition: int | None = None,
) -> Error | None:
    """Return the aiomq error that stands for an aiokafka exception, or None for others.

    Args:
        exc: The exception raised by aiokafka.
        brokers: The bootstrap addresses in use, named by connection errors.
        topic: The topic involved, if any.
        partition: The partition involved, if any.
    """
    if isinstance(exc, ak.RequestTimedOutError) and not exc.args:
        # Raised by aiokafka itself when its per-request time limit runs out (a broker's
        # own REQUEST_TIMED_OUT arrives as an error code in a response instead).
        where = f" for topic {topic!r}" if topic is not None else ""
        return RequestTimeoutError(f"the broker did not answer in time{where}")
    if isinstance(exc, ak.BrokerResponseError):
        # aiokafka's own text for these is its class docstring; only a message passed at
        # raise time says something about this request.
        detail = str(exc.args[0]) if exc.args else None
        return broker_error(exc.errno, topic=topic, partition=partition, detail=detail)
    if isinstance(exc, _CONNECTION_ERRORS):
        return BrokerConnectionError(f"could not connect to Kafka: {_text(exc)}", brokers=brokers)
    if isinstance(exc, ak.KafkaTimeoutError):
        where = f" for topic {topic!r}" if topic is not None else ""
        return RequestTimeoutError(f"request timed out{where}: {_text(exc)}")
    if isinstance(exc, ak.RecordTooLargeError):
        return MessageTooLargeError(topic=topic, partition=partition, detail=_text(exc))
    if isinstance(exc, _CLOSED_ERRORS):
        return ClosedError(f"the underlying client is closed: {_text(exc)}")
    if isinstance(exc, _CONFIG_ERRORS):
        return ConfigError(_text(exc))
    if isinstance(exc, ak.KafkaError | ak.IllegalOperation):
        return Error(_text(exc))
    return None


def _text(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else ""
    return text or type(exc).__name__


class map_errors:
    """A context manager that turns aiokafka exceptions into aiomq ones, chained with `from`.

    It is a small class rather than a `contextlib.contextmanager` generator because it sits
    on hot paths, where a generator-based manager costs several times more.
    """

    __slots__ = ("_brokers", "_partition", "_topic")

    def __init__(
        self,
        *,
        brokers: Sequence[str] = (),
        topic: str | None = None,
        partition: int | None = None,
    ) -> None:
        self._brokers = brokers
        self._topic = topic
        self._partition = partition

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not isinstance(exc, Exception) or isinstance(exc, Error):
            return
        mapped = translate(exc, brokers=self._brokers, topic=self._topic, partition=self._partition)
        if mapped is not None:
            raise mapped from exc
