"""The relay behind `aiomq.testing.FaultProxy`: a TCP proxy that fails on command.

The relay runs an asyncio event loop of its own in a daemon thread, so that it serves
synchronous fixtures (which have no loop) and async tests alike, and keeps relaying while
the test's own loop is blocked. It drives non-blocking sockets with `add_reader` and
`add_writer` rather than transports and tasks: every change of state (accept, forward,
reset) then completes inside one callback, so a fault ordered from another thread has
fully taken effect when the call that ordered it returns. A transport would close its
socket one loop iteration later, and a new transport would appear one iteration after its
socket was accepted, leaving windows in which a "cut" connection still answers.

Nothing here is public API.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Literal, TypeVar

from aiomq.errors import ConfigError

__all__ = ["Mode", "Relay", "join_address", "split_address"]

T = TypeVar("T")

Mode = Literal["healthy", "blackhole", "cut"]

_CHUNK: Final = 65536
# Bytes read from one side and not yet taken by the other side's kernel buffer, past which
# the relay stops reading that side: a slow or delayed path pushes back on the sender, as
# a real one does, instead of filling memory.
_MAX_HELD: Final = 4 * 1024 * 1024
_ACCEPT_BATCH: Final = 64
# SO_LINGER on with a zero timeout: close() sends RST and discards unsent data.
_LINGER_RESET: Final = struct.pack("ii", 1, 0)
_CONNECT_PENDING: Final = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN})
_COMMAND_TIMEOUT: Final = 10.0
_STOP_TIMEOUT: Final = 10.0


def _reset(sock: socket.socket) -> None:
    """Close `sock` with a TCP reset rather than an orderly FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


def _listening_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # SO_REUSEPORT lets a second, non-listening socket hold the port while the relay
        # refuses connections (see Relay._refuse), so that nothing else can take it.
        if hasattr(socket, "SO_REUSEPORT"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _tuned(sock: socket.socket) -> socket.socket:
    sock.setblocking(False)
    # Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add up to 40 ms to small
    # requests, a latency no test asked for.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def split_address(address: str) -> tuple[str, int]:
    """Split "host:port" (or "[v6]:port") into its parts."""
    host, sep, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"a fault proxy's target is host:port, such as kafka:9092; got {address!r}"
        )
    return host, int(port)


