"""Scoring one model configuration: a rolling-origin backtest evaluated window by window.

Windows are evaluated oldest first so a scheduler (ASHA) can stop a poor configuration after its first
windows; the running mean of the metric over the windows done so far is the score it compares. Every
configuration of a run sees exactly the same windows of exactly the same data (:func:`fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsops.models.backtest import METRICS, backtest
from tsops.models.base import Forecaster, Panel
from tsops.models.registry import make_model

NEURAL = ("lstm", "nhits")


@dataclass(frozen=True)
class BacktestSpec:
    """How configurations are compared: forecast ``horizon``, ``n_windows`` origins ``step`` apart, the
    seasonal period for MASE and scaling, and the ``metric`` to minimise."""

    horizon: int = 24
    n_windows: int = 3
    step: int | None = None
    season_length: int = 24
    metric: str = "mase"

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.n_windows < 1:
            raise ValueError(f"horizon and n_windows must be >= 1 (got {self.horizon}, {self.n_windows})")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS} (got {self.metric!r})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WindowScore:
    """The outcome of one backtest window: metric rows, residual rows, the fitted models' training logs."""

    window: int
    score: float
    running_score: float
    metrics: pd.DataFrame
    residuals: pd.DataFrame
    train_logs: list[list[dict[str, float]]] = field(default_factory=list)


def fingerprint(panel: Panel, spec: BacktestSpec) -> str:
    """A hash of the data and the backtest specification: equal fingerprints mean comparable scores."""
    h = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode())
    for sid, v, end in zip(panel.ids, panel.values, panel.end_ts, strict=True):
        h.update(sid.encode())
        h.update(str(end).encode())
        h.update(np.ascontiguousarray(v, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def build_model(name: str, params: dict[str, Any], spec: BacktestSpec, seed: int = 0,
                n_threads: int | None = None) -> Forecaster:
    """A model from a registry name and tuned parameters, with the settings tuning keeps fixed: the horizon
    and season of the backtest, window scaling for neural models (so they forecast any history) and a seed."""
    p = dict(params)
    if name in NEURAL:
        p.setdefault("horizon", spec.horizon)
        p.setdefault("season_length", spec.season_length)
        p.setdefault("scaling", "window")
        p.setdefault("seed", seed)
        if n_threads is not None:
            p.setdefault("n_threads", n_threads)
    elif name in ("seasonal_naive", "naive2", "statsforecast", "auto_ets", "auto_theta", "mstl", "auto_arima"):
        p.setdefault("season_length", spec.season_length)
    return make_model(name, **p)


class _Recorder(Forecaster):
    """Wraps a model so the clones a backtest fits stay reachable (for their training logs)."""

    def __init__(self, inner: Forecaster, sink: list[Forecaster]) -> None:
        super().__init__(**inner.params)
        self.inner, self.sink = inner, sink
        self.name = inner.name

    def clone(self, **overrides: Any) -> Forecaster:
        return _Recorder(self.inner.clone(**overrides), self.sink)

    def _fit(self, panel: Panel) -> None:
        self.inner.fit(panel)
        self.sink.append(self.inner)

    def _predict(self, panel: Panel, h: int) -> np.ndarray:
        return self.inner.predict_array(h, panel)


def min_train(spec: BacktestSpec, panel: Panel) -> int:
    """Shortest training part a series may have in a window: two seasons, less for short data."""
    shortest = min(len(v) for v in panel.values)
    room = shortest - spec.horizon - (spec.n_windows - 1) * (spec.step or spec.horizon)
    return max(2, min(2 * spec.season_length, room))


def evaluate_windows(model: Forecaster, panel: Panel, spec: BacktestSpec) -> Iterator[WindowScore]:
    """Backtest ``model`` on ``panel`` one window at a time (oldest first), yielding each window's score."""
    step = spec.step or spec.horizon
    mt = min_train(spec, panel)
    done: list[float] = []
    for k in range(spec.n_windows):
        later = (spec.n_windows - 1 - k) * step
        sink: list[Forecaster] = []
        res = backtest(_Recorder(model, sink), panel.head(later), spec.horizon, n_windows=1,
                       season_length=spec.season_length, min_train=mt)
        if res.metrics.empty:
            raise ValueError(f"backtest window {k}: no series has {mt} training points before its cutoff and "
                             f"{spec.horizon} test points: lower --horizon/--windows or load more history")
        metrics = res.metrics.assign(window=k)
        residuals = res.residuals.assign(window=k)
        vals = metrics[spec.metric].to_numpy(dtype=float)
        score = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.inf
        done.append(score)
        logs = [list(getattr(m, "train_log_", []) or []) for m in sink]
        yield WindowScore(k, score, float(np.mean(done)), metrics, residuals, logs)


def run_backtest(model: Forecaster, panel: Panel, spec: BacktestSpec) -> tuple[float, pd.DataFrame,
                                                                             pd.DataFrame, list[WindowScore]]:
    """Every window: (score, metrics table, residuals, per-window results)."""
    wins = list(evaluate_windows(model, panel, spec))
    metrics = pd.concat([w.metrics for w in wins], ignore_index=True)
    residuals = pd.concat([w.residuals for w in wins], ignore_index=True)
    return wins[-1].running_score, metrics, residuals, wins
