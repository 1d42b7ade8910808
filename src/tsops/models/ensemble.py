"""Ensembles: combine member forecasts by median or (weighted) mean, and pick the best candidate or
combination of candidates from their backtests."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tsops.models.backtest import BacktestResult
from tsops.models.base import Forecaster, Panel
from tsops.models.season import SeasonArg, lag, season_for

log = logging.getLogger(__name__)

COMBINES = ("median", "mean")


def combine_forecasts(forecasts: np.ndarray, how: str = "median", weights: np.ndarray | None = None) -> np.ndarray:
    """Combine a stack of forecasts ``(n_members, n_series, h)`` into ``(n_series, h)``."""
    f = np.asarray(forecasts, dtype=float)
    if f.ndim != 3:
        raise ValueError(f"expected forecasts shaped (members, series, h), got {f.shape}")
    if how == "median":
        return np.nanmedian(f, axis=0)
    if how == "mean":
        if weights is None:
            return np.nanmean(f, axis=0)
        w = np.asarray(weights, dtype=float)
        if w.shape != (f.shape[0],) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"weights must be {f.shape[0]} non-negative numbers with a positive sum")
        return np.tensordot(w / w.sum(), f, axes=1)
    raise ValueError(f"combine must be one of {COMBINES} (got {how!r})")


class EnsembleForecaster(Forecaster):
    """Fit every member on the same panel and combine their forecasts (``median`` is robust to one bad
    member; ``mean`` accepts ``weights``)."""

    name = "ensemble"

    def __init__(self, members: list[Forecaster] | None = None, combine: str = "median",
                 weights: list[float] | None = None, n_jobs: int = 1) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member model")
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES} (got {combine!r})")
        if weights is not None and len(weights) != len(members):
            raise ValueError(f"{len(weights)} weights for {len(members)} members")
        super().__init__(combine=combine, weights=None if weights is None else [float(w) for w in weights],
                         members=[{"name": m.name, "params": m.params} for m in members], n_jobs=int(n_jobs))
        self.members = list(members)

    def clone(self, **overrides: Any) -> EnsembleForecaster:
        return EnsembleForecaster([m.clone() for m in self.members],
                                  overrides.get("combine", self._params["combine"]),
                                  overrides.get("weights", self._params["weights"]),
                                  overrides.get("n_jobs", self._params["n_jobs"]))

    def _fit(self, panel: Panel) -> None:
        self.members = fit_many(self.members, panel, self._params["n_jobs"])

    def member_forecasts(self, panel: Panel, h: int) -> np.ndarray:
        return np.stack([m.predict_array(h, panel) for m in self.members])

    def _predict(self, panel: Panel, h: int) -> np.ndarray:
        w = self._params["weights"]
        return combine_forecasts(self.member_forecasts(panel, h), self._params["combine"],
                                 None if w is None else np.array(w))

    def describe(self) -> dict[str, Any]:
        cov = sorted({c for m in self.members for c in m.describe().get("covariates", [])})
        return {"covariates": cov, "n_members": len(self.members)}


def _fit_one(args: tuple[Forecaster, Panel]) -> Forecaster:
    model, panel = args
    return model.fit(panel)


def fit_many(models: list[Forecaster], panel: Panel, n_jobs: int = 1) -> list[Forecaster]:
    """Fit several models on one panel, in ``n_jobs`` worker processes (spawned, so each torch model runs
    with its own ``n_threads``). Returns the fitted models in input order."""
    if n_jobs <= 1 or len(models) <= 1:
        out = []
        for k, m in enumerate(models):
            log.info("fitting model %d/%d (%s)", k + 1, len(models), m.name)
            out.append(m.fit(panel))
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(n_jobs, len(models)), mp_context=mp.get_context("spawn")) as ex:
        return list(ex.map(_fit_one, [(m, panel) for m in models]))


def _score(forecasts: np.ndarray, actuals: np.ndarray, scales: np.ndarray) -> tuple[float, float]:
    """Mean of relative sMAPE and MASE style errors over (window, series): lower is better."""
    err = np.abs(forecasts - actuals)
    den = np.abs(forecasts) + np.abs(actuals)
    sm = np.nanmean(np.where(den > 0, 200 * err / np.where(den > 0, den, 1), 0.0))
    ms = np.nanmean(np.nanmean(err, axis=-1) / scales)
    return float(sm), float(ms)


def select_members(
    forecasts: dict[str, np.ndarray], actuals: np.ndarray, scales: np.ndarray, max_members: int = 5,
    combine: str = "median",
) -> tuple[list[str], dict[str, tuple[float, float]]]:
    """Greedy forward selection of an ensemble from candidates' out-of-sample forecasts.

    ``forecasts[name]`` and ``actuals`` are shaped (windows, series, h); ``scales`` (windows, series) holds
    the MASE scale of each series. A set is scored by the mean of its sMAPE and MASE relative to the best
    single candidate (an OWA-like criterion). Start from the best single model, add the candidate that most
    improves the combined forecast, stop when nothing improves; then keep the median of the ``k`` best single
    candidates instead if some ``k <= max_members`` scores better still. Returns the chosen names and the (sMAPE,
    MASE) of every evaluated set keyed by ``"+".join(names)``.
    """
    if not forecasts:
        raise ValueError("no candidate forecasts to select from")
    A = np.asarray(actuals, dtype=float)
    for n, f in forecasts.items():
        if f.shape != A.shape:
            raise ValueError(f"forecasts of {n!r} have shape {f.shape}, actuals {A.shape}")
    scales = np.where(scales > 0, scales, np.nan)
    names = list(forecasts)
    singles = {n: _score(forecasts[n], A, scales) for n in names}
    ref_s = max(min(v[0] for v in singles.values()), 1e-12)
    ref_m = max(min(v[1] for v in singles.values()), 1e-12)

    def rel(sm_ms: tuple[float, float]) -> float:
        return 0.5 * (sm_ms[0] / ref_s + sm_ms[1] / ref_m)

    table = dict(singles)
    chosen = [min(names, key=lambda n: rel(singles[n]))]
    best = rel(singles[chosen[0]])
    while len(chosen) < max_members:
        cand = None
        for n in names:
            if n in chosen:
                continue
            trial = chosen + [n]
            stack = np.stack([forecasts[t] for t in trial]).reshape(len(trial), -1, A.shape[-1])
            sc = _score(combine_forecasts(stack, combine).reshape(A.shape), A, scales)
            table["+".join(trial)] = sc
            if rel(sc) < best - 1e-9 and (cand is None or rel(sc) < cand[1]):
                cand = (n, rel(sc))
        if cand is None:
            break
        chosen.append(cand[0])
        best = cand[1]
    # greedy search can stop early: also try the median of the k best single candidates
    ranked = sorted(names, key=lambda n: rel(singles[n]))
    for k in range(2, min(max_members, len(ranked)) + 1):
        trial = ranked[:k]
        stack = np.stack([forecasts[t] for t in trial]).reshape(k, -1, A.shape[-1])
        sc = _score(combine_forecasts(stack, combine).reshape(A.shape), A, scales)
        table["+".join(trial)] = sc
        if rel(sc) < best - 1e-9:
            chosen, best = list(trial), rel(sc)
    log.info("ensemble selection chose %s", chosen)
    return chosen, table


def select_combination(
    results: dict[str, BacktestResult], max_members: int = 5, combine: str = "median"
) -> tuple[list[str], dict[str, tuple[float, float]]]:
    """:func:`select_members` over backtest results of several candidates (run on the same windows)."""
    if not results:
        raise ValueError("no backtest results to select from")
    names = list(results)
    first = results[names[0]]
    for n in names[1:]:
        if results[n].actuals.shape != first.actuals.shape or not np.allclose(
                results[n].actuals, first.actuals, equal_nan=True):
            raise ValueError(f"backtest of {n!r} was run on other windows than {names[0]!r}")
    return select_members({n: r.forecasts for n, r in results.items()}, first.actuals, first.mase_scales,
                          max_members, combine)


@dataclass
class AutoEnsembleReport:
    """What :func:`auto_ensemble` saw: validation forecasts per candidate and the chosen members."""

    chosen: list[str]
    table: dict[str, tuple[float, float]]
    val_forecasts: dict[str, np.ndarray]
    val_actuals: np.ndarray
    val_scales: np.ndarray
    best_steps: dict[str, int | None] = field(default_factory=dict)
    holdout_models: dict[str, Forecaster] = field(default_factory=dict)


def auto_ensemble(
    candidates: dict[str, Forecaster],
    panel,
    horizon: int,
    season_length: SeasonArg,
    max_members: int = 5,
    combine: str = "median",
    n_jobs: int = 1,
    refit: bool = True,
) -> tuple[Forecaster, AutoEnsembleReport]:
    """Pick the best candidate or median-combination of candidates on a hold-out window, then refit.

    Every candidate is fitted on each series without its last ``horizon`` points and forecasts them; the
    greedy :func:`select_members` picks the set; MASE scales use each series' ``season_length`` (from the
    profiles; None = no season, see :mod:`tsops.models.season`). With ``refit`` the chosen candidates are refitted on the
    full panel via :meth:`Forecaster.refit_clone` (global neural models then train on every point for the
    number of steps early stopping found); otherwise the hold-out fits are kept. Returns the single best
    model when no combination beats it, else an :class:`EnsembleForecaster`.
    """
    from tsops.models.backtest import split_panel
    from tsops.models.base import as_panel
    from tsops.models.metrics import mase_scale

    p = as_panel(panel)
    head, tails = split_panel(p, horizon, horizon)
    lags = [lag(season_for(season_length, sid)) for sid in p.ids]
    short = [p.ids[i] for i, t in enumerate(tails) if len(t) < horizon or len(head.values[i]) <= lags[i]]
    if short:
        raise ValueError(f"series {short[:5]} are too short for a hold-out window of {horizon} points")
    names = list(candidates)
    fitted = fit_many([candidates[n].clone() for n in names], head, n_jobs)
    val = {n: m.predict_array(horizon, head)[None] for n, m in zip(names, fitted, strict=True)}
    actual = np.stack(tails)[None]
    scales = np.array([mase_scale(v, m) for v, m in zip(head.values, lags, strict=True)])[None]
    chosen, table = select_members(val, actual, scales, max_members, combine)
    by_name = dict(zip(names, fitted, strict=True))
    report = AutoEnsembleReport(chosen, table, val, actual, scales,
                                {n: getattr(m, "best_step_", None) for n, m in by_name.items()}, by_name)
    members = (fit_many([by_name[n].refit_clone() for n in chosen], p, n_jobs) if refit
               else [by_name[n] for n in chosen])
    if len(members) == 1:
        return members[0], report
    ens = EnsembleForecaster(members, combine=combine, n_jobs=n_jobs)
    ens.history_ = p
    return ens, report
