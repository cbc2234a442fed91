"""The 32-bit hash functions that Kafka clients use to map a record key to a partition.

Each function takes the key's bytes and returns an unsigned 32-bit integer. They run once
per written message, so the loops use literal constants (no global look-ups) and mask to
32 bits only where a later shift or multiplication needs it.
"""

from __future__ import annotations

import functools
import sys
import zlib
from array import array
from collections.abc import Iterable

__all__ = ["crc32_ieee", "fnv1a_32", "fnv1a_32_cached", "murmur2", "murmur2_cached"]

_LITTLE_ENDIAN = sys.byteorder == "little"


def fnv1a_32(data: bytes) -> int:
    """Return the 32-bit FNV-1a hash of `data`.

    This is the hash behind Sarama's default partitioner and kafka-go's `Hash` balancer
    (Go's `hash/fnv.New32a`).

    Args:
        data: The bytes to hash.

    Returns:
        The hash, an unsigned 32-bit integer.
    """
    h = 0x811C9DC5  # offset basis
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF  # FNV prime
    return h


def crc32_ieee(data: bytes) -> int:
    """Return the CRC-32 (IEEE 802.3 polynomial) checksum of `data`.

    This is the hash behind librdkafka's `consistent` and `consistent_random`
    partitioners (and Go's `crc32.ChecksumIEEE`).

    Args:
        data: The bytes to hash.

    Returns:
        The checksum, an unsigned 32-bit integer.
    """
    return zlib.crc32(data)


def murmur2(data: bytes) -> int:
    """Return Kafka's MurmurHash2 of `data`, as the Java client computes it.

    The Java client's default partitioner and librdkafka's `murmur2` partitioners use
    this variant: seed 0x9747b28c, input read as little-endian 32-bit words, the one to
    three trailing bytes mixed in last.

    Args:
        data: The bytes to hash.

    Returns:
        The hash, an unsigned 32-bit integer (partitioners mask it with 0x7fffffff).
    """
    length = len(data)
    # The Java client mixes the length in as a 32-bit int.
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length & -4
    if whole:
        words: Iterable[int] = memoryview(data)[:whole].cast("I")
        if not _LITTLE_ENDIAN:
            # The algorithm reads little-endian words whatever the machine's order.
            swapped = array("I", words)
            swapped.byteswap()
            words = swapped
        for word in words:
            k = (word * 0x5BD1E995) & 0xFFFFFFFF  # k must be 32 bits before the shift
            h = ((h * 0x5BD1E995) ^ ((k ^ (k >> 24)) * 0x5BD1E995)) & 0xFFFFFFFF
    tail = length & 3
    if tail:
        if tail == 3:
            h ^= data[whole + 2] << 16
        if tail >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * 0x5BD1E995) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0x5BD1E995) & 0xFFFFFFFF
    return h ^ (h >> 15)


_CACHE_SIZE = 16_384
# Keys repeat a lot in practice (user ids, account numbers), and the pure-Python hashes cost
# a microsecond or more per key, while a cache hit costs a dictionary look-up. Only `bytes`
# keys may use these: bytearray and memoryview are not hashable.
fnv1a_32_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(fnv1a_32)
murmur2_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(murmur2)
