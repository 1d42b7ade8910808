"""Decomposition (STL / MSTL), season-length inference and re-sampling."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from tsops.quality import kernels as K

log = logging.getLogger(__name__)

_CYCLES = (pd.Timedelta(days=1), pd.Timedelta(weeks=1), pd.Timedelta(hours=1), pd.Timedelta(days=365.25))
#: STL costs O(n * season): callers decompose longer seasons on block means so the season stays this short
MAX_STL_SEASON = 168


def infer_season_length(period: pd.Timedelta | None, n: int, max_season: int = 2000) -> int | None:
    """Samples per natural cycle (day, week, hour, year) for a sampling ``period``: the first cycle that is
    an integer number (>= 2) of periods and fits at least twice in ``n`` samples; None if none does.

    A calendar guess, not a detection: every consumer reads the series' seasons from its profile
    (:class:`tsops.datamodel.SeriesProfile`); only the quality stage's cleaning still falls back to this."""
    if period is None or period <= pd.Timedelta(0):
        return None
    for cycle in _CYCLES:
        ratio = cycle / period
        k = round(ratio)
        if k >= 2 and abs(ratio - k) < 1e-6 * max(1, k) and 2 * k <= n and k <= max_season:
            return int(k)
    return None


def acf_season_length(values: np.ndarray, max_lag: int | None = None, min_acf: float = 0.3) -> int | None:
    """Season length from the highest local ACF peak above ``min_acf`` (NaNs interpolated first)."""
    from tsops.analysis.stats import acf

    x = np.asarray(values, float)
    n = x.size
    max_lag = max_lag or n // 2
    r = acf(x, max_lag)
    best, best_val = None, min_acf
    for lag in range(2, len(r) - 1):
        if r[lag] > r[lag - 1] and r[lag] >= r[lag + 1] and r[lag] > best_val:
            best, best_val = lag, r[lag]
    return best


def _fill_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float).copy()
    ok = np.isfinite(x)
    if ok.all() or not ok.any():
        return x
    i = np.arange(x.size)
    x[~ok] = np.interp(i[~ok], i[ok], x[ok])
    return x


