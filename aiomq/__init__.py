"""aiomq: an asyncio-native Kafka producer and consumer framework."""

from __future__ import annotations

from importlib import metadata as _metadata

from . import otel as otel
from ._version import __version__ as _source_version
from .admin import BrokerInfo as BrokerInfo
from .admin import Client as Client
from .admin import ClientConfig as ClientConfig
from .admin import ClusterInfo as ClusterInfo
from .admin import GroupInfo as GroupInfo
from .admin import GroupListing as GroupListing
from .admin import GroupOffset as GroupOffset
from .admin import MemberInfo as MemberInfo
from .admin import PartitionInfo as PartitionInfo
from .admin import TopicInfo as TopicInfo
from .admin import TopicSpec as TopicSpec
from .balancer import Balancer as Balancer
from .balancer import BalancerLike as BalancerLike
from .balancer import CRC32Balancer as CRC32Balancer
from .balancer import Hash as Hash
from .balancer import LeastBytes as LeastBytes
from .balancer import Murmur2Balancer as Murmur2Balancer
from .balancer import ReferenceHash as ReferenceHash
from .balancer import RoundRobin as RoundRobin
from .dialer import Dialer as Dialer
from .dialer import OAuthBearer as OAuthBearer
from .dialer import Plain as Plain
from .dialer import SaslMechanism as SaslMechanism
from .dialer import ScramSha256 as ScramSha256
from .dialer import ScramSha512 as ScramSha512
from .dialer import tls_context as tls_context
from .errors import AuthenticationError as AuthenticationError
from .errors import BackgroundTaskError as BackgroundTaskError
from .errors import BrokerConnectionError as BrokerConnectionError
from .errors import BrokerError as BrokerError
from .errors import ClosedError as ClosedError
from .errors import CommitError as CommitError
from .errors import ConfigError as ConfigError
from .errors import Error as Error
from .errors import GroupNotEmptyError as GroupNotEmptyError
from .errors import InvalidMessageError as InvalidMessageError
from .errors import MessageTooLargeError as MessageTooLargeError
from .errors import ProcessingError as ProcessingError
from .errors import ProducerFencedError as ProducerFencedError
from .errors import RequestTimeoutError as RequestTimeoutError
from .errors import TLSError as TLSError
from .errors import TransactionError as TransactionError
from .errors import UnknownTopicOrPartitionError as UnknownTopicOrPartitionError
from .errors import WriteErrors as WriteErrors
from .group import Claim as Claim
from .group import GroupHandler as GroupHandler
from .group import GroupSession as GroupSession
from .message import FIRST_OFFSET as FIRST_OFFSET
from .message import LAST_OFFSET as LAST_OFFSET
from .message import Header as Header
from .message import Message as Message
from .processing import DEAD_LETTER_HEADERS as DEAD_LETTER_HEADERS
from .processing import Handler as Handler
from .processing import Order as Order
from .processing import Retry as Retry
from .reader import IsolationLevel as IsolationLevel
from .reader import Reader as Reader
from .reader import ReaderConfig as ReaderConfig
from .reader import TopicPartition as TopicPartition
from .stats import PartitionProgress as PartitionProgress
from .stats import PartitionStats as PartitionStats
from .stats import ProcessingStats as ProcessingStats
from .stats import ReaderStats as ReaderStats
from .stats import WriterStats as WriterStats
from .transform import TransformFunction as TransformFunction
from .transform import TransformResult as TransformResult
from .transform import TransformStats as TransformStats
from .transform import transform as transform
from .writer import Compression as Compression
from .writer import RequiredAcks as RequiredAcks
from .writer import Transaction as Transaction
from .writer import Writer as Writer
from .writer import WriterConfig as WriterConfig

try:
    __version__ = _metadata.version("aiomq")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = _source_version

__all__ = [
    "AuthenticationError",
    "BackgroundTaskError",
    "Balancer",
    "BalancerLike",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerInfo",
    "CRC32Balancer",
    "Claim",
    "Client",
    "ClientConfig",
    "ClosedError",
    "ClusterInfo",
    "CommitError",
    "Compression",
    "ConfigError",
    "DEAD_LETTER_HEADERS",
    "Dialer",
    "Error",
    "FIRST_OFFSET",
    "GroupHandler",
    "GroupInfo",
    "GroupListing",
    "GroupNotEmptyError",
    "GroupOffset",
    "GroupSession",
    "Handler",
    "Hash",
    "Header",
    "InvalidMessageError",
    "IsolationLevel",
    "LAST_OFFSET",
    "LeastBytes",
    "MemberInfo",
    "Message",
    "MessageTooLargeError",
    "Murmur2Balancer",
    "OAuthBearer",
    "Order",
    "PartitionInfo",
    "PartitionProgress",
    "PartitionStats",
    "Plain",
    "ProcessingError",
    "ProcessingStats",
    "ProducerFencedError",
    "Reader",
    "ReaderConfig",
    "ReaderStats",
    "ReferenceHash",
    "RequestTimeoutError",
    "RequiredAcks",
    "Retry",
    "RoundRobin",
    "SaslMechanism",
    "ScramSha256",
    "ScramSha512",
    "TLSError",
    "TopicInfo",
    "TopicPartition",
    "TopicSpec",
    "Transaction",
    "TransactionError",
    "TransformFunction",
    "TransformResult",
    "TransformStats",
    "UnknownTopicOrPartitionError",
    "WriteErrors",
    "Writer",
    "WriterConfig",
    "WriterStats",
    "__version__",
    "tls_context",
    "transform",
]
