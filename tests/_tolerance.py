"""Comparison helpers of the numeric tests: order up to near-ties, one-to-one matching.

The same float32 model gives slightly different numbers on different CPU code paths (AVX-512/AMX
and AVX2 kernels sum in other orders; ``torch.sort`` uses another SIMD sort per ISA and does not
keep ties stable). A tolerance on the values is therefore not enough where an *order* is compared:
a list sorted by a value (detections by score, Detect's candidates by centerness x score) may have
two neighbours swapped when their values are within float noise of each other. These helpers allow
exactly that and nothing more:

* :func:`tie_groups`: runs of consecutive positions whose sort values differ by at most a bound
  (chained: a-b and b-c close puts a, b, c in one group);
* :func:`align_up_to_ties`: inside a tie group the same members in any order, outside the groups
  the same member at the same position; returns the permutation that maps the official order to
  ours, for every later comparison that uses indices into the list;
* :func:`match_one_to_one`: a bijection between two lists under a compatibility test (for outputs
  whose order follows from a tied order, e.g. objects whose ids were given in detection order).

Bound for a tie: if every value is within ``tol`` of the official one, two values whose official
values differ by more than ``2 * tol`` keep their order (a' - b' > 2 tol implies
a - b > a' - tol - (b' + tol) > 0), so ``2 * tol`` is the smallest bound that accepts every
swap float noise of that size can cause.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence

__all__ = ["align_up_to_ties", "is_identity", "match_one_to_one", "tie_groups"]


def tie_groups(values: Sequence[float], bound: float, rel: float = 0.0) -> list[list[int]]:
    """Runs of consecutive positions (every position in exactly one run, in order) where each
    neighbour pair differs by ``|v[i] - v[i+1]| <= bound + rel * max(|v[i]|, |v[i+1]|)``."""
    groups: list[list[int]] = []
    for i, v in enumerate(values):
        if i and abs(float(values[i - 1]) - float(v)) <= bound + rel * max(
            abs(float(values[i - 1])), abs(float(v))
        ):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def align_up_to_ties(
    got_keys: Sequence[Hashable],
    want_keys: Sequence[Hashable],
    want_values: Sequence[float],
    bound: float,
    rel: float = 0.0,
    what: str = "list",
) -> list[int]:
    """``perm`` with ``got_keys[perm[j]] == want_keys[j]``, if ``got_keys`` is ``want_keys`` up to
    reorderings inside tie groups of ``want_values`` (:func:`tie_groups` with ``bound``, ``rel``);
    otherwise AssertionError naming the first offending position.

    ``want_values`` are the values the list is sorted by (descending), one per position: the
    official ones where the fixture has them; where it has not, ours may be passed (a tie group
    is a set of consecutive *positions*, which a swap inside it does not change). Keys identify a
    member (e.g. ``(anchor, class)``). Inside a group, equal keys keep their relative order.
    """
    got, want = list(got_keys), list(want_keys)
    if len(want_values) != len(want):
        raise ValueError(f"{what}: {len(want_values)} values for {len(want)} keys")
    if len(got) != len(want):
        raise AssertionError(f"{what}: {len(got)} entries, the official has {len(want)}")
    perm: list[int] = []
    for g in tie_groups(want_values, bound, rel):
        if len(g) == 1:
            j = g[0]
            if got[j] != want[j]:
                near = [i for i in (j - 1, j + 1) if 0 <= i < len(want)]
                gaps = ", ".join(
                    f"{abs(float(want_values[i]) - float(want_values[j])):.3g} to {i}" for i in near
                )
                raise AssertionError(
                    f"{what}: position {j} is {got[j]!r}, the official {want[j]!r}; not a near-tie "
                    f"(official value {float(want_values[j]):.9g}, gaps {gaps} > tie bound "
                    f"{bound:.3g} + {rel:.3g} * |value|)"
                )
            perm.append(j)
            continue
        g_got, g_want = [got[i] for i in g], [want[i] for i in g]
        if Counter(g_got) != Counter(g_want):
            missing = list((Counter(g_want) - Counter(g_got)).elements())
            extra = list((Counter(g_got) - Counter(g_want)).elements())
            raise AssertionError(
                f"{what}: tie group at positions {g[0]}..{g[-1]} (official values "
                f"{[round(float(want_values[i]), 9) for i in g]}): missing {missing}, unexpected {extra}"
            )
        free = list(g)
        for k in g_want:
            i = next(i for i in free if got[i] == k)
            free.remove(i)
            perm.append(i)
    return perm


def is_identity(perm: Sequence[int]) -> bool:
    return all(i == j for j, i in enumerate(perm))


def match_one_to_one(
    n_got: int, n_want: int, ok: Callable[[int, int], bool], what: str = "list"
) -> list[int]:
    """A bijection ``m`` (``got[m[j]]`` pairs with ``want[j]``) such that ``ok(m[j], j)`` for all j,
    found by augmenting paths (exact, not greedy); AssertionError if there is none."""
    if n_got != n_want:
        raise AssertionError(f"{what}: {n_got} entries, the official has {n_want}")
    cand = [[i for i in range(n_got) if ok(i, j)] for j in range(n_want)]
    owner: dict[int, int] = {}  # got index -> want index

    def augment(j: int, seen: set[int]) -> bool:
        for i in cand[j]:
            if i in seen:
                continue
            seen.add(i)
            if i not in owner or augment(owner[i], seen):
                owner[i] = j
                return True
        return False

    unmatched = [j for j in range(n_want) if not augment(j, set())]
    if unmatched:
        lone = [j for j in unmatched if not cand[j]]
        raise AssertionError(
            f"{what}: no one-to-one match; official entries {unmatched} unmatched"
            + (f" ({lone} compatible with no entry of ours)" if lone else " (contested)")
        )
    m = [0] * n_want
    for i, j in owner.items():
        m[j] = i
    return m