def decompose(values: np.ndarray, season_length: int | list[int] | None, robust: bool = True) -> pd.DataFrame:
    """Trend, seasonal and residual components of a regularly sampled series (NaNs linearly filled first).

    One season length -> STL; several -> MSTL; None (or too short) -> trend only (a centred rolling
    median over ~5% of the series), seasonal zero.
    """
    from statsmodels.tsa.seasonal import MSTL, STL

    x = _fill_linear(values)
    n = x.size
    if n == 0 or not np.isfinite(x).any():
        z = np.full(n, np.nan)
        return pd.DataFrame({"trend": z, "seasonal": z, "resid": z})
    seasons = [season_length] if isinstance(season_length, int | np.integer) else list(season_length or [])
    seasons = sorted(int(s) for s in seasons if s and s >= 2 and 2 * s <= n)
    if len(seasons) == 1:
        res = STL(x, period=seasons[0], robust=robust).fit()
        trend, seasonal = np.asarray(res.trend), np.asarray(res.seasonal)
    elif len(seasons) > 1:
        res = MSTL(x, periods=seasons, stl_kwargs={"robust": robust}).fit()
        trend = np.asarray(res.trend)
        seasonal = np.asarray(res.seasonal).reshape(n, -1).sum(axis=1)
    else:
        w = max(3, (n // 20) | 1)
        trend = pd.Series(x).rolling(w, center=True, min_periods=1).median().to_numpy()
        seasonal = np.zeros(n)
    return pd.DataFrame({"trend": trend, "seasonal": seasonal, "resid": x - trend - seasonal})


def robust_decompose(values: np.ndarray, season_length: int | None) -> pd.DataFrame:
    """Outlier-resistant decomposition for residual analysis: seasonal = median of the detrended values per
    phase (zero-median), trend = centred rolling median over one season (or ~5% of the series) of the
    deseasonalised values.
    Unlike STL on short series, a single spike cannot leak into the seasonal component."""
    x = np.asarray(values, float)
    n = x.size
    w = season_length if season_length and 2 <= season_length <= n else max(3, (n // 20) | 1)
    trend = pd.Series(x).rolling(w, center=True, min_periods=1).median().to_numpy()
    det = x - trend
    seasonal = np.zeros(n)
    if season_length and season_length >= 2 and 2 * season_length <= n:
        pad = (-n) % season_length
        m = np.concatenate([det, np.full(pad, np.nan)]).reshape(-1, season_length)
        prof = np.nanmedian(m, axis=0) if np.isfinite(m).any() else np.zeros(season_length)
        prof = np.nan_to_num(prof - np.nanmedian(prof))
        seasonal = np.tile(prof, m.shape[0])[:n]
        # re-estimate the trend on the deseasonalised series: no edge bias from a half-window over a cycle
        trend = pd.Series(x - seasonal).rolling(w, center=True, min_periods=1).median().to_numpy()
    return pd.DataFrame({"trend": trend, "seasonal": seasonal, "resid": x - trend - seasonal})


def robust_decompose_seasons(values: np.ndarray, season_lengths: tuple[int, ...] | list[int],
                             level_window: int = 0) -> pd.DataFrame:
    """Outlier- and event-resistant decomposition of a regular series with the given season lengths (samples;
    e.g. from the series profile, () = level only): trend, seasonal, resid, as the anomaly detector of the
    cleaning chain sees them (:func:`tsops.quality.kernels.robust_decompose_seasons`). NaN = no reading.
    ``level_window`` 0 = the longest season (made odd), or 25 samples without a season."""
    x = np.ascontiguousarray(values, np.float64)
    seasons = np.array(sorted(int(s) for s in season_lengths), np.int64)
    if np.any(seasons < 2):
        raise ValueError(f"season_lengths must all be >= 2 samples, got {list(season_lengths)}")
    if level_window < 0 or level_window == 1:
        raise ValueError(f"level_window must be 0 (derived) or >= 2 samples, got {level_window}")
    lw = level_window or ((int(seasons.max()) | 1) if seasons.size else 25)
    trend, seasonal = K.robust_decompose_seasons(x, np.arange(x.size, dtype=np.int64), seasons, lw)
    return pd.DataFrame({"trend": trend, "seasonal": seasonal, "resid": x - trend - seasonal})


def downsample(df: pd.DataFrame, rule: str | pd.Timedelta, how: str = "mean") -> pd.DataFrame:
    """Aggregate a long frame (series_id, ts, value) to a coarser grid per series: mean, sum, last, min, max."""
    if how not in {"mean", "sum", "last", "first", "min", "max", "median"}:
        raise ValueError(f"how must be mean/sum/last/first/min/max/median, got {how!r}")
    g = df.set_index("ts").groupby("series_id", observed=True)["value"].resample(rule)
    out = getattr(g, how)().reset_index()
    return out[["series_id", "ts", "value"]]


def upsample(df: pd.DataFrame, rule: str | pd.Timedelta, method: str = "time") -> pd.DataFrame:
    """Re-sample each series onto a finer grid, filling new points by interpolation (``method`` as in
    :meth:`pandas.Series.interpolate`, default time-aware linear); original points off the grid are used
    as anchors and then dropped."""
    out = []
    for sid, g in df.groupby("series_id", observed=True, sort=True):
        s = g.set_index("ts")["value"].sort_index()
        s = s[~s.index.duplicated(keep="last")].dropna()
        if s.empty:
            continue
        grid = pd.date_range(s.index[0].ceil(rule), s.index[-1], freq=rule)
        u = s.reindex(s.index.union(grid)).interpolate(method=method, limit_area="inside").reindex(grid)
        out.append(pd.DataFrame({"series_id": sid, "ts": grid, "value": u.to_numpy()}))
    return pd.concat(out, ignore_index=True) if out else df.iloc[0:0][["series_id", "ts", "value"]]
