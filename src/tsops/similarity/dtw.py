"""Exact DTW distances of many series to one pattern, with UCR-suite semantics.

* both sides z-normalised (population std; a constant series or window becomes zeros), unless
  ``normalize=False``;
* Sakoe-Chiba band of half-width ``floor(stretch * m)`` for ``stretch <= 1``, ``floor(stretch)`` steps above;
* squared point-wise cost, distance = sqrt of the summed cost along the best path;
* series longer than the pattern: best-matching window (each window normalised on its own) and its start.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numba
import numpy as np

from tsops.similarity import _kernels as K

log = logging.getLogger(__name__)

NanPolicy = Literal["raise", "interpolate"]
DEFAULT_BLOCK = 64
_NO_ROWS = np.empty(0, dtype=np.int64)
_NUMBER = (int, float, np.floating, np.integer)
_SMALL_N = 20_000  # below this, a top-k query is the full vector plus a stable argsort
#: Below this many DP cells (series x length x band width) a query runs on one thread: waking the pool costs
#: more than it saves (811 products x 52 weeks at stretch 0.05, ~0.2 M cells, on 2 cores under load 11:
#: 0.19 ms on one thread vs 1.0 ms on two; a 200,000-row full vector, ~50 M cells, gains from both cores).
PARALLEL_MIN_CELLS = 4_000_000


def _cells(n: int, length: int, r: int) -> int:
    return n * length * (2 * r + 1)


def _on_threads(cells: int, fn, *args):
    """Call a parallel kernel with every numba thread, or with one below :data:`PARALLEL_MIN_CELLS` (the
    kernels' ``prange`` then runs on the calling thread, no pool wake-up). Returns ``(threads, fn(...))``
    where ``fn`` receives the thread count as its first argument."""
    avail = numba.get_num_threads()  # once per call: it takes a lock (~1 us)
    if cells >= PARALLEL_MIN_CELLS or avail == 1:
        return fn(avail, *args)
    numba.set_num_threads(1)
    try:
        return fn(1, *args)
    finally:
        numba.set_num_threads(avail)


class NonFiniteSeriesError(ValueError):
    """A series holds NaN or infinite values and the NaN policy does not repair them."""


class TopK(NamedTuple):
    """The k closest series: row indices, distances (ascending; ties by index) and best window starts.
    (A named tuple: immutable like a frozen dataclass, and built in a third of the time, which shows on a
    45-microsecond query.)"""

    indices: np.ndarray
    distances: np.ndarray
    locations: np.ndarray


def band_halfwidth(stretch: float, m: int) -> int:
    """Sakoe-Chiba half-width for a pattern of length m (UCR rule), clipped to m - 1."""
    if not (isinstance(stretch, _NUMBER) and math.isfinite(stretch)):
        raise ValueError(f"stretch must be a finite number, got {stretch!r}")
    if stretch < 0:
        raise ValueError(f"stretch must be >= 0 (a fraction of the length, or steps when > 1), got {stretch}")
    r = math.floor(stretch * m) if stretch <= 1 else math.floor(stretch)
    return int(min(r, max(m - 1, 0)))


def znormalize(x: np.ndarray) -> np.ndarray:
    """z-normalise a 1-d array exactly as the engine does (constant input gives zeros)."""
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"znormalize expects a 1-d array, got shape {arr.shape}")
    return K.znormalize_1d(arr, True)


def envelope(p: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Upper/lower LB_Keogh envelope of p over a band of half-width r."""
    m = len(p)
    padded = np.pad(np.asarray(p, dtype=float), r, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1)[:m]
    return windows.max(axis=1), windows.min(axis=1)


def _describe_rows(rows: np.ndarray, ids: Sequence | None, limit: int = 5) -> str:
    names = [repr(ids[i]) if ids is not None else str(int(i)) for i in rows[:limit]]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    kind = "ids" if ids is not None else "rows"
    return f"{kind} {', '.join(names)}{more}"


def _interpolate_rows(x: np.ndarray, ids: Sequence | None) -> np.ndarray:
    """Fill NaNs in each row by linear interpolation over time (edges take the nearest value)."""
    if np.isinf(x).any():
        rows = np.flatnonzero(np.isinf(x).any(axis=1))
        raise NonFiniteSeriesError(
            f"infinite values in {_describe_rows(rows, ids)}; nan_policy='interpolate' only repairs NaN"
        )
    rows = np.flatnonzero(np.isnan(x).any(axis=1))
    if len(rows) == 0:
        return x
    x = x.copy()
    t = np.arange(x.shape[1], dtype=float)
    for i in rows:
        good = ~np.isnan(x[i])
        if not good.any():
            raise NonFiniteSeriesError(f"{_describe_rows(np.array([i]), ids)} holds only NaN; nothing to interpolate")
        x[i] = np.interp(t, t[good], x[i, good])
    log.info("interpolated NaNs in %d series", len(rows))
    return x


def _prepare(series, pattern, stretch, normalize, nan_policy, ids, normalize_pattern=True):
    x = np.asarray(series, dtype=np.float64)
    if x.ndim == 2 and not (x.flags.c_contiguous or x.flags.f_contiguous):
        x = np.ascontiguousarray(x)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError(f"series must be a 2-d array (n_series, n_steps), got shape {x.shape}")
    p_raw = np.ascontiguousarray(pattern, dtype=np.float64)
    if p_raw.ndim != 1 or len(p_raw) == 0:
        raise ValueError(f"pattern must be a non-empty 1-d array, got shape {p_raw.shape}")
    m = len(p_raw)
    if x.shape[1] < m:
        raise ValueError(f"series have {x.shape[1]} steps, shorter than the pattern ({m} steps)")
    if ids is not None and len(ids) != x.shape[0]:
        raise ValueError(f"ids has {len(ids)} entries but series has {x.shape[0]} rows")
    if nan_policy == "interpolate":
        x = _interpolate_rows(x, ids)
    elif nan_policy != "raise":
        raise ValueError(f"nan_policy must be 'raise' or 'interpolate', got {nan_policy!r}")
    r = band_halfwidth(stretch, m)
    return x, (_normalized_pattern(p_raw, normalize) if normalize_pattern else p_raw), r


def _normalized_pattern(p_raw: np.ndarray, normalize: bool) -> np.ndarray:
    p = K.znormalize_1d(p_raw, bool(normalize))  # all NaN when the pattern holds NaN/inf
    if p[0] != p[0]:
        _raise_bad_pattern(p_raw)
    return p


def _raise_bad_pattern(p_raw: np.ndarray) -> None:
    raise NonFiniteSeriesError(f"pattern has NaN/inf at positions {np.flatnonzero(~np.isfinite(p_raw)).tolist()}")


def _check_block(block) -> int:
    if not isinstance(block, int | np.integer) or block < 1:
        raise ValueError(f"block must be a positive integer (series per SIMD block), got {block!r}")
    return int(block)


def _raise_nonfinite(rows: np.ndarray, ids: Sequence | None) -> None:
    raise NonFiniteSeriesError(
        f"NaN or infinite values in {_describe_rows(rows, ids)}; clean them or pass nan_policy='interpolate'"
    )


def dtw_distances(
    series: np.ndarray,
    pattern: np.ndarray,
    stretch: float,
    normalize: bool = True,
    *,
    nan_policy: NanPolicy = "raise",
    return_locations: bool = False,
    ids: Sequence | None = None,
    block: int = DEFAULT_BLOCK,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """DTW distance of every row of ``series`` (n, L) to ``pattern`` (m,), L >= m.

    L == m: whole-series distances. L > m: distance of the best-matching window; with
    ``return_locations=True`` also its start index (0 for whole series). ``nan_policy='raise'`` (default)
    raises :class:`NonFiniteSeriesError` naming the offending rows (or ``ids``); ``'interpolate'`` fills NaNs
    linearly along time first.
    """
    block = _check_block(block)
    x, p, r = _prepare(series, pattern, stretch, normalize, nan_policy, ids)
    n, length = x.shape
    out = np.empty(n)
    if length == len(p):
        nbad = _full_vector(x, p, r, normalize, block, out)
        if nbad:
            _raise_nonfinite(np.flatnonzero(np.isnan(out)), ids)
        return (out, np.zeros(n, dtype=np.int64)) if return_locations else out
    loc = np.empty(n, dtype=np.int64)
    upper, lower = envelope(p, r)
    xc = np.ascontiguousarray(x)
    _on_threads(_cells(n, length, r), lambda _th: K.dtw_windows_all(xc, p, upper, lower, r, bool(normalize), out,
                                                                     loc))
    bad = np.isnan(out)
    if bad.any():
        _raise_nonfinite(np.flatnonzero(bad), ids)
    return (out, loc) if return_locations else out


def dtw_topk(
    series: np.ndarray,
    pattern: np.ndarray,
    stretch: float,
    k: int = 10,
    normalize: bool = True,
    *,
    nan_policy: NanPolicy = "raise",
    ids: Sequence | None = None,
    n_chunks: int | None = None,
    block: int = DEFAULT_BLOCK,
) -> TopK:
    """The k series closest to the pattern, exact, with LB_Kim/LB_Keogh pruning and early abandoning.

    Equal to the first k entries of ``np.argsort(dtw_distances(...), kind="stable")``.
    """
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    block = _check_block(block)
    x, p, r = _prepare(series, pattern, stretch, normalize, nan_policy, ids, normalize_pattern=False)
    n, length = x.shape
    k = min(int(k), n)
    if length == len(p) and n <= _SMALL_N and not x.flags.c_contiguous and normalize and k < n:
        # time-major, small: a float32 screen, then the exact DTW of the candidates (the kernel normalises
        # the pattern and chooses the block layout: a query on 811 series takes ~35 us, every us shows)
        idx, dist, loc, nbad = _on_threads(
            _cells(n, length, r), lambda th: K.dtw_topk_screened(x.T, p, r, 0 if block == DEFAULT_BLOCK else block,
                                                                 k, th))
        if nbad < 0:
            _raise_bad_pattern(p)
        if nbad:
            _raise_nonfinite(np.flatnonzero(~np.isfinite(x).all(axis=1)), ids)
        return TopK(idx, dist, loc)
    p = _normalized_pattern(p, normalize)
    if length == len(p) and n <= _SMALL_N:  # pruning does not pay off: full vector, then the k smallest
        d = np.empty(n)

        def full_topk(threads: int, block: int = block):
            if x.flags.c_contiguous:
                return K.dtw_topk_full(x, False, p, r, bool(normalize), int(block),
                                       _n_chunks(n, block, threads), k, d)
            block = _balanced_block(n, threads) if block == DEFAULT_BLOCK else block
            return K.dtw_topk_full(x.T, True, p, r, bool(normalize), int(block), _n_chunks(n, block, threads), k, d)

        idx, has_nan = _on_threads(_cells(n, length, r), full_topk)
        if has_nan:
            _raise_nonfinite(np.flatnonzero(np.isnan(d)), ids)
        return TopK(indices=idx, distances=d[idx], locations=np.zeros(len(idx), dtype=np.int64))
    x = np.ascontiguousarray(x)  # the pruned scans read series row by row
    upper, lower = envelope(p, r)
    if length == len(p):
        return _topk_equal_length(x, p, upper, lower, r, k, bool(normalize), ids, block)
    bad = np.zeros(n, dtype=np.bool_)

    def windows_topk(threads: int):
        chunks = max(1, min(int(n_chunks or threads), n))
        out = (np.empty((chunks, k)), np.empty((chunks, k), dtype=np.int64), np.empty((chunks, k), dtype=np.int64))
        K.dtw_topk_chunks(x, p, upper, lower, r, bool(normalize), k, chunks, *out, bad)
        return out

    out_d, out_i, out_l = _on_threads(_cells(n, length, r), windows_topk)
    if bad.any():
        _raise_nonfinite(np.flatnonzero(bad), ids)
    d, i, loc = out_d.ravel(), out_i.ravel(), out_l.ravel()
    keep = i >= 0
    d, i, loc = d[keep], i[keep], loc[keep]
    order = np.lexsort((i, d))[:k]
    return TopK(indices=i[order], distances=np.sqrt(d[order]), locations=loc[order])


def _topk_equal_length(x, p, upper, lower, r, k, normalize, ids, block) -> TopK:
    """Exact top-k in one pruned pass (see ``_kernels.topk_scan``).

    A strided sample of series gets an exact DTW first; its k-th best distance (tau0) bounds the final k-th
    distance from above and lets the scan prune from its first series. Each thread then scans its share of
    the series: LB_Kim ends, then LB_Keogh (early exit), survivors gathered into blocks for the batched DTW,
    the threshold tightening as the thread-local top-k improves. Distances equal ``dtw_distances`` bit for
    bit; ties are broken by the lower index.
    """
    n = x.shape[0]
    n_seed = min(n, max(16 * k, n // 256, 256))
    tau0 = np.inf
    if n_seed < n:
        seed = np.unique(np.linspace(0, n - 1, n_seed).astype(np.int64))
        d_seed = _rows_distances(x, seed, p, r, normalize, block)
        finite = d_seed[np.isfinite(d_seed)]
        if len(finite) >= k:
            tau0 = float(np.partition(finite, k - 1)[k - 1]) ** 2
    bad = np.zeros(n, dtype=np.bool_)

    def scan(threads: int):
        chunks = max(1, min(threads, n // max(block, 1) or 1))
        out_d, out_i = np.empty((chunks, k)), np.empty((chunks, k), dtype=np.int64)
        K.topk_scan(x, p, upper, lower, r, normalize, int(block), k, tau0, chunks, out_d, out_i, bad)
        return out_d, out_i

    out_d, out_i = _on_threads(_cells(n, x.shape[1], r), scan)
    if bad.any():
        _raise_nonfinite(np.flatnonzero(bad), ids)
    d, i = out_d.ravel(), out_i.ravel()
    keep = i >= 0
    d, i = d[keep], i[keep]
    order = np.lexsort((i, d))[:k]
    return TopK(indices=i[order], distances=np.sqrt(d[order]), locations=np.zeros(len(order), dtype=np.int64))


def _full_vector(x: np.ndarray, p: np.ndarray, r: int, normalize: bool, block: int, out: np.ndarray) -> int:
    """Whole-series distances into ``out``; returns the number of rows with NaN/inf (NaN in ``out``). A
    Fortran-ordered input (what ``DataFrame.to_numpy()`` returns) is read time-major through its transpose,
    without the copy a row-major kernel would need."""
    n = x.shape[0]

    def full(threads: int, block: int = block) -> int:
        if x.flags.c_contiguous:
            return K.dtw_full_batched(x, _NO_ROWS, False, False, p, r, bool(normalize), int(block),
                                      _n_chunks(n, block, threads), out)
        if block == DEFAULT_BLOCK:
            block = _balanced_block(n, threads)
        return K.dtw_full_batched(x.T, _NO_ROWS, False, True, p, r, bool(normalize), int(block),
                                  _n_chunks(n, block, threads), out)

    return _on_threads(_cells(n, x.shape[1], r), full)


def _balanced_block(n: int, threads: int) -> int:
    return K.balanced_block(n, threads, 256, 8)


def _n_chunks(n: int, block: int, threads: int | None = None) -> int:
    return K.n_chunks(n, int(block), threads or numba.get_num_threads())


def _rows_distances(x, rows, p, r, normalize, block) -> np.ndarray:
    out = np.empty(len(rows))
    K.dtw_full_batched(x, np.ascontiguousarray(rows, dtype=np.int64), True, False, p, r, normalize, int(block),
                       _n_chunks(len(rows), block), out)
    return out
