"""The attempt rows' ``float8[]`` column as PostgreSQL's binary ``COPY`` format lays it out."""

from __future__ import annotations

import struct

import pytest

from actors.postgres_store import _float_array


def _layout(values: tuple[float, ...]) -> bytes:
    """One array field: its length, then dimensions (1), no nulls, the element type (float8),
    the length and lower bound of the one dimension, and each element as its length and bytes."""
    body = struct.pack("!iiIii", 1, 0, 701, len(values), 1)
    body += b"".join(struct.pack("!id", 8, value) for value in values)
    return struct.pack("!i", len(body)) + body


@pytest.mark.parametrize("count", [1, 2, 3, 16])
def test_a_mastery_array_of_any_length_is_laid_out_as_postgres_reads_it(count: int) -> None:
    values = tuple(round(0.05 * n + 0.01, 4) for n in range(count))

    assert _float_array(values) == _layout(values)
    assert _float_array(values) == _layout(values)  # and again, with the packer kept
