"""The server side of each SASL mechanism the front offers, one exchange at a time.

An `Exchange` takes the client's tokens in turn and returns the server's; it raises
`Refused` with the message Kafka itself would send. SCRAM is scramp's server, not a
re-implementation. Nothing here is public API.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from aiomq.errors import ConfigError

__all__ = [
    "MECHANISMS",
    "PASSWORD_MECHANISMS",
    "Exchange",
    "Logins",
    "Refused",
]

PASSWORD_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
"""The mechanisms that check a user name and password from `SaslAccounts.users`."""

MECHANISMS: Final = (*PASSWORD_MECHANISMS, "OAUTHBEARER")
"""Every mechanism the front offers, in the order it lists them by default."""

# Kafka's iteration count floor, and scramp's default.
_SCRAM_ITERATIONS: Final = 4096


class Refused(Exception):
    """The client's credentials are refused; `str()` is the message sent to the client."""


class Exchange(Protocol):
    """One client's login with one mechanism."""

    user: str | None
    """Who the client says it is, once its first token named a user (never a secret)."""

    def step(self, token: bytes) -> tuple[bytes, bool]:
        """Take the client's next token; return the server's token and whether it is the last.

        Raises:
            Refused: The credentials are wrong or the token is malformed.
        """
        ...


class _Plain:
    """SASL/PLAIN (RFC 4616): one token, `authzid NUL authcid NUL password`."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = users
        self.user: str | None = None

    def step(self, token: bytes) -> tuple[bytes, bool]:
        parts = token.decode(errors="replace").split("\0")
        if len(parts) != 3:
            raise Refused(f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(parts)}")
        authzid, username, password = parts
        self.user = username or None
        if not username:
            raise Refused("Authentication failed: username not specified")
        if not password:
            raise Refused("Authentication failed: password not specified")
        if authzid and authzid != username:
            raise Refused(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        expected = self._users.get(username)
        # Same answer for an unknown user as for a wrong password, as Kafka gives.
        if expected is None or not _same(expected, password):
            raise Refused("Authentication failed: Invalid username or password")
        return b"", True


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class _Scram:
    """SASL/SCRAM-SHA-256 and -512 (RFC 5802, 7677), served by scramp."""

    def __init__(self, mechanism: str, credentials: Mapping[str, tuple[Any, ...]]) -> None:
        import scramp

        self._mechanism = mechanism
        self._credentials = credentials
        self._server = scramp.ScramMechanism(mechanism).make_server(self._credentials.get)
        self._round = 0
        self.user: str | None = None

    def _refused(self) -> Refused:
        # Kafka's words for any SCRAM failure, unknown user or wrong proof alike.
        return Refused(
            "Authentication failed during authentication due to invalid credentials with "
            f"SASL mechanism {self._mechanism}"
        )

    def step(self, token: bytes) -> tuple[bytes, bool]:
        try:
            message = token.decode()
        except UnicodeDecodeError:
            raise self._refused() from None
        try:
            if self._round == 0:
                self._round = 1
                self.user = _scram_user(message)
                self._server.set_client_first(message)
                return self._server.get_server_first().encode(), False
            self._server.set_client_final(message)
            return self._server.get_server_final().encode(), True
        except Exception:
            # scramp raises ScramException for bad credentials and, for some malformed
            # messages, other errors: each is a refused login, never a broken front.
            raise self._refused() from None


def _scram_user(client_first: str) -> str | None:
    """The user a SCRAM client-first message names, for logs (`n=` attribute, unescaped)."""
    for attribute in client_first.split(",")[2:]:
        if attribute.startswith("n="):
            return attribute[2:].replace("=2C", ",").replace("=3D", "=")
    return None


class _OAuthBearer:
    """SASL/OAUTHBEARER (RFC 7628): one token carrying `auth=Bearer <token>`."""

    def __init__(self, check: Callable[[str], bool]) -> None:
        self._check = check
        self.user: str | None = None

    def step(self, token: bytes) -> tuple[bytes, bool]:
        text = token.decode(errors="replace")
        header, sep, pairs = text.partition("\x01")
        if not sep or not header.startswith(("n,", "y,")):
            raise Refused("Invalid OAUTHBEARER client first message")
        bearer = None
        for pair in pairs.split("\x01"):
            key, _, value = pair.partition("=")
            if key == "auth" and value.startswith("Bearer "):
                bearer = value.removeprefix("Bearer ").strip()
        if not bearer:
            raise Refused("Invalid OAUTHBEARER client first message: no bearer token")
        try:
            accepted = bool(self._check(bearer))
        except Exception:
            accepted = False
        if not accepted:
            # Kafka sends an RFC 7628 error challenge here and fails on the client's
            # answer to it; aiokafka would not answer the challenge, so the front fails at
            # once, the one refusal both aiokafka and librdkafka report as such.
            raise Refused("Authentication failed: the bearer token was refused")
        return b"", True


class Logins:
    """The accounts of a front, ready to serve: SCRAM credentials derived once, at start.

    Args:
        users: User names and their passwords.
        mechanisms: The mechanisms to offer.
        token_check: Tells whether a bearer token is valid (OAUTHBEARER).

    Raises:
        ConfigError: SCRAM is offered and scramp is not installed, or a password cannot be
            prepared for SCRAM (SASLprep refuses it).
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str],
        mechanisms: tuple[str, ...],
        token_check: Callable[[str], bool] | None,
    ) -> None:
        self.mechanisms = mechanisms
        self._users = dict(users)
        self._token_check = token_check
        self._scram: dict[str, dict[str, tuple[Any, ...]]] = {}
        for mechanism in mechanisms:
            if mechanism.startswith("SCRAM-"):
                self._scram[mechanism] = _scram_credentials(mechanism, self._users)

    def exchange(self, mechanism: str) -> Exchange:
        """A new login with `mechanism`, which must be one of `mechanisms`."""
        if mechanism == "PLAIN":
            return _Plain(self._users)
        if mechanism in self._scram:
            return _Scram(mechanism, self._scram[mechanism])
        if mechanism == "OAUTHBEARER" and self._token_check is not None:
            return _OAuthBearer(self._token_check)
        raise ValueError(f"{mechanism} is not offered")  # pragma: no cover


def _scram_credentials(mechanism: str, users: Mapping[str, str]) -> dict[str, tuple[Any, ...]]:
    try:
        import scramp
    except ImportError as exc:
        raise ConfigError(
            f"the SASL front's {mechanism} needs the scramp package: pip install 'aiomq[testing]'"
        ) from exc
    server = scramp.ScramMechanism(mechanism)
    credentials: dict[str, tuple[Any, ...]] = {}
    for user, password in users.items():
        try:
            credentials[user] = server.make_auth_info(password, iteration_count=_SCRAM_ITERATIONS)
        except scramp.ScramException:
            # Say nothing of the password itself: it is a secret.
            raise ConfigError(
                f"the password of SASL user {user!r} cannot be used with {mechanism} "
                "(SASLprep refuses it: it holds a character SCRAM does not allow)"
            ) from None
    return credentials
