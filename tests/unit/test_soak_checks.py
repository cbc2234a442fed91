"""The soak run's checks bite: each is shown a ledger with one broken promise in it.

The ledger here is what a small healthy run records (two keys of one writer, each
message read once and its commit confirmed); each test breaks it in one way.
"""

from __future__ import annotations

from tests.support.soak_ledger import CONFIRMED, FAILED, Ledger, Sent, check, encode


def healthy() -> Ledger:
    """Writer 0 wrote seqs 1-3 of key 0 to partition 0 and seqs 1-2 of key 1 to
    partition 1, all acknowledged and read once, every commit confirmed."""
    ledger = Ledger(memory_limit=1024)
    writes = [((0, 0, 1), 0, 0), ((0, 0, 2), 0, 1), ((0, 0, 3), 0, 2)]
    writes += [((0, 1, 1), 1, 0), ((0, 1, 2), 1, 1)]
    for message_id, partition, offset in writes:
        ledger.sent[message_id] = Sent(
            accepted_at=1.0, settled_at=2.0, acked=True, place=(partition, offset)
        )
        read = ledger.read("r", 3.0, partition, offset, encode(message_id)[1])
        read.commit, read.confirmed_at = CONFIRMED, 3.5
    return ledger


def problems(ledger: Ledger) -> list[str]:
    return check(ledger).problems(ledger)


def test_a_healthy_ledger_has_no_problem() -> None:
    assert problems(healthy()) == []


def test_an_acknowledged_message_never_read_is_reported_lost() -> None:
    ledger = healthy()
    del ledger.placed[0, 0, 2]
    assert problems(ledger) == ["1 acknowledged message(s) never read: (0, 0, 2)"]


def test_a_failed_message_never_read_is_no_problem() -> None:
    ledger = healthy()
    ledger.sent[0, 0, 4] = Sent(accepted_at=2.0, settled_at=3.0, failed=True)
    assert problems(ledger) == []


def test_an_acknowledged_offset_holding_another_message_is_reported() -> None:
    ledger = healthy()
    ledger.sent[0, 1, 2].place = (1, 7)
    [problem] = problems(ledger)
    assert problem.startswith("1 acknowledged offset(s) holding another message")


def test_a_key_read_out_of_order_is_reported() -> None:
    ledger = healthy()
    # Seq 2 of key 0 read at offset 3, after seq 3 at offset 2.
    ledger.placed[0, 0, 2] = {(0, 3)}
    ledger.sent[0, 0, 2].place = (0, 3)
    assert problems(ledger) == [
        "1 key(s) read out of order: writer 0 key 0: seq 2 at (0, 3) before seq 3 at (0, 2)"
    ]


def test_a_duplicate_with_no_retry_in_flight_is_reported() -> None:
    ledger = healthy()
    ledger.placed[0, 1, 2].add((1, 2))
    [problem] = problems(ledger)
    assert problem.startswith("1 duplicate(s) no retry explains: (0, 1, 2) at [(1, 1), (1, 2)]")


def test_a_duplicate_with_a_retry_of_its_partition_in_flight_is_explained() -> None:
    ledger = healthy()
    ledger.placed[0, 1, 2].add((1, 2))
    ledger.retries.append((0, 1, 1.5))
    findings = check(ledger)
    assert findings.problems(ledger) == []
    assert (findings.write_duplicates, findings.write_duplicates_explained) == (1, 1)


def test_a_retry_of_another_partition_or_writer_or_time_explains_nothing() -> None:
    for writer, partition, at in [(0, 0, 1.5), (1, 1, 1.5), (0, 1, 2.5)]:
        ledger = healthy()
        ledger.placed[0, 1, 2].add((1, 2))
        ledger.retries.append((writer, partition, at))
        assert len(problems(ledger)) == 1


def test_a_re_read_after_a_confirmed_commit_is_reported() -> None:
    ledger = healthy()
    ledger.read("joiner", 4.0, 0, 1, encode((0, 0, 2))[1])
    assert problems(ledger) == [
        "1 re-read(s) after a confirmed commit: 0@1 read by joiner after r's commit of it "
        "was confirmed"
    ]


def test_a_re_read_after_a_failed_commit_is_explained_by_it() -> None:
    ledger = healthy()
    first = ledger.reads[0, 1][0]
    first.commit, first.confirmed_at = FAILED, None
    ledger.read("joiner", 4.0, 0, 1, encode((0, 0, 2))[1])
    findings = check(ledger)
    assert findings.problems(ledger) == []
    assert dict(findings.read_duplicates) == {FAILED: 1}


def test_a_call_past_its_deadline_a_task_left_and_memory_growth_are_reported() -> None:
    ledger = healthy()
    ledger.timed("commit", 2.6, 2.5)
    ledger.timed("commit", 0.2, 2.5)
    ledger.leftover_tasks.append("<coroutine heartbeat>")
    ledger.memory_growth = 4096
    assert problems(ledger) == [
        "1 call(s) past their deadline: commit took 2.60 s, past its bound of 2.50 s",
        "1 task(s) left running after close: <coroutine heartbeat>",
        "aiomq and aiokafka hold 4 KiB more at the end than warmed up, over the bound of 1 KiB",
    ]
