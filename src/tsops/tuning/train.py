"""``tsops train``: score one configuration on the backtest, fit it, log and register it.

Tracked like a tuning run with a single trial: a parent run (backtest spec, seasons, leaderboard, the model)
with one child run (parameters, season, per-window scores, per-epoch metrics, backtest table).

Seasons come from the series profiles unless ``season`` overrides them (see :mod:`tsops.tuning.seasons`); the
season used and its source are run params (``season_length``, ``season_lengths``, ``season_source``), leaderboard
columns and a model version tag.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tsops.models.registry import model_class
from tsops.tuning.covariates import covariates_param, model_covariates, resolve_covariates, with_covariates
from tsops.tuning.data import load_panel
from tsops.tuning.evaluate import BacktestSpec, fingerprint
from tsops.tuning.seasons import backtest_spec, resolve_spec
from tsops.tuning.trials import fixed_params, run_trial

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    dataset: str
    model: str
    params: dict[str, Any]
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


def with_season(spec: BacktestSpec, season: int | None) -> BacktestSpec:
    """``spec`` with ``season`` (samples, 1 = none) as an override for every series, or unchanged for None."""
    if season is None:
        return spec
    return dataclasses.replace(spec, season_length=season, series_seasons={}, season_source="override")


def train(project, dataset: str, model: str = "lstm", params: dict[str, Any] | None = None,
          spec: BacktestSpec | None = None, name: str | None = None, zone: str = "clean",
          max_points: int | None = None, max_steps: int = 300, seed: int = 0,
          min_improvement: float = 0.0, covariates: int | list[str] | None = None,
          season: int | None = None) -> TrainResult:
    """Backtest, fit and register one configuration of ``model`` on ``dataset``.

    ``spec`` defaults to the dataset's ``forecast:`` settings (:func:`~tsops.tuning.seasons.backtest_spec`);
    seasons come from the series profiles unless ``season`` (or a season in ``spec``/the config) overrides
    them. ``covariates``: other series of the dataset fed to models that support them as extra inputs: a count
    ``k`` (chosen from the catalog's lagged correlations, see :mod:`tsops.tuning.covariates`) or series ids;
    other families ignore them (recorded in the run).
    """
    import mlflow
    from mlflow import MlflowClient

    from tsops.tracking import forecast_registry as R
    from tsops.tuning.publish import fit_final, publish
    from tsops.tuning.trials import log_trial

    spec = with_season(spec or backtest_spec(project, dataset), season)
    params = {**fixed_params(model, max_steps), **(params or {})}
    panel = load_panel(project, dataset, zone=zone, max_points=max_points)
    catalog = project.catalog()
    spec = resolve_spec(spec, catalog, dataset, panel)
    ids = list(panel.ids)
    cov = resolve_covariates(project, dataset, covariates, ids)
    params = with_covariates(model, params, cov)
    ignored = bool(cov) and not model_class(model).supports_covariates
    if ignored:
        log.warning("model %s takes no covariates: ignoring %s", model, ", ".join(cov))
    fp = fingerprint(panel, spec)
    name = R.registered_name(dataset, name)
    exp_id = R.setup_tracking(project, dataset)
    client = MlflowClient()
    seasons = spec.season_summary(ids)
    cat_run = catalog.start_run("train", dataset, {"model": model} | seasons | (
        {} if cov is None else {"covariates": cov}))
    try:
        with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{model}") as parent:
            mlflow.set_tags({"tsops.kind": "train", "tsops.dataset": dataset, "tsops.fingerprint": fp})
            mlflow.log_params({"backtest_" + k: v for k, v in spec.to_dict(per_series=False).items()} |
                              {"n_series": len(panel), "families": model})
            R.log_season(client, parent.info.run_id, seasons,
                         spec.series_seasons if seasons["season_lengths"] == "per-series" else None)
            if cov is not None:
                mlflow.log_param("covariates", covariates_param(cov))
                mlflow.set_tag("tsops.covariates_ignored", str(ignored).lower())
            child = client.create_run(exp_id, run_name=f"{model}-0", tags={
                "mlflow.parentRunId": parent.info.run_id, "tsops.kind": "trial"})
            with tempfile.TemporaryDirectory(prefix="tsops-trial-") as tmp:
                tdir = Path(tmp) / "trial"
                t0 = time.time()
                status = "FAILED"
                try:
                    score = run_trial(model, params, panel, spec, tdir, seed=seed, n_threads=None)
                    status = "FINISHED"
                finally:
                    rec = log_trial(client, child.info.run_id, tdir, spec) if (tdir / "params.json").exists() \
                        else None
                    client.set_terminated(child.info.run_id, status)
                used = rec.get("season") or {}
                board = pd.DataFrame([{"trial": child.info.run_id, "model": model, "score": score,
                                       "windows": len(rec["windows"]), "status": "complete",
                                       "seconds": round(time.time() - t0, 2), **used, **params}])
                R.log_table_artifact(client, parent.info.run_id, board, "leaderboard.csv")
                mlflow.log_metric("best_score", score)
                fitted = fit_final(model, params, panel, spec, rec["residuals"], seed=seed)
            pub = publish(fitted, score, fp, spec, panel, dataset, name, min_improvement)
    except BaseException as exc:
        catalog.finish_run(cat_run, "failed", error=str(exc)[:2000])
        raise
    used = model_covariates(fitted)
    stats = {"model": model, "score": score, "registered_model": name, "version": pub.version,
             "promoted": pub.promotion["promoted"], **seasons}
    if cov is not None:
        stats |= {"covariates": used, "covariates_requested": cov, "covariates_ignored": ignored}
    catalog.finish_run(cat_run, "success", stats)
    return TrainResult(dataset, model, params, score, spec.metric, parent.info.run_id, name, pub.version,
                       pub.promotion["promoted"], pub.promotion["champion_score"], board, used,
                       seasons | (rec.get("season") or {}))
