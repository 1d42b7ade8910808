"""Baselines: naive, seasonal naive, Naive2 (M4) and statsforecast wrappers (AutoETS, AutoTheta, MSTL,
AutoARIMA).

The pure functions (``seasonal_naive_forecast``, ``naive2_forecast``, ``seasonality_test``,
``classical_seasonal_indices``) work on one 1-d array; the :class:`Forecaster` classes apply them to a panel.

Seasons come from the series profiles through the caller (see :mod:`tsops.models.season`): ``season_length``
is required (None = no season: seasonal naive and Naive2 forecast like naive, AutoETS/AutoTheta/AutoARIMA fit
non-seasonal models, MSTL forecasts with its trend model alone) and ``series_seasons`` gives series their own
season lengths (these local models forecast each series on its own, so series of a panel may differ).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from typing import Any

import numpy as np

from tsops.models.base import Forecaster, Panel, fill_gaps
from tsops.models.season import check_season, usable

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
        if not len(panel):
            return np.zeros((0, h))
        return np.vstack([self._one(v, h, sid) for sid, v in zip(panel.ids, panel.values, strict=True)])

    def _one(self, y: np.ndarray, h: int, series_id: str) -> np.ndarray:
        raise RuntimeError("subclasses define _one")


class Naive(_LocalForecaster):
    """Last value carried forward."""

    name = "naive"

    def __init__(self) -> None:
        super().__init__()

    def _one(self, y: np.ndarray, h: int, series_id: str) -> np.ndarray:
        return naive_forecast(y, h)


def _season_list(value: Any, what: str) -> list[int]:
    """A season argument (int, list of ints or None) as a list of season lengths > 1, strongest first."""
    if value is None:
        return []
    vals = list(value) if isinstance(value, list | tuple) else [value]
    return [m for m in (check_season(v, what) for v in vals) if m and m > 1]


def _series_seasons(series_seasons: dict[str, Any] | None) -> dict[str, list[int]] | None:
    if not series_seasons:
        return None
    return {str(k): _season_list(v, f"season of series {k!r}") for k, v in series_seasons.items()}


class _SeasonedForecaster(Forecaster):
    """Resolves the season lengths of each series: ``series_seasons[series_id]`` when given, else
    ``season_length`` (a series forecast later that was not in ``series_seasons`` uses ``season_length``)."""

    supports_season = True
    supports_series_seasons = True

    def seasons_of(self, series_id: str) -> list[int]:
        """The season lengths (> 1, strongest first) this model uses for ``series_id``; [] = no season."""
        ss = self._params.get("series_seasons") or {}
        if series_id in ss:
            return list(ss[series_id])
        return _season_list(self._params["season_length"], "season_length")

    def season_of(self, series_id: str) -> int | None:
        """The main season this model uses for ``series_id`` (None: no season)."""
        s = self.seasons_of(series_id)
        return s[0] if s else None


class _SeasonalForecaster(_SeasonedForecaster, _LocalForecaster):
    """A local model with one parameter, the season length (required; None = no season)."""

    def __init__(self, season_length: int | None, series_seasons: dict[str, Any] | None = None) -> None:
        m = check_season(season_length)
        super().__init__(season_length=m, series_seasons=_series_seasons(series_seasons))
        self.season_length = m

    @classmethod
    def search_space(cls, seasons: tuple[int, ...] = (), horizon: int | None = None,
                     max_input: int | None = None) -> dict[str, dict[str, Any]]:
        """The season among the series' season lengths (nothing to search with one or none)."""
        return {"season_length": {"type": "choice", "values": list(seasons)}} if len(seasons) > 1 else {}


class SeasonalNaive(_SeasonalForecaster):
    """Repeat the last season of length ``season_length`` (naive without a season)."""

    name = "seasonal_naive"

    def _one(self, y: np.ndarray, h: int, series_id: str) -> np.ndarray:
        return seasonal_naive_forecast(y, h, self.season_of(series_id) or 1)


class Naive2(_SeasonalForecaster):
    """M4's seasonally adjusted naive benchmark."""

    name = "naive2"

    def _one(self, y: np.ndarray, h: int, series_id: str) -> np.ndarray:
        return naive2_forecast(y, h, self.season_of(series_id) or 1)

    @classmethod
    def search_space(cls, seasons: tuple[int, ...] = (), horizon: int | None = None,
                     max_input: int | None = None) -> dict[str, dict[str, Any]]:
        return {}


_SF_MODELS = ("AutoETS", "AutoTheta", "MSTL", "AutoARIMA")
#: Without ``max_length``, statsforecast models see the last ``CYCLES_KEPT`` cycles of a series' longest season
#: (three weeks of an hourly series with a daily season); a series without a season is used whole.
CYCLES_KEPT = 21


