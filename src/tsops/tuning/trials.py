"""One trial = one model configuration scored window by window; its results land in a trial directory.

The trial directory (``params.json``, ``windows.jsonl``, ``metrics.csv``, ``residuals.parquet``) is written as
windows complete, so a trial stopped early by ASHA still leaves its partial backtest behind. The driver turns
a trial directory into an MLflow child run with :func:`log_trial`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsops.models.base import Panel
from tsops.models.registry import ALIASES, model_class, search_space
from tsops.tuning.evaluate import BacktestSpec, WindowScore, build_model, describe_season, evaluate_windows

log = logging.getLogger(__name__)

SEP = "__"
DEFAULT_FAMILIES = ("seasonal_naive", "auto_theta", "lstm", "nhits")


# ------------------------------------------------------------------------------------------ search space
def family_space(family: str, seasons: tuple[int, ...] = (), horizon: int | None = None,
                 max_input: int | None = None) -> dict[str, dict[str, Any]]:
    """The search space a model family declares for series with season lengths ``seasons`` (the dataset's
    common ones; () when there are none or the series differ, each then using its own), a ``horizon`` and
    windows of at most ``max_input`` points (statsforecast aliases have nothing to tune)."""
    if family in ALIASES:
        return {}
    return search_space(family, seasons, horizon, max_input)


def suggest(trial, families: list[str], spaces: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Optuna define-by-run space: pick a family, then its hyperparameters (named ``<family>__<param>``)."""
    fam = trial.suggest_categorical("model", list(families))
    for k, sp in spaces[fam].items():
        key = f"{fam}{SEP}{k}"
        kind = sp["type"]
        if kind == "choice":
            trial.suggest_categorical(key, list(sp["values"]))
        elif kind == "loguniform":
            trial.suggest_float(key, float(sp["low"]), float(sp["high"]), log=True)
        elif kind == "uniform":
            trial.suggest_float(key, float(sp["low"]), float(sp["high"]))
        elif kind == "randint":
            trial.suggest_int(key, int(sp["low"]), int(sp["high"]) - 1)
        else:
            raise ValueError(f"search space of {fam!r}: parameter {k!r} has unknown type {kind!r}")


class SearchSpace:
    """A picklable define-by-run function for OptunaSearch over ``families`` (spaces declared by the model
    classes for the given seasons and horizon, see :func:`family_space`; optionally updated per family by
    ``overrides``)."""

    def __init__(self, families: list[str], overrides: dict[str, dict[str, dict[str, Any]]] | None = None,
                 seasons: tuple[int, ...] = (), horizon: int | None = None, max_input: int | None = None):
        if not families:
            raise ValueError("give at least one model family to search")
        self.families = list(families)
        self.spaces = {f: family_space(f, tuple(seasons), horizon, max_input) for f in self.families}
        for f, sp in (overrides or {}).items():
            if f not in self.spaces:
                raise ValueError(f"search space override for {f!r}, which is not among the families {families}")
            self.spaces[f].update(sp)

    def __call__(self, trial) -> None:
        suggest(trial, self.families, self.spaces)


def make_space(families: list[str], overrides: dict[str, dict[str, dict[str, Any]]] | None = None,
               seasons: tuple[int, ...] = (), horizon: int | None = None, max_input: int | None = None
               ) -> SearchSpace:
    """A define-by-run search space over ``families`` for OptunaSearch."""
    return SearchSpace(families, overrides, seasons, horizon, max_input)


