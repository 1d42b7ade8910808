"""Multivariate analysis across series sampled at different timestamps: alignment and (lagged) correlation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsops.quality.period import estimate_period


def _tolerance(df: pd.DataFrame, factor: float) -> pd.Timedelta:
    """Half the largest estimated period among the series (times ``factor`` * 2)."""
    periods = []
    for _, g in df.groupby("series_id", observed=True):
        p = estimate_period(g["ts"]).period
        if p is not None:
            periods.append(p)
    if not periods:
        raise ValueError("cannot derive an alignment tolerance: no series has 3 or more distinct timestamps")
    return max(periods) * factor


def align(df: pd.DataFrame, how: str = "asof", reference: str | None = None,
          tolerance: pd.Timedelta | str | None = None, freq: str | pd.Timedelta | None = None) -> pd.DataFrame:
    """Wide frame (index ts, one column per series) of series sampled at different moments.

    ``how='asof'``: the timestamps of ``reference`` (default: the series with most rows) are the index;
    every other series contributes its nearest reading within ``tolerance`` (default: half the largest
    estimated sampling period). ``how='grid'``: every series is averaged into bins of ``freq`` (default: the
    largest estimated period), i.e. a common grid.
    """
    if not {"series_id", "ts", "value"} <= set(df.columns):
        raise ValueError(f"align needs columns series_id, ts, value; got {list(df.columns)}")
    d = df[["series_id", "ts", "value"]].dropna(subset=["ts"]).sort_values("ts")
    ids = sorted(d["series_id"].unique())
    if how == "grid":
        freq = pd.Timedelta(freq) if freq is not None else _tolerance(d, 1.0)
        wide = (d.set_index("ts").groupby("series_id")["value"].resample(freq).mean().unstack(0))
        return wide[ids]
    if how != "asof":
        raise ValueError(f"how must be 'asof' or 'grid', got {how!r}")
    tol = pd.Timedelta(tolerance) if tolerance is not None else _tolerance(d, 0.5)
    counts = d["series_id"].value_counts()
    ref = reference if reference is not None else counts.index[0]
    if ref not in counts.index:
        raise ValueError(f"reference series {ref!r} not in the frame (series: {ids[:5]}...)")
    base = d[d["series_id"] == ref][["ts", "value"]].drop_duplicates("ts", keep="last")
    out = base.rename(columns={"value": ref}).reset_index(drop=True)
    for sid in ids:
        if sid == ref:
            continue
        other = d[d["series_id"] == sid][["ts", "value"]].drop_duplicates("ts", keep="last")
        out = pd.merge_asof(out, other.rename(columns={"value": sid}), on="ts", direction="nearest",
                            tolerance=tol)
    return out.set_index("ts")[ids]


def correlation(wide: pd.DataFrame, method: str = "pearson", min_periods: int = 10) -> pd.DataFrame:
    """Pearson or Spearman correlation matrix of an aligned wide frame (pairwise complete rows)."""
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    return wide.corr(method=method, min_periods=min_periods)


def cross_correlation(x: np.ndarray, y: np.ndarray, max_lag: int) -> pd.Series:
    """Pearson correlation of x[t] with y[t + lag] for lag in -max_lag..max_lag (pairwise-complete).

    A positive best lag means ``x`` leads ``y`` by that many steps.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if x.shape != y.shape:
        raise ValueError(f"x and y must be aligned to the same length, got {x.size} and {y.size}")
    n = x.size
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        a = x[max(0, -lag): n - max(0, lag)]
        b = y[max(0, lag): n - max(0, -lag)]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
            out[lag] = np.nan
        else:
            out[lag] = float(np.corrcoef(a[ok], b[ok])[0, 1])
    return pd.Series(out, name="xcorr")


def best_lags(wide: pd.DataFrame, max_lag: int = 24) -> pd.DataFrame:
    """For every ordered pair of columns: the lag with the largest |cross-correlation| and its value.

    Columns: ``leader, follower, lag, corr`` (lag >= 0 means ``leader`` leads), sorted by |corr|.
    """
    cols = list(wide.columns)
    rows = []
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            xc = cross_correlation(wide[a].to_numpy(), wide[b].to_numpy(), max_lag)
            if xc.isna().all():
                continue
            lag = int(xc.abs().idxmax())
            lead, follow, lg = (a, b, lag) if lag >= 0 else (b, a, -lag)
            rows.append({"leader": lead, "follower": follow, "lag": lg, "corr": float(xc[lag])})
    out = pd.DataFrame(rows, columns=["leader", "follower", "lag", "corr"])
    return out.reindex(out["corr"].abs().sort_values(ascending=False).index).reset_index(drop=True)
