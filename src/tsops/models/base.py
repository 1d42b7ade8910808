"""The one forecasting interface of tsops.

Every model fits on many series at once and predicts a horizon for each of them::

    model = make_model("nhits", input_size=336, seed=1).fit(panel)
    df = model.predict(48)             # series_id, step, ts, mean (+ lo_80 .. hi_95 once calibrated)
    model.save("out/model"); same = load_model("out/model")

A *panel* is a long DataFrame ``series_id, ts, value`` on a regular grid, a ``dict`` of 1-d numpy arrays
(the fast path used by the benchmark) or a :class:`Panel`. Models are picklable, deterministic for a given
``seed`` and expose their hyperparameters as a plain dict (``model.params``) for the tuner.

Each model class declares what it needs and supports (as Darts models do), and the tuner reads the declaration
instead of keeping lists of model names: ``supports_season`` (takes ``season_length``),
``supports_multiple_seasons`` (uses every season length of a series, e.g. MSTL), ``supports_series_seasons``
(a different season per series: local models), ``supports_covariates`` (other series as inputs),
``supports_intervals`` (conformal intervals from backtest residuals), ``is_global`` (one model learnt across
series), ``trained_horizon`` (fitted for a horizon, set from the backtest) and :meth:`Forecaster.search_space`
(its hyperparameter space given the series' seasons and the horizon).
"""

from __future__ import annotations

import json
import logging
import pickle
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tsops.datamodel import SERIES_ID, TS, VALUE

log = logging.getLogger(__name__)

MODEL_FILE = "model.pkl"
META_FILE = "meta.json"
FORMAT_VERSION = 1


@dataclass
class Panel:
    """Many series as numpy arrays: ``values[i]`` is series ``ids[i]`` (oldest first, NaN = missing).

    ``end_ts``/``freq`` are known when the panel came from a timestamped DataFrame; they let predictions carry
    future timestamps. Series are aligned at their *end* (all end at the same time) when ``aligned`` is true.
    """

    ids: list[str]
    values: list[np.ndarray]
    end_ts: list[pd.Timestamp | None] = field(default_factory=list)
    freq: pd.Timedelta | None = None

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.values):
            raise ValueError(f"{len(self.ids)} series ids but {len(self.values)} value arrays")
        if len(set(self.ids)) != len(self.ids):
            dup = pd.Series(self.ids)[pd.Series(self.ids).duplicated()].iloc[0]
            raise ValueError(f"series id {dup!r} appears more than once")
        self.values = [np.asarray(v, dtype=float).ravel() for v in self.values]
        if not self.end_ts:
            self.end_ts = [None] * len(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, series_id: str) -> int:
        try:
            return self.ids.index(series_id)
        except ValueError:
            raise KeyError(f"series {series_id!r} is not in the panel (it has {len(self.ids)} series)") from None

    def head(self, n_drop: int) -> Panel:
        """The panel without each series' last ``n_drop`` points (a training part for backtests)."""
        if n_drop <= 0:
            return self
        ends = [
            (t - n_drop * self.freq) if (t is not None and self.freq is not None) else None for t in self.end_ts
        ]
        return Panel(list(self.ids), [v[:-n_drop].copy() for v in self.values], ends, self.freq)

    def subset(self, ids: list[str]) -> Panel:
        idx = [self.index(s) for s in ids]
        return Panel([self.ids[i] for i in idx], [self.values[i] for i in idx],
                     [self.end_ts[i] for i in idx], self.freq)

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for sid, v, end in zip(self.ids, self.values, self.end_ts, strict=True):
            if end is not None and self.freq is not None:
                ts = pd.date_range(end=end, periods=len(v), freq=self.freq)
            else:
                ts = np.arange(len(v))
            rows.append(pd.DataFrame({SERIES_ID: sid, TS: ts, VALUE: v}))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=[SERIES_ID, TS, VALUE])