def split_config(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``{"model": "lstm", "lstm__hidden_size": 8, ...}`` -> ``("lstm", {"hidden_size": 8, ...})``."""
    fam = config["model"]
    prefix = f"{fam}{SEP}"
    params = {k[len(prefix):]: _plain(v) for k, v in config.items() if k.startswith(prefix)}
    return fam, params


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def fixed_params(family: str, max_steps: int) -> dict[str, Any]:
    """Settings tuning keeps fixed per family: the training budget of global (neural) models."""
    if model_class(family).is_global:
        return {"max_steps": int(max_steps), "eval_every": max(1, int(max_steps) // 10), "patience": 3}
    return {}


# ------------------------------------------------------------------------------------------ trial directory
def write_params(trial_dir: Path, family: str, params: dict[str, Any],
                 season: dict[str, Any] | None = None) -> None:
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "params.json").write_text(json.dumps({"model": family, "params": params, "season": season},
                                                      default=str))


def append_window(trial_dir: Path, w: WindowScore) -> None:
    """Add a finished window to the trial directory."""
    with open(trial_dir / "windows.jsonl", "a") as fh:
        fh.write(json.dumps({"window": w.window, "score": w.score, "running_score": w.running_score,
                             "train_logs": w.train_logs}) + "\n")
    m = trial_dir / "metrics.csv"
    w.metrics.to_csv(m, mode="a", header=not m.exists(), index=False)
    w.residuals.to_parquet(trial_dir / f"residuals-{w.window:03d}.parquet", index=False)


def read_trial(trial_dir: Path) -> dict[str, Any]:
    """Everything a trial directory holds: model, params, windows, metrics table, residuals."""
    trial_dir = Path(trial_dir)
    meta = json.loads((trial_dir / "params.json").read_text())
    wf = trial_dir / "windows.jsonl"
    windows = [json.loads(x) for x in wf.read_text().splitlines()] if wf.exists() else []
    mf = trial_dir / "metrics.csv"
    metrics = pd.read_csv(mf) if mf.exists() else pd.DataFrame()
    res_files = sorted(trial_dir.glob("residuals-*.parquet"))
    residuals = pd.concat([pd.read_parquet(f) for f in res_files], ignore_index=True) if res_files else None
    return {**meta, "windows": windows, "metrics": metrics, "residuals": residuals,
            "score": windows[-1]["running_score"] if windows else float("nan")}


def run_trial(family: str, params: dict[str, Any], panel: Panel, spec: BacktestSpec, trial_dir: Path,
              seed: int = 0, n_threads: int | None = 1, report: Callable[[dict[str, Any]], None] | None = None
              ) -> float:
    """Score one configuration window by window, recording each window in ``trial_dir`` and passing
    ``{"score", "window_score", "window"}`` to ``report`` after each; returns the final score."""
    write_params(trial_dir, family, params)
    model = build_model(family, params, spec, seed=seed, n_threads=n_threads, ids=list(panel.ids))
    write_params(trial_dir, family, params, describe_season(model, spec))
    score = float("nan")
    for w in evaluate_windows(model, panel, spec):
        append_window(trial_dir, w)
        score = w.running_score
        if report is not None:
            report({"score": w.running_score, "window_score": w.score, "window": w.window})
    return score


# ------------------------------------------------------------------------------------------ MLflow child runs
def log_trial(client, run_id: str, trial_dir: Path, spec: BacktestSpec) -> dict[str, Any]:
    """Log a trial directory into MLflow run ``run_id``: params, per-window scores, per-epoch metrics of the
    neural fits and the backtest table (``backtest.csv``). Returns :func:`read_trial`'s record."""
    from tsops.tracking.forecast_registry import log_season, log_table_artifact, log_train_logs

    rec = read_trial(trial_dir)
    client.log_param(run_id, "model", rec["model"])
    for k, v in rec["params"].items():
        client.log_param(run_id, k, v)
    if rec.get("season"):
        log_season(client, run_id, rec["season"])
    for w in rec["windows"]:
        client.log_metric(run_id, "window_score", w["score"], step=w["window"])
        client.log_metric(run_id, "score", w["running_score"], step=w["window"])
    client.log_metric(run_id, "windows_done", len(rec["windows"]))
    log_train_logs(client, run_id, [w["train_logs"] for w in rec["windows"]])
    if not rec["metrics"].empty:
        log_table_artifact(client, run_id, rec["metrics"], "backtest.csv")
        means = rec["metrics"].mean(numeric_only=True)
        for k in ("rmse", "mae", "mape", "smape", "mase"):
            if k in means and np.isfinite(means[k]):
                client.log_metric(run_id, f"backtest_{k}", float(means[k]))
    client.set_tag(run_id, "tsops.backtest_metric", spec.metric)
    return rec
