"""Transactions: messages to two topics that become visible together, or not at all.

Shows: a Writer with a transactional_id; `async with writer.transaction()` committing a
payment and its ledger entry on two topics at once; a transaction aborted by an exception
raised inside the block; a READ_COMMITTED reader that sees nothing of an open transaction;
where ProducerFencedError is handled.
Run: python examples/transactions.py  (uses $AIOMQ_BOOTSTRAP_SERVERS, else an embedded
broker)
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import structlog

import aiomq
from aiomq.testing import env_or_embedded_broker


class Declined(Exception):
    """The payment was refused after its messages were written."""


async def record_payment(
    writer: aiomq.Writer, payments: str, ledger: str, payer: bytes, cents: int
) -> list[aiomq.Message]:
    """Write a payment and its ledger entry in one transaction; return them as written."""
    async with writer.transaction():
        written = await writer.write_messages(
            aiomq.Message(topic=payments, key=payer, value=b"paid %d" % cents),
            aiomq.Message(topic=ledger, key=payer, value=b"debit %d" % cents),
        )
        if cents > 100_00:
            # Raising inside the block aborts the transaction: both messages were stored
            # by the broker, and a READ_COMMITTED reader skips them.
            raise Declined(f"{payer.decode()}: {cents} cents is over the limit")
    # Leaving the block committed both messages at once.
    return written


async def read_committed(brokers: list[str], topic: str, until: bytes) -> list[aiomq.Message]:
    """Everything a READ_COMMITTED reader returns from partition 0, up to the value `until`."""
    seen: list[aiomq.Message] = []
    async with aiomq.Reader(
        brokers=brokers,
        topic=topic,
        partition=0,
        isolation_level=aiomq.IsolationLevel.READ_COMMITTED,
        max_wait=0.1,
    ) as r:
        async with asyncio.timeout(30):
            while not seen or seen[-1].value != until:
                seen.append(await r.fetch_message())
    return seen


async def main() -> None:
    # The library logs through structlog; leave out its debug events here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    run = uuid.uuid4().hex[:8]
    payments, ledger = f"example-payments-{run}", f"example-ledger-{run}"
    async with env_or_embedded_broker() as brokers:
        async with aiomq.Client(brokers=brokers) as client:
            await client.create_topics(
                aiomq.TopicSpec(name=payments, partitions=1, replication_factor=1),
                aiomq.TopicSpec(name=ledger, partitions=1, replication_factor=1),
            )

        # The transactional id names this writer across restarts: give each running
        # instance its own, and reuse it when the instance restarts. Opening the writer
        # fences any older writer with the same id and aborts what it left open.
        async with aiomq.Writer(brokers=brokers, transactional_id=f"payments-{run}") as w:
            try:
                # 1. Committed. While the transaction is open, its messages are stored
                # but hidden from READ_COMMITTED readers.
                async with w.transaction():
                    await w.write_messages(
                        aiomq.Message(topic=payments, key=b"alice", value=b"paid 1250"),
                        aiomq.Message(topic=ledger, key=b"alice", value=b"debit 1250"),
                    )
                    async with aiomq.Reader(
                        brokers=brokers,
                        topic=payments,
                        partition=0,
                        isolation_level=aiomq.IsolationLevel.READ_COMMITTED,
                        max_wait=0.1,
                    ) as r:
                        try:
                            async with asyncio.timeout(0.5):
                                await r.fetch_message()
                            print("open transaction: a READ_COMMITTED reader sees its messages")
                        except TimeoutError:
                            print("open transaction: a READ_COMMITTED reader sees nothing yet")
                print("transaction 1 committed: alice's payment and ledger entry")

                # 2. Aborted by an exception raised inside the block.
                try:
                    await record_payment(w, payments, ledger, b"bob", 250_00)
                except Declined as exc:
                    print(f"transaction 2 aborted: {exc}")

                # 3. Committed; its messages also tell the readers below where to stop.
                last = await record_payment(w, payments, ledger, b"carol", 8_00)
                offsets = ", ".join(f"{m.topic}@{m.offset}" for m in last)
                # Offsets 1 and 3 of each topic hold the markers ending transactions 1 and 2.
                print(f"transaction 3 committed: {offsets}")
            except aiomq.ProducerFencedError:
                # A newer writer with the same transactional id has started (a second
                # instance, or this one's replacement after it looked dead): that writer
                # aborted what this one had open, and this one may not commit any more.
                # Stop working and close it; retrying with the same writer cannot succeed.
                print("fenced by a newer writer with the same transactional id; stopping")
                return
            # Other TransactionErrors say which step failed; one raised by a commit says
            # whether the transaction was aborted or its outcome is unknown.

        for topic, last_value in ((payments, b"paid 800"), (ledger, b"debit 800")):
            seen = await read_committed(brokers, topic, last_value)
            values = ", ".join(repr(m.value) for m in seen)
            print(f"READ_COMMITTED reader of {topic}: {values}")
            aborted = [m for m in seen if m.key == b"bob"]
            if aborted:
                # Apache Kafka hides them; the embedded broker does not, so this line
                # appears only there.
                print(f"  {len(aborted)} of them aborted: this broker shows aborted records")
            else:
                print("  no message of the aborted transaction")


if __name__ == "__main__":
    asyncio.run(main())
