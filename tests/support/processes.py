"""Helpers to observe operating-system processes from tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def process_alive(pid: int) -> bool:
    """Tell whether `pid` is a running process (a zombie awaiting its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        # The state letter follows the parenthesised command name.
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return not stat.parent.exists() and False
    return state not in ("Z", "X")


def wait_until_gone(pid: int, timeout: float = 10.0) -> bool:
    """Poll until `pid` is gone or `timeout` seconds pass; tell whether it is gone."""
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@contextlib.asynccontextmanager
async def child_module(module: str, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run `python -m module args...` from the repository root, its stdout piped to the test
    (its stderr, its logs, is the test's own, so pytest shows it when the test fails).

    The caller reads its stdout and kills it; whatever is left running is killed on exit.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def kill_hard(process: asyncio.subprocess.Process) -> None:
    """Kill with SIGKILL, which no clean-up code survives, and reap it."""
    process.send_signal(signal.SIGKILL)
    await process.wait()
    assert process.returncode == -signal.SIGKILL
