"""Scoring one model configuration: a rolling-origin backtest evaluated window by window.

Windows are evaluated oldest first so a scheduler (ASHA) can stop a poor configuration after its first
windows; the running mean of the metric over the windows done so far is the score it compares. Every
configuration of a run sees exactly the same windows of exactly the same data (:func:`fingerprint`).

The backtest specification carries the seasons (MASE scale, seasonal models, neural input windows): resolved
from the series profiles by :func:`tsops.tuning.seasons.resolve_spec` (``season_source='profile'``, one entry
per series in ``series_seasons``) or given explicitly (``season_length=N``: ``season_source='override'``).
:func:`build_model` reads each model class's declared capabilities to decide what it receives.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsops.models.backtest import METRICS, backtest
from tsops.models.base import Forecaster, Panel
from tsops.models.registry import make_model, model_class
from tsops.models.season import check_season, lag, most_common

SOURCES = ("profile", "override")


@dataclass(frozen=True)
class BacktestSpec:
    """How configurations are compared: forecast ``horizon``, ``n_windows`` origins ``step`` apart, the
    seasons (MASE scale, seasonal models, neural input windows) and the ``metric`` to minimise.

    Seasons: ``season_length=N`` gives every series the season ``N`` (1 = no season; ``season_source`` then
    is 'override'). Without it the seasons come from the series profiles (``season_source='profile'``):
    :func:`tsops.tuning.seasons.resolve_spec` fills ``series_seasons`` (each series' season lengths on the
    panel's grid, strongest first; () = none) and sets ``season_length`` to the most common main season (the
    one global models use). A spec whose seasons come from profiles but lacks a series cannot score it.
    """

    horizon: int
    n_windows: int = 3
    step: int | None = None
    season_length: int | None = None
    metric: str = "mase"
    series_seasons: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    season_source: str | None = None

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.n_windows < 1:
            raise ValueError(f"horizon and n_windows must be >= 1 (got {self.horizon}, {self.n_windows})")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS} (got {self.metric!r})")
        check_season(self.season_length, "season")
        src = self.season_source or ("override" if self.season_length is not None else "profile")
        if src not in SOURCES:
            raise ValueError(f"season_source must be one of {SOURCES} (got {src!r})")
        object.__setattr__(self, "season_source", src)
        object.__setattr__(self, "series_seasons", {
            str(k): tuple(int(x) for x in v if int(x) > 1) for k, v in dict(self.series_seasons).items()})

    def to_dict(self, per_series: bool = True) -> dict[str, Any]:
        """The spec as plain values (``per_series=False`` leaves out the per-series seasons)."""
        d = asdict(self)
        d["series_seasons"] = {k: list(v) for k, v in sorted(self.series_seasons.items())}
        if not per_series:
            d.pop("series_seasons")
        return d

    # -- seasons ---------------------------------------------------------------------------------------
    def seasons_of(self, series_id: str) -> tuple[int, ...]:
        """The season lengths of ``series_id`` (strongest first, () = none)."""
        if series_id in self.series_seasons:
            return self.series_seasons[series_id]
        if self.season_source == "profile":
            raise LookupError(f"the backtest has no season of series {series_id!r} (seasons from the profiles "
                              f"cover {len(self.series_seasons)} series): resolve the spec on this panel")
        m = self.season_length
        return (m,) if m and m > 1 else ()

    def season_of(self, series_id: str) -> int | None:
        """The main season of ``series_id`` (None: no season)."""
        s = self.seasons_of(series_id)
        return s[0] if s else None

    def mase_seasons(self, ids: list[str]) -> dict[str, int | None]:
        """The MASE season of each series of ``ids``."""
        return {sid: self.season_of(sid) for sid in ids}

    def _ids(self, ids: list[str] | None) -> list[str]:
        return list(ids) if ids else sorted(self.series_seasons)

    def common_seasons(self, ids: list[str] | None = None) -> tuple[int, ...] | None:
        """The season lengths every series of ``ids`` (default: every series the spec knows) shares, or None
        when they differ."""
        keys = self._ids(ids)
        if not keys:
            return self.seasons_of("")
        found = {self.seasons_of(sid) for sid in keys}
        return found.pop() if len(found) == 1 else None

    def global_season(self, ids: list[str] | None = None) -> int | None:
        """The one season of a global model: the common main season, else the most common one."""
        keys = self._ids(ids)
        return most_common(self.season_of(sid) for sid in keys) if keys else self.season_of("")

    def season_summary(self, ids: list[str]) -> dict[str, Any]:
        """What a run records about its seasons: the main season, the lengths (or 'per-series') and the source."""
        common = self.common_seasons(ids)
        return {"season_length": self.global_season(ids),
                "season_lengths": ("none" if common == () else ",".join(map(str, common))) if common is not None
                else "per-series",
                "season_source": self.season_source}


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
    """A hash of the data and the backtest specification: equal fingerprints mean comparable scores. Seasons
    enter as the MASE season of each series (where they came from does not change a score)."""
    d = spec.to_dict(per_series=False)
    for k in ("season_length", "season_source"):
        d.pop(k)
    d["mase_seasons"] = spec.mase_seasons(list(panel.ids))
    h = hashlib.sha256(json.dumps(d, sort_keys=True).encode())
    for sid, v, end in zip(panel.ids, panel.values, panel.end_ts, strict=True):
        h.update(sid.encode())
        h.update(str(end).encode())
        h.update(np.ascontiguousarray(v, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def season_params(name: str, spec: BacktestSpec, ids: list[str] | None = None) -> dict[str, Any]:
    """The season arguments model ``name`` gets on series ``ids``, from its declared capabilities: nothing
    for a model without a season; the common season (all common season lengths for a model that uses several)
    when the series agree; else, for models that support it, each series' own (``series_seasons``) with the
    most common main season for series outside the panel; a global model gets the most common main season."""
    cls = model_class(name)
    if not cls.supports_season:
        return {}
    common = spec.common_seasons(ids)
    if common is not None:
        if cls.supports_multiple_seasons and len(common) > 1:
            return {"season_length": list(common)}
        return {"season_length": common[0] if common else None}
    out: dict[str, Any] = {"season_length": spec.global_season(ids)}
    if cls.supports_series_seasons:
        n = None if cls.supports_multiple_seasons else 1
        out["series_seasons"] = {sid: list(spec.seasons_of(sid)[:n]) for sid in spec._ids(ids)}
    return out


def build_model(name: str, params: dict[str, Any], spec: BacktestSpec, seed: int = 0,
                n_threads: int | None = None, ids: list[str] | None = None) -> Forecaster:
    """A model from a registry name and tuned parameters, with the settings tuning keeps fixed, as the model
    class declares them: the seasons of the backtest (:func:`season_params` on series ``ids``; default: the
    series the spec knows), the horizon of models trained for one, window scaling for global models (so they
    forecast any history), a seed and threads."""
    cls = model_class(name)
    p = dict(params)
    for k, v in season_params(name, spec, list(ids or [])).items():
        p.setdefault(k, v)
    if cls.trained_horizon:
        p.setdefault("horizon", spec.horizon)
    if cls.is_global:
        p.setdefault("scaling", "window")
        p.setdefault("seed", seed)
        if n_threads is not None:
            p.setdefault("n_threads", n_threads)
    return make_model(name, **p)


def describe_season(model: Forecaster, spec: BacktestSpec) -> dict[str, Any]:
    """The season a model uses, for run params and leaderboards: ``season`` ('144', '144,1008', 'per-series',
    'none', '-' for a model without seasons, '144 (most common)' for a global model on series whose seasons
    differ) and ``season_source`` ('profile' or 'override')."""
    if not type(model).supports_season:
        used = "-"
    elif model.params.get("series_seasons"):
        used = "per-series"
    else:
        m = model.params.get("season_length")
        used = ",".join(map(str, m)) if isinstance(m, list) else (str(m) if m and m > 1 else "none")
        if type(model).is_global and spec.season_source == "profile" and spec.common_seasons() is None:
            used += " (most common)"
    return {"season": used, "season_source": spec.season_source}


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
    """Shortest training part a series may have in a window: two of the longest main season, less for short
    data (at least two points)."""
    shortest = min(len(v) for v in panel.values)
    room = shortest - spec.horizon - (spec.n_windows - 1) * (spec.step or spec.horizon)
    longest = max((lag(spec.season_of(sid)) for sid in panel.ids), default=1)
    return max(2, min(2 * longest, room))


def evaluate_windows(model: Forecaster, panel: Panel, spec: BacktestSpec) -> Iterator[WindowScore]:
    """Backtest ``model`` on ``panel`` one window at a time (oldest first), yielding each window's score."""
    step = spec.step or spec.horizon
    mt = min_train(spec, panel)
    seasons = spec.mase_seasons(panel.ids)
    done: list[float] = []
    for k in range(spec.n_windows):
        later = (spec.n_windows - 1 - k) * step
        sink: list[Forecaster] = []
        res = backtest(_Recorder(model, sink), panel.head(later), spec.horizon, n_windows=1,
                       season_length=seasons, min_train=mt)
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
