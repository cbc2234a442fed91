"""`aiomq.testing.SaslAccounts` and the SASL front behind `EmbeddedBroker(sasl=...)`.

The front listens on a loopback port and, for each client connection, opens one to the
broker. Until the client has logged in, it reads the client's requests itself:

- ApiVersions goes to the broker, and its answer comes back with the front's own
  SaslHandshake (17) and SaslAuthenticate (36) versions in the list;
- SaslHandshake v0/v1 with a mechanism the accounts offer is accepted; any other
  mechanism is answered UNSUPPORTED_SASL_MECHANISM (33) with the enabled list, and the
  connection is closed;
- after a v1 handshake, SaslAuthenticate requests carry the tokens; after a v0 handshake,
  the tokens come bare, each behind its size, as before Kafka 1.0;
- wrong credentials are answered SASL_AUTHENTICATION_FAILED (58) with Kafka's message
  (v0: no answer), and the connection is closed, as Kafka does;
- any other request is refused by closing the connection.

Once the login succeeds, everything passes through in both directions byte for byte,
bytes the client sent early included. The front runs an event loop of its own on a
daemon thread, like the fault proxy, so it serves plain `with` fixtures as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Self

from aiomq._internal import sasl_wire as wire
from aiomq._internal.faults import join_address, split_address
from aiomq._internal.lifecycle import StartStopResource
from aiomq._internal.log import get_logger
from aiomq._internal.sasl_server import MECHANISMS, PASSWORD_MECHANISMS, Logins, Refused
from aiomq.errors import ClosedError, ConfigError

__all__ = ["SaslAccounts", "SaslFront"]

_UNSUPPORTED_SASL_MECHANISM: Final = 33
_SASL_AUTHENTICATION_FAILED: Final = 58
# Kafka's sasl.server.max.receive.size: no login request comes near it.
_MAX_LOGIN_FRAME: Final = 524288
_MAX_ANSWER_FRAME: Final = 64 * 1024 * 1024
_CHUNK: Final = 65536
_THREAD_TIMEOUT: Final = 10.0


@dataclass(frozen=True, kw_only=True, slots=True)
class SaslAccounts:
    """The accounts and mechanisms of an embedded broker's SASL front.

    For example `SaslAccounts(users={"billing": "secret"})` offers PLAIN, SCRAM-SHA-256
    and SCRAM-SHA-512 to the user "billing"; add `token_check=` to offer OAUTHBEARER.
    Passwords and tokens never appear in its `repr` or in the front's log lines.

    Raises:
        ConfigError: A value is invalid, or a mechanism has nothing to check logins with.
    """

    users: Mapping[str, str] = field(default_factory=dict)
    """User names and their passwords, for PLAIN and SCRAM. Default: none."""

    mechanisms: Sequence[str] | None = None
    """The mechanisms offered, among "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512" and
    "OAUTHBEARER"; once created, the tuple of those offered. Default: None (every
    mechanism the accounts can serve: the three password mechanisms when `users` is
    given, OAUTHBEARER when `token_check` is)."""

    token_check: Callable[[str], bool] | None = None
    """Tells whether an OAUTHBEARER bearer token is valid. It runs on the front's own
    thread, so it must not block for long; an exception counts as a refusal.
    Default: None (no OAUTHBEARER)."""

    def __post_init__(self) -> None:
        users = _checked_users(self.users)
        if self.token_check is not None and not callable(self.token_check):
            raise ConfigError(
                "token_check must be a function that takes a bearer token and tells "
                f"whether it is valid, not {type(self.token_check).__name__}"
            )
        if not users and self.token_check is None:
            raise ConfigError("SaslAccounts needs users, a token_check, or both")
        mechanisms = _checked_mechanisms(self.mechanisms, users, self.token_check)
        object.__setattr__(self, "users", types.MappingProxyType(users))
        object.__setattr__(self, "mechanisms", mechanisms)

    def __repr__(self) -> str:
        check = ", token_check=..." if self.token_check is not None else ""
        return f"SaslAccounts(users={sorted(self.users)!r}, mechanisms={self.mechanisms!r}{check})"


def _checked_users(users: object) -> dict[str, str]:
    if not isinstance(users, Mapping):
        raise ConfigError(
            f"users maps user names to passwords, such as {{'billing': '...'}}, "
            f"not {type(users).__name__}"
        )
    checked: dict[str, str] = {}
    for name, password in users.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a SASL user name must be a non-empty string, not {name!r}")
        if not isinstance(password, str) or not password:
            # Say nothing of the value: it may be a secret of the wrong type.
            raise ConfigError(f"SASL user {name!r} needs a non-empty password string")
        checked[name] = password
    return checked


def _checked_mechanisms(
    mechanisms: object, users: dict[str, str], token_check: object
) -> tuple[str, ...]:
    if mechanisms is None:
        offered = (*PASSWORD_MECHANISMS,) if users else ()
        return (*offered, "OAUTHBEARER") if token_check is not None else offered
    if isinstance(mechanisms, str) or not isinstance(mechanisms, Sequence):
        raise ConfigError(
            f"mechanisms is a list of mechanism names, such as ['SCRAM-SHA-512'], "
            f"not {mechanisms!r}"
        )
    if not mechanisms:
        raise ConfigError("mechanisms is empty: offer at least one, or leave it None")
    for name in mechanisms:
        if name not in MECHANISMS:
            raise ConfigError(
                f"the SASL front does not offer {name!r}; it offers {', '.join(MECHANISMS)}"
            )
        if mechanisms.count(name) > 1:
            raise ConfigError(f"mechanisms lists {name} more than once")
        if name in PASSWORD_MECHANISMS and not users:
            raise ConfigError(f"{name} checks passwords: list at least one account in users")
        if name == "OAUTHBEARER" and token_check is None:
            raise ConfigError(
                "OAUTHBEARER needs token_check: a function that tells whether a bearer "
                "token is valid"
            )
    if token_check is not None and "OAUTHBEARER" not in mechanisms:
        raise ConfigError("token_check is only used by OAUTHBEARER: add it to mechanisms")
    return tuple(mechanisms)


async def _read_frame(reader: asyncio.StreamReader, limit: int) -> bytes | None:
    """One size-prefixed frame; None when the stream ends cleanly before it begins."""
    try:
        prefix = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise wire.WireError("the stream ended inside a frame's size") from None
        return None
    size = int.from_bytes(prefix, "big", signed=True)
    if not 0 <= size <= limit:
        raise wire.WireError(f"a frame of {size} bytes (at most {limit} before logging in)")
    return await reader.readexactly(size)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while chunk := await src.read(_CHUNK):
        dst.write(chunk)
        await dst.drain()
    if dst.can_write_eof():
        dst.write_eof()


class SaslFront(StartStopResource):
    """A SASL login in front of a broker that has none (see the module's docstring).

    Args:
        target: The broker's `host:port`.
        accounts: Who may log in, and how.
        host: The address to listen on. Default: "127.0.0.1".
        port: The port to listen on. Default: None (a free port is chosen).
    """

    def __init__(
        self,
        *,
        target: str,
        accounts: SaslAccounts,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self._target = split_address(target)
        self._accounts = accounts
        self.host = host
        self._requested_port = port or 0
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._logins: Logins | None = None
        self._clients: dict[asyncio.Task[None], list[asyncio.StreamWriter]] = {}
        self._stopped = False
        self.authenticated = 0
        """How many connections have logged in."""
        self.refused = 0
        """How many connections were closed before logging in: a refused login, an
        unsupported mechanism, or a request other than the login's."""

    def __repr__(self) -> str:
        where = self.address if self.running else "?"
        return f"<SaslFront {where} -> {join_address(*self._target)} {self._accounts!r}>"

    @property
    def running(self) -> bool:
        """Whether the front has been started and not stopped."""
        return self._server is not None and not self._stopped

    @property
    def address(self) -> str:
        """The `host:port` that clients connect to.

        Raises:
            ClosedError: The front is not running.
        """
        if not self.running or self._port is None:
            raise ClosedError("the SASL front is not running")
        return join_address(self.host, self._port)

    @property
    def connections(self) -> int:
        """How many client connections are open now, logged in or not."""
        return len(self._clients)

    # -- starting and stopping ------------------------------------------------------------

    def start(self) -> Self:
        """Listen and serve on a daemon thread; return once the port is open.

        Raises:
            ConfigError: SCRAM is offered and scramp is missing, or refuses a password.
            ClosedError: This front was already started once.
            OSError: The port to listen on is taken.
        """
        if self._loop is not None or self._stopped:
            raise ClosedError("a SaslFront runs once; create a new one to start again")
        mechanisms = tuple(self._accounts.mechanisms or ())
        self._logins = Logins(
            users=self._accounts.users,
            mechanisms=mechanisms,
            token_check=self._accounts.token_check,
        )
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=loop.run_forever, name="aiomq-sasl-front", daemon=True
        )
        self._thread.start()
        listening = asyncio.start_server(self._serve, self.host, self._requested_port)
        try:
            server = asyncio.run_coroutine_threadsafe(listening, loop).result(_THREAD_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self._server = server
        self._port = server.sockets[0].getsockname()[1]
        return self

    async def astart(self) -> Self:
        """Start, as `start()` does; it blocks only while the port opens."""
        return self.start()

    def stop(self) -> None:
        """Reset every client connection, close the port and end the thread. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shut_down(), loop).result(_THREAD_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_THREAD_TIMEOUT)
        if not loop.is_running():
            loop.close()

    async def _shut_down(self) -> None:
        if self._server is not None:
            self._server.close()
        for writers in self._clients.values():
            for writer in writers:
                writer.transport.abort()
        # With their sockets gone, the connections end by themselves; one still opening
        # its broker side is cancelled.
        if self._clients:
            _done, pending = await asyncio.wait(list(self._clients), timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # -- serving (front thread) -----------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        writers = self._clients[task] = [writer]
        peer = writer.get_extra_info("peername")
        log = get_logger(client=join_address(*peer[:2]) if peer else "?")
        orderly = False
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
            writers.append(up_writer)
            if await self._log_in(log, reader, writer, up_reader, up_writer):
                self.authenticated += 1
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            else:
                self.refused += 1
            orderly = True
        except (OSError, EOFError, wire.WireError) as exc:
            log.debug("sasl_front_connection_dropped", reason=str(exc) or type(exc).__name__)
        except asyncio.CancelledError:
            # Only stop() cancels a connection, and it ends here: asyncio's stream
            # server would report a cancelled handler as an error in its callback.
            if not self._stopped:
                raise
        finally:
            del self._clients[task]
            for each in writers:
                if orderly:
                    each.close()
                else:
                    # A broken side breaks the other, as a reset crosses a network path.
                    each.transport.abort()

    async def _log_in(
        self,
        log: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> bool:
        """Run the login; tell whether it succeeded. The caller closes on failure."""
        assert self._logins is not None
        enabled = list(self._logins.mechanisms)
        exchange = None
        mechanism = ""
        bare_tokens = False
        while True:
            request = await _read_frame(reader, _MAX_LOGIN_FRAME)
            if request is None:
                return False
            if bare_tokens:
                assert exchange is not None
                try:
                    token, last = exchange.step(request)
                except Refused as refusal:
                    # Before SaslAuthenticate there was no way to say why: Kafka closes.
                    log.info(
                        "sasl_login_refused",
                        mechanism=mechanism,
                        user=exchange.user,
                        reason=str(refusal),
                    )
                    return False
                writer.write(wire.frame(token))
                await writer.drain()
                if last:
                    log.debug("sasl_login_accepted", mechanism=mechanism, user=exchange.user)
                    return True
                continue
            header = wire.parse_header(request)
            key, version, correlation = header.api_key, header.api_version, header.correlation_id
            if key == wire.API_VERSIONS and exchange is None:
                up_writer.write(wire.frame(request))
                await up_writer.drain()
                answer = await _read_frame(up_reader, _MAX_ANSWER_FRAME)
                if answer is None:
                    raise EOFError("the broker closed the connection")
                writer.write(wire.rewrite_api_versions(version, answer))
            elif (
                key == wire.SASL_HANDSHAKE
                and exchange is None
                and version in wire.HANDSHAKE_VERSIONS
            ):
                mechanism = wire.read_string(request, header.body)
                if mechanism not in enabled:
                    writer.write(
                        wire.handshake_response(correlation, _UNSUPPORTED_SASL_MECHANISM, enabled)
                    )
                    await writer.drain()
                    log.info(
                        "sasl_login_refused",
                        mechanism=mechanism,
                        user=None,
                        reason="mechanism not enabled",
                    )
                    return False
                writer.write(wire.handshake_response(correlation, 0, enabled))
                exchange = self._logins.exchange(mechanism)
                bare_tokens = version == 0
            elif (
                key == wire.SASL_AUTHENTICATE
                and exchange is not None
                and version in wire.AUTHENTICATE_VERSIONS
            ):
                try:
                    token, last = exchange.step(wire.read_bytes(request, header.body))
                except Refused as refusal:
                    writer.write(
                        wire.authenticate_response(
                            correlation, version, _SASL_AUTHENTICATION_FAILED, str(refusal), b""
                        )
                    )
                    await writer.drain()
                    log.info(
                        "sasl_login_refused",
                        mechanism=mechanism,
                        user=exchange.user,
                        reason=str(refusal),
                    )
                    return False
                writer.write(wire.authenticate_response(correlation, version, 0, None, token))
                if last:
                    await writer.drain()
                    log.debug("sasl_login_accepted", mechanism=mechanism, user=exchange.user)
                    return True
            else:
                log.info(
                    "sasl_login_refused",
                    mechanism=mechanism or None,
                    user=None,
                    reason=f"request {key} v{version} before logging in",
                )
                return False
            await writer.drain()