def as_panel(data: Panel | pd.DataFrame | Mapping[str, np.ndarray]) -> Panel:
    """Convert a long DataFrame (``series_id, ts, value``), a dict of arrays or a Panel into a :class:`Panel`.

    A DataFrame must be on a regular grid: gaps inside a series become NaN at the missing grid points.
    """
    if isinstance(data, Panel):
        return data
    if isinstance(data, pd.DataFrame):
        missing = [c for c in (SERIES_ID, TS, VALUE) if c not in data.columns]
        if missing:
            raise ValueError(f"panel DataFrame lacks column(s) {missing}; it has {list(data.columns)}")
        df = data[[SERIES_ID, TS, VALUE]].sort_values([SERIES_ID, TS])
        if df.duplicated([SERIES_ID, TS]).any():
            bad = df[df.duplicated([SERIES_ID, TS])].iloc[0]
            raise ValueError(f"duplicate timestamp {bad[TS]} in series {bad[SERIES_ID]!r}")
        ts_all = df[TS]
        numeric_ts = not (pd.api.types.is_datetime64_any_dtype(ts_all))
        freq = None
        if not numeric_ts:
            diffs = df.groupby(SERIES_ID, sort=False)[TS].diff().dropna()
            if len(diffs):
                freq = pd.Timedelta(diffs.min())
                if freq <= pd.Timedelta(0):
                    raise ValueError("panel timestamps are not strictly increasing within a series")
        ids, values, ends = [], [], []
        for sid, g in df.groupby(SERIES_ID, sort=True):
            v = g[VALUE].to_numpy(dtype=float)
            if freq is not None:
                t = g[TS]
                pos = ((t - t.iloc[0]) / freq).to_numpy()
                if np.any(np.abs(pos - np.round(pos)) > 1e-6):
                    raise ValueError(f"series {sid!r} has timestamps off the {freq} grid")
                full = np.full(int(round(pos[-1])) + 1, np.nan)
                full[np.round(pos).astype(int)] = v
                v = full
                ends.append(pd.Timestamp(t.iloc[-1]))
            else:
                ends.append(None)
            ids.append(str(sid))
            values.append(v)
        return Panel(ids, values, ends, freq)
    if isinstance(data, Mapping):
        return Panel([str(k) for k in data], [np.asarray(v, dtype=float) for v in data.values()])
    raise TypeError(f"cannot read a panel from {type(data).__name__}: give a DataFrame, dict of arrays or Panel")


def right_align(values: list[np.ndarray], length: int | None = None) -> np.ndarray:
    """Stack series into an ``(n, length)`` matrix aligned at their end, left-padded with NaN."""
    length = length or max(len(v) for v in values)
    out = np.full((len(values), length), np.nan)
    for i, v in enumerate(values):
        k = min(len(v), length)
        if k:
            out[i, length - k:] = v[len(v) - k:]
    return out


