"""`aiomq.testing.FaultProxy`: a TCP proxy in front of a Kafka broker that fails on command.

The relay itself, and why it works as it does, is in `aiomq._internal.faults`.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Self

from aiomq._internal.faults import Mode, Relay, join_address, split_address
from aiomq._internal.lifecycle import StartStopResource
from aiomq.errors import BrokerConnectionError, ClosedError, ConfigError

__all__ = ["FaultProxy"]


class FaultProxy(StartStopResource):
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

    For example:

    ```python
    async with FaultProxy(target="kafka:9092") as proxy:
        async with aiomq.Writer(brokers=[proxy.address], topic="t") as w:
            proxy.blackhole()
            ...
            proxy.heal()
    ```

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
