"""From a winning configuration to a registered model: final fit, conformal intervals, pyfunc, champion.

Intervals are calibrated on backtest residuals. A 95% conformal quantile needs at least 19 residuals per
horizon step; when the scoring backtest has fewer (few series, few windows), extra origins are evaluated with
a single fit (``refit=False``) on the oldest part of the data, which keeps every residual out of sample.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tsops.models.backtest import backtest
from tsops.models.base import Forecaster, Panel
from tsops.tuning.covariates import TAG_COVARIATES, model_covariates
from tsops.tuning.evaluate import BacktestSpec, build_model, describe_season, min_train, run_backtest

log = logging.getLogger(__name__)

MIN_RESIDUALS_PER_STEP = 19  # ceil((n + 1) * 0.95) <= n


def calibration_residuals(model: Forecaster, panel: Panel, spec: BacktestSpec,
                          residuals: pd.DataFrame | None) -> pd.DataFrame:
    """Backtest residuals to calibrate intervals with: the scoring backtest's, plus extra single-fit origins
    when there are fewer than ``MIN_RESIDUALS_PER_STEP`` per step."""
    have = 0 if residuals is None or residuals.empty else int(residuals.groupby("step").size().min())
    if have >= MIN_RESIDUALS_PER_STEP:
        return residuals
    n = len(panel)
    need_windows = math.ceil(MIN_RESIDUALS_PER_STEP / max(1, n)) + 1
    shortest = min(len(v) for v in panel.values)
    mt = min_train(spec, panel)
    room = shortest - mt - spec.horizon
    if room < 1:
        return residuals if residuals is not None else pd.DataFrame()
    step = max(1, min(spec.horizon, room // max(1, need_windows - 1)))
    n_windows = max(1, min(need_windows, room // step + 1))
    extra = backtest(model.clone(), panel, spec.horizon, n_windows=n_windows, step=step,
                     season_length=spec.mase_seasons(panel.ids), refit=False, min_train=mt).residuals
    log.info("calibrating intervals on %d extra residuals (%d origins, %d apart)", len(extra), n_windows, step)
    parts = [r for r in (residuals, extra) if r is not None and not r.empty]
    return pd.concat(parts, ignore_index=True) if parts else extra


def fit_final(family: str, params: dict[str, Any], panel: Panel, spec: BacktestSpec,
              residuals: pd.DataFrame | None, seed: int = 0) -> Forecaster:
    """Fit the configuration on all data and attach 80/95% conformal intervals (each series' interval scale
    uses the season its backtest residuals were scaled with)."""
    model = build_model(family, params, spec, seed=seed, ids=list(panel.ids))
    res = calibration_residuals(model, panel, spec, residuals)
    model.fit(panel)
    if res is None or res.empty:
        raise ValueError("no backtest residuals to calibrate intervals with: the series are too short for "
                         f"a horizon of {spec.horizon}")
    model.calibrate(res, levels=(80, 95))
    model.default_horizon_ = spec.horizon
    return model


@dataclass
class Published:
    run_id: str
    model_uri: str
    name: str
    version: str
    promotion: dict[str, Any]


def publish(model: Forecaster, score: float, fp: str, spec: BacktestSpec, panel: Panel, dataset: str,
            name: str, min_improvement: float = 0.0) -> Published:
    """Log ``model`` as a pyfunc in the active run, register it as a new version of ``name``, tag it and move
    ``champion`` to it if it beats the current champion on the same backtest."""
    import json

    import mlflow
    from mlflow import MlflowClient

    from tsops.tracking import forecast_registry as R
    from tsops.tracking.forecast_pyfunc import forecaster_from_pyfunc, log_forecaster

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("publish() must run inside an active MLflow run")
    info = log_forecaster(model, registered_model_name=name)
    version = str(info.registered_model_version)
    client = MlflowClient()
    params = model.params
    if params.get("series_seasons"):  # per-series seasons are in the run's seasons.json (tags stay short)
        params["series_seasons"] = f"{len(params['series_seasons'])} series (see seasons.json)"
    tags = {
        R.TAG_SCORE: repr(float(score)), R.TAG_METRIC: spec.metric, R.TAG_FINGERPRINT: fp,
        R.TAG_SPEC: json.dumps(spec.to_dict(per_series=False)), R.TAG_MODEL: model.name,
        R.TAG_PARAMS: json.dumps(params, default=str), R.TAG_DATASET: dataset,
        R.TAG_SEASON: json.dumps(spec.season_summary(list(panel.ids)) | describe_season(model, spec)),
    }
    cov = model_covariates(model)
    if cov:  # the series a forecast leans on (the history sent to the model must hold them)
        tags[TAG_COVARIATES] = ",".join(cov)
    R.tag_version(client, name, version, tags)

    def rescore(uri: str) -> float:
        champ = forecaster_from_pyfunc(mlflow.pyfunc.load_model(uri))
        return run_backtest(champ.clone(), panel, spec)[0]

    promo = R.promote_if_better(client, name, version, float(score), fp, rescore=rescore,
                                min_improvement=min_improvement)
    mlflow.set_tags({"tsops.registered_model": name, "tsops.version": version,
                     "tsops.promoted": str(promo.promoted).lower()})
    if promo.champion_score is not None and np.isfinite(promo.champion_score):
        mlflow.log_metric("champion_score_same_backtest", promo.champion_score)
    return Published(run.info.run_id, info.model_uri, name, version, promo.to_dict())
