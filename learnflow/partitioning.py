"""Which partition Kafka gives a key: murmur2 exactly as the Java client (and librdkafka's
``murmur2_random`` partitioner) computes it, so the API can find a student's shard without
asking the broker."""

from __future__ import annotations

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: a signed 32-bit hash."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    full = length - length % 4
    for i in range(0, full, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[full + 2] << 16
    if rest >= 2:
        h ^= data[full + 1] << 8
    if rest >= 1:
        h ^= data[full]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    """``BuiltInPartitioner.partitionForKey``: positive murmur2 modulo the partition count."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_for_student(student_id: str, partitions: int) -> int:
    return partition_for_key(student_id.encode(), partitions)
