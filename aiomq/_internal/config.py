"""Validation shared by the configuration objects of Writer, Reader and Client."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from aiomq.dialer import Dialer
from aiomq.errors import ConfigError

__all__ = [
    "ClientSettings",
    "build_config",
    "check_brokers",
    "check_connection",
    "check_positive_int",
    "check_seconds",
    "check_topic_name",
    "is_int",
    "resolve_client_id",
]

DEFAULT_CLIENT_ID = "aiomq"

_TOPIC_NAME: Final = re.compile(r"[a-zA-Z0-9._-]+")
_TOPIC_NAME_MAX: Final = 249

C = TypeVar("C")


def build_config(cls: Callable[..., C], config: C | None, options: Mapping[str, Any]) -> C:
    """Take a complete configuration object, or build one from keyword options; not both."""
    if config is None:
        return cls(**options)
    if options:
        name = getattr(cls, "__name__", "configuration")
        raise ConfigError(f"pass either a {name} or keyword options, not both")
    return config


def is_int(value: object) -> bool:
    """Whether `value` is an int and not a bool (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_brokers(brokers: object) -> None:
    """Refuse anything but a non-empty sequence of `host:port` strings."""
    if (
        isinstance(brokers, str)
        or not isinstance(brokers, Sequence)
        or not brokers
        or not all(isinstance(b, str) and b.strip() for b in brokers)
    ):
        raise ConfigError(
            f"brokers must be a non-empty list of 'host:port' strings, not {brokers!r}"
        )


def check_positive_int(name: str, value: object) -> None:
    """Refuse anything but an integer of 1 or more (booleans included)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, not {value!r}")


def check_seconds(name: str, value: object, *, allow_zero: bool) -> None:
    """Refuse anything but a finite number of seconds, above zero unless `allow_zero`."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigError(f"{name} must be a number of seconds, {bound}, not {value!r}")


def check_connection(client_id: object, dialer: object) -> None:
    """Check the `client_id` and `dialer` fields every client configuration has."""
    if client_id is not None and (not isinstance(client_id, str) or not client_id):
        raise ConfigError(f"client_id must be a non-empty string or None, not {client_id!r}")
    if dialer is not None and not isinstance(dialer, Dialer):
        raise ConfigError(f"dialer must be an aiomq.Dialer, not {type(dialer).__name__}")


def resolve_client_id(client_id: str | None, dialer: Dialer | None) -> str:
    """The client id actually sent: the client's own, else the dialer's, else "aiomq"."""
    if client_id is not None:
        return client_id
    if dialer is not None and dialer.client_id is not None:
        return dialer.client_id
    return DEFAULT_CLIENT_ID


def check_topic_name(name: object) -> None:
    """Refuse a name Kafka would refuse as a topic name.

    Raises:
        ConfigError: The name is not 1 to 249 of a-z, A-Z, 0-9, '.', '_' and '-', or is
            '.' or '..'.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a topic name must be a non-empty string, not {name!r}")
    if name in (".", "..") or len(name) > _TOPIC_NAME_MAX or not _TOPIC_NAME.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not a valid topic name: use 1 to {_TOPIC_NAME_MAX} of the "
            "characters a-z, A-Z, 0-9, '.', '_' and '-' (and not '.' or '..')"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientSettings:
    """The settings every client shares: how it names itself, connects and logs.

    `WriterConfig`, `ReaderConfig` and `ClientConfig` extend it.
    """

    client_id: str | None = None
    """The client id sent to brokers, seen in their logs and quotas. Default: None (the
    dialer's client_id, else "aiomq")."""

    dialer: Dialer | None = None
    """TLS and SASL settings (see `aiomq.Dialer`). Default: None (plaintext, no
    authentication)."""

    logger: Any = None
    """A structlog logger to log through instead of `structlog.get_logger("aiomq")`.
    Default: None."""

    @property
    def effective_client_id(self) -> str:
        """The client id actually sent: this one, else the dialer's, else "aiomq"."""
        return resolve_client_id(self.client_id, self.dialer)
