"""Whether a reader's brokers answer: how an outage becomes visible to a reader.

aiokafka's fetcher retries through an outage by itself and only logs, so a reader whose
broker is gone would just see empty fetches. `Reachability` watches for that: when a
fetch brings nothing and no fetch response has arrived for a while, it asks the brokers
the reader depends on (the leaders of its partitions and, in a group, the coordinator)
for their API versions, the smallest request there is. A failed probe is counted in the
reader's errors; the first one logs `broker_unreachable` naming the brokers, the first
answer after it logs `broker_reachable`, and with `unavailable_timeout` set, reads raise
`BrokerConnectionError` once the outage has lasted that long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition as _TP

from aiomq._internal.kafka.consumer import last_fetch_answer_ms, silent_brokers
from aiomq.errors import BrokerConnectionError

__all__ = ["Reachability"]


class Reachability:
    """Tracks whether a reader's brokers answer. One event loop's tasks may share it.

    Args:
        log: The reader's logger.
        counts: The reader's counters; failed probes add to "errors".
        brokers: The bootstrap addresses, named when no broker address is known.
        unavailable_timeout: Seconds of outage after which reads raise; None: never.
        quiet: Seconds without any fetch response before the brokers are probed, and the
            least time between two probes.
    """

    __slots__ = (
        "_brokers",
        "_counts",
        "_down_since",
        "_log",
        "_next_probe",
        "_quiet",
        "_unavailable_timeout",
        "_unreachable",
    )

    def __init__(
        self,
        *,
        log: Any,
        counts: dict[str, int],
        brokers: Sequence[str],
        unavailable_timeout: float | None,
        quiet: float,
    ) -> None:
        self._log = log
        self._counts = counts
        self._brokers = tuple(brokers)
        self._unavailable_timeout = unavailable_timeout
        self._quiet = quiet
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._unreachable: list[str] = []

    @property
    def down(self) -> bool:
        """Whether the last probe found a broker that did not answer."""
        return self._down_since is not None

    def answered(self) -> None:
        """Note that a fetch brought records: the brokers answer."""
        if self._down_since is not None:
            self._recovered()

    def _recovered(self) -> None:
        assert self._down_since is not None
        outage = asyncio.get_running_loop().time() - self._down_since
        self._down_since = None
        self._log.info("broker_reachable", brokers=self._unreachable, outage=round(outage, 3))
        self._unreachable = []

    async def after_empty_fetch(
        self, consumer: AIOKafkaConsumer, assigned: Iterable[tuple[str, int]]
    ) -> None:
        """Probe the brokers if nothing has been heard from them for a while.

        Raises:
            BrokerConnectionError: The brokers have not answered for `unavailable_timeout`.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self._next_probe:
            self._next_probe = now + self._quiet
            tps = [_TP(topic, partition) for topic, partition in assigned]
            newest = last_fetch_answer_ms(consumer, tps)
            if newest and time.time() * 1000 - newest < self._quiet * 1000:
                self.answered()
            else:
                within = max(1.0, min(5.0, self._quiet))
                silent = await silent_brokers(consumer, tps, within)
                failed = list(self._brokers) if silent is None else silent
                now = loop.time()
                if not failed:
                    self.answered()
                else:
                    self._counts["errors"] += 1
                    if self._down_since is None:
                        self._down_since = now
                        self._unreachable = failed
                        self._log.warning("broker_unreachable", brokers=failed)
        self._check_timeout(now)

    def _check_timeout(self, now: float) -> None:
        limit = self._unavailable_timeout
        since = self._down_since
        if limit is None or since is None or now - since < limit:
            return
        raise BrokerConnectionError(
            f"the cluster has not answered for {now - since:.1f} s, longer than "
            f"unavailable_timeout ({limit:g} s)",
            brokers=self._unreachable or self._brokers,
        )