def fill_gaps(x: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs inside each row, then back-fill leading NaNs (rows that are all NaN become 0)."""
    x = np.array(x, dtype=float, copy=True)
    if x.ndim == 1:
        return fill_gaps(x[None, :])[0]
    n, t = x.shape
    mask = np.isnan(x)
    idx = np.where(~mask, np.arange(t)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    x = x[np.arange(n)[:, None], idx]
    first = np.argmax(~np.isnan(x), axis=1)
    for i in np.where(np.isnan(x[:, 0]))[0]:
        if np.all(np.isnan(x[i])):
            x[i] = 0.0
        else:
            x[i, : first[i]] = x[i, first[i]]
    return x


class Forecaster(ABC):
    """Base class: fit on many series, predict a horizon, save and load.

    Subclasses implement :meth:`_fit` and :meth:`_predict` on a :class:`Panel`; the base class handles input
    conversion, output formatting, conformal intervals, persistence and the ``params`` dict.
    """

    #: Registry name (set by subclasses).
    name: str = "base"

    # -- capabilities (read by the tuner; see the module docstring) -------------------------------------------
    supports_season: ClassVar[bool] = False
    supports_multiple_seasons: ClassVar[bool] = False
    supports_series_seasons: ClassVar[bool] = False
    supports_covariates: ClassVar[bool] = False
    supports_intervals: ClassVar[bool] = True
    is_global: ClassVar[bool] = False
    trained_horizon: ClassVar[bool] = False

    @classmethod
    def capabilities(cls) -> dict[str, bool]:
        """The capability flags of this model class."""
        return {k: bool(getattr(cls, k)) for k in (
            "supports_season", "supports_multiple_seasons", "supports_series_seasons", "supports_covariates",
            "supports_intervals", "is_global", "trained_horizon")}

    @classmethod
    def search_space(cls, seasons: tuple[int, ...] = (), horizon: int | None = None,
                     max_input: int | None = None) -> dict[str, dict[str, Any]]:
        """The hyperparameter search space (plain dicts, see :mod:`tsops.models.registry`) for series with
        season lengths ``seasons`` (strongest first; () = none), a forecast ``horizon`` and at most
        ``max_input`` points of history per training window. Default: nothing to tune."""
        return {}

    def __init__(self, **params: Any) -> None:
        self._params = dict(params)
        self.history_: Panel | None = None
        self.conformal_ = None  # a tsops.models.conformal.ConformalIntervals once calibrated

    # -- hyperparameters -------------------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """The constructor hyperparameters as a plain JSON-able dict."""
        return dict(self._params)

    def clone(self, **overrides: Any) -> Forecaster:
        """A fresh, unfitted model of the same class with the same (or overridden) parameters."""
        p = self.params
        p.update(overrides)
        return type(self)(**p)

    def refit_clone(self) -> Forecaster:
        """An unfitted copy set up to be refitted on all data after a hold-out evaluation (default: clone)."""
        return self.clone()

    # -- fit / predict ---------------------------------------------------------------------------------------
    def fit(self, panel: Panel | pd.DataFrame | Mapping[str, np.ndarray]) -> Forecaster:
        """Fit on every series of ``panel``; returns ``self``."""
        p = as_panel(panel)
        if len(p) == 0:
            raise ValueError("cannot fit on an empty panel")
        self._fit(p)
        self.history_ = p
        return self

    def predict_array(self, h: int, panel: Panel | pd.DataFrame | Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Point forecasts as an ``(n_series, h)`` array, from ``panel``'s histories (default: the fit data)."""
        if h < 1:
            raise ValueError(f"horizon h must be >= 1 (got {h})")
        if self.history_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(panel) first")
        p = self.history_ if panel is None else as_panel(panel)
        out = np.asarray(self._predict(p, h), dtype=float)
        if out.shape != (len(p), h):
            raise RuntimeError(f"{type(self).__name__} returned shape {out.shape}, expected {(len(p), h)}")
        return out

    def predict(
        self, h: int, panel: Panel | pd.DataFrame | Mapping[str, np.ndarray] | None = None
    ) -> pd.DataFrame:
        """Forecast ``h`` steps for every series: long DataFrame ``series_id, step, ts, mean`` and, once
        :meth:`calibrate` ran, ``lo_XX``/``hi_XX`` interval bounds for each calibrated level."""
        p = self.history_ if panel is None else as_panel(panel)
        mean = self.predict_array(h, p)
        n = len(p)
        df = pd.DataFrame({
            SERIES_ID: np.repeat(p.ids, h),
            "step": np.tile(np.arange(1, h + 1), n),
        })
        if p.freq is not None and all(t is not None for t in p.end_ts):
            ends = np.repeat(pd.DatetimeIndex(p.end_ts), h)
            df[TS] = ends + np.tile(np.arange(1, h + 1), n) * p.freq
        df["mean"] = mean.ravel()
        if self.conformal_ is not None:
            for name, arr in self.conformal_.intervals(mean, p.values, p.ids).items():
                df[name] = arr.ravel()
        return df

    @abstractmethod
    def _fit(self, panel: Panel) -> None: ...

    @abstractmethod
    def _predict(self, panel: Panel, h: int) -> np.ndarray: ...

    # -- intervals -------------------------------------------------------------------------------------------
    def calibrate(self, residuals, levels: tuple[int, ...] = (80, 95),
                  season_length: int | None = None) -> Forecaster:
        """Attach conformal prediction intervals from backtest residuals (see :mod:`tsops.models.conformal`).

        The scale of each series uses the season its residuals were scaled with (the backtest's ``season``
        column); ``season_length`` is only used for residuals without that column (None: no season)."""
        from tsops.models.conformal import ConformalIntervals

        self.conformal_ = ConformalIntervals(levels=levels, season_length=season_length).fit(residuals)
        return self

    # -- persistence -----------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted model to directory ``path`` (``model.pkl`` + ``meta.json``)."""
        d = Path(path)
        d.mkdir(parents=True, exist_ok=True)
        with open(d / MODEL_FILE, "wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": self.params,
            "fitted": self.history_ is not None,
            "n_series": 0 if self.history_ is None else len(self.history_),
            "intervals": None if self.conformal_ is None else list(self.conformal_.levels),
            **self.describe(),
        }
        (d / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        return d

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        """Read a model written by :meth:`save`; raises if it is not an instance of ``cls``."""
        model = load_model(path)
        if not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def describe(self) -> dict[str, Any]:
        """Extra facts for ``meta.json`` (e.g. the covariate series a model leans on)."""
        return {}


def load_model(path: str | Path) -> Forecaster:
    """Load any tsops model saved with :meth:`Forecaster.save`."""
    d = Path(path)
    f = d / MODEL_FILE
    if not f.exists():
        raise FileNotFoundError(f"no {MODEL_FILE} in {d}: not a directory written by Forecaster.save")
    meta_file = d / META_FILE
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"{d} was written by a newer tsops (format {meta['format_version']})")
    with open(f, "rb") as fh:
        model = pickle.load(fh)
    if not isinstance(model, Forecaster):
        raise TypeError(f"{f} does not hold a tsops Forecaster (found {type(model).__name__})")
    return model
