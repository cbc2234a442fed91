"""The offset stash: commits waiting for the next flush, highest offset per partition wins."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from itertools import groupby
from operator import itemgetter
from typing import Final

from aiokafka.structs import TopicPartition

from aiomq.message import Message

__all__ = ["OffsetStash", "next_offsets", "readable_next_offsets"]

_NO_OFFSET: Final = -1
_partition_of: Final = itemgetter(0, 1)  # (topic, partition) of a Message
_offset_of: Final = itemgetter(2)


def next_offsets(messages: Iterable[Message]) -> dict[TopicPartition, int]:
    """Map each partition to the offset after the highest message given for it.

    Committing offset N means "everything before N is done", so committing a message
    commits every earlier message of its partition, and a lower offset given later in
    the same call never moves the commit back.
    """
    # A batch comes in runs of one partition each: take the highest offset of each run
    # (in C), then the highest of the runs of each partition.
    highest: dict[tuple[str, int], int] = {}
    for key, run in groupby(messages, _partition_of):
        top = max(map(_offset_of, run))
        if highest.get(key, _NO_OFFSET) < top:
            highest[key] = top
    return {TopicPartition(*key): offset + 1 for key, offset in highest.items()}


def readable_next_offsets(
    messages: Iterable[Message], topics: Collection[str]
) -> dict[TopicPartition, int] | None:
    """`next_offsets`, when a reader of `topics` could have returned every message; None
    when one has a negative offset or partition, or a topic not among them. One pass
    serves both, for the reader's commits of whole batches."""
    highest: dict[tuple[str, int], int] = {}
    for key, run in groupby(messages, _partition_of):
        offsets = list(map(_offset_of, run))
        if min(offsets) < 0 or key[1] < 0 or key[0] not in topics:
            return None
        top = max(offsets)
        if highest.get(key, _NO_OFFSET) < top:
            highest[key] = top
    return {TopicPartition(*key): offset + 1 for key, offset in highest.items()}


class OffsetStash:
    """Offsets to commit at the next flush.

    Only partitions the reader owns may hold offsets: the stash forgets a partition when
    it is revoked, so an offset recorded under one assignment is never applied under a
    later one (where another member may have moved on).
    """

    __slots__ = ("_offsets",)

    def __init__(self) -> None:
        self._offsets: dict[TopicPartition, int] = {}

    def __len__(self) -> int:
        return len(self._offsets)

    def add(self, offsets: dict[TopicPartition, int]) -> None:
        """Record offsets; for each partition the highest offset seen so far wins."""
        current = self._offsets
        for tp, offset in offsets.items():
            if current.get(tp, _NO_OFFSET) < offset:
                current[tp] = offset

    def add_one(self, key: tuple[str, int], offset: int) -> None:
        """Record one partition's offset; the fast path of `add` for one message at a time.

        `key` may be a plain `(topic, partition)` tuple: it compares and hashes like the
        TopicPartition the stash keys by, so only a new entry needs one built.
        """
        current = self._offsets
        known = current.get(key)  # type: ignore[call-overload]
        if known is None:
            current[TopicPartition(*key)] = offset
        elif known < offset:
            current[key] = offset  # type: ignore[index]

    def snapshot(
        self, owned: Collection[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Return a copy of what is stashed, limited to `owned` partitions when given."""
        if owned is None:
            return dict(self._offsets)
        return {tp: off for tp, off in self._offsets.items() if tp in owned}

    def discard_committed(self, committed: dict[TopicPartition, int]) -> None:
        """Forget offsets that a flush committed, keeping any that moved on meanwhile."""
        current = self._offsets
        for tp, offset in committed.items():
            if current.get(tp) == offset:
                del current[tp]

    def forget(self, partitions: Iterable[TopicPartition]) -> int:
        """Drop the offsets of partitions this reader no longer owns; return how many."""
        dropped = 0
        for tp in partitions:
            if self._offsets.pop(tp, None) is not None:
                dropped += 1
        return dropped

    def keep_only(self, owned: Collection[TopicPartition]) -> int:
        """Drop every partition not in `owned`; return how many were dropped."""
        return self.forget([tp for tp in self._offsets if tp not in owned])
