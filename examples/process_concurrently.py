"""Concurrent processing: many handlers at once, each key's messages in order.

Shows: Reader.process with a handler that awaits I/O (a simulated call of 20 ms), 32
handlers at once across 16 keys, order kept per key, the ProcessingStats while it runs,
and the committed offsets once the reader closes.
Run: python examples/process_concurrently.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an
embedded broker; stops by itself once every message is handled)
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict

import structlog

import aiomq
from aiomq.testing import env_or_embedded_broker

ACCOUNTS = 16
MESSAGES = 400
CALL_SECONDS = 0.02


async def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    run = uuid.uuid4().hex[:8]
    topic, group = f"example-payments-{run}", f"example-payer-{run}"
    async with env_or_embedded_broker() as brokers:
        async with aiomq.Client(brokers=brokers) as admin:
            await admin.create_topics(aiomq.TopicSpec(name=topic, partitions=4))
        async with aiomq.Writer(brokers=brokers, topic=topic) as writer:
            await writer.write_messages(
                *(
                    aiomq.Message(key=f"account-{i % ACCOUNTS}".encode(), value=str(i).encode())
                    for i in range(MESSAGES)
                )
            )
        print(f"wrote {MESSAGES} payments for {ACCOUNTS} accounts")

        seen: dict[bytes | None, list[int]] = defaultdict(list)
        handled = asyncio.Event()

        async def pay(message: aiomq.Message) -> None:
            await asyncio.sleep(CALL_SECONDS)  # the payment provider's answer
            seen[message.key].append(int(message.value or b"0"))
            if sum(map(len, seen.values())) == MESSAGES:
                handled.set()

        # Short group timings so that the example's group forms quickly.
        async with aiomq.Reader(
            brokers=brokers,
            topic=topic,
            group_id=group,
            session_timeout=1.0,
            heartbeat_interval=0.25,
            max_wait=0.1,
        ) as reader:
            started = time.monotonic()
            processing = asyncio.create_task(reader.process(pay, concurrency=32))
            await asyncio.wait_for(handled.wait(), timeout=60)
            elapsed = time.monotonic() - started
            stats = reader.stats().processing
            assert stats is not None
            print(f"handled {stats.finished} payments in {elapsed:.1f} s")
            print(f"one at a time it would take {MESSAGES * CALL_SECONDS:.0f} s at least")
        # Closing the reader ends process(), after a last commit.
        await processing
        in_order = all(values == sorted(values) for values in seen.values())
        print(f"each account's payments in the order written: {in_order}")
        async with aiomq.Client(brokers=brokers) as admin:
            offsets = await admin.group_offsets(group, topics=[topic])
        print(f"committed offsets add up to {sum(o.committed for o in offsets)}")


if __name__ == "__main__":
    asyncio.run(main())
