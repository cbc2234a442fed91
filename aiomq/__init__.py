"""aiomq: an asyncio-native Kafka producer and consumer framework."""

from __future__ import annotations

from importlib import metadata as _metadata

from ._version import __version__ as _source_version
from .errors import BrokerConnectionError as BrokerConnectionError
from .errors import BrokerError as BrokerError
from .errors import ClosedError as ClosedError
from .errors import ConfigError as ConfigError
from .errors import Error as Error
from .errors import MessageTooLargeError as MessageTooLargeError
from .errors import RequestTimeoutError as RequestTimeoutError
from .errors import UnknownTopicOrPartitionError as UnknownTopicOrPartitionError
from .message import Header as Header
from .message import Message as Message

try:
    __version__ = _metadata.version("aiomq")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = _source_version

__all__ = [
    "BrokerConnectionError",
    "BrokerError",
    "ClosedError",
    "ConfigError",
    "Error",
    "Header",
    "Message",
    "MessageTooLargeError",
    "RequestTimeoutError",
    "UnknownTopicOrPartitionError",
    "__version__",
]
