"""``tsops tune``: AutoML over model families and hyperparameters with Ray Tune.

* Search: Optuna (TPE) over a define-by-run space (family first, then that family's parameters from the
  model registry, e.g. the LSTM space hidden_size {2..64}, lr log-uniform [1e-3, 0.1], num_layers {1..5}).
* Early stopping: ASHA on the backtest score; the time unit is a backtest window, so a poor configuration
  is stopped after its first window(s).
* Budget: ``trials`` configurations and/or ``minutes`` of wall time, whichever ends first.
* Tracking: a parent MLflow run per tuning run; each trial becomes a child run as it starts, gets its
  per-window scores as they arrive and its parameters, per-epoch metrics and backtest table when it ends
  (logged from the driver by a Tune callback, so only one process writes to the tracking store). The parent
  holds the leaderboard; the winner is fitted on all data, calibrated, logged as a pyfunc and registered.
* Seasons: from the series profiles unless ``season`` overrides them (:mod:`tsops.tuning.seasons`). The search
  spaces are the ones the model classes declare for the dataset's common season lengths (e.g. seasonal naive
  chooses among them, MSTL uses all); when series differ, local models use each series' own and global
  models the most common one. The seasons are run params and leaderboard columns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsops.models.base import Panel
from tsops.models.registry import model_class
from tsops.tuning.covariates import covariates_param, model_covariates, resolve_covariates, with_covariates
from tsops.tuning.data import load_panel
from tsops.tuning.evaluate import BacktestSpec, fingerprint
from tsops.tuning.seasons import backtest_spec, resolve_spec
from tsops.tuning.train import with_season
from tsops.tuning.trials import DEFAULT_FAMILIES, fixed_params, make_space, run_trial, split_config

log = logging.getLogger(__name__)


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None,
                temp_dir: str | None = None) -> Iterator[None]:
    """Use the running Ray (if initialised), connect to ``address``, or start a local Ray for the block."""
    import ray

    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        ray.init(address=address, **kw)
    else:
        tmp = temp_dir or os.environ.get("TSOPS_RAY_TMP") or f"/tmp/tsops-ray-{os.getuid()}"
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, _temp_dir=tmp, **kw)
    try:
        yield
    finally:
        ray.shutdown()


def _trainable(config: dict[str, Any], panel: Panel, spec: BacktestSpec, scratch: str,
               fixed: dict[str, Any], max_steps: int, seed: int) -> None:
    """The Ray Tune function trainable: score one configuration, reporting after every window."""
    from ray import tune

    family, params = split_config(config)
    params = {**fixed_params(family, max_steps), **fixed.get(family, {}), **params}
    # arrays arrive read-only from the object store
    own = Panel(list(panel.ids), [np.array(v, dtype=float, copy=True) for v in panel.values],
                list(panel.end_ts), panel.freq)
    trial_dir = Path(scratch) / tune.get_context().get_trial_id()
    try:
        run_trial(family, params, own, spec, trial_dir, seed=seed, n_threads=1, report=tune.report)
    except Exception as exc:  # recorded for the driver's MLflow run, then re-raised for Ray
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "error.txt").write_text(f"{type(exc).__name__}: {exc}")
        raise


def _mlflow_callback_class():
    from ray.tune import Callback

    class MlflowTrialCallback(Callback):
        """Driver-side: one MLflow child run per trial (created at start, filled at the end)."""

        def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, scratch: str,
                     spec: BacktestSpec) -> None:
            self.tracking_uri, self.experiment_id = tracking_uri, experiment_id
            self.parent_run_id, self.scratch, self.spec = parent_run_id, scratch, spec
            self.runs: dict[str, str] = {}
            self.started: dict[str, float] = {}

        def _client(self):
            from mlflow import MlflowClient

            return MlflowClient(self.tracking_uri)

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            family, params = split_config(trial.config)
            run = self._client().create_run(self.experiment_id, run_name=f"{family}-{trial.trial_id}", tags={
                "mlflow.parentRunId": self.parent_run_id, "tsops.kind": "trial", "tsops.trial_id": trial.trial_id})
            self.runs[trial.trial_id] = run.info.run_id
            self.started[trial.trial_id] = time.time()

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            rid = self.runs.get(trial.trial_id)
            if rid and "score" in result and math.isfinite(result["score"]):
                self._client().log_metric(rid, "running_score", float(result["score"]),
                                          step=int(result.get("window", 0)))

        def _finish(self, trial, status: str, error: str | None = None) -> None:
            from tsops.tuning.trials import log_trial

            rid = self.runs.get(trial.trial_id)
            if rid is None:
                return
            client = self._client()
            tdir = Path(self.scratch) / trial.trial_id
            rec: dict[str, Any] = {"windows": [], "score": float("nan")}
            if (tdir / "params.json").exists():
                rec = log_trial(client, rid, tdir, self.spec)
            done = len(rec["windows"])
            state = "complete" if done == self.spec.n_windows else (
                "error" if status == "FAILED" else f"stopped after {done} window(s)")
            client.set_tag(rid, "tsops.trial_state", state)
            if error:
                client.set_tag(rid, "tsops.error", error[:4000])
            client.set_terminated(rid, status)
            family, params = split_config(trial.config)
            record = {"trial_id": trial.trial_id, "run_id": rid, "model": family, "params": params,
                      "score": rec["score"], "windows": done, "state": state,
                      "seconds": round(time.time() - self.started.get(trial.trial_id, time.time()), 2),
                      **(rec.get("season") or {})}
            tdir.mkdir(parents=True, exist_ok=True)
            (tdir / "record.json").write_text(json.dumps(record, default=str))

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._finish(trial, "FINISHED")

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            f = Path(self.scratch) / trial.trial_id / "error.txt"
            self._finish(trial, "FAILED", f.read_text() if f.exists() else
                         f"trial failed before it started; see {getattr(trial, 'path', 'the Ray results')}")

    return MlflowTrialCallback


@dataclass
class TuneResult:
    dataset: str
    best_model: str
    best_params: dict[str, Any]
    score: float
    metric: str
    parent_run_id: str
    registered_name: str
    version: str
    promoted: bool
    champion_score: float | None
    leaderboard: pd.DataFrame = field(repr=False)
    covariates: list[str] = field(default_factory=list)
    season: dict[str, Any] = field(default_factory=dict)


def leaderboard(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Trials ranked by score; only trials that finished every window are ranked (rank NaN otherwise).
    ``season``/``season_source``: the season each trial's model used and where it came from."""
    cols = ["rank", "trial_id", "model", "score", "state", "windows", "seconds", "season", "season_source",
            "run_id", "params"]
    if not records:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(records)
    for c in ("season", "season_source"):
        df[c] = df[c].fillna("") if c in df else ""
    df["params"] = df["params"].map(lambda p: ", ".join(f"{k}={v}" for k, v in sorted(p.items())))
    ok = (df["state"] == "complete") & np.isfinite(df["score"].astype(float))
    df["rank"] = np.nan
    order = df[ok].sort_values("score").index
    df.loc[order, "rank"] = np.arange(1, len(order) + 1)
    df = df.sort_values(["rank", "score"], na_position="last").reset_index(drop=True)
    return df[cols]


