"""Imputation of missing values on a regular (gap-filled) series, and the comparison of imputers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsops.quality import kernels as K

IMPUTERS = ("linear", "spline", "seasonal", "locf", "ema")
_KERNEL = {"linear": K.IMPUTE_LINEAR, "locf": K.IMPUTE_LOCF, "ema": K.IMPUTE_EMA, "none": K.IMPUTE_NONE}


def impute_values(ts_us: np.ndarray, values: np.ndarray, method: str = "linear", *,
                  season_length: int | None = None, alpha: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Return (filled values, imputed mask) for one series; ``ts_us`` int64 epoch microseconds.

    ``linear`` is linear in time, ``spline`` an Akima cubic spline in time (no overshoot between far
    knots), ``seasonal`` removes the STL seasonal component, interpolates linearly and adds it back
    (falls back to linear without a season), ``locf`` carries the last observation forward, ``ema`` uses the
    exponential moving average of past observations. Leading/trailing NaNs take the nearest observation.
    """
    t = np.ascontiguousarray(ts_us, dtype=np.int64)
    v = np.array(values, dtype=float, copy=True)
    mask = np.zeros(v.size, dtype=bool)
    if method in _KERNEL:
        K.impute(t, v, _KERNEL[method], float(alpha), mask)
        return v, mask
    ok = np.isfinite(v)
    if ok.sum() < 2 or ok.all():
        K.impute(t, v, K.IMPUTE_LINEAR, float(alpha), mask)
        return v, mask
    mask = ~ok
    tf = (t - t[0]).astype(float)
    if method == "spline":
        from scipy.interpolate import Akima1DInterpolator

        if ok.sum() < 3:
            return impute_values(t, values, "linear")
        f = Akima1DInterpolator(tf[ok], v[ok], method="makima")
        inside = mask & (tf >= tf[ok][0]) & (tf <= tf[ok][-1])
        v[inside] = f(tf[inside])
        rest = np.zeros(v.size, dtype=bool)
        K.impute(t, v, K.IMPUTE_LINEAR, float(alpha), rest)  # edges
        return v, mask
    if method == "seasonal":
        from tsops.analysis.decompose import decompose

        if not season_length or 2 * season_length > v.size:
            return impute_values(t, values, "linear")
        lin, _ = impute_values(t, values, "linear")
        seasonal = decompose(lin, season_length)["seasonal"].to_numpy()
        adj = v - seasonal
        filled, _ = impute_values(t, adj, "linear")
        v[mask] = filled[mask] + seasonal[mask]
        return v, mask
    raise ValueError(f"unknown imputation method {method!r}; choose one of {IMPUTERS + ('none',)}")


def _hide(values: np.ndarray, frac: float, block_len: int, rng: np.random.Generator) -> np.ndarray:
    """Mask of known values to hide: half scattered, half in blocks of ``block_len``."""
    known = np.flatnonzero(np.isfinite(values))
    n_hide = int(frac * known.size)
    hide = np.zeros(values.size, dtype=bool)
    if n_hide < 2:
        return hide
    scattered = rng.choice(known[1:-1], size=n_hide // 2, replace=False) if known.size > 2 else known[:0]
    hide[scattered] = True
    n_blocks = max(1, (n_hide - n_hide // 2) // max(1, block_len))
    for _ in range(n_blocks):
        start = int(rng.integers(1, max(2, values.size - block_len - 1)))
        hide[start:start + block_len] = True
    hide &= np.isfinite(values)
    hide[known[0]] = hide[known[-1]] = False
    return hide


def compare_imputers(ts_us: np.ndarray, values: np.ndarray, methods: tuple[str, ...] = IMPUTERS, *,
                     season_length: int | None = None, frac: float = 0.1, block_len: int = 12,
                     seed: int = 0, alpha: float = 0.3) -> pd.DataFrame:
    """Hide known values (scattered and in blocks), impute with each method and score it.

    Returns a frame indexed by method with ``rmse``, ``mae`` and ``n_hidden``, sorted best (lowest RMSE)
    first; ``df.index[0]`` is the method to use for this series.
    """
    v = np.asarray(values, float)
    hide = _hide(v, frac, block_len, np.random.default_rng(seed))
    rows = []
    if hide.sum() == 0:
        raise ValueError(f"too few known values ({int(np.isfinite(v).sum())}) to compare imputers")
    probe = v.copy()
    probe[hide] = np.nan
    for m in methods:
        filled, _ = impute_values(ts_us, probe, m, season_length=season_length, alpha=alpha)
        err = filled[hide] - v[hide]
        rows.append((m, float(np.sqrt(np.mean(err ** 2))), float(np.mean(np.abs(err))), int(hide.sum())))
    out = pd.DataFrame(rows, columns=["method", "rmse", "mae", "n_hidden"]).set_index("method")
    return out.sort_values(["rmse", "mae"], kind="mergesort")
