"""Scalers fitted per series (fit / transform / inverse_transform, to_dict / from_dict) and windowing into
supervised (X, y) samples."""

from __future__ import annotations

import numpy as np
import pandas as pd

SINGLE = "__single__"


class SeriesScaler:
    """Base class: one set of parameters per series.

    ``fit`` takes a 1-D array (one series, stored under ``"__single__"``) or a long frame with
    ``series_id`` and ``value`` (one fit per series). ``transform`` / ``inverse_transform`` take the same
    kind of input and return the same kind (a frame gets its ``value`` column replaced). Constant series
    scale with a unit denominator, so they stay finite and invertible.
    """

    kind = "base"

    def __init__(self) -> None:
        self.params: dict[str, dict[str, float]] = {}

    # --- per-kind formulas
    def _fit_one(self, x: np.ndarray) -> dict[str, float]:
        raise TypeError("use MinMaxScaler, StandardScaler or RobustScaler")

    @staticmethod
    def _center_scale(p: dict[str, float]) -> tuple[float, float]:
        return p["center"], p["scale"]

    # --- API
    def fit(self, data) -> SeriesScaler:
        if isinstance(data, pd.DataFrame):
            for sid, g in data.groupby("series_id", observed=True):
                self.params[str(sid)] = self._fit_one(g["value"].to_numpy(float))
        else:
            self.params[SINGLE] = self._fit_one(np.asarray(data, float))
        return self

    def _apply(self, data, inverse: bool):
        if not self.params:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() first")
        if isinstance(data, pd.DataFrame):
            out = data.copy()
            vals = out["value"].to_numpy(float).copy()
            sids = out["series_id"].astype(str).to_numpy()
            for sid in np.unique(sids):
                if sid not in self.params:
                    raise KeyError(f"series {sid!r} was not seen in fit(); fitted: {sorted(self.params)[:5]}...")
                c, s = self._center_scale(self.params[sid])
                m = sids == sid
                vals[m] = vals[m] * s + c if inverse else (vals[m] - c) / s
            out["value"] = vals
            return out
        if SINGLE not in self.params:
            raise KeyError("scaler was fitted per series: pass a long frame with series_id")
        c, s = self._center_scale(self.params[SINGLE])
        x = np.asarray(data, float)
        return x * s + c if inverse else (x - c) / s

    def transform(self, data):
        return self._apply(data, inverse=False)

    def inverse_transform(self, data):
        return self._apply(data, inverse=True)

    def fit_transform(self, data):
        return self.fit(data).transform(data)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "params": {k: dict(v) for k, v in self.params.items()}}

    @staticmethod
    def from_dict(d: dict) -> SeriesScaler:
        kinds = {c.kind: c for c in (MinMaxScaler, StandardScaler, RobustScaler)}
        if d.get("kind") not in kinds:
            raise ValueError(f"unknown scaler kind {d.get('kind')!r}; expected one of {sorted(kinds)}")
        s = kinds[d["kind"]]()
        s.params = {k: {kk: float(vv) for kk, vv in v.items()} for k, v in d["params"].items()}
        return s


def _nz(s: float) -> float:
    return s if np.isfinite(s) and s != 0 else 1.0


class MinMaxScaler(SeriesScaler):
    """(x - min) / (max - min) per series."""

    kind = "minmax"

    def _fit_one(self, x):
        return {"center": float(np.nanmin(x)), "scale": _nz(float(np.nanmax(x) - np.nanmin(x)))}


class StandardScaler(SeriesScaler):
    """(x - mean) / std per series."""

    kind = "standard"

    def _fit_one(self, x):
        return {"center": float(np.nanmean(x)), "scale": _nz(float(np.nanstd(x)))}


class RobustScaler(SeriesScaler):
    """(x - median) / IQR per series."""

    kind = "robust"

    def _fit_one(self, x):
        q1, med, q3 = np.nanquantile(x, [0.25, 0.5, 0.75])
        return {"center": float(med), "scale": _nz(float(q3 - q1))}


def make_windows(values, input_len: int, horizon: int = 1, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Supervised samples from one series: X[i] = v[s:s+input_len], y[i] = v[s+input_len:s+input_len+horizon]
    for s = 0, stride, 2*stride, ... Returns empty arrays of the right width if the series is too short."""
    if input_len < 1 or horizon < 1 or stride < 1:
        raise ValueError(f"input_len, horizon and stride must be >= 1, got {input_len}, {horizon}, {stride}")
    v = np.asarray(values, float)
    w = input_len + horizon
    if v.size < w:
        return np.empty((0, input_len)), np.empty((0, horizon))
    win = np.lib.stride_tricks.sliding_window_view(v, w)[::stride]
    return win[:, :input_len].copy(), win[:, input_len:].copy()


def make_windows_frame(df: pd.DataFrame, input_len: int, horizon: int = 1,
                       stride: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of every series of a long frame (sorted by ts within series): X, y and the series_id per sample."""
    xs, ys, ids = [], [], []
    for sid, g in df.sort_values(["series_id", "ts"]).groupby("series_id", observed=True, sort=True):
        x, y = make_windows(g["value"].to_numpy(float), input_len, horizon, stride)
        xs.append(x)
        ys.append(y)
        ids.append(np.full(len(x), sid, dtype=object))
    if not xs:
        return np.empty((0, input_len)), np.empty((0, horizon)), np.empty(0, dtype=object)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ids)
