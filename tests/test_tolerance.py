"""The order-up-to-ties and one-to-one helpers of the numeric tests (``tests/_tolerance.py``)."""

from __future__ import annotations

import pytest
from _tolerance import align_up_to_ties, is_identity, match_one_to_one, tie_groups


def test_tie_groups_chain_and_relative_bound() -> None:
    assert tie_groups([0.9, 0.8999, 0.8998, 0.5, 0.1], 1.5e-4) == [[0, 1, 2], [3], [4]]
    assert tie_groups([0.9, 0.8999], 0.0) == [[0], [1]]
    assert tie_groups([0.9, 0.8999, 0.1, 0.0999], 0.0, rel=2e-4) == [[0, 1], [2], [3]]  # 1e-4 > 2e-4 * 0.1
    assert tie_groups([0.9, 0.9], 0.0) == [[0, 1]]  # exact ties at a zero bound
    assert tie_groups([], 1.0) == []


def test_swap_inside_a_tie_group_passes_and_gives_the_permutation() -> None:
    want = ["a", "b", "c", "d"]
    values = [0.9, 0.5001, 0.5, 0.1]
    perm = align_up_to_ties(["a", "c", "b", "d"], want, values, 2e-4)
    assert perm == [0, 2, 1, 3] and not is_identity(perm)
    got = ["a", "c", "b", "d"]
    assert [got[i] for i in perm] == want
    assert is_identity(align_up_to_ties(want, want, values, 2e-4))
    # a chained group: a-b and b-c within the bound, a-c not; any order of the three is accepted
    assert align_up_to_ties(["c", "a", "b"], ["a", "b", "c"], [0.3, 0.2999, 0.2998], 1.5e-4) == [1, 2, 0]
    # equal keys inside a group keep their relative order
    assert align_up_to_ties([("x", 1), ("x", 1)], [("x", 1), ("x", 1)], [0.5, 0.5], 0.0) == [0, 1]


def test_swap_of_neighbours_that_are_not_tied_fails() -> None:
    with pytest.raises(AssertionError, match=r"position 1 is 'c', the official 'b'; not a near-tie"):
        align_up_to_ties(["a", "c", "b"], ["a", "b", "c"], [0.9, 0.5, 0.4], 2e-4, what="dets")
    with pytest.raises(AssertionError, match="not a near-tie"):  # relative bound too small
        align_up_to_ties(["b", "a"], ["a", "b"], [0.9, 0.8], 0.0, rel=1e-4)


def test_missing_or_extra_key_fails() -> None:
    with pytest.raises(AssertionError, match="3 entries, the official has 4"):
        align_up_to_ties(["a", "b", "c"], ["a", "b", "c", "d"], [4, 3, 2, 1], 0.0)
    with pytest.raises(AssertionError, match=r"missing \['b'\], unexpected \['x'\]"):
        align_up_to_ties(["a", "x", "c"], ["a", "b", "c"], [0.9, 0.5, 0.5], 1e-3)
    with pytest.raises(AssertionError, match="position 1"):
        align_up_to_ties(["a", "x", "c"], ["a", "b", "c"], [0.9, 0.5, 0.1], 1e-3)
    with pytest.raises(ValueError, match="values"):
        align_up_to_ties(["a"], ["a"], [0.9, 0.5], 1e-3)


def test_match_one_to_one_finds_a_bijection_or_fails() -> None:
    # greedy would take got 0 for want 0 and leave want 1 without a partner
    ok = {(0, 0), (0, 1), (1, 0)}
    assert match_one_to_one(2, 2, lambda i, j: (i, j) in ok) == [1, 0]
    with pytest.raises(
        AssertionError, match=r"official entries \[1\] unmatched \(\[1\] compatible with no entry"
    ):
        match_one_to_one(2, 2, lambda i, j: j == 0)
    with pytest.raises(AssertionError, match="contested"):
        match_one_to_one(2, 2, lambda i, j: i == 0)
    with pytest.raises(AssertionError, match="entries"):
        match_one_to_one(1, 2, lambda i, j: True)
