"""A plain, obviously-correct DTW (full cost matrix, no pruning) that the fast engine is checked against."""

from __future__ import annotations

import math

import numpy as np


def band_halfwidth_reference(stretch: float, m: int) -> int:
    """UCR-suite rule: floor(stretch * m) when stretch <= 1, else floor(stretch) steps; at most m - 1."""
    r = math.floor(stretch * m) if stretch <= 1 else math.floor(stretch)
    return int(min(max(r, 0), max(m - 1, 0)))


def znorm_reference(x: np.ndarray) -> np.ndarray:
    """Population z-normalisation; a constant series becomes zeros."""
    x = np.asarray(x, dtype=float)
    if x.max() == x.min():
        return np.zeros_like(x)
    return (x - x.mean()) / x.std()


def dtw_reference(a: np.ndarray, b: np.ndarray, r: int) -> float:
    """sqrt of the minimal summed squared cost over warping paths with |i - j| <= r (len(a) == len(b))."""
    m = len(a)
    cost = np.full((m + 1, m + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(1, m + 1):
        for j in range(max(1, i - r), min(m, i + r) + 1):
            c = (a[i - 1] - b[j - 1]) ** 2
            cost[i, j] = c + min(cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1])
    return math.sqrt(cost[m, m])


def dtw_distances_reference(
    series: np.ndarray, pattern: np.ndarray, stretch: float, normalize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and best window starts, one window at a time (UCR-suite semantics, no pruning)."""
    series = np.atleast_2d(np.asarray(series, dtype=float))
    pattern = np.asarray(pattern, dtype=float)
    m = len(pattern)
    r = band_halfwidth_reference(stretch, m)
    q = znorm_reference(pattern) if normalize else pattern
    dist = np.empty(len(series))
    loc = np.empty(len(series), dtype=np.int64)
    for n, row in enumerate(series):
        best, at = math.inf, -1
        for s in range(len(row) - m + 1):
            w = row[s : s + m]
            d = dtw_reference(znorm_reference(w) if normalize else w, q, r)
            if d < best:
                best, at = d, s
        dist[n], loc[n] = best, at
    return dist, loc
