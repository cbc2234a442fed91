"""aiokafka's cluster client, behind the operations the Writer and the admin Client need.

`KafkaClient` owns one `AIOKafkaClient`: its connections, one per broker, and its view of
the cluster's metadata, refreshed in the background. Build it inside the running event
loop, as aiokafka binds to the loop it is built in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from aiokafka.client import AIOKafkaClient

from aiomq._internal.kafka.connect import connection_options, open_client
from aiomq._internal.kafka.errors import map_errors
from aiomq._internal.kafka.metadata import ask_any_broker, topic_partitions
from aiomq._internal.kafka.produce import init_producer_id, send_batch
from aiomq._internal.kafka.requests import KafkaRequest
from aiomq.dialer import Dialer
from aiomq.errors import Error

__all__ = ["KafkaClient"]

T = TypeVar("T")


class KafkaClient:
    """A connection to a Kafka cluster, for writing or administering it.

    Args:
        brokers: The bootstrap addresses, as `host:port` strings.
        client_id: The client id sent to brokers.
        dialer: TLS and SASL settings, or None for plaintext.
        request_timeout: Seconds to wait for the answer to one request.
        metadata_max_age: Seconds after which the cluster's metadata is read again.
    """

    __slots__ = ("_client", "_dialer", "brokers")

    def __init__(
        self,
        *,
        brokers: Sequence[str],
        client_id: str,
        dialer: Dialer | None,
        request_timeout: float,
        metadata_max_age: float,
    ) -> None:
        self.brokers = tuple(brokers)
        self._dialer = dialer
        self._client = AIOKafkaClient(
            bootstrap_servers=list(brokers),
            client_id=client_id,
            **connection_options(dialer),
            request_timeout_ms=int(request_timeout * 1000),
            metadata_max_age_ms=int(metadata_max_age * 1000),
        )

    async def start(self) -> None:
        """Connect to the cluster and read its metadata, within the dialer's timeout.

        Raises:
            TLSError, AuthenticationError, BrokerConnectionError: The cluster could not be
                reached; the message names the broker and the reason.
        """
        with map_errors(brokers=self.brokers):
            await open_client(self._client.bootstrap, self.brokers, self._dialer)

    async def close(self) -> None:
        """Close every connection and end the metadata refresh."""
        await self._client.close()

    async def topic_partitions(
        self,
        topic: str,
        *,
        allow_create: bool,
        timeout: float,  # noqa: ASYNC109 - see metadata.topic_partitions
    ) -> tuple[int, ...]:
        """The partition ids of `topic`, in ascending order (see
        `aiomq._internal.kafka.metadata.topic_partitions`)."""
        return await topic_partitions(
            self._client, topic, allow_create=allow_create, brokers=self.brokers, timeout=timeout
        )

    async def follow(self, topic: str, deadline: float) -> None:
        """Keep the leaders of `topic`'s partitions in the cluster metadata from now on.

        Waits for the metadata to include them until `deadline` (event loop time) at most:
        without them, the first batch to the topic looks its leader up again.
        """
        client = self._client
        if topic in client._topics:
            return
        with suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await client.add_topic(topic)

    def refresh_metadata(self) -> Awaitable[object]:
        """Read the cluster's metadata again, in the background; await it to wait for it."""
        refreshed: Awaitable[object] = self._client.force_metadata_update()
        return refreshed

    async def send_batch(
        self,
        topic: str,
        partition: int,
        data: bytearray,
        *,
        acks: int,
        timeout_ms: int,
        transactional_id: str | None = None,
    ) -> tuple[int, int] | Error:
        """Send an encoded batch to the partition's leader once (see
        `aiomq._internal.kafka.produce.send_batch`)."""
        return await send_batch(
            self._client,
            topic,
            partition,
            data,
            acks=acks,
            timeout_ms=timeout_ms,
            brokers=self.brokers,
            transactional_id=transactional_id,
        )

    async def init_producer_id(self) -> tuple[int, int]:
        """Ask the cluster for an idempotent producer's id and epoch.

        Raises:
            BrokerConnectionError: No broker is known, or none could be reached.
            BrokerError: The broker refused.
        """
        return await init_producer_id(self._client, self.brokers)

    async def send(self, node: int, request: KafkaRequest) -> Any:
        """Send `request` to one broker, by node id, and return its decoded answer.

        aiokafka's exceptions pass through unmapped, for the caller to map with what it
        knows of the request.

        Raises:
            IncompatibleBrokerVersion, NotImplementedError: The broker and aiokafka know no
                version of the request in common.
            NodeNotReadyError, KafkaConnectionError: The broker cannot be reached.
        """
        return await self._client.send(node, request)

    async def ask_any_broker(
        self,
        send: Callable[[int], Awaitable[T]],
        *,
        skip: Callable[[Exception], bool],
        none_known: Callable[[], Exception] | None = None,
    ) -> T:
        """Call `send(node)` for one known broker after another, in random order, until one
        answers (see `aiomq._internal.kafka.metadata.ask_any_broker`)."""
        return await ask_any_broker(self._client, send, skip=skip, none_known=none_known)
