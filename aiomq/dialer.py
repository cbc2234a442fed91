"""How aiomq connects: TLS and SASL settings shared by Writer, Reader and Client.

kafka-go's `Dialer` carries the same settings; here it is a frozen value, so one dialer
can serve every client of an application:

```python
dialer = aiomq.Dialer(
    tls=aiomq.tls_context(ca_file="ca.pem"),
    sasl=aiomq.ScramSha512(username="billing", password=os.environ["KAFKA_PASSWORD"]),
)
async with aiomq.Writer(brokers=[...], topic="orders", dialer=dialer) as w: ...
```

aiomq derives every security setting of the client underneath from it: there is no
protocol string to spell. Secrets never appear in a `repr`, a log line or an error.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiomq.errors import ConfigError

__all__ = [
    "Dialer",
    "OAuthBearer",
    "Plain",
    "SaslMechanism",
    "ScramSha256",
    "ScramSha512",
    "tls_context",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Plain:
    """SASL/PLAIN: a user name and password, sent as they are (use it with TLS)."""

    username: str
    password: str = field(repr=False)
    mechanism_name = "PLAIN"

    def __post_init__(self) -> None:
        _credentials(self.mechanism_name, self.username, self.password)


@dataclass(frozen=True, kw_only=True, slots=True)
class ScramSha256:
    """SASL/SCRAM-SHA-256: a salted challenge-response; the password never crosses the wire."""

    username: str
    password: str = field(repr=False)
    mechanism_name = "SCRAM-SHA-256"

    def __post_init__(self) -> None:
        _credentials(self.mechanism_name, self.username, self.password)


@dataclass(frozen=True, kw_only=True, slots=True)
class ScramSha512:
    """SASL/SCRAM-SHA-512: as SCRAM-SHA-256, with SHA-512."""

    username: str
    password: str = field(repr=False)
    mechanism_name = "SCRAM-SHA-512"

    def __post_init__(self) -> None:
        _credentials(self.mechanism_name, self.username, self.password)


@dataclass(frozen=True, kw_only=True, slots=True)
class OAuthBearer:
    """SASL/OAUTHBEARER: a bearer token from an async provider, asked at each connection.

    The provider should cache its token and refresh it before it expires.
    """

    token_provider: Callable[[], Awaitable[str]] = field(repr=False)
    mechanism_name = "OAUTHBEARER"

    def __post_init__(self) -> None:
        if not callable(self.token_provider):
            raise ConfigError(
                "OAuthBearer needs token_provider: an async function returning a token"
            )


SaslMechanism = Plain | ScramSha256 | ScramSha512 | OAuthBearer
"""Any of the SASL mechanisms aiomq supports."""


def _credentials(mechanism: str, username: object, password: object) -> None:
    if not isinstance(username, str) or not username:
        raise ConfigError(f"{mechanism} needs a non-empty username")
    if not isinstance(password, str) or not password:
        # Say nothing about the value: it may be a secret of the wrong type.
        raise ConfigError(f"{mechanism} needs a non-empty password for user {username!r}")


def tls_context(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    key_password: str | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """Build a client TLS context: certificate and hostname verification on by default.

    Args:
        ca_file: PEM file of the certificate authorities to trust. Default: None (the
            system's trusted authorities).
        cert_file: PEM file of a client certificate, for brokers that authenticate clients
            by certificate (mutual TLS). Default: None.
        key_file: PEM file of the client certificate's private key. Default: None (the key
            is in `cert_file`).
        key_password: Password of the private key, if it is encrypted. Default: None.
        verify: Check the broker's certificate and host name. Turning this off accepts
            any certificate, so only do it against a test broker. Default: True.

    Raises:
        ConfigError: A file is missing or unreadable, or a key is given without a
            certificate.
    """
    if key_file is not None and cert_file is None:
        raise ConfigError("key_file needs cert_file: the key belongs to a client certificate")
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
        if cert_file is not None:
            context.load_cert_chain(
                str(cert_file),
                str(key_file) if key_file is not None else None,
                password=key_password,
            )
    except (OSError, ssl.SSLError) as exc:
        which = ", ".join(str(p) for p in (ca_file, cert_file, key_file) if p is not None)
        raise ConfigError(f"could not load TLS files ({which}): {exc}") from exc
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True, kw_only=True, slots=True)
class Dialer:
    """Connection settings shared by `Writer`, `Reader` and `Client` (kafka-go's `Dialer`).

    Raises:
        ConfigError: A value is invalid.
    """

    client_id: str | None = None
    """The client id sent to brokers; a Writer, Reader or Client given its own client_id
    uses that instead. Default: None ("aiomq")."""

    timeout: float = 10.0
    """Seconds to wait for the first connection to the cluster, TLS and SASL handshakes
    included, before diagnosing what went wrong. Default: 10.0."""

    tls: ssl.SSLContext | None = None
    """The TLS context, or None for plaintext connections. Build one with `tls_context()`.
    Default: None."""

    sasl: SaslMechanism | None = None
    """The SASL mechanism and credentials, or None for no authentication. Default: None."""

    def __post_init__(self) -> None:
        if self.client_id is not None and (
            not isinstance(self.client_id, str) or not self.client_id
        ):
            raise ConfigError(
                f"client_id must be a non-empty string or None, not {self.client_id!r}"
            )
        if (
            not isinstance(self.timeout, int | float)
            or isinstance(self.timeout, bool)
            or not math.isfinite(self.timeout)
            or self.timeout <= 0
        ):
            raise ConfigError(
                f"timeout must be a number of seconds above zero, not {self.timeout!r}"
            )
        if self.tls is not None and not isinstance(self.tls, ssl.SSLContext):
            raise ConfigError(
                "tls must be an ssl.SSLContext (see aiomq.tls_context()), "
                f"not {type(self.tls).__name__}"
            )
        if self.sasl is not None and not isinstance(
            self.sasl, Plain | ScramSha256 | ScramSha512 | OAuthBearer
        ):
            raise ConfigError(
                "sasl must be aiomq.Plain, ScramSha256, ScramSha512 or OAuthBearer, "
                f"not {type(self.sasl).__name__}"
            )

    @property
    def security_protocol(self) -> str:
        """The Kafka security protocol these settings amount to, such as "SASL_SSL"."""
        if self.sasl is None:
            return "SSL" if self.tls is not None else "PLAINTEXT"
        return "SASL_SSL" if self.tls is not None else "SASL_PLAINTEXT"
