"""A consumer group with a commit-interval flusher and a graceful shutdown on SIGINT/SIGTERM.

Shows: read_message (which commits what it returns) with commit_interval=1.0, so commits are
stashed and flushed once a second; a signal handler that ends the loop; and aclose()
flushing the last commits on the way out.
Run: python examples/group_commit_interval.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an
embedded broker; stops by itself after 200 messages, or on Ctrl-C)
"""

from __future__ import annotations

import asyncio
import signal
import uuid

import aiomq
from aiomq.testing import env_or_embedded_broker


async def main() -> None:
    run = uuid.uuid4().hex[:8]
    topic, group = f"example-events-{run}", f"example-indexer-{run}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with env_or_embedded_broker() as brokers:
        async with aiomq.Writer(brokers=brokers, topic=topic, allow_auto_topic_creation=True) as w:
            await w.write_messages(*(aiomq.Message(value=b"event %d" % i) for i in range(200)))

        settings = {"brokers": brokers, "topic": topic, "group_id": group}
        quick_join = {"session_timeout": 2.0, "heartbeat_interval": 0.5}
        handled = 0
        async with aiomq.Reader(**settings, **quick_join, commit_interval=1.0) as r:
            while handled < 200 and not stop.is_set():
                read = asyncio.ensure_future(r.read_message())
                stopped = asyncio.ensure_future(stop.wait())
                await asyncio.wait((read, stopped), return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                if not read.done():
                    read.cancel()  # a cancelled read takes no message
                    break
                read.result()
                handled += 1
        # Leaving the block flushed the stash: the group's offsets cover every handled message.
        print(f"handled {handled} messages; commits flushed on close")

        async with aiomq.Reader(**settings, **quick_join) as r:
            try:
                async with asyncio.timeout(5):
                    m = await r.fetch_message()
                    print(
                        f"a new member would resume at offset {m.offset} of partition {m.partition}"
                    )
            except TimeoutError:
                print("a new member finds nothing left to read")


if __name__ == "__main__":
    asyncio.run(main())
