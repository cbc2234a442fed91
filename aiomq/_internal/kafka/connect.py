"""From a Dialer to aiokafka's connection arguments, and from a failed bootstrap to a diagnosis."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from aiokafka import errors as ak
from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import create_conn

from aiomq._internal.kafka.errors import ErrorCode
from aiomq._internal.probe import ANSWER_PREFIX, answers, api_versions_request
from aiomq.dialer import Dialer, OAuthBearer
from aiomq.errors import AuthenticationError, BrokerConnectionError, Error, TLSError

__all__ = ["connection_options", "diagnose_bootstrap", "open_client"]

# The codes of a broker's answer that mean the login, not the connection, failed.
_AUTH_CODES: Final = frozenset(
    {
        ErrorCode.UNSUPPORTED_SASL_MECHANISM,
        ErrorCode.ILLEGAL_SASL_STATE,
        ErrorCode.SASL_AUTHENTICATION_FAILED,
    }
)

_PROBE_CORRELATION: Final = 0x61696F6E
_API_VERSIONS_PROBE: Final = api_versions_request(_PROBE_CORRELATION, b"aiomq-diagnosis")


class _TokenProvider(AbstractTokenProvider):
    def __init__(self, provide: Callable[[], Awaitable[str]]) -> None:
        self._provide = provide

    async def token(self) -> str:
        return await self._provide()


def connection_options(dialer: Dialer | None) -> dict[str, Any]:
    """The keyword arguments aiokafka's clients need for `dialer`'s TLS and SASL settings."""
    if dialer is None:
        return {"security_protocol": "PLAINTEXT"}
    options: dict[str, Any] = {"security_protocol": dialer.security_protocol}
    if dialer.tls is not None:
        options["ssl_context"] = dialer.tls
    sasl = dialer.sasl
    if sasl is not None:
        options["sasl_mechanism"] = sasl.mechanism_name
        if isinstance(sasl, OAuthBearer):
            options["sasl_oauth_token_provider"] = _TokenProvider(sasl.token_provider)
        else:
            options["sasl_plain_username"] = sasl.username
            options["sasl_plain_password"] = sasl.password
    return options


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


async def _speaks_tls(host: str, port: int, limit: float) -> bool:
    """Tell whether the listener at host:port completes a TLS handshake."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(limit):
            _reader, writer = await asyncio.open_connection(host, port, ssl=context)
    except (OSError, TimeoutError, ssl.SSLError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def _diagnose_one(address: str, dialer: Dialer | None, limit: float) -> Error:
    host, port = _split(address)
    options = connection_options(dialer)
    try:
        async with asyncio.timeout(limit):
            conn = await create_conn(host, port, request_timeout_ms=int(limit * 1000), **options)
    except ssl.SSLCertVerificationError as exc:
        return TLSError(
            f"broker {address} refused: its certificate did not verify ({exc.verify_message})",
            brokers=[address],
        )
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "WRONG_VERSION_NUMBER" in str(reason).upper() or "RECORD_LAYER" in str(reason).upper():
            return TLSError(
                f"broker {address} does not speak TLS (is it a plaintext listener?); "
                "connect without Dialer.tls, or to the broker's TLS port",
                brokers=[address],
            )
        return TLSError(f"TLS handshake with broker {address} failed: {reason}", brokers=[address])
    except (
        ak.UnsupportedSaslMechanismError,
        ak.AuthenticationFailedError,
        ak.IllegalSaslStateError,
    ) as exc:
        return _auth_error(address, dialer, exc)
    except ak.KafkaError as exc:
        if isinstance(exc, ak.BrokerResponseError) and exc.errno in _AUTH_CODES:
            return _auth_error(address, dialer, exc)
        return await _unclear(address, dialer, limit, str(exc))
    except TimeoutError:
        return await _unclear(address, dialer, limit, f"no answer within {limit:g} s")
    except ConnectionRefusedError:
        return BrokerConnectionError(f"connection to broker {address} refused", brokers=[address])
    except OSError as exc:
        return BrokerConnectionError(f"could not reach broker {address}: {exc}", brokers=[address])
    conn.close()
    return BrokerConnectionError(
        f"broker {address} answered a fresh connection; the earlier failure was transient",
        brokers=[address],
    )


async def _speaks_plaintext_kafka(host: str, port: int, limit: float) -> bool:
    """Tell whether the listener at host:port answers a plaintext ApiVersions request."""
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(_API_VERSIONS_PROBE)
                answer = await reader.readexactly(ANSWER_PREFIX)
            finally:
                writer.close()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    return answers(answer, _PROBE_CORRELATION)


async def _unclear(address: str, dialer: Dialer | None, limit: float, what: str) -> Error:
    host, port = _split(address)
    uses_tls = dialer is not None and dialer.tls is not None
    if not uses_tls and await _speaks_tls(host, port, limit):
        return TLSError(
            f"broker {address} expects TLS, and this client connects in plaintext; "
            "set Dialer(tls=aiomq.tls_context(...))",
            brokers=[address],
        )
    if uses_tls and await _speaks_plaintext_kafka(host, port, limit):
        return TLSError(
            f"broker {address} does not speak TLS (it answers in plaintext); "
            "connect without Dialer.tls, or to the broker's TLS port",
            brokers=[address],
        )
    return BrokerConnectionError(f"broker {address}: {what}", brokers=[address])


def _auth_error(address: str, dialer: Dialer | None, exc: Exception) -> AuthenticationError:
    sasl = dialer.sasl if dialer is not None else None
    mechanism = sasl.mechanism_name if sasl is not None else "none"
    username = getattr(sasl, "username", None)
    who = f" as user {username!r}" if username else ""
    if isinstance(exc, ak.UnsupportedSaslMechanismError) or (
        isinstance(exc, ak.BrokerResponseError)
        and exc.errno == ErrorCode.UNSUPPORTED_SASL_MECHANISM
    ):
        message = (
            f"broker {address} does not offer SASL {mechanism} (for user {username!r}); "
            "is this its SASL listener, and is the mechanism enabled there?"
        )
    else:
        # aiokafka's text may quote the server's reply; keep only the kind of failure.
        message = (
            f"broker {address} refused SASL {mechanism} authentication{who} ({type(exc).__name__})"
        )
    return AuthenticationError(message, mechanism=mechanism, username=username)


async def _bounded(address: str, dialer: Dialer | None, limit: float) -> Error:
    try:
        async with asyncio.timeout(limit):
            return await _diagnose_one(address, dialer, limit / 2)
    except TimeoutError:
        return BrokerConnectionError(
            f"broker {address}: no answer within {limit:g} s", brokers=[address]
        )


async def diagnose_bootstrap(brokers: Sequence[str], dialer: Dialer | None) -> Error:
    """Connect to each bootstrap broker once more and say precisely why it fails.

    Called after a bootstrap failed, so that the error the caller sees names the broker
    and the reason (a refused certificate, a plaintext/TLS mismatch, a refused login)
    instead of a bare "unable to bootstrap".
    """
    limit = dialer.timeout if dialer is not None else 10.0
    # Every broker at once, and each probe bounded by the same limit, so the diagnosis
    # takes at most about one Dialer.timeout however many brokers there are.
    errors = await asyncio.gather(*(_bounded(address, dialer, limit) for address in brokers))
    for kind in (AuthenticationError, TLSError):
        for error in errors:
            if isinstance(error, kind):
                return error
    if len(errors) == 1:
        return errors[0]
    reasons = "; ".join(str(e) for e in errors)
    return BrokerConnectionError(f"no bootstrap broker could be used: {reasons}", brokers=brokers)


async def open_client(
    start: Callable[[], Awaitable[Any]], brokers: Sequence[str], dialer: Dialer | None
) -> None:
    """Run an aiokafka client's start-up, turning any failure to connect into a diagnosis.

    Raises:
        TLSError, AuthenticationError, BrokerConnectionError: The cluster could not be
            reached; the message names the broker and the reason.
    """
    timeout = dialer.timeout if dialer is not None else 10.0
    try:
        async with asyncio.timeout(timeout):
            await start()
    except (ak.KafkaConnectionError, ak.NoBrokersAvailable, TimeoutError) as exc:
        raise await diagnose_bootstrap(brokers, dialer) from exc
    except (ak.AuthenticationFailedError, ak.UnsupportedSaslMechanismError) as exc:
        raise _auth_error(brokers[0], dialer, exc) from exc
