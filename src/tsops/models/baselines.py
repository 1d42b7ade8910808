"""Baselines: naive, seasonal naive, Naive2 (M4) and statsforecast wrappers (AutoETS, AutoTheta, MSTL,
AutoARIMA).

The pure functions (``seasonal_naive_forecast``, ``naive2_forecast``, ``seasonality_test``,
``classical_seasonal_indices``) work on one 1-d array; the :class:`Forecaster` classes apply them to a panel.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from tsops.models.base import Forecaster, Panel, fill_gaps

log = logging.getLogger(__name__)


def _clean(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if y.size == 0:
        raise ValueError("cannot forecast an empty series")
    return fill_gaps(y) if np.isnan(y).any() else y


def naive_forecast(y: np.ndarray, h: int) -> np.ndarray:
    """Repeat the last observation ``h`` times."""
    y = _clean(y)
    return np.full(h, y[-1])


def seasonal_naive_forecast(y: np.ndarray, h: int, m: int) -> np.ndarray:
    """Repeat the last full season: ``f[t] = y[T - m + (t mod m)]``; plain naive if the series is shorter."""
    y = _clean(y)
    if m <= 1 or len(y) < m:
        return naive_forecast(y, h)
    last = y[-m:]
    return np.resize(last, h)


def acf(x: np.ndarray, k: int) -> float:
    """Sample autocorrelation at lag ``k`` (the estimator of R's ``acf``)."""
    x = np.asarray(x, dtype=float)
    d = x - x.mean()
    den = np.dot(d, d)
    if den == 0:
        return 0.0
    return float(np.dot(d[k:], d[: len(d) - k]) / den)


def seasonality_test(y: np.ndarray, m: int, tcrit: float = 1.645) -> bool:
    """The M4 benchmarks' 90% autocorrelation test: is ``|acf(m)|`` above its Bartlett limit?"""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if m <= 1 or n < 3 * m:
        return False
    r = np.array([acf(y, k) for k in range(1, m + 1)])
    limit = tcrit / np.sqrt(n) * np.sqrt(1.0 + 2.0 * np.sum(r[: m - 1] ** 2))
    return bool(abs(r[m - 1]) > limit)


def classical_seasonal_indices(y: np.ndarray, m: int) -> np.ndarray:
    """Multiplicative seasonal indices of classical decomposition (R's ``decompose(type="multiplicative")``).

    Returns ``m`` indices, where index ``j`` belongs to positions ``t`` with ``t mod m == j`` (t from 0 at the
    first observation); they average to 1.
    """
    y = np.asarray(y, dtype=float)
    n = len(y)
    w = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
    half = len(w) // 2
    trend = np.full(n, np.nan)
    conv = np.convolve(y, w[::-1], mode="valid")
    trend[half: half + len(conv)] = conv
    ratio = y / trend
    fig = np.array([np.nanmean(ratio[j::m]) for j in range(m)])
    return fig / fig.mean()


def naive2_forecast(y: np.ndarray, h: int, m: int) -> np.ndarray:
    """M4's Naive2: naive forecast of the seasonally adjusted series (classical multiplicative decomposition,
    applied only when :func:`seasonality_test` detects seasonality), re-seasonalised."""
    y = _clean(y)
    if m > 1 and seasonality_test(y, m):
        si = classical_seasonal_indices(y, m)
        n = len(y)
        in_si = si[np.arange(n) % m]
        out_si = si[np.arange(n, n + h) % m]
        return np.full(h, y[-1] / in_si[-1]) * out_si
    return naive_forecast(y, h)


class _LocalForecaster(Forecaster):
    """A model with nothing to learn globally: forecasts come straight from each history."""

    def _fit(self, panel: Panel) -> None:
        return None

    def _predict(self, panel: Panel, h: int) -> np.ndarray:
        return np.vstack([self._one(v, h) for v in panel.values]) if len(panel) else np.zeros((0, h))

    def _one(self, y: np.ndarray, h: int) -> np.ndarray:
        raise RuntimeError("subclasses define _one")


class Naive(_LocalForecaster):
    """Last value carried forward."""

    name = "naive"

    def __init__(self) -> None:
        super().__init__()

    def _one(self, y: np.ndarray, h: int) -> np.ndarray:
        return naive_forecast(y, h)


class _SeasonalForecaster(_LocalForecaster):
    """A local model with one parameter, the season length."""

    def __init__(self, season_length: int = 24) -> None:
        if season_length < 1:
            raise ValueError(f"season_length must be >= 1 (got {season_length})")
        super().__init__(season_length=season_length)
        self.season_length = season_length


class SeasonalNaive(_SeasonalForecaster):
    """Repeat the last season of length ``season_length``."""

    name = "seasonal_naive"

    def _one(self, y: np.ndarray, h: int) -> np.ndarray:
        return seasonal_naive_forecast(y, h, self.season_length)


class Naive2(_SeasonalForecaster):
    """M4's seasonally adjusted naive benchmark."""

    name = "naive2"

    def _one(self, y: np.ndarray, h: int) -> np.ndarray:
        return naive2_forecast(y, h, self.season_length)


_SF_MODELS = ("AutoETS", "AutoTheta", "MSTL", "AutoARIMA")


class StatsForecastModel(Forecaster):
    """A statsforecast model fitted per series (``model`` in AutoETS, AutoTheta, MSTL, AutoARIMA).

    ``max_length`` keeps only each series' most recent points (statistical models rarely gain from more and
    run much faster); ``n_jobs`` parallelises over series. Series that make the model fail fall back to the
    seasonal naive forecast and are listed in ``fallbacks_``.
    """

    name = "statsforecast"

    def __init__(
        self,
        model: str = "AutoETS",
        season_length: int = 24,
        max_length: int | None = 24 * 21,
        n_jobs: int = 1,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if model not in _SF_MODELS:
            raise ValueError(f"model must be one of {_SF_MODELS} (got {model!r})")
        super().__init__(
            model=model, season_length=season_length, max_length=max_length, n_jobs=n_jobs,
            model_kwargs=dict(model_kwargs or {}),
        )
        self.fallbacks_: list[str] = []

    def _make(self):
        import statsforecast.models as sfm

        p = self._params
        kw = dict(p["model_kwargs"])
        m = p["season_length"]
        if p["model"] == "MSTL":
            seasons = kw.pop("season_length", [m, 7 * m] if m == 24 else [m])
            trend = sfm.AutoETS(model="ZZN")
            return sfm.MSTL(season_length=seasons, trend_forecaster=trend, **kw)
        if p["model"] == "AutoARIMA":
            kw = {"max_p": 2, "max_q": 2, "max_P": 1, "max_Q": 1, **kw}
        return getattr(sfm, p["model"])(season_length=m, **kw)

    def _fit(self, panel: Panel) -> None:
        self._make()  # validates the model arguments early

    def _predict(self, panel: Panel, h: int) -> np.ndarray:
        os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
        import pandas as pd
        from statsforecast import StatsForecast

        ml = self._params["max_length"]
        m = self._params["season_length"]
        vals = [_clean(v)[-ml:] if ml else _clean(v) for v in panel.values]
        frames = [
            pd.DataFrame({"unique_id": str(i), "ds": np.arange(len(v)), "y": v}) for i, v in enumerate(vals)
        ]
        df = pd.concat(frames, ignore_index=True)
        sf = StatsForecast(models=[self._make()], freq=1, n_jobs=self._params["n_jobs"],
                           fallback_model=None)
        out = np.full((len(panel), h), np.nan)
        try:
            fc = sf.forecast(df=df, h=h)
            col = [c for c in fc.columns if c not in ("unique_id", "ds")][0]
            for uid, g in fc.groupby("unique_id"):
                out[int(uid)] = g[col].to_numpy()[:h]
        except Exception as exc:  # statsforecast raises many kinds; fall back per series below
            log.warning("statsforecast %s failed on the panel (%s); forecasting series one by one",
                        self._params["model"], exc)
        self.fallbacks_ = []
        for i in np.where(~np.all(np.isfinite(out), axis=1))[0]:
            self.fallbacks_.append(panel.ids[i])
            out[i] = seasonal_naive_forecast(vals[i], h, m)
        return out
