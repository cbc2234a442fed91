"""Show the embedded broker passing over batches when producers append to one partition
at once, with aiokafka alone (no aiomq client involved).

Three aiokafka producers write batches of 1 to 19 records to partition 0 of one topic
while an aiokafka consumer tails it, noting every jump in the offsets it is given. Then
the consumer reads each jump's offsets again: if the log holds them, the broker served a
fetch without them.

    .venv/bin/python -m tests.support.broker_gap [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from aiomq.testing import EmbeddedBroker

_TOPIC = "gap"
_PRODUCERS = 3


async def _produce(servers: str, number: int, stop: asyncio.Event, rng: random.Random) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=False)
    await producer.start()
    sent = 0
    try:
        while not stop.is_set():
            batch = [
                await producer.send(_TOPIC, b"%d:%d" % (number, sent + i), partition=0)
                for i in range(rng.randrange(1, 20))
            ]
            await asyncio.gather(*batch)
            sent += len(batch)
    finally:
        await producer.stop()
    return sent


async def main(seconds: float) -> None:
    rng = random.Random()
    tp = TopicPartition(_TOPIC, 0)
    async with EmbeddedBroker() as broker:
        servers = broker.bootstrap_servers
        consumer = AIOKafkaConsumer(
            bootstrap_servers=servers, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            stop = asyncio.Event()
            producers = [
                asyncio.create_task(_produce(servers, n, stop, rng)) for n in range(_PRODUCERS)
            ]
            jumps: list[tuple[int, int]] = []
            expected = read = 0
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while loop.time() < end:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        if record.offset != expected:
                            jumps.append((expected, record.offset))
                        expected = record.offset + 1
                        read += 1
            stop.set()
            sent = sum(await asyncio.gather(*producers))
            print(f"{sent:,} records written, {read:,} read while tailing, {len(jumps)} jumps")
            for start, resumed in jumps:
                consumer.seek(tp, start)
                again = await consumer.getmany(tp, timeout_ms=2000, max_records=resumed - start)
                offsets = [r.offset for r in again.get(tp, [])]
                held = offsets == list(range(start, resumed))
                print(
                    f"  passed over {start}..{resumed - 1}; read again: "
                    f"{'all there' if held else offsets}"
                )
        finally:
            await consumer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to write")
    asyncio.run(main(parser.parse_args().seconds))
