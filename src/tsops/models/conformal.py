"""Conformal prediction intervals from backtest residuals.

Residuals of a rolling-origin backtest are made scale-free by dividing by each series' scale (the in-sample
seasonal naive MAE of the training part the forecast was made from, as in MASE), pooled over series and
windows, and summarised per horizon step by the finite-sample conformal quantile of the absolute scaled error.
At prediction time the interval half-width is that quantile times the series' current scale:
``mean ± q_level[step] * scale(history)``. With exchangeable errors, coverage is at least the nominal level.

The scale's season is each series' own (from its profile, see :mod:`tsops.models.season`): a backtest records
it per residual row (column ``season``), :meth:`ConformalIntervals.fit` keeps it per series, and prediction
scales each series' history with the same lag its residuals were scaled with.

Two shape rules a reader of the forecast expects (the raw per-step quantiles can break them by sampling
noise): the half-width never shrinks with the step (a running maximum over steps) and a wider level is never
narrower than a lower one (95% contains 80%). And the intervals respect the series' domain: a series whose
whole history is non-negative (PM2.5, counts) gets its bounds clipped at 0; the lower bound used per
series is recorded in ``domain_lower_`` (NaN: unbounded) after each :meth:`ConformalIntervals.intervals`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsops.models.base import fill_gaps
from tsops.models.season import check_season, most_common
from tsops.models.season import lag as lag_of


def series_scale(history: np.ndarray, season_length: int | None) -> float:
    """The scale used to pool residuals: in-sample seasonal naive MAE with lag ``season_length`` (None: no
    season, lag 1), falling back to lag 1 and then to the mean level when a lag gives no variation."""
    x = np.asarray(history, dtype=float)
    x = fill_gaps(x) if np.isnan(x).any() else x
    for lag in dict.fromkeys((lag_of(season_length), 1)):
        if 0 < lag < len(x):
            s = float(np.mean(np.abs(x[lag:] - x[:-lag])))
            if s > 1e-12:
                return s
    s = float(np.mean(np.abs(x))) if len(x) else 1.0
    return s if s > 1e-12 else 1.0


def series_lower_bound(history: np.ndarray) -> float:
    """The lower end of a series' domain as seen in its history: 0.0 when every finite value is >= 0
    (concentrations, counts), NaN (unbounded) otherwise or without finite values."""
    x = np.asarray(history, dtype=float)
    x = x[np.isfinite(x)]
    return 0.0 if len(x) and float(x.min()) >= 0 else float("nan")


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ``ceil((n + 1) * level) / n`` empirical quantile (``inf`` if there are too few scores)."""
    s = np.sort(np.asarray(scores, dtype=float)[np.isfinite(scores)])
    n = len(s)
    if n == 0:
        raise ValueError("no finite residuals to calibrate intervals with")
    k = int(np.ceil((n + 1) * level))
    return float(np.inf) if k > n else float(s[k - 1])


class ConformalIntervals:
    """Per-step conformal quantiles of scaled absolute errors, for several coverage ``levels`` (percent).

    ``season_length`` is the season of the scale for series whose residuals carry none (residuals of
    :func:`~tsops.models.backtest.backtest` carry each series' season in column ``season``, which wins).
    """

    def __init__(self, levels: tuple[int, ...] = (80, 95), season_length: int | None = None) -> None:
        for lv in levels:
            if not 0 < lv < 100:
                raise ValueError(f"interval level {lv} must be a percentage between 0 and 100")
        self.levels = tuple(int(lv) for lv in levels)
        self.season_length = check_season(season_length)
        self.seasons_: dict[str, int | None] = {}
        self.q_: dict[int, np.ndarray] = {}
        self.n_residuals_ = 0

    def fit(self, residuals: pd.DataFrame) -> ConformalIntervals:
        """``residuals`` has columns ``step``, ``y``, ``yhat`` and ``scale`` (and ``series_id``/``season``, as
        returned by :func:`tsops.models.backtest.backtest` in ``result.residuals``)."""
        need = {"step", "y", "yhat", "scale"}
        missing = need - set(residuals.columns)
        if missing:
            raise ValueError(f"residuals lack column(s) {sorted(missing)}; run a backtest to get them")
        if {"series_id", "season"} <= set(residuals.columns):
            per = residuals.drop_duplicates("series_id")[["series_id", "season"]]
            self.seasons_ = {str(s): (int(m) if pd.notna(m) and m > 1 else None)
                             for s, m in zip(per["series_id"], per["season"], strict=True)}
            self.season_length = most_common(self.seasons_.values())
        r = residuals[np.isfinite(residuals["y"]) & np.isfinite(residuals["yhat"])]
        score = (r["y"] - r["yhat"]).abs() / r["scale"].where(r["scale"] > 0, 1.0)
        steps = r["step"].to_numpy()
        H = int(steps.max())
        self.q_ = {}
        sc = score.to_numpy()
        for lv in self.levels:
            need = int(np.ceil(lv / (100.0 - lv)))  # fewest scores with a finite conformal quantile
            q = np.full(H, np.nan)
            for s in range(1, H + 1):
                # widen a band of neighbouring steps until it holds enough scores for this level
                w = 0
                sel = sc[steps == s]
                while len(sel) < need and w < H:
                    w += 1
                    sel = sc[np.abs(steps - s) <= w]
                if len(sel):
                    q[s - 1] = conformal_quantile(sel, lv / 100.0)
            # steps without residuals borrow from the previous step; the width never shrinks with the step
            self.q_[lv] = np.maximum.accumulate(pd.Series(q).ffill().bfill().to_numpy())
        ordered = sorted(self.q_)
        for lo_lv, hi_lv in zip(ordered, ordered[1:], strict=False):  # 95% contains 80%
            self.q_[hi_lv] = np.maximum(self.q_[hi_lv], self.q_[lo_lv])
        self.n_residuals_ = int(len(r))
        return self

    def season_of(self, series_id: str | None) -> int | None:
        """The season the scale of ``series_id`` uses: its residuals' season, else ``season_length``."""
        seasons = getattr(self, "seasons_", {})
        return seasons.get(series_id, self.season_length)

    def intervals(self, mean: np.ndarray, histories: list[np.ndarray],
                  ids: list[str] | None = None) -> dict[str, np.ndarray]:
        """``lo_XX``/``hi_XX`` arrays shaped like ``mean`` (n_series, h); ``ids`` name the series of
        ``histories`` (each is scaled with its own season)."""
        if not self.q_:
            raise RuntimeError("ConformalIntervals is not fitted: call fit(residuals) first")
        n, h = mean.shape
        ids = list(ids) if ids is not None else [None] * len(histories)
        scale = np.array([series_scale(v, self.season_of(s)) for v, s in zip(histories, ids, strict=True)])
        lower = np.array([series_lower_bound(v) for v in histories], dtype=float)
        self.domain_lower_ = lower
        floor = np.where(np.isnan(lower), -np.inf, lower)[:, None]
        out: dict[str, np.ndarray] = {}
        for lv in self.levels:
            q = self.q_[lv]
            q = np.concatenate([q, np.full(max(0, h - len(q)), q[-1])])[:h]
            half = scale[:, None] * q[None, :]
            out[f"lo_{lv}"] = np.maximum(mean - half, floor)
            out[f"hi_{lv}"] = np.maximum(mean + half, floor)
        return out
