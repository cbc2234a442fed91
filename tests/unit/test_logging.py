"""aiomq logs through structlog without ever configuring it."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_using_aiomq_leaves_structlog_unconfigured() -> None:
    # A fresh interpreter, so that no other test's configuration can hide a call.
    code = textwrap.dedent(
        """
        import structlog
        import aiomq, aiomq.admin, aiomq.cli, aiomq.testing
        aiomq.Writer(brokers=["b:9092"], topic="t")
        aiomq.Reader(brokers=["b:9092"], topic="t", group_id="g")
        aiomq.Client(brokers=["b:9092"])
        print(structlog.is_configured())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"
