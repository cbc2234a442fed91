"""What a soak run saw, and the checks made on it at the end.

The run (`tests.support.soak`) writes down every message it hands to a writer, every
outcome, every retry the writers logged, every message its readers returned and what
became of the commit that followed. `check` then reads the ledger alone, without a broker,
so each check can be shown to bite on a ledger doctored by hand.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Findings", "Ledger", "MessageId", "Read", "Sent", "check"]

MessageId = tuple[int, int, int]
"""A written message: (writer number, key number, sequence number of the key)."""

Where = tuple[int, int]
"""A place in the topic: (partition, offset)."""

PENDING: Final = "never committed"
CONFIRMED: Final = "confirmed"
FAILED: Final = "commit failed"
STALE: Final = "commit dropped as stale"


def encode(message_id: MessageId) -> tuple[bytes, bytes]:
    """The key and value a message carries: the key names writer and key, the value all."""
    writer, key, seq = message_id
    return b"w%d-k%d" % (writer, key), b"%d:%d:%d" % (writer, key, seq)


def decode(value: bytes | None) -> MessageId:
    """The id a message's value carries (see `encode`)."""
    assert value is not None
    writer, key, seq = value.split(b":")
    return int(writer), int(key), int(seq)


@dataclass(slots=True)
class Sent:
    """One message handed to a writer, and what the writer said of it."""

    accepted_at: float
    settled_at: float | None = None
    acked: bool = False
    failed: bool = False
    place: Where | None = None
    """Where the writer said it wrote the message, once acknowledged."""


@dataclass(slots=True)
class Read:
    """One message returned to a reader, and the fate of the commit that covered it."""

    reader: str
    at: float
    offset: int
    commit: str = PENDING
    confirmed_at: float | None = None


@dataclass
class Ledger:
    """Everything a soak run records, in event-loop time."""

    sent: dict[MessageId, Sent] = field(default_factory=dict)
    reads: defaultdict[Where, list[Read]] = field(default_factory=lambda: defaultdict(list))
    placed: defaultdict[MessageId, set[Where]] = field(default_factory=lambda: defaultdict(set))
    retries: list[tuple[int, int, float]] = field(default_factory=list)
    """Each `write_retried` a writer logged: (writer number, partition, time)."""
    faults: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    slowest: dict[str, float] = field(default_factory=dict)
    """The longest each kind of call took, in seconds."""
    hangs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Exceptions no call documents, and the soak's own complaints."""
    lost_details: dict[MessageId, str] = field(default_factory=dict)
    """For a message acknowledged and never read, what its place in the log holds."""
    leftover_tasks: list[str] = field(default_factory=list)
    memory_growth: int = 0
    """Bytes allocated by aiomq and aiokafka at the end beyond what they held warmed up."""
    memory_limit: int = 0
    memory_sites: list[str] = field(default_factory=list)
    """Where the memory grew most, for a report."""

    def timed(self, what: str, elapsed: float, bound: float) -> None:
        """Note that a call of kind `what` took `elapsed` seconds, at most `bound`."""
        self.counts[f"calls {what}"] += 1
        self.slowest[what] = max(self.slowest.get(what, 0.0), elapsed)
        if elapsed > bound:
            self.hangs.append(f"{what} took {elapsed:.2f} s, past its bound of {bound:.2f} s")

    def read(
        self, reader: str, at: float, partition: int, offset: int, value: bytes | None
    ) -> Read:
        """Note that `reader` was returned the message at `partition`@`offset`."""
        entry = Read(reader, at, offset)
        self.reads[partition, offset].append(entry)
        self.placed[decode(value)].add((partition, offset))
        return entry


