"""Rolling-origin backtests: several forecast origins, per-series per-window metrics, residuals.

Window ``k`` of ``n_windows`` (oldest first) trains on each series up to its cutoff and forecasts the next
``horizon`` points; cutoffs are ``step`` points apart and the last window ends at the end of the data. The
model only ever receives copies of the training part (so scalers and anything else it fits cannot see the
future); the test part is used solely for scoring.

MASE and the conformal scale of each series use its own season (``season_length``: one for every series, a
mapping per series, or None for none; see :mod:`tsops.models.season`); the season used is recorded in the
``season`` column of the metrics and residuals (1 = no season) and in ``BacktestResult.seasons``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tsops.models import metrics as M
from tsops.models.base import Forecaster, Panel, as_panel
from tsops.models.conformal import series_scale
from tsops.models.season import SeasonArg, lag, season_for

log = logging.getLogger(__name__)

METRICS = ("rmse", "mae", "mape", "smape", "mase")


@dataclass
class BacktestResult:
    """``metrics``: one row per (series, window); ``residuals``: one row per (series, window, step);
    ``forecasts``/``actuals``: (n_windows, n_series, horizon) arrays (NaN where a series was too short), series in
    the order of ``ids``; ``mase_scales``: (n_windows, n_series) in-sample seasonal naive MAE per window;
    ``seasons``: the season of each series' MASE scale (None: no season, lag 1)."""

    model: str
    metrics: pd.DataFrame
    residuals: pd.DataFrame
    forecasts: np.ndarray
    actuals: np.ndarray
    ids: list[str]
    mase_scales: np.ndarray
    seasons: list[int | None] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Overall metrics: means over series and windows."""
        return {k: float(self.metrics[k].mean()) for k in METRICS}

    def per_series(self) -> pd.DataFrame:
        """Metrics averaged over windows, one row per series."""
        return self.metrics.groupby("series_id")[list(METRICS)].mean()


def split_panel(panel: Panel, drop: int, horizon: int) -> tuple[Panel, list[np.ndarray]]:
    """Training part (each series without its last ``drop`` points, copied) and the next ``horizon`` points."""
    train_vals, tests = [], []
    for v in panel.values:
        n = len(v)
        train_vals.append(np.array(v[: max(0, n - drop)], copy=True))
        tests.append(np.array(v[max(0, n - drop): max(0, n - drop) + horizon], copy=True))
    ends = [
        (t - drop * panel.freq) if (t is not None and panel.freq is not None) else None for t in panel.end_ts
    ]
    return Panel(list(panel.ids), train_vals, ends, panel.freq), tests


def backtest(
    model: Forecaster,
    panel,
    horizon: int,
    n_windows: int = 3,
    step: int | None = None,
    *,
    season_length: SeasonArg,
    refit: bool = True,
    min_train: int | None = None,
) -> BacktestResult:
    """Rolling-origin evaluation of ``model`` (a fresh clone is fitted per window unless ``refit=False``, in
    which case one clone fitted on the oldest window's training part forecasts every window).

    ``season_length`` (required: from the series profiles; None = no season) scales MASE and the residuals.
    Series whose training part is shorter than ``min_train`` (default two of their seasons, two points without
    a season) are skipped in that window (NaN forecasts, no metrics rows).
    """
    if horizon < 1 or n_windows < 1:
        raise ValueError(f"horizon and n_windows must be >= 1 (got {horizon}, {n_windows})")
    p = as_panel(panel)
    step = step or horizon
    seasons = [season_for(season_length, sid) for sid in p.ids]
    need = [min_train if min_train is not None else 2 * lag(m) for m in seasons]
    n = len(p)
    F = np.full((n_windows, n, horizon), np.nan)
    A = np.full((n_windows, n, horizon), np.nan)
    S = np.full((n_windows, n), np.nan)
    rows, res = [], []
    fitted = None
    for k in range(n_windows):
        drop = horizon + (n_windows - 1 - k) * step
        train, tests = split_panel(p, drop, horizon)
        keep = [i for i in range(n) if len(train.values[i]) >= need[i] and len(tests[i]) == horizon]
        if not keep:
            log.warning("backtest window %d: no series has %d training points and a full test part", k,
                        min(need) if need else 0)
            continue
        sub = train if len(keep) == n else train.subset([p.ids[i] for i in keep])
        if refit or fitted is None:
            fitted = model.clone().fit(sub)
        fc = fitted.predict_array(horizon, sub)
        for j, i in enumerate(keep):
            y, f, x = tests[i], fc[j], train.values[i]
            F[k, i], A[k, i] = f, y
            m = seasons[i]
            sc = series_scale(x, m)
            ms = M.mase_scale(x, m)
            S[k, i] = ms
            rows.append({
                "series_id": p.ids[i], "window": k, "cutoff": len(x), "season": lag(m),
                "rmse": M.rmse(y, f), "mae": M.mae(y, f), "mape": M.mape(y, f), "smape": M.smape(y, f),
                "mase": M.mae(y, f) / ms if ms > 0 else np.nan,
            })
            res.append(pd.DataFrame({"series_id": p.ids[i], "window": k, "step": np.arange(1, horizon + 1),
                                     "y": y, "yhat": f, "scale": sc, "season": lag(m)}))
    metrics = pd.DataFrame(rows, columns=["series_id", "window", "cutoff", "season", *METRICS])
    residuals = (pd.concat(res, ignore_index=True) if res
                 else pd.DataFrame(columns=["series_id", "window", "step", "y", "yhat", "scale", "season"]))
    return BacktestResult(getattr(model, "name", type(model).__name__), metrics, residuals, F, A,
                          list(p.ids), S, seasons)
