"""Every program in examples/ runs against a real broker and prints what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.brokers import external_bootstrap
from tests.support.tls import TLSBroker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# What each example must print (regular expressions, each matched somewhere in stdout).
EXPECTED: dict[str, list[str]] = {
    "admin_topics.py": [
        r"created 2 topics",
        r"created again: 0 topics",
        r"example-orders: 3 partitions, replication factor 1, leaders \[\d+",
        r"example-audit: 1 partition, replication factor 1",
        r"retention\.ms = 3600000",
        r"end offsets: \{0: 1, 1: 0, 2: 0\}",
        r"after delete, still listed: False",
    ],
    "quickstart.py": [
        r"wrote   b'alice'",
        r"committed 3 messages",
        r"done: 5 written, 5 read once each",
    ],
    "read_partition.py": [
        r"offset 6: b'reading 6' \(next 7, lag 3\)",
        r"offset 9: b'reading 9' \(next 10, lag 0\)",
    ],
    "sasl.py": [
        # Against the embedded broker's SASL front, or the listener the environment names.
        r"authenticated as \w+; wrote offset 0, read back b'authenticated'",
        r"a wrong password is refused: broker \S+ refused SASL SCRAM-SHA-512 authentication "
        r"as user '\w+' \(SaslAuthenticationFailed\)",
    ],
    "read_time_range.py": [
        r"12:03 offset 3: b'entry 3'",
        r"12:05 offset 5: b'entry 5'",
    ],
    "group_commit_interval.py": [
        r"handled 200 messages; commits flushed on close",
        r"a new member finds nothing left to read",
    ],
    "dead_letter.py": [
        r"handled totals \[12, 7\]",
        r"the bad order was tried 3 times",
        r"dead letter: b'\{\"id\": 2, \"total\": '",
        r"from example-orders-\w+\[0\]@1 after 3 attempts",
        r"error: json\.decoder\.JSONDecodeError: Expecting value",
        r"committed offset 3: the bad order does not block the others",
    ],
    "process_concurrently.py": [
        r"wrote 400 payments for 16 accounts",
        r"handled 400 payments in \d+\.\d s",
        r"each account's payments in the order written: True",
        r"committed offsets add up to 400",
    ],
    "prometheus_metrics.py": [
        r"serving metrics on http://127\.0\.0\.1:\d+/metrics",
        r'aiomq_messages_written_total\{client_id="example-writer",object="writer-\d+"\} 100\.0',
        r'aiomq_messages_read_total\{client_id="example-reader",group="example-billing-\w+",'
        r'object="reader-\d+"\} 100\.0',
        r'aiomq_consumer_lag\{[^}]*partition="0"[^}]*\} 0\.0',
        r'aiomq_consumer_lag\{[^}]*partition="1"[^}]*\} 0\.0',
        r"aiomq_processing_finished_total\{[^}]*\} 100\.0",
        r"handled 100 messages",
        r"after closing: 0 aiomq samples",
    ],
    "group_handler.py": [
        r"generation 1: claimed 4 partitions",
        r"cleanup: marks committed",
        r"total 400",
    ],
    "read_all_partitions_latest.py": [
        r"partition \d+ offset \d+: b'new \d+-\d+'",
        r"read 6 new messages, 0 old",
    ],
    "group_broadcast.py": [
        r"group billing: read 50 of 50 messages",
        r"group shipping: read 50 of 50 messages",
        r"both groups got every message once: True",
    ],
    "group_shared.py": [
        r"member a: partitions \[\d+(, \d+)*\], read \d+ messages",
        r"member b: partitions \[\d+(, \d+)*\], read \d+ messages",
        r"together: 100 of 100 messages, each read once: True",
        r"assignments cover all 4 partitions with no overlap: True",
    ],
    "compression.py": [
        rf"{codec}: wrote 100 messages in \d+ batch\(es\) of \d+ bytes on average; "
        r"read back intact: True"
        for codec in ("none", "GZIP", "SNAPPY", "LZ4", "ZSTD")
    ],
    "reader_outage.py": [
        r"read b'before the outage'",
        r"network cut",
        r"the read gave up after \d+ s: BrokerConnectionError",
        r"failed attempts counted in stats\(\): True",
        r"read b'after the outage', same reader, no restart",
    ],
    "transactions.py": [
        r"open transaction: a READ_COMMITTED reader sees nothing yet",
        r"transaction 1 committed: alice's payment and ledger entry",
        r"transaction 2 aborted: bob: 25000 cents is over the limit",
        r"transaction 3 committed: example-payments-\w+@4, example-ledger-\w+@4",
        # The aborted messages show only on a broker that does not hide them.
        r"reader of example-payments-\w+: b'paid 1250', (b'paid 25000', )?b'paid 800'\n",
        r"reader of example-ledger-\w+: b'debit 1250', (b'debit 25000', )?b'debit 800'\n",
    ],
    "transform_exactly_once.py": [
        r"seeded 8 orders on 3 partitions",
        r"downstream read 10 items",
        r"transform returned TransformStats\(batches=\d+, messages_read=8, "
        r"messages_written=10, batches_dropped=0\)",
        # The group's committed offset of each partition is the number of orders there.
        r"committed example-orders-\w+\[0\] at (\d+) \(orders seeded there: \1\)",
        r"committed example-orders-\w+\[1\] at (\d+) \(orders seeded there: \1\)",
        r"committed example-orders-\w+\[2\] at (\d+) \(orders seeded there: \1\)",
    ],
    "tracing.py": [
        r"the message carries traceparent 00-[0-9a-f]{32}-[0-9a-f]{16}-0\d",
        r"3 spans in 1 trace\(s\):",
        r"send example-orders-\w+ \[producer\] offset=0 status=UNSET\n"
        r"  process example-orders-\w+ \[consumer\] offset=0 status=ERROR\n"
        r"  process example-orders-\w+ \[consumer\] offset=0 status=UNSET",
    ],
    "write_sync.py": [
        r"wrote key=b'order-1' to partition \d+ at offset \d+",
        r"wrote key=b'order-2' to partition \d+ at offset \d+",
    ],
    "write_async.py": [r"delivered 10000, failed 0, in \d+ batches"],
    "write_keyed.py": [
        r"alice: partition \d+, offsets in order: True",
        r"bob: partition \d+, offsets in order: True",
        r"carol: partition \d+, offsets in order: True",
    ],
    "write_multi_topic.py": [
        r"example-invoices: partition \d+, offset \d+",
        r"example-audit: partition \d+, offset \d+",
    ],
}


# Examples that need a special broker; each has its own test below.
SPECIAL = {"tls.py"}


def test_every_example_is_checked() -> None:
    on_disk = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert on_disk == set(EXPECTED) | SPECIAL


def run_example(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_against_the_broker_and_prints_its_results(
    name: str, bootstrap_servers: str
) -> None:
    result = run_example(name, {"AIOMQ_BOOTSTRAP_SERVERS": bootstrap_servers})
    assert result.returncode == 0, result.stderr
    for pattern in EXPECTED[name]:
        assert re.search(pattern, result.stdout), (pattern, result.stdout)
    if name == "read_time_range.py":
        # Exactly the three messages of the range, whatever the broker's timestamp look-up.
        assert len(re.findall(r"^\d\d:\d\d offset", result.stdout, re.MULTILINE)) == 3
    if name == "transactions.py" and external_bootstrap() is not None:
        # Only Apache Kafka hides aborted records; the embedded broker shows them.
        assert "no message of the aborted transaction" in result.stdout, result.stdout
        assert "this broker shows aborted records" not in result.stdout, result.stdout
    if name == "read_all_partitions_latest.py":
        # Only messages written after the readers took their positions.
        assert "b'old" not in result.stdout, result.stdout


def test_example_runs_stand_alone_with_its_own_embedded_broker() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIOMQ_BOOTSTRAP_SERVERS"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "write_sync.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote key=b'order-1'" in result.stdout


def test_tls_example_runs_against_the_broker_behind_tls(tls_broker: TLSBroker) -> None:
    result = run_example(
        "tls.py",
        {
            "AIOMQ_BOOTSTRAP_SERVERS": tls_broker.bootstrap_servers,
            "AIOMQ_TLS_CA_FILE": str(tls_broker.ca_file),
        },
    )
    assert result.returncode == 0, result.stderr
    assert "read back b'sent over TLS' over TLS" in result.stdout
