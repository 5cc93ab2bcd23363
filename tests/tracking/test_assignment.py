"""Exact minimum-cost assignment against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from posekit.tracking.assignment import gated_assignment, linear_sum_assignment


def brute_force(cost: np.ndarray) -> float:
    """Minimum total cost over all complete assignments of the smaller side (inf if none)."""
    n, m = cost.shape
    if n > m:
        return brute_force(cost.T)
    best = np.inf
    for cols in itertools.permutations(range(m), n):
        best = min(best, float(cost[np.arange(n), list(cols)].sum()))
    return best


def check_valid(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> None:
    assert len(rows) == len(cols) == min(shape)
    assert len(set(rows.tolist())) == len(rows)
    assert len(set(cols.tolist())) == len(cols)
    assert np.all(np.diff(rows) > 0)
    assert rows.min(initial=0) >= 0
    assert cols.min(initial=0) >= 0
    assert rows.max(initial=0) < shape[0]
    assert cols.max(initial=0) < shape[1]


@pytest.mark.parametrize("n", range(1, 8))
def test_square_matches_brute_force(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    for _ in range(5 if n == 7 else 20):
        cost = rng.uniform(0, 10, (n, n))
        rows, cols = linear_sum_assignment(cost)
        check_valid(rows, cols, cost.shape)
        assert cost[rows, cols].sum() == pytest.approx(brute_force(cost), abs=1e-9)


@pytest.mark.parametrize(("n", "m"), [(1, 5), (2, 7), (3, 5), (4, 6), (5, 7), (5, 2), (7, 3), (6, 4), (7, 6)])
def test_rectangular_matches_brute_force(n: int, m: int) -> None:
    rng = np.random.default_rng(10 * n + m)
    for _ in range(10):
        cost = rng.normal(0, 5, (n, m))
        rows, cols = linear_sum_assignment(cost)
        check_valid(rows, cols, cost.shape)
        assert cost[rows, cols].sum() == pytest.approx(brute_force(cost), abs=1e-9)


def test_integer_costs_with_ties() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        cost = rng.integers(0, 3, (5, 6)).astype(float)
        rows, cols = linear_sum_assignment(cost)
        assert cost[rows, cols].sum() == brute_force(cost)


def test_known_small_case() -> None:
    cost = np.array([[4.0, 1, 3], [2, 0, 5], [3, 2, 2]])
    rows, cols = linear_sum_assignment(cost)
    assert rows.tolist() == [0, 1, 2]
    assert cols.tolist() == [1, 0, 2]
    assert cost[rows, cols].sum() == 5


def test_inf_marks_forbidden_pairs() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        cost = rng.uniform(0, 1, (5, 5))
        forbidden = rng.random((5, 5)) < 0.3
        np.fill_diagonal(forbidden, False)  # the identity stays feasible
        cost[forbidden] = np.inf
        rows, cols = linear_sum_assignment(cost)
        assert np.isfinite(cost[rows, cols]).all()
        assert cost[rows, cols].sum() == pytest.approx(brute_force(cost))


def test_large_costs_are_ordinary_costs() -> None:
    cost = np.array([[1e12, 1.0], [2.0, 1e12], [1e12, 1e12]])
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() == 3.0
    assert dict(zip(rows.tolist(), cols.tolist(), strict=True)) == {0: 1, 1: 0}


def test_infeasible_raises() -> None:
    cost = np.array([[np.inf, 1.0], [np.inf, 2.0]])
    with pytest.raises(ValueError, match="infeasible"):
        linear_sum_assignment(cost)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        linear_sum_assignment([[np.nan, 1.0]])
    with pytest.raises(ValueError, match="2-D"):
        linear_sum_assignment([1.0, 2.0])


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (4, 0)])
def test_empty(shape: tuple[int, int]) -> None:
    rows, cols = linear_sum_assignment(np.zeros(shape))
    assert rows.shape == cols.shape == (0,)
    rows, cols = gated_assignment(np.zeros(shape), 1.0)
    assert rows.shape == cols.shape == (0,)


def brute_force_gated(cost: np.ndarray, max_cost: float) -> tuple[int, float]:
    """(most pairs, least cost among those) over all partial matchings of allowed pairs."""
    n, m = cost.shape
    allowed = [(i, j) for i in range(n) for j in range(m) if np.isfinite(cost[i, j]) and cost[i, j] <= max_cost]
    best = (0, 0.0)
    for r in range(1, min(n, m) + 1):
        for pairs in itertools.combinations(allowed, r):
            rs, cs = zip(*pairs, strict=True)
            if len(set(rs)) == r and len(set(cs)) == r:
                total = float(sum(cost[i, j] for i, j in pairs))
                if r > best[0] or (r == best[0] and total < best[1]):
                    best = (r, total)
    return best


@pytest.mark.parametrize(("n", "m"), [(3, 3), (4, 3), (2, 5), (4, 4)])
def test_gated_assignment_matches_brute_force(n: int, m: int) -> None:
    rng = np.random.default_rng(n * 7 + m)
    for _ in range(25):
        cost = rng.uniform(0, 1, (n, m))
        cost[rng.random((n, m)) < 0.2] = np.inf
        rows, cols = gated_assignment(cost, max_cost=0.6)
        assert (cost[rows, cols] <= 0.6).all()
        assert len(set(cols.tolist())) == len(cols)
        count, total = brute_force_gated(cost, 0.6)
        assert len(rows) == count
        assert cost[rows, cols].sum() == pytest.approx(total)


def test_gated_assignment_leaves_out_forbidden() -> None:
    cost = np.array([[0.1, 0.9], [0.8, 0.95]])
    rows, cols = gated_assignment(cost, max_cost=0.5)
    assert rows.tolist() == [0]
    assert cols.tolist() == [0]
    rows, cols = gated_assignment(np.full((2, 2), np.inf))
    assert len(rows) == 0
