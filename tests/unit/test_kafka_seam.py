"""The seam over aiokafka's private parts: its error codes, and reading responses by field
name."""

from __future__ import annotations

import pytest
from aiokafka import errors as ak
from aiokafka.protocol.metadata import MetadataResponse_v0, MetadataResponse_v1
from aiokafka.protocol.produce import ProduceResponse_v0, ProduceResponse_v2

from aiomq._internal.kafka.errors import ErrorCode
from aiomq._internal.kafka.metadata import _partitions_in
from aiomq._internal.kafka.requests import entries


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda code: code.name)
def test_each_error_code_is_the_one_aiokafka_knows_by_that_number(code: ErrorCode) -> None:
    known = ak.for_code(code)
    assert known.errno == code
    if code is not ErrorCode.UNKNOWN_SERVER_ERROR:
        assert known is not ak.UnknownError


def test_a_v0_metadata_answer_gives_the_partitions_it_lists_like_later_versions() -> None:
    # v0 topic entries have no is_internal field: the partitions come one place earlier.
    v0 = MetadataResponse_v0([], [(0, "t", [(0, 1, 0, [0], [0]), (0, 0, 0, [0], [0])])])
    v1 = MetadataResponse_v1([], 0, [(0, "t", False, [(0, 1, 0, [0], [0]), (0, 0, 0, [0], [0])])])

    assert _partitions_in(v0, "t") == _partitions_in(v1, "t") == (0, 1)


def test_entries_read_nested_arrays_by_field_name_whatever_the_version() -> None:
    v0 = ProduceResponse_v0([("t", [(3, 0, 41)])])
    v2 = ProduceResponse_v2([("t", [(3, 0, 41, 1_700_000_000_000)])], 0)

    old, new = (entries(response, "topics")[0].partitions[0] for response in (v0, v2))

    assert (old.partition, old.error_code, old.offset) == (3, 0, 41)
    assert (new.partition, new.error_code, new.offset, new.timestamp) == (3, 0, 41, 1.7e12)
    assert getattr(old, "timestamp", -1) == -1


def test_an_absent_array_has_no_entries() -> None:
    assert entries(MetadataResponse_v1([], 0, None), "topics") == []