def join_address(host: str, port: int) -> str:
    """Write a host and port as "host:port", bracketing an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Pipe:
    """One direction of a relayed connection: bytes read from `src`, on their way to `dst`."""

    __slots__ = (
        "conn",
        "done",
        "dst",
        "ending",
        "eof",
        "held",
        "out",
        "queue",
        "reading",
        "src",
        "timer",
        "writing",
    )

    def __init__(self, conn: _Connection, src: socket.socket, dst: socket.socket) -> None:
        self.conn = conn
        self.src = src
        self.dst = dst
        # Chunks read from src with the loop time at which they may be forwarded; an empty
        # chunk stands for the end of src's stream, so that it is passed on in order too.
        self.queue: deque[tuple[float, bytes]] = deque()
        self.out = bytearray()  # due bytes that dst's kernel buffer has not taken yet
        self.held = 0  # bytes in queue and out
        self.eof = False  # src's stream has ended
        self.ending = False  # the end of src's stream is due: shut dst once out is empty
        self.done = False  # the end of src's stream was passed on to dst
        self.reading = False
        self.writing = False
        self.timer: asyncio.TimerHandle | None = None


class _Connection:
    """A client's connection and the relay's connection to the target on its behalf."""

    __slots__ = ("client", "closed", "connected", "down", "up", "upstream")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.connected = False
        self.closed = False
        self.up = _Pipe(self, client, upstream)
        self.down = _Pipe(self, upstream, client)


class Relay:
    """A TCP relay from a local port to `target`, running in its own thread.

    The methods without a leading underscore are safe to call from any thread; the others
    run on the relay's thread only.
    """

    def __init__(self, *, family: int, address: tuple[Any, ...]) -> None:
        self._listener: socket.socket | None = _listening_socket(family, address)
        self._listener.listen(128)
        self._loop = asyncio.new_event_loop()
        self._listening = True
        self._bound: tuple[Any, ...] = self._listener.getsockname()
        self._family = family
        self._target: tuple[Any, ...] = ()
        self._target_family = family
        self._connections: set[_Connection] = set()
        self.mode: Mode = "healthy"
        self.latency = 0.0
        self.accepted = 0
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def port(self) -> int:
        port: int = self._bound[1]
        return port

    @property
    def connections(self) -> int:
        return len(self._connections)

    def start(self, target_family: int, target: tuple[Any, ...]) -> None:
        """Start relaying to `target` (a resolved socket address) on a daemon thread."""
        self._target_family = target_family
        self._target = target
        assert self._listener is not None
        self._loop.add_reader(self._listener, self._on_accept)
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"aiomq-fault-proxy-{self.port}", daemon=True
        )
        self._thread.start()

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the relay's thread and return its result once it has run."""
        if threading.current_thread() is self._thread:
            return fn()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result(timeout=_COMMAND_TIMEOUT)

    def stop(self) -> None:
        """Reset every connection, close every socket and end the thread. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._loop.call_soon_threadsafe(self._shut_down)
            thread.join(_STOP_TIMEOUT)
        else:
            self._shut_down()
        if not self._loop.is_running():
            self._loop.close()

    # -- faults (relay thread) ----------------------------------------------------------

    def set_mode(self, mode: Mode) -> None:
        """Switch to `mode`; when this returns, the change has fully taken effect."""
        if mode == "cut":
            for conn in list(self._connections):
                self._drop(conn, reset=True)
            self._refuse()
        elif self.mode == "cut":
            self._listen()
        self.mode = mode
        for conn in list(self._connections):
            # Healing releases what a blackhole held; a blackhole stops all reading.
            self._pump(conn.up)
            self._pump(conn.down)

    def _refuse(self) -> None:
        """Stop accepting so that connection attempts are refused, keeping the port."""
        if not self._listening or self._listener is None:
            return
        try:
            holder = _listening_socket(self._family, self._bound)
        except OSError:
            # The port cannot be held without listening (no SO_REUSEPORT here): keep the
            # listener, and _on_accept resets every connection it accepts while cut.
            return
        self._loop.remove_reader(self._listener)
        self._listener.close()
        self._listener = holder
        self._listening = False

    def _listen(self) -> None:
        if self._listening or self._listener is None:
            return
        self._listener.listen(128)
        self._listening = True
        self._loop.add_reader(self._listener, self._on_accept)

    def _shut_down(self) -> None:
        for conn in list(self._connections):
            self._drop(conn, reset=True)
        if self._listener is not None:
            if self._listening:
                self._loop.remove_reader(self._listener)
            self._listener.close()
            self._listener = None
        self._loop.stop()

    # -- relaying (relay thread) --------------------------------------------------------

    def _on_accept(self) -> None:
        assert self._listener is not None
        for _ in range(_ACCEPT_BATCH):
            try:
                client, _peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # Out of descriptors, say: the next readiness event tries again.
                return
            if self.mode == "cut":
                _reset(client)
                continue
            self._open(_tuned(client))

    def _open(self, client: socket.socket) -> None:
        try:
            upstream = _tuned(socket.socket(self._target_family, socket.SOCK_STREAM))
        except OSError:
            _reset(client)
            return
        conn = _Connection(client, upstream)
        self._connections.add(conn)
        self.accepted += 1
        code = upstream.connect_ex(self._target)
        if code == 0:
            self._on_connected(conn)
        elif code in _CONNECT_PENDING:
            self._loop.add_writer(upstream, self._on_connected, conn)
            self._refresh(conn)
        else:
            self._drop(conn, reset=True)

    def _on_connected(self, conn: _Connection) -> None:
        self._loop.remove_writer(conn.upstream)
        if conn.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            # The target refused or is unreachable: the client sees a reset, as it would
            # connecting to the target itself.
            self._drop(conn, reset=True)
            return
        conn.connected = True
        self._pump(conn.up)
        self._pump(conn.down)

    def _on_readable(self, pipe: _Pipe) -> None:
        try:
            data = pipe.src.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # A reset on one side is passed on to the other, as a path would carry it.
            self._drop(pipe.conn, reset=True)
            return
        pipe.queue.append((self._loop.time() + self.latency, data))
        pipe.held += len(data)
        pipe.eof = not data
        self._pump(pipe)

    def _on_writable(self, pipe: _Pipe) -> None:
        if self._flush(pipe):
            self._refresh(pipe.conn)

    def _pump(self, pipe: _Pipe) -> None:
        """Forward the chunks of `pipe` that are due, and arrange to forward the rest."""
        if pipe.timer is not None:
            pipe.timer.cancel()
            pipe.timer = None
        conn = pipe.conn
        if conn.closed:
            return
        if conn.connected and self.mode == "healthy":
            now = self._loop.time()
            while pipe.queue and pipe.queue[0][0] <= now:
                data = pipe.queue.popleft()[1]
                pipe.out += data
                if not data:
                    pipe.ending = True
            if (pipe.out or pipe.ending) and not self._flush(pipe):
                return
            if pipe.queue:
                pipe.timer = self._loop.call_at(pipe.queue[0][0], self._pump, pipe)
        self._refresh(conn)

    def _flush(self, pipe: _Pipe) -> bool:
        """Write what is due on `pipe`; tell whether its connection is still open."""
        conn = pipe.conn
        if pipe.out:
            try:
                sent = pipe.dst.send(pipe.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(conn, reset=True)
                return False
            del pipe.out[:sent]
            pipe.held -= sent
        if pipe.ending and not pipe.out:
            pipe.ending = False
            pipe.done = True
            with contextlib.suppress(OSError):
                pipe.dst.shutdown(socket.SHUT_WR)
            if conn.up.done and conn.down.done:
                # Both sides have ended their streams and everything was passed on.
                self._drop(conn, reset=False)
                return False
        return True

    def _refresh(self, conn: _Connection) -> None:
        """Watch each socket for exactly the events its pipes can act on now."""
        if conn.closed:
            return
        flowing = self.mode == "healthy"
        for pipe in (conn.up, conn.down):
            want_read = (
                flowing
                and not pipe.eof
                and pipe.held < _MAX_HELD
                and (conn.connected or pipe is conn.up)
            )
            if want_read != pipe.reading:
                if want_read:
                    self._loop.add_reader(pipe.src, self._on_readable, pipe)
                else:
                    self._loop.remove_reader(pipe.src)
                pipe.reading = want_read
            # Until the target accepts, the target's socket is watched for the connection.
            want_write = conn.connected and flowing and bool(pipe.out)
            if want_write != pipe.writing:
                if want_write:
                    self._loop.add_writer(pipe.dst, self._on_writable, pipe)
                else:
                    self._loop.remove_writer(pipe.dst)
                pipe.writing = want_write

    def _drop(self, conn: _Connection, *, reset: bool) -> None:
        """Close both sockets of `conn`, with a reset or an orderly close."""
        if conn.closed:
            return
        conn.closed = True
        self._connections.discard(conn)
        for pipe in (conn.up, conn.down):
            if pipe.timer is not None:
                pipe.timer.cancel()
        for sock in (conn.client, conn.upstream):
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
            if reset:
                _reset(sock)
            else:
                sock.close()
