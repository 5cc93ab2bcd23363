"""Minimum-cost assignment (the linear assignment problem) in numpy.

``linear_sum_assignment`` solves the rectangular problem exactly with the shortest-augmenting-path
form of the Hungarian method (Kuhn-Munkres with row/column potentials, as in Jonker and Volgenant):
each row is added in turn and the cheapest augmenting path to a free column is found with a
Dijkstra-like scan over reduced costs, so the whole solve is ``O(n^2 m)`` for ``n <= m``.

``gated_assignment`` is the variant trackers need: pairs costing more than a gate (or ``inf``) are
forbidden, and as many pairs as possible are matched among the allowed ones, at minimum total cost.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["gated_assignment", "linear_sum_assignment"]


def _solve(cost: NDArray[np.float64]) -> NDArray[np.intp]:
    """Column of each row for ``cost (n, m)`` with ``n <= m``; ``+inf`` entries are never used.

    Raises ``ValueError`` when every complete assignment would use an ``inf`` entry.
    """
    n, m = cost.shape
    u = np.zeros(n + 1)  # row potentials (index 0 unused)
    v = np.zeros(m + 1)  # column potentials; column 0 is the virtual start column
    row_of = np.zeros(m + 1, dtype=np.intp)  # 1-based row assigned to each column, 0 = free
    way = np.zeros(m + 1, dtype=np.intp)  # previous column on the shortest path
    padded = np.empty((n + 1, m + 1))
    padded[1:, 1:] = cost
    for i in range(1, n + 1):
        row_of[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = row_of[j0]
            free = ~used
            free[0] = False
            reduced = padded[i0] - u[i0] - v
            better = free & (reduced < minv)
            minv[better] = reduced[better]
            way[better] = j0
            candidates = np.where(free, minv, np.inf)
            j1 = int(np.argmin(candidates))
            delta = candidates[j1]
            if not np.isfinite(delta):
                raise ValueError("cost matrix is infeasible: every complete assignment uses a forbidden (inf) entry")
            u[row_of[used]] += delta
            v[used] -= delta
            minv[free] -= delta
            j0 = j1
            if row_of[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    col_of = np.empty(n, dtype=np.intp)
    assigned = np.nonzero(row_of[1:])[0]
    col_of[row_of[1:][assigned] - 1] = assigned
    return col_of


def linear_sum_assignment(cost: ArrayLike) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Exact minimum-cost assignment for a rectangular ``(n, m)`` cost matrix.

    Returns ``(rows, cols)``: ``min(n, m)`` pairs, rows in increasing order, such that
    ``cost[rows, cols].sum()`` is minimal over all ways of giving every row (if ``n <= m``) or every
    column (if ``n > m``) a distinct partner. ``+inf`` marks a forbidden pair; ``ValueError`` is
    raised when no complete assignment avoids them, and for NaN or ``-inf`` entries. To maximise,
    pass ``-cost``.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {c.shape}")
    if np.isnan(c).any() or np.isneginf(c).any():
        raise ValueError("cost must not contain NaN or -inf")
    n, m = c.shape
    if n == 0 or m == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    if n <= m:
        return np.arange(n, dtype=np.intp), _solve(c)
    col_rows = _solve(c.T)  # row of each column
    order = np.argsort(col_rows)
    return col_rows[order].astype(np.intp), order.astype(np.intp)


def gated_assignment(cost: ArrayLike, max_cost: float = np.inf) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Partial assignment: pairs with ``cost > max_cost`` (or ``inf``) are forbidden.

    Among the allowed pairs this matches as many rows as possible and, among those maximum
    matchings, returns one of minimum total cost. Rows and columns left out are unmatched. Returns
    ``(rows, cols)`` with rows in increasing order.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {c.shape}")
    if np.isnan(c).any() or np.isneginf(c).any():
        raise ValueError("cost must not contain NaN or -inf")
    allowed = np.isfinite(c) & (c <= max_cost)
    if not allowed.any():
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    lo, hi = c[allowed].min(), c[allowed].max()
    # Shift allowed costs into [0, span] and price a forbidden pair above any possible difference
    # between two assignments' allowed parts, so fewer forbidden pairs always wins.
    span = hi - lo
    k = min(c.shape)
    big = (k + 1) * (span + 1.0)
    work = np.where(allowed, c - lo, big)
    rows, cols = linear_sum_assignment(work)
    keep = allowed[rows, cols]
    return rows[keep], cols[keep]