def tune(project, dataset: str, families: list[str] | None = None, trials: int = 20,
         minutes: float | None = None, spec: BacktestSpec | None = None, name: str | None = None,
         address: str | None = None, num_cpus: int | None = None, zone: str = "clean",
         max_points: int | None = None, max_steps: int = 300, fixed: dict[str, dict[str, Any]] | None = None,
         seed: int = 0, min_improvement: float = 0.0, grace_windows: int = 1,
         covariates: int | list[str] | None = None, season: int | None = None) -> TuneResult:
    """Search ``families`` with Ray Tune (Optuna + ASHA) on ``dataset``; register the winner.

    ``spec`` defaults to the dataset's ``forecast:`` settings; seasons come from the series profiles unless
    ``season`` (or a season in ``spec``/the config) overrides them. ``covariates`` (a count ``k`` chosen from
    the catalog's lagged correlations, or series ids) are fixed inputs of every trial of a family that
    supports them; the other families ignore them.
    """
    import mlflow
    from mlflow import MlflowClient
    from ray import tune as rt
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from tsops.tracking import forecast_registry as R
    from tsops.tuning.publish import fit_final, publish
    from tsops.tuning.trials import read_trial

    spec = with_season(spec or backtest_spec(project, dataset), season)
    families = list(families or DEFAULT_FAMILIES)
    fixed = fixed or {}
    if trials < 1:
        raise ValueError(f"trials must be >= 1 (got {trials})")
    if minutes is not None and minutes <= 0:
        raise ValueError(f"minutes must be > 0 (got {minutes})")
    make_space(families)  # fails early on unknown families
    panel = load_panel(project, dataset, zone=zone, max_points=max_points)
    catalog = project.catalog()
    spec = resolve_spec(spec, catalog, dataset, panel)
    ids = list(panel.ids)
    seasons = spec.season_summary(ids)
    shortest = min(len(v) for v in panel.values)
    # the common season lengths (seasonal naive chooses among them); series that differ: the most common main
    # season, which global models use (local models then use each series' own)
    common = spec.common_seasons(ids)
    g = spec.global_season(ids)
    space = make_space(families, seasons=common if common is not None else ((g,) if g else ()), horizon=spec.horizon,
                       max_input=max(1, shortest - spec.horizon * (spec.n_windows + 1)))
    cov = resolve_covariates(project, dataset, covariates, ids)
    fixed = {f: with_covariates(f, fixed.get(f, {}), cov) for f in set(families) | set(fixed)}
    ignoring = sorted(f for f in families if not model_class(f).supports_covariates) if cov else []
    if ignoring:
        log.info("families %s take no covariates: they ignore %s", ", ".join(ignoring), ", ".join(cov))
    fp = fingerprint(panel, spec)
    name = R.registered_name(dataset, name)
    exp_id = R.setup_tracking(project, dataset)
    storage = project.root / ".tsops" / "ray_results"
    storage.mkdir(parents=True, exist_ok=True)
    cat_run = catalog.start_run("tune", dataset, {"families": families, "trials": trials} | seasons | (
        {} if cov is None else {"covariates": cov}))
    try:
        with mlflow.start_run(experiment_id=exp_id, run_name=f"tune-{dataset}") as parent:
            run_name = f"tune-{dataset}-{parent.info.run_id[:8]}"
            scratch = storage / run_name / "tsops_trials"
            scratch.mkdir(parents=True, exist_ok=True)
            mlflow.set_tags({"tsops.kind": "tune", "tsops.dataset": dataset, "tsops.fingerprint": fp})
            mlflow.log_params({"backtest_" + k: v for k, v in spec.to_dict(per_series=False).items()} | {
                "families": ",".join(families), "trials": trials, "minutes": minutes, "n_series": len(panel),
                "max_steps": max_steps, "search": "optuna", "scheduler": "asha"})
            R.log_season(MlflowClient(), parent.info.run_id, seasons,
                         spec.series_seasons if seasons["season_lengths"] == "per-series" else None)
            if cov is not None:
                mlflow.log_param("covariates", covariates_param(cov))
                mlflow.set_tag("tsops.covariates_ignored_by", ",".join(ignoring) or "none")
            callback = _mlflow_callback_class()(project.tracking_uri, exp_id, parent.info.run_id,
                                                str(scratch), spec)
            searcher = OptunaSearch(space=space, metric="score", mode="min", seed=seed)
            scheduler = ASHAScheduler(time_attr="training_iteration", max_t=spec.n_windows,
                                      grace_period=max(1, min(grace_windows, spec.n_windows)),
                                      reduction_factor=2)
            trainable = rt.with_resources(
                rt.with_parameters(_trainable, panel=panel, spec=spec, scratch=str(scratch), fixed=fixed,
                                   max_steps=max_steps, seed=seed), {"cpu": 1})
            with ray_session(address, num_cpus):
                tuner = rt.Tuner(
                    trainable,
                    tune_config=rt.TuneConfig(metric="score", mode="min", search_alg=searcher,
                                              scheduler=scheduler, num_samples=trials,
                                              time_budget_s=None if minutes is None else minutes * 60),
                    run_config=rt.RunConfig(name=run_name, storage_path=str(storage), callbacks=[callback],
                                            verbose=0),
                )
                grid = tuner.fit()
            records = [json.loads(f.read_text()) for f in sorted(scratch.glob("*/record.json"))]
            if len(records) < len(grid):  # a trial the callback did not see (e.g. never started)
                seen = {r["trial_id"] for r in records}
                records += [r for r in (_record_from_result(x, spec) for x in grid) if r["trial_id"] not in seen]
            board = leaderboard(records)
            R.log_table_artifact(MlflowClient(), parent.info.run_id, board, "leaderboard.csv")
            mlflow.log_metric("trials_run", len(board))
            mlflow.log_metric("trials_complete", int((board["state"] == "complete").sum()))
            ranked = board[board["rank"].notna()]
            if ranked.empty:
                errors = "; ".join(f"{r.model}: {r.state}" for r in board.itertuples()) or "no trial ran"
                raise RuntimeError(f"no trial finished the backtest ({errors}); see the child runs of MLflow "
                                   f"run {parent.info.run_id} for the errors")
            best = ranked.iloc[0]
            rec = read_trial(scratch / best["trial_id"])
            params = {**fixed_params(rec["model"], max_steps), **fixed.get(rec["model"], {}), **rec["params"]}
            mlflow.log_metric("best_score", float(best["score"]))
            mlflow.set_tags({"tsops.best_model": rec["model"], "tsops.best_trial_run": best["run_id"]})
            fitted = fit_final(rec["model"], params, panel, spec, rec["residuals"], seed=seed)
            pub = publish(fitted, float(best["score"]), fp, spec, panel, dataset, name, min_improvement)
    except BaseException as exc:
        catalog.finish_run(cat_run, "failed", error=str(exc)[:2000])
        raise
    used = model_covariates(fitted)
    stats = {"best_model": rec["model"], "score": float(best["score"]), "registered_model": name,
             "version": pub.version, "promoted": pub.promotion["promoted"], "trials": len(board), **seasons}
    if cov is not None:
        stats |= {"covariates": used, "covariates_requested": cov, "covariates_ignored_by": ignoring}
    catalog.finish_run(cat_run, "success", stats)
    return TuneResult(dataset, rec["model"], params, float(best["score"]), spec.metric, parent.info.run_id,
                      name, pub.version, pub.promotion["promoted"], pub.promotion["champion_score"], board, used,
                      seasons | (rec.get("season") or {}))


def _record_from_result(result, spec: BacktestSpec) -> dict[str, Any]:
    family, params = split_config(result.config)
    m = result.metrics or {}
    done = int(m.get("training_iteration", 0))
    return {"trial_id": m.get("trial_id", ""), "run_id": "", "model": family, "params": params,
            "score": float(m.get("score", math.nan)), "windows": done,
            "state": "complete" if done == spec.n_windows and result.error is None else "error",
            "seconds": float(m.get("time_total_s", math.nan))}
