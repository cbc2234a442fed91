"""Small internal mechanisms: backoff and shielded clean-up."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from aiomq._internal.backoff import backoff_delay
from aiomq._internal.producer.planner import Chunk, WriteCall, payload_bytes
from aiomq._internal.shield import finish_shielded
from aiomq.message import Message


def test_backoff_doubles_from_the_minimum_and_stops_at_the_maximum() -> None:
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (30, 1.0)]:
        delays = [backoff_delay(attempt, 0.1, 1.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), attempt


async def test_shielded_clean_up_finishes_although_the_caller_is_cancelled() -> None:
    finished = asyncio.Event()
    gate = asyncio.Event()

    async def clean_up() -> str:
        await gate.wait()
        finished.set()
        return "done"

    async def caller() -> None:
        await finish_shielded(clean_up())

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    assert not task.done()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()


async def test_shielded_clean_up_survives_an_anyio_cancel_scope() -> None:
    finished = asyncio.Event()

    async def clean_up() -> None:
        for _ in range(5):
            await asyncio.sleep(0.001)
        finished.set()

    with anyio.move_on_after(0) as scope:
        await finish_shielded(clean_up())
    assert scope.cancelled_caught
    assert finished.is_set()


async def test_shielded_clean_up_returns_its_result() -> None:
    async def clean_up() -> int:
        return 7

    assert await finish_shielded(clean_up()) == 7


async def test_a_chunk_splits_into_consecutive_parts_whose_bytes_add_up() -> None:
    messages = [
        Message(key=b"k%d" % i, value=b"v" * i, headers=[("h", b"x")] if i % 4 == 0 else ())
        for i in range(10)
    ]
    call = WriteCall(20, asyncio.get_running_loop())
    chunk = Chunk(list(messages), call, list(range(10, 20)), 0.0, False, payload_bytes(messages))

    first = chunk.split(3)
    second = chunk.split(4)
    rest = chunk.whole()

    assert [part.messages for part in (first, second, rest)] == [
        messages[:3],
        messages[3:7],
        messages[7:],
    ]
    assert [list(part.indices) for part in (first, second, rest)] == [
        [10, 11, 12],
        [13, 14, 15, 16],
        [17, 18, 19],
    ]
    assert [part.nbytes for part in (first, second, rest)] == [
        payload_bytes(messages[:3]),
        payload_bytes(messages[3:7]),
        payload_bytes(messages[7:]),
    ]
    assert rest.whole() is rest
