"""Univariate analysis: descriptive statistics, KDE, ACF, stationarity tests, trend/seasonality strength."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def _finite(values) -> np.ndarray:
    x = np.asarray(values, float)
    return x[np.isfinite(x)]


def describe(values) -> dict:
    """Count, missing, mean, std, min, quartiles, max, skewness, kurtosis (excess) of a series."""
    from scipy import stats

    raw = np.asarray(values, float)
    x = _finite(raw)
    out = {"count": int(x.size), "missing": int(raw.size - x.size)}
    if x.size == 0:
        return out
    q = np.quantile(x, [0.25, 0.5, 0.75])
    out.update(mean=float(x.mean()), std=float(x.std(ddof=1)) if x.size > 1 else 0.0, min=float(x.min()),
               p25=float(q[0]), median=float(q[1]), p75=float(q[2]), max=float(x.max()))
    if x.size > 2 and x.std() > 0:
        out.update(skewness=float(stats.skew(x)), kurtosis=float(stats.kurtosis(x)))
    return out


def kde(values, grid_size: int = 256, bw_method: str | float | None = None) -> pd.DataFrame:
    """Gaussian kernel density estimate on an even grid spanning the data +- 3 bandwidths: columns x, density."""
    from scipy.stats import gaussian_kde

    x = _finite(values)
    if x.size < 2 or np.ptp(x) == 0:
        raise ValueError(f"KDE needs at least two distinct finite values, got {x.size} value(s)")
    k = gaussian_kde(x, bw_method=bw_method)
    bw = float(np.sqrt(k.covariance[0, 0]))
    grid = np.linspace(x.min() - 3 * bw, x.max() + 3 * bw, grid_size)
    return pd.DataFrame({"x": grid, "density": k(grid)})


def acf(values, max_lag: int = 48) -> np.ndarray:
    """Autocorrelation at lags 0..max_lag (FFT; NaNs linearly interpolated, ends trimmed)."""
    x = np.asarray(values, float)
    ok = np.isfinite(x)
    if ok.sum() < 3:
        raise ValueError(f"ACF needs at least 3 finite values, got {int(ok.sum())}")
    first, last = np.flatnonzero(ok)[[0, -1]]
    x = x[first:last + 1]
    ok = ok[first:last + 1]
    if not ok.all():
        i = np.arange(x.size)
        x = np.interp(i, i[ok], x[ok])
    x = x - x.mean()
    n = x.size
    max_lag = min(max_lag, n - 1)
    f = np.fft.rfft(x, 2 * n)
    r = np.fft.irfft(f * np.conj(f))[: max_lag + 1]
    return r / r[0] if r[0] > 0 else np.zeros(max_lag + 1)


def stationarity(values, regression: str = "c") -> dict:
    """ADF (H0: unit root) and KPSS (H0: stationary) statistics and p-values, and a verdict:
    'stationary' if ADF rejects and KPSS does not (5%), 'non-stationary' if the reverse, else 'inconclusive'."""
    from statsmodels.tsa.stattools import adfuller, kpss

    x = _finite(values)
    if x.size < 12:
        raise ValueError(f"stationarity tests need at least 12 finite values, got {x.size}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KPSS warns when the p-value is outside its table; ADF on API change
        adf_stat, adf_p, *_ = adfuller(x, regression=regression, autolag="AIC")
        kpss_stat, kpss_p, *_ = kpss(x, regression=regression, nlags="auto")
    if adf_p < 0.05 and kpss_p >= 0.05:
        verdict = "stationary"
    elif adf_p >= 0.05 and kpss_p < 0.05:
        verdict = "non-stationary"
    else:
        verdict = "inconclusive"
    return {"adf_stat": float(adf_stat), "adf_pvalue": float(adf_p), "kpss_stat": float(kpss_stat),
            "kpss_pvalue": float(kpss_p), "verdict": verdict}


def strength(values, season_length: int | None) -> dict:
    """Trend and seasonality strength (Wang, Smith & Hyndman 2006) from an STL decomposition, in [0, 1]."""
    from tsops.analysis.decompose import decompose

    d = decompose(values, season_length)
    r = d["resid"].to_numpy()
    vr = np.nanvar(r)
    tr = np.nanvar(r + d["trend"].to_numpy())
    sr = np.nanvar(r + d["seasonal"].to_numpy())
    return {"trend_strength": float(max(0.0, 1 - vr / tr)) if tr > 0 else 0.0,
            "seasonal_strength": float(max(0.0, 1 - vr / sr)) if season_length and sr > 0 else 0.0}


def profile(values, season_length: int | None = None, max_lag: int = 48) -> dict:
    """Everything above for one series in one JSON-serialisable dict (used for catalog documents)."""
    out: dict = {"describe": describe(values)}
    x = _finite(values)
    if x.size >= 3:
        out["acf"] = [float(a) for a in acf(values, max_lag)]
    if x.size >= 12:
        try:
            out["stationarity"] = stationarity(values)
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.info("stationarity tests skipped: %s", exc)
        out.update(strength(values, season_length))
    return out
