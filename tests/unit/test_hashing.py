"""The key hash functions against reference vectors and plain reference implementations."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiomq._internal.hashing import crc32_ieee, fnv1a_32, murmur2
from tests.support.vectors import load_vectors

VECTORS = load_vectors()


def cases(section: str) -> list[tuple[bytes, int]]:
    return [
        (key.encode(), int(expected, 16))
        for key, expected in VECTORS[section].items()
        if key != "note"
    ]


def reference_murmur2(data: bytes) -> int:
    """Kafka's murmur2, transcribed step by step from its description with 32-bit wrap."""

    def u32(x: int) -> int:
        return x % 2**32

    m = 0x5BD1E995
    h = u32(0x9747B28C ^ len(data))
    full = len(data) // 4 * 4
    for i in range(0, full, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = u32(k * m)
        k ^= k >> 24
        k = u32(k * m)
        h = u32(h * m)
        h ^= k
    rest = data[full:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h ^= rest[0]
        h = u32(h * m)
    h ^= h >> 13
    h = u32(h * m)
    h ^= h >> 15
    return h


def reference_fnv1a_32(data: bytes) -> int:
    h = 2166136261
    for byte in data:
        h = (h ^ byte) * 16777619 % 2**32
    return h


@pytest.mark.parametrize(("key", "expected"), cases("fnv1a32"))
def test_fnv1a_32_matches_the_reference_vectors(key: bytes, expected: int) -> None:
    assert fnv1a_32(key) == expected


@pytest.mark.parametrize(("key", "expected"), cases("crc32_ieee"))
def test_crc32_ieee_matches_the_reference_vectors(key: bytes, expected: int) -> None:
    assert crc32_ieee(key) == expected


@pytest.mark.parametrize(("key", "expected"), cases("murmur2"))
def test_murmur2_matches_the_java_client_for_the_reference_vectors(
    key: bytes, expected: int
) -> None:
    assert murmur2(key) == expected


def test_murmur2_of_every_tail_length_matches_the_reference_vectors() -> None:
    # "1234", "234", "34", "4" and "" cover zero to three trailing bytes.
    assert {len(key) % 4 for key, _ in cases("murmur2")} == {0, 1, 2, 3}


@given(st.binary(max_size=300))
def test_murmur2_of_any_bytes_equals_the_straightforward_implementation(data: bytes) -> None:
    assert murmur2(data) == reference_murmur2(data)


@given(st.binary(max_size=300))
def test_fnv1a_32_of_any_bytes_equals_the_straightforward_implementation(data: bytes) -> None:
    assert fnv1a_32(data) == reference_fnv1a_32(data)


@given(st.binary(max_size=300))
def test_crc32_ieee_of_any_bytes_equals_binascii(data: bytes) -> None:
    assert crc32_ieee(data) == binascii.crc32(data)


@given(st.binary(max_size=64))
def test_every_hash_is_an_unsigned_32_bit_integer(data: bytes) -> None:
    for hasher in (fnv1a_32, crc32_ieee, murmur2):
        assert 0 <= hasher(data) < 2**32
