"""A group member killed mid-stream: the next member resumes at its last commit, losing nothing.

The member runs in a subprocess (`tests/support/crash_reader.py`) that processes one
message at a time, printing its offset, and commits it afterwards; the test kills it with
SIGKILL, which no clean-up code survives.
"""

from __future__ import annotations

import asyncio

from aiokafka.structs import TopicPartition

from tests.integration.test_reader import (
    DEADLINE,
    committed_offsets,
    create_topic,
    group_reader,
    values,
    write,
)
from tests.support.processes import child_module, kill_hard

TOTAL = 400
KILL_AFTER = 120


async def run_and_kill(bootstrap_servers: str, topic: str, group_id: str) -> list[int]:
    """Start the crash reader, kill it once it has processed KILL_AFTER messages, and
    return every offset it processed, in order.

    Its stderr (its logs) is the test's, so pytest shows it when the test fails.
    """
    processed: list[int] = []
    async with child_module(
        "tests.support.crash_reader", bootstrap_servers, topic, group_id
    ) as process:
        assert process.stdout is not None
        async with asyncio.timeout(DEADLINE):
            while len(processed) < KILL_AFTER:
                line = await process.stdout.readline()
                assert line, "the crash reader stopped by itself; its stderr says why"
                processed.append(int(line))
        await kill_hard(process)
        # What it printed before the signal landed is processed too.
        async with asyncio.timeout(DEADLINE):
            processed += [int(line) for line in (await process.stdout.read()).split()]
    return processed


async def test_a_member_killed_mid_stream_is_resumed_at_its_last_commit_losing_nothing(
    bootstrap_servers: str, topic: str
) -> None:
    await create_topic(bootstrap_servers, topic, 1)
    await write(bootstrap_servers, topic, values("v", TOTAL))
    group_id = f"g-{topic}"
    processed = await run_and_kill(bootstrap_servers, topic, group_id)
    tp = TopicPartition(topic, 0)
    committed = (await committed_offsets(bootstrap_servers, group_id, [tp]))[tp]
    resumed: list[int] = []
    async with group_reader(bootstrap_servers, topic, group_id) as reader:
        async with asyncio.timeout(DEADLINE):
            while not resumed or resumed[-1] < TOTAL - 1:
                resumed.append((await reader.fetch_message()).offset)

    assert processed == list(range(len(processed)))
    assert KILL_AFTER <= len(processed) < TOTAL, "the kill did not land mid-stream"
    # Each message is committed after it is processed: only the last one processed may
    # have been killed before its commit.
    assert committed in (len(processed) - 1, len(processed))
    assert resumed[0] == committed
    assert resumed == list(range(committed, TOTAL))
    assert set(processed) | set(resumed) == set(range(TOTAL))
    assert set(processed) & set(resumed) == {o for o in processed if o >= committed}
