"""Reader configuration and the offset stash: pure logic, no broker."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from aiomq import (
    FIRST_OFFSET,
    LAST_OFFSET,
    ConfigError,
    IsolationLevel,
    Message,
    Reader,
    ReaderConfig,
)
from aiomq._internal.consumer.stash import OffsetStash, next_offsets, readable_next_offsets

BROKERS = ["127.0.0.1:9092"]
NAN = float("nan")


def _noop(partitions: set[tuple[str, int]]) -> None:
    return None


# -- configuration ----------------------------------------------------------------------


def test_a_reader_with_only_a_topic_reads_partition_zero_from_the_first_offset() -> None:
    config = ReaderConfig(brokers=BROKERS, topic="orders")
    assert config.partition is None
    assert config.start_offset == FIRST_OFFSET
    assert config.topics == ("orders",)
    assert Reader(config).offset == -1


def test_a_group_reader_of_several_topics_lists_them_all() -> None:
    config = ReaderConfig(brokers=BROKERS, group_id="g", group_topics=["a", "b"])
    assert config.topics == ("a", "b")


def test_the_reader_config_is_frozen() -> None:
    config = ReaderConfig(brokers=BROKERS, topic="t")
    with pytest.raises(AttributeError):
        config.topic = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "fields"),
    [
        pytest.param({"brokers": []}, ["brokers"], id="empty brokers"),
        pytest.param({"brokers": "127.0.0.1:9092"}, ["brokers"], id="brokers as one string"),
        pytest.param({"topic": ""}, ["topic"], id="empty topic"),
        pytest.param({"topic": None}, ["topic", "group_topics"], id="no topic at all"),
        pytest.param({"topic": 7}, ["topic"], id="topic not a string"),
        pytest.param({"group_id": ""}, ["group_id"], id="empty group_id"),
        pytest.param({"group_id": 5}, ["group_id"], id="group_id not a string"),
        pytest.param(
            {"partition": 1, "group_id": "g"},
            ["partition", "group_id"],
            id="partition with group_id",
        ),
        pytest.param({"partition": -1}, ["partition"], id="negative partition"),
        pytest.param({"partition": True}, ["partition"], id="partition as a bool"),
        pytest.param(
            {"topic": None, "group_topics": ["a"]},
            ["group_topics", "group_id"],
            id="group_topics without group_id",
        ),
        pytest.param(
            {"group_id": "g", "group_topics": ["a"]},
            ["topic", "group_topics"],
            id="topic and group_topics together",
        ),
        pytest.param(
            {"topic": None, "group_id": "g", "group_topics": "a"},
            ["group_topics"],
            id="group_topics as a string",
        ),
        pytest.param(
            {"min_bytes": 2_000, "max_bytes": 1_000},
            ["min_bytes", "max_bytes"],
            id="min_bytes above max_bytes",
        ),
        pytest.param({"min_bytes": 0}, ["min_bytes"], id="zero min_bytes"),
        pytest.param({"max_bytes": -5}, ["max_bytes"], id="negative max_bytes"),
        pytest.param({"queue_capacity": 0}, ["queue_capacity"], id="zero queue_capacity"),
        pytest.param({"queue_capacity": 1.5}, ["queue_capacity"], id="fractional queue_capacity"),
        pytest.param(
            {"group_id": "g", "heartbeat_interval": 3.0, "session_timeout": 3.0},
            ["heartbeat_interval", "session_timeout"],
            id="heartbeat equal to session",
        ),
        pytest.param(
            {"group_id": "g", "heartbeat_interval": 5.0, "session_timeout": 2.0},
            ["heartbeat_interval", "session_timeout"],
            id="heartbeat longer than session",
        ),
        pytest.param({"start_offset": 0}, ["start_offset"], id="start_offset zero"),
        pytest.param({"start_offset": 42}, ["start_offset"], id="start_offset an offset"),
        pytest.param({"start_offset": -3}, ["start_offset"], id="start_offset below FIRST_OFFSET"),
        pytest.param({"max_wait": -0.1}, ["max_wait"], id="negative max_wait"),
        pytest.param({"max_wait": NAN}, ["max_wait"], id="NaN max_wait"),
        pytest.param({"commit_interval": -1.0}, ["commit_interval"], id="negative commit_interval"),
        pytest.param({"commit_interval": NAN}, ["commit_interval"], id="NaN commit_interval"),
        pytest.param(
            {"read_lag_interval": float("inf")},
            ["read_lag_interval"],
            id="infinite read_lag_interval",
        ),
        pytest.param({"close_timeout": -1}, ["close_timeout"], id="negative close_timeout"),
        pytest.param({"close_timeout": "10"}, ["close_timeout"], id="close_timeout as a string"),
        pytest.param(
            {"heartbeat_interval": 0}, ["heartbeat_interval"], id="zero heartbeat_interval"
        ),
        pytest.param({"session_timeout": NAN}, ["session_timeout"], id="NaN session_timeout"),
        pytest.param(
            {"session_timeout": -30.0}, ["session_timeout"], id="negative session_timeout"
        ),
        pytest.param(
            {"rebalance_timeout": 0.0}, ["rebalance_timeout"], id="zero rebalance_timeout"
        ),
        pytest.param(
            {"rebalance_timeout": True}, ["rebalance_timeout"], id="rebalance_timeout as a bool"
        ),
        pytest.param({"isolation_level": 1}, ["isolation_level"], id="isolation_level as an int"),
        pytest.param({"on_assigned": "print"}, ["on_assigned"], id="non-callable on_assigned"),
        pytest.param({"on_revoked": 3}, ["on_revoked"], id="non-callable on_revoked"),
        pytest.param({"client_id": ""}, ["client_id"], id="empty client_id"),
    ],
)
def test_an_invalid_option_raises_a_config_error_naming_the_fields(
    options: dict[str, Any], fields: list[str]
) -> None:
    arguments: dict[str, Any] = {"brokers": BROKERS, "topic": "t", **options}
    with pytest.raises(ConfigError) as raised:
        ReaderConfig(**arguments)
    for field in fields:
        assert field in str(raised.value)


def test_group_options_with_small_durations_are_accepted() -> None:
    config = ReaderConfig(
        brokers=BROKERS,
        topic="t",
        group_id="g",
        session_timeout=2.0,
        heartbeat_interval=0.5,
        commit_interval=0,
        on_assigned=_noop,
        on_revoked=_noop,
        isolation_level=IsolationLevel.READ_COMMITTED,
        start_offset=LAST_OFFSET,
    )
    assert config.group_id == "g"


def test_a_config_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="brokers"):
        ReaderConfig(brokers=[], topic="t")


def test_a_reader_refuses_a_config_and_options_together() -> None:
    with pytest.raises(ConfigError, match="not both"):
        Reader(ReaderConfig(brokers=BROKERS, topic="t"), group_id="g")


def test_a_reader_builds_its_config_from_keyword_options() -> None:
    reader = Reader(brokers=BROKERS, topic="orders", partition=2)
    assert reader.config.partition == 2


@pytest.mark.parametrize("offset", [-3, True, 1.5])
def test_set_offset_refuses_an_invalid_offset(offset: Any) -> None:
    reader = Reader(brokers=BROKERS, topic="t")
    with pytest.raises(ConfigError, match="offset"):
        reader.set_offset(offset)


async def test_set_offset_at_refuses_a_naive_datetime() -> None:
    reader = Reader(brokers=BROKERS, topic="t")
    with pytest.raises(ConfigError, match="timezone"):
        await reader.set_offset_at(datetime(2024, 1, 1))  # naive on purpose


async def test_fetch_batch_refuses_fewer_than_one_message() -> None:
    reader = Reader(brokers=BROKERS, topic="t")
    with pytest.raises(ConfigError, match="max_messages"):
        await reader.fetch_batch(0)


async def test_partition_only_calls_raise_config_error_on_a_group_reader() -> None:
    reader = Reader(brokers=BROKERS, topic="t", group_id="g")
    with pytest.raises(ConfigError, match="set_offset"):
        reader.set_offset(3)
    with pytest.raises(ConfigError, match="set_offset_at"):
        await reader.set_offset_at(datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(ConfigError, match="read_lag"):
        await reader.read_lag()
    assert reader.offset == -1
    assert reader.lag == -1


async def test_group_only_calls_raise_config_error_on_a_partition_reader() -> None:
    reader = Reader(brokers=BROKERS, topic="t")
    message = Message(topic="t", partition=0, offset=0)
    with pytest.raises(ConfigError, match="group_id"):
        await reader.commit_messages(message)


# -- the offset stash ---------------------------------------------------------------------

TP0 = TopicPartition("t", 0)
TP1 = TopicPartition("t", 1)
TP2 = TopicPartition("u", 0)


def message(tp: TopicPartition, offset: int) -> Message:
    return Message(topic=tp.topic, partition=tp.partition, offset=offset)


def test_next_offsets_commits_the_offset_after_each_partitions_highest_message() -> None:
    messages = [message(TP0, 4), message(TP1, 2), message(TP0, 9), message(TP0, 7)]
    assert next_offsets(messages) == {TP0: 10, TP1: 3}


def test_next_offsets_of_no_messages_is_empty() -> None:
    assert next_offsets([]) == {}


def test_next_offsets_keeps_topics_apart() -> None:
    assert next_offsets([message(TP0, 1), message(TP2, 5)]) == {TP0: 2, TP2: 6}


def test_next_offsets_matches_a_plain_loop_on_runs_interleavings_and_shuffles() -> None:
    rng = random.Random(7)
    tps = [TP0, TP1, TP2]
    for _ in range(300):
        messages: list[Message] = []
        for _ in range(rng.randrange(1, 6)):  # runs of one partition, as fetches give
            tp = rng.choice(tps)
            start = rng.randrange(0, 50)
            messages += [message(tp, start + i) for i in range(rng.randrange(1, 20))]
        if rng.random() < 0.5:
            rng.shuffle(messages)
        expected: dict[TopicPartition, int] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            expected[tp] = max(expected.get(tp, 0), m.offset + 1)
        assert next_offsets(messages) == expected


def test_readable_next_offsets_refuses_exactly_what_a_reader_could_not_have_read() -> None:
    rng = random.Random(11)
    for _ in range(300):
        messages = [
            message(rng.choice([TP0, TP1, TP2]), rng.randrange(0, 40))
            for _ in range(rng.randrange(1, 30))
        ]
        spoilt = rng.random() < 0.5
        if spoilt:
            bad = rng.choice(
                [
                    Message(topic="t", partition=0, offset=-1),
                    Message(topic="t", partition=-1, offset=3),
                    Message(topic="elsewhere", partition=0, offset=3),
                ]
            )
            messages.insert(rng.randrange(len(messages) + 1), bad)
        got = readable_next_offsets(messages, ("t", "u"))
        assert got == (None if spoilt else next_offsets(messages))


def test_the_stash_keeps_the_highest_offset_of_each_partition() -> None:
    stash = OffsetStash()
    stash.add({TP0: 5, TP1: 2})
    stash.add({TP0: 8})
    assert stash.snapshot() == {TP0: 8, TP1: 2}
    assert len(stash) == 2


def test_a_lower_offset_never_moves_the_stash_back() -> None:
    stash = OffsetStash()
    stash.add({TP0: 8})
    stash.add({TP0: 3})
    stash.add({TP0: 8})
    assert stash.snapshot() == {TP0: 8}


def test_a_snapshot_is_limited_to_the_owned_partitions_and_is_a_copy() -> None:
    stash = OffsetStash()
    stash.add({TP0: 1, TP1: 2, TP2: 3})
    snapshot = stash.snapshot({TP1, TP2})
    assert snapshot == {TP1: 2, TP2: 3}
    snapshot[TP1] = 99
    assert stash.snapshot() == {TP0: 1, TP1: 2, TP2: 3}


def test_keep_only_drops_partitions_no_longer_owned() -> None:
    stash = OffsetStash()
    stash.add({TP0: 1, TP1: 2, TP2: 3})
    assert stash.keep_only({TP1}) == 2
    assert stash.snapshot() == {TP1: 2}


def test_forget_drops_revoked_partitions_and_counts_only_those_it_held() -> None:
    stash = OffsetStash()
    stash.add({TP0: 1, TP1: 2})
    assert stash.forget([TP1, TP2]) == 1
    assert stash.snapshot() == {TP0: 1}


def test_discard_committed_forgets_what_was_committed() -> None:
    stash = OffsetStash()
    stash.add({TP0: 4, TP1: 6})
    stash.discard_committed({TP0: 4, TP1: 6})
    assert len(stash) == 0


def test_discard_committed_keeps_offsets_that_moved_on_during_the_flush() -> None:
    stash = OffsetStash()
    stash.add({TP0: 4, TP1: 6})
    flushed = stash.snapshot()
    stash.add({TP0: 9})
    stash.discard_committed(flushed)
    assert stash.snapshot() == {TP0: 9}


def test_a_start_offset_that_is_not_an_integer_is_refused() -> None:
    with pytest.raises(ConfigError, match="start_offset"):
        ReaderConfig(brokers=["b:9092"], topic="t", start_offset=-1.0)  # type: ignore[arg-type]
