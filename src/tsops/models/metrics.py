"""Point-forecast accuracy metrics (pure numpy).

Definitions follow the M4 competition (Makridakis et al., IJF 2020):

* ``smape = mean(200 * |y - f| / (|y| + |f|))`` (percent; a 0/0 term counts as 0),
* ``mase = mean(|y - f|) / mean(|x_t - x_{t-m}|)`` with the in-sample seasonal naive MAE of the training
  series ``x`` as scale (``m`` = the series' season in samples, from its profile; ``None`` = no season:
  lag 1, the naive forecast's in-sample error, as for M4's yearly data),
* ``owa = (smape / smape_naive2 + mase / mase_naive2) / 2`` computed on the *overall* means.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pair(y: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float)
    f = np.asarray(f, dtype=float)
    if y.shape != f.shape:
        raise ValueError(f"actuals shape {y.shape} and forecast shape {f.shape} differ")
    return y, f


def rmse(y: np.ndarray, f: np.ndarray) -> float:
    """Root mean squared error over all (non-NaN) points."""
    y, f = _pair(y, f)
    return float(np.sqrt(np.nanmean((y - f) ** 2)))


def mae(y: np.ndarray, f: np.ndarray) -> float:
    """Mean absolute error over all (non-NaN) points."""
    y, f = _pair(y, f)
    return float(np.nanmean(np.abs(y - f)))


def mape(y: np.ndarray, f: np.ndarray) -> float:
    """Mean absolute percentage error in percent; points with ``y == 0`` are skipped."""
    y, f = _pair(y, f)
    ok = y != 0
    if not np.any(ok):
        return float("nan")
    return float(100.0 * np.nanmean(np.abs((y[ok] - f[ok]) / y[ok])))


def smape(y: np.ndarray, f: np.ndarray) -> float:
    """Symmetric MAPE in percent (M4 definition, range 0..200)."""
    y, f = _pair(y, f)
    den = np.abs(y) + np.abs(f)
    num = 200.0 * np.abs(y - f)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(den == 0, 0.0, num / np.where(den == 0, 1.0, den))
    return float(np.nanmean(terms))


def mase_scale(insample: np.ndarray, m: int | None) -> float:
    """In-sample MAE of the seasonal naive forecast with lag ``m`` (``None``: no season, lag 1; lag 1 too when
    the series is not longer than ``m``)."""
    x = np.asarray(insample, dtype=float)
    x = x[~np.isnan(x)]
    lag = m if m and m > 1 and len(x) > m else 1
    if len(x) <= lag:
        raise ValueError(f"series of length {len(x)} is too short for a MASE scale with lag {lag}")
    return float(np.mean(np.abs(x[lag:] - x[:-lag])))


def mase(y: np.ndarray, f: np.ndarray, insample: np.ndarray, m: int | None) -> float:
    """Mean absolute scaled error: MAE divided by the in-sample seasonal naive MAE (``m`` as in
    :func:`mase_scale`)."""
    scale = mase_scale(insample, m)
    if scale == 0:
        return float("nan")
    return mae(y, f) / scale


def owa(smape_model: float, mase_model: float, smape_naive2: float, mase_naive2: float) -> float:
    """Overall weighted average relative to Naive2 (M4)."""
    return 0.5 * (smape_model / smape_naive2 + mase_model / mase_naive2)


def per_series_metrics(
    actuals: list[np.ndarray] | np.ndarray,
    forecasts: list[np.ndarray] | np.ndarray,
    insamples: list[np.ndarray] | None = None,
    m: int | Sequence[int | None] | None = None,
) -> dict[str, np.ndarray]:
    """Every metric for each series: a dict ``name -> array(n_series)``.

    ``insamples`` (the training part of each series) is needed for MASE; without it MASE is NaN. ``m``: the
    season of every series, or one per series (None: no season, MASE scaled by the lag-1 error).
    """
    if len(actuals) != len(forecasts):
        raise ValueError(f"{len(actuals)} actual series but {len(forecasts)} forecasts")
    n = len(actuals)
    out = {k: np.full(n, np.nan) for k in ("rmse", "mae", "mape", "smape", "mase")}
    for i in range(n):
        y, f = actuals[i], forecasts[i]
        out["rmse"][i] = rmse(y, f)
        out["mae"][i] = mae(y, f)
        out["mape"][i] = mape(y, f)
        out["smape"][i] = smape(y, f)
        if insamples is not None:
            s = mase_scale(insamples[i], m[i] if isinstance(m, Sequence) else m)
            out["mase"][i] = out["mae"][i] / s if s > 0 else np.nan
    return out


def summarize(per_series: dict[str, np.ndarray]) -> dict[str, float]:
    """Overall value of each metric: the mean over series (as M4 averages sMAPE and MASE)."""
    return {k: float(np.nanmean(v)) if np.any(~np.isnan(v)) else float("nan") for k, v in per_series.items()}