@dataclass
class Findings:
    """What the checks found; `problems` is empty when the run kept every promise."""

    lost: list[MessageId] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)
    misordered: list[str] = field(default_factory=list)
    write_duplicates: int = 0
    write_duplicates_explained: int = 0
    unexplained_write_duplicates: list[str] = field(default_factory=list)
    read_duplicates: Counter[str] = field(default_factory=Counter)
    unexplained_read_duplicates: list[str] = field(default_factory=list)
    unacked_landed: int = 0

    def problems(self, ledger: Ledger) -> list[str]:
        """Each broken promise in a sentence, the first few of each kind."""
        found: list[str] = []

        def some(items: list[str], what: str) -> None:
            if items:
                found.append(f"{len(items)} {what}: " + "; ".join(items[:5]))

        some(
            [f"{m} {ledger.lost_details.get(m, '')}".rstrip() for m in self.lost],
            "acknowledged message(s) never read",
        )
        some(self.misplaced, "acknowledged offset(s) holding another message")
        some(self.misordered, "key(s) read out of order")
        some(self.unexplained_write_duplicates, "duplicate(s) no retry explains")
        some(self.unexplained_read_duplicates, "re-read(s) after a confirmed commit")
        some(ledger.hangs, "call(s) past their deadline")
        some(ledger.leftover_tasks, "task(s) left running after close")
        some(ledger.errors, "unexpected error(s)")
        if ledger.memory_growth > ledger.memory_limit:
            found.append(
                f"aiomq and aiokafka hold {ledger.memory_growth / 1024:.0f} KiB more at the "
                f"end than warmed up, over the bound of {ledger.memory_limit / 1024:.0f} KiB"
                + "".join(f"; {site}" for site in ledger.memory_sites)
            )
        return found


def check(ledger: Ledger) -> Findings:
    """Check the ledger of a finished run: nothing acknowledged lost, every key in order,
    every duplicate explained by a write retry or a commit that did not land."""
    findings = Findings()
    _check_writes(ledger, findings)
    _check_reads(ledger, findings)
    return findings


def _check_writes(ledger: Ledger, findings: Findings) -> None:
    retries: defaultdict[tuple[int, int], list[float]] = defaultdict(list)
    for writer, partition, at in ledger.retries:
        retries[writer, partition].append(at)
    by_key: defaultdict[tuple[int, int], list[tuple[int, Where]]] = defaultdict(list)
    for message_id, sent in ledger.sent.items():
        places = ledger.placed.get(message_id, set())
        if sent.acked:
            if not places:
                findings.lost.append(message_id)
                continue
            if sent.place not in places:
                findings.misplaced.append(
                    f"{message_id} acknowledged at {sent.place}, read at {sorted(places)}"
                )
            by_key[message_id[0], message_id[1]].append((message_id[2], min(places)))
        elif places:
            findings.unacked_landed += 1
        if len(places) > 1:
            extra = len(places) - 1
            findings.write_duplicates += extra
            end = sent.settled_at if sent.settled_at is not None else float("inf")
            partitions = {p for p, _ in places}
            if any(
                sent.accepted_at <= at <= end
                for p in partitions
                for at in retries.get((message_id[0], p), ())
            ):
                findings.write_duplicates_explained += extra
            else:
                findings.unexplained_write_duplicates.append(
                    f"{message_id} at {sorted(places)} with no retry while it was in flight"
                )
    for key, seen in sorted(by_key.items()):
        seen.sort()
        order = [where for _, where in seen]
        if order != sorted(order):
            first = next(i for i in range(1, len(order)) if order[i] < order[i - 1])
            findings.misordered.append(
                f"writer {key[0]} key {key[1]}: seq {seen[first - 1][0]} at {order[first - 1]}"
                f" before seq {seen[first][0]} at {order[first]}"
            )


def _check_reads(ledger: Ledger, findings: Findings) -> None:
    for (partition, offset), reads in ledger.reads.items():
        reads = sorted(reads, key=lambda r: r.at)
        for index, again in enumerate(reads[1:], start=1):
            earlier = reads[:index]
            open_commits = [
                r.commit if r.commit != CONFIRMED else "read again before the commit landed"
                for r in earlier
                if r.confirmed_at is None or r.confirmed_at > again.at
            ]
            if open_commits:
                findings.read_duplicates[open_commits[0]] += 1
            else:
                findings.unexplained_read_duplicates.append(
                    f"{partition}@{offset} read by {again.reader} after "
                    f"{earlier[-1].reader}'s commit of it was confirmed"
                )
