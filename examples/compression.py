"""Compress record batches with each codec, and read them back.

Shows: WriterConfig.compression with every aiomq.Compression codec, the ConfigError a codec
raises when its library is missing (Snappy, LZ4 and Zstandard need
`pip install 'aiomq[compression]'`; gzip needs nothing), writer.stats() with the messages,
batches and encoded batch size, and a Reader decompressing whatever it receives.
Run: python examples/compression.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded broker)
"""

from __future__ import annotations

import asyncio
import uuid

import aiomq
from aiomq.testing import env_or_embedded_broker

COUNT = 100


async def round_trip(brokers: list[str], codec: aiomq.Compression | None) -> None:
    """Write COUNT messages with `codec`, read them back and say how it went."""
    name = "none" if codec is None else codec.name
    topic = f"example-compressed-{name.lower()}-{uuid.uuid4().hex[:8]}"
    try:
        writer = aiomq.Writer(
            brokers=brokers, topic=topic, compression=codec, allow_auto_topic_creation=True
        )
    except aiomq.ConfigError as exc:
        print(f"{name}: not available ({exc})")
        return
    values = [b"order %d: 2 x espresso, 1 x croissant, table 7" % i for i in range(COUNT)]
    async with writer as w:
        # One partition, so that a single-partition reader sees every message.
        await w.write_messages(*(aiomq.Message(value=v, partition=0) for v in values))
    stats = w.stats()
    async with aiomq.Reader(brokers=brokers, topic=topic, partition=0) as r:
        async with asyncio.timeout(30):
            read = [(await r.fetch_message()).value for _ in range(COUNT)]
    print(
        f"{name}: wrote {stats.messages} messages in {stats.batches} batch(es) of "
        f"{stats.batch_bytes_avg:.0f} bytes on average; read back intact: {read == values}"
    )


async def main() -> None:
    async with env_or_embedded_broker() as brokers:
        for codec in (None, *aiomq.Compression):
            await round_trip(brokers, codec)


if __name__ == "__main__":
    asyncio.run(main())
