"""The Message type."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aiomq import Message


def test_message_defaults_describe_a_record_not_yet_written() -> None:
    m = Message(value=b"v")
    assert (m.topic, m.partition, m.offset, m.key, m.headers, m.time) == (
        "",
        -1,
        -1,
        None,
        (),
        None,
    )


def test_message_is_immutable() -> None:
    m = Message(value=b"v")
    with pytest.raises(AttributeError):
        m.value = b"other"  # type: ignore[misc]


def test_replace_derives_a_changed_copy() -> None:
    when = datetime(2026, 1, 2, tzinfo=UTC)
    m = Message(key=b"k", value=b"v", time=when, writer_data={"id": 1})
    changed = m._replace(value=b"w")
    assert (changed.key, changed.value, changed.time, changed.writer_data) == (
        b"k",
        b"w",
        when,
        {"id": 1},
    )
    assert m.value == b"v"


def test_many_builds_the_same_messages_as_one_call_each() -> None:
    values = [b"a", None, b"c"]
    keys = [b"k1", b"k2", None]
    assert Message.many(values) == [Message(value=v) for v in values]
    assert Message.many(values, keys, topic="orders") == [
        Message(topic="orders", key=k, value=v) for k, v in zip(keys, values, strict=True)
    ]
    assert Message.many(iter(values), iter(keys)) == Message.many(values, keys)
    assert Message.many([]) == []
    assert all(type(m) is Message for m in Message.many(values))


def test_many_refuses_keys_that_do_not_match_the_values() -> None:
    with pytest.raises(ValueError, match="2 keys, 3 values"):
        Message.many([b"a", b"b", b"c"], [b"k1", b"k2"])