class StatsForecastModel(_SeasonedForecaster):
    """A statsforecast model fitted per series (``model`` in AutoETS, AutoTheta, MSTL, AutoARIMA).

    ``season_length``: the season (or season lengths, strongest first) of every series; MSTL uses every
    season length that fits twice into a series, the other models the strongest. ``series_seasons`` gives
    series their own. Series are grouped by their seasons and each group is forecast by one statsforecast run.
    Note statsforecast's ETS ignores seasons longer than 24 samples (AutoETS then fits a non-seasonal
    model); AutoTheta and MSTL take any length.
    ``max_length`` keeps only each series' most recent points (default: ``CYCLES_KEPT`` cycles of its longest
    season; statistical models rarely gain from more and run much faster); ``n_jobs`` parallelises over
    series. Series that make the model fail fall back to the seasonal naive forecast and are listed in
    ``fallbacks_``.
    """

    name = "statsforecast"
    supports_multiple_seasons = True

    def __init__(
        self,
        model: str = "AutoETS",
        *,
        season_length: int | list[int] | None,
        max_length: int | None = None,
        n_jobs: int = 1,
        model_kwargs: dict[str, Any] | None = None,
        series_seasons: dict[str, Any] | None = None,
    ) -> None:
        if model not in _SF_MODELS:
            raise ValueError(f"model must be one of {_SF_MODELS} (got {model!r})")
        if "season_length" in (model_kwargs or {}):
            raise ValueError("give the season with season_length (or series_seasons), not in model_kwargs")
        seasons = _season_list(season_length, "season_length")
        super().__init__(
            model=model, season_length=(seasons if len(seasons) > 1 else (seasons[0] if seasons else None)),
            max_length=max_length, n_jobs=n_jobs, model_kwargs=dict(model_kwargs or {}),
            series_seasons=_series_seasons(series_seasons),
        )
        self.fallbacks_: list[str] = []

    @classmethod
    def search_space(cls, seasons: tuple[int, ...] = (), horizon: int | None = None,
                     max_input: int | None = None) -> dict[str, dict[str, Any]]:
        return {"model": {"type": "choice", "values": ["AutoETS", "AutoTheta", "MSTL"]}}

    def _make(self, seasons: tuple[int, ...]):
        """The statsforecast model for series with the (usable) season lengths ``seasons``."""
        import statsforecast.models as sfm

        p = self._params
        kw = dict(p["model_kwargs"])
        if p["model"] == "MSTL":
            trend = sfm.AutoETS(model="ZZN")
            if not seasons:  # no season: the trend model alone (MSTL needs one)
                return trend
            return sfm.MSTL(season_length=list(seasons), trend_forecaster=trend, **kw)
        if p["model"] == "AutoARIMA":
            kw = {"max_p": 2, "max_q": 2, "max_P": 1, "max_Q": 1, **kw}
        return getattr(sfm, p["model"])(season_length=seasons[0] if seasons else 1, **kw)

    def _fit(self, panel: Panel) -> None:
        self._make(())  # validates the model arguments early

    def _history(self, y: np.ndarray, seasons: list[int]) -> np.ndarray:
        ml = self._params["max_length"]
        if ml is None and seasons:
            ml = CYCLES_KEPT * max(seasons)
        y = _clean(y)
        return y[-ml:] if ml else y

    def _predict(self, panel: Panel, h: int) -> np.ndarray:
        os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
        import pandas as pd
        from statsforecast import StatsForecast

        seasons = [self.seasons_of(sid) for sid in panel.ids]
        vals = [self._history(v, s) for v, s in zip(panel.values, seasons, strict=True)]
        every = self._params["model"] == "MSTL"
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)  # series by the seasons that fit them
        for i, (v, s) in enumerate(zip(vals, seasons, strict=True)):
            fit = usable(s, len(v))
            groups[tuple(fit if every else fit[:1])].append(i)
        out = np.full((len(panel), h), np.nan)
        for sea, idx in groups.items():
            df = pd.concat([pd.DataFrame({"unique_id": str(i), "ds": np.arange(len(vals[i])), "y": vals[i]})
                            for i in idx], ignore_index=True)
            sf = StatsForecast(models=[self._make(sea)], freq=1, n_jobs=self._params["n_jobs"],
                               fallback_model=None)
            try:
                fc = sf.forecast(df=df, h=h)
                col = [c for c in fc.columns if c not in ("unique_id", "ds")][0]
                for uid, g in fc.groupby("unique_id"):
                    out[int(uid)] = g[col].to_numpy()[:h]
            except Exception as exc:  # statsforecast raises many kinds; fall back per series below
                log.warning("statsforecast %s (seasons %s) failed on %d series (%s); they get the seasonal naive "
                            "forecast", self._params["model"], list(sea) or "none", len(idx), exc)
        self.fallbacks_ = []
        for i in np.where(~np.all(np.isfinite(out), axis=1))[0]:
            self.fallbacks_.append(panel.ids[i])
            out[i] = seasonal_naive_forecast(vals[i], h, seasons[i][0] if seasons[i] else 1)
        return out
