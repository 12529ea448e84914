"""How a history fit spreads components over the cluster, and the sequences a reader builds."""

from __future__ import annotations

import numpy as np

from jobs.fit_history import plan
from jobs.history import ComponentSize
from learnflow import sequences


def test_components_are_spread_over_groups_of_about_equal_attempts() -> None:
    sizes = [
        ComponentSize(f"c{n}", attempts, 10) for n, attempts in enumerate([90, 50, 40, 30, 30])
    ]

    groups = plan(sizes, 2)

    assert sorted(name for group in groups for name in group) == [s.component for s in sizes]
    loads = sorted(sum(s.attempts for s in sizes if s.component in g) for g in groups)
    assert loads == [120, 120]


def test_no_more_groups_than_components_and_at_least_one() -> None:
    sizes = [ComponentSize("only", 5, 1)]

    assert plan(sizes, 8) == [["only"]]
    assert plan(sizes, 0) == [["only"]]


def test_answers_kept_as_bytes_build_the_same_sequences_as_lists() -> None:
    as_lists = {("loops", "b"): [1, 0, 1], ("loops", "a"): [0], ("lists", "a"): [1, 1]}
    as_bytes = {key: bytearray(value) for key, value in as_lists.items()}

    one, other = sequences.from_grouped(as_lists), sequences.from_grouped(as_bytes)

    assert one.components == other.components == ("lists", "loops")
    assert one.students == other.students == ("a", "a", "b")
    np.testing.assert_array_equal(one.obs, other.obs)
    np.testing.assert_array_equal(one.starts, other.starts)
    np.testing.assert_array_equal(other.obs, [1, 1, 0, 1, 0, 1])
