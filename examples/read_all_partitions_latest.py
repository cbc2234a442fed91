"""Follow every partition of a topic from its newest offset, without a consumer group.

Shows: one single-partition Reader per partition (found with the admin Client), each
starting at start_offset=aiomq.LAST_OFFSET, so it reads only what is written after it took
its position, whatever the topic held before; the readers run as tasks feeding one queue,
while a producer keeps writing, as on a live topic.
Run: python examples/read_all_partitions_latest.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an
embedded broker; stops by itself after 6 new messages)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid

import aiomq
from aiomq.testing import env_or_embedded_broker

PARTITIONS = 3
WANTED = 6


async def follow(reader: aiomq.Reader, queue: asyncio.Queue[aiomq.Message]) -> None:
    """Hand every message of one partition to the queue, until cancelled."""
    while True:
        await queue.put(await reader.fetch_message())


async def keep_writing(w: aiomq.Writer, partitions: list[int]) -> None:
    """Write one new message to each partition ten times a second, until cancelled."""
    for i in itertools.count():
        for p in partitions:
            await w.write_messages(aiomq.Message(value=b"new %d-%d" % (p, i), partition=p))
        await asyncio.sleep(0.1)


async def main() -> None:
    topic = f"example-ticks-{uuid.uuid4().hex[:8]}"
    async with env_or_embedded_broker() as brokers:
        async with aiomq.Client(brokers=brokers) as client:
            await client.create_topics(
                aiomq.TopicSpec(name=topic, partitions=PARTITIONS, replication_factor=1)
            )
            [info] = await client.describe_topics(topic)
        partitions = [p.partition for p in info.partitions]

        async with aiomq.Writer(brokers=brokers, topic=topic) as w:
            # History the readers must skip. One message per call: the embedded broker
            # reports the end of a partition too low when a batch holds several records.
            for p in partitions:
                for i in range(3):
                    await w.write_messages(aiomq.Message(value=b"old %d-%d" % (p, i), partition=p))

            async with contextlib.AsyncExitStack() as stack:
                queue: asyncio.Queue[aiomq.Message] = asyncio.Queue()
                tasks = []
                for p in partitions:
                    reader = aiomq.Reader(
                        brokers=brokers,
                        topic=topic,
                        partition=p,
                        start_offset=aiomq.LAST_OFFSET,  # only what is written from now on
                    )
                    await stack.enter_async_context(reader)
                    tasks.append(asyncio.create_task(follow(reader, queue)))
                tasks.append(asyncio.create_task(keep_writing(w, partitions)))

                read: list[aiomq.Message] = []
                async with asyncio.timeout(30):
                    while len(read) < WANTED:
                        m = await queue.get()
                        print(f"partition {m.partition} offset {m.offset}: {m.value!r}")
                        read.append(m)
                for task in tasks:
                    task.cancel()  # a cancelled fetch takes no message
                await asyncio.gather(*tasks, return_exceptions=True)

        old = sum(1 for m in read if m.value is not None and m.value.startswith(b"old"))
        print(f"read {len(read) - old} new messages, {old} old")


if __name__ == "__main__":
    asyncio.run(main())
