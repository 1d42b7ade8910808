"""Covariates from the analysis stage: the choice rule, train/tune wiring, MLflow records, pyfunc serving."""

import pytest
import typer
from typer.testing import CliRunner

from tsops.tuning.covariates import (
    covariates_from_analysis,
    parse_covariates,
    resolve_covariates,
    with_covariates,
)

ANALYSIS = {"best_lags": [
    {"leader": "a", "follower": "b", "lag": 0, "corr": 0.97},   # strongest, but simultaneous
    {"leader": "c", "follower": "a", "lag": 2, "corr": -0.9},   # c leads a (negative corr counts by |corr|)
    {"leader": "d", "follower": "b", "lag": 5, "corr": 0.9},    # tie with c on |corr|, d leads more pairs
    {"leader": "d", "follower": "a", "lag": 1, "corr": 0.6},
    {"leader": "e", "follower": "a", "lag": 3, "corr": 0.4},    # below min_abs_corr
    {"leader": "x", "follower": "a", "lag": 4, "corr": 0.99},   # x is not a series of the panel
]}
IDS = ["a", "b", "c", "d", "e"]


def test_leaders_first_then_lag0_pairs_with_deterministic_ties():
    assert covariates_from_analysis(ANALYSIS, IDS, 1) == ["d"]            # tie on 0.9: d leads two pairs
    assert covariates_from_analysis(ANALYSIS, IDS, 2) == ["d", "c"]
    # lagged leaders come before the (stronger) lag-0 pair, whose sides tie and break by id
    assert covariates_from_analysis(ANALYSIS, IDS, 10) == ["d", "c", "a", "b"]
    assert covariates_from_analysis(ANALYSIS, IDS, 10, min_abs_corr=0.3) == ["d", "c", "e", "a", "b"]
    assert covariates_from_analysis(ANALYSIS, IDS, 0) == []


def test_restricted_to_the_series_and_empty_below_the_threshold():
    assert covariates_from_analysis(ANALYSIS, ["a", "b", "c"], 3) == ["c", "a", "b"]   # d is not a series
    assert covariates_from_analysis(ANALYSIS, ["a", "x"], 2) == ["x"]                   # x leads a at 0.99
    assert covariates_from_analysis(ANALYSIS, IDS, 3, min_abs_corr=0.98) == []
    assert covariates_from_analysis({}, IDS, 3) == []
    with pytest.raises(ValueError, match="best_lags\\[0\\]"):
        covariates_from_analysis({"best_lags": [{"leader": "a"}]}, IDS, 1)


def test_cli_value_and_family_params():
    assert parse_covariates("2") == 2
    assert parse_covariates(" s1, s2 ") == ["s1", "s2"]
    assert parse_covariates("") is None and parse_covariates(None) is None
    assert with_covariates("nhits", {"input_size": 24}, ["s1"]) == {"input_size": 24, "covariates": ["s1"]}
    assert with_covariates("seasonal_naive", {}, ["s1"]) == {}                 # not a neural family
    with pytest.raises(ValueError, match="covariates given twice"):
        with_covariates("lstm", {"covariates": ["s0"]}, ["s1"])


def test_count_needs_the_analysis_and_ids_are_checked(make_project):
    from tsops.cli.forecasting import train as train_cmd

    p = make_project(n_series=3, length=120)
    with pytest.raises(LookupError, match="tsops pipeline run --stage analyze"):
        resolve_covariates(p, "demo", 1, ["s0", "s1", "s2"])
    with pytest.raises(ValueError, match="'s9'"):
        resolve_covariates(p, "demo", ["s1", "s9"], ["s0", "s1", "s2"])
    assert resolve_covariates(p, "demo", ["s1", "s1"], ["s0", "s1", "s2"]) == ["s1"]
    assert resolve_covariates(p, "demo", None, ["s0"]) is None

    app = typer.Typer()
    app.command()(train_cmd)
    res = CliRunner().invoke(app, ["--dataset", "demo", "--project", str(p.root), "--model", "nhits",
                                   "--covariates", "2"])
    assert res.exit_code == 1
    assert "tsops pipeline run --stage analyze" in " ".join(res.output.split())


def test_train_with_analysis_covariates_logs_them_and_serves(make_project):
    import mlflow
    from mlflow import MlflowClient

    from tsops.tracking.forecast_pyfunc import ForecastInputError, forecaster_from_pyfunc
    from tsops.tuning.data import load_panel
    from tsops.tuning.evaluate import BacktestSpec
    from tsops.tuning.train import train

    p = make_project(n_series=3, length=160)
    catalog = p.catalog()
    catalog.upsert_dataset("demo", {"analysis": {"best_lags": [
        {"leader": "s0", "follower": "s1", "lag": 0, "corr": 0.95},
        {"leader": "s2", "follower": "s0", "lag": 3, "corr": 0.8},
        {"leader": "s1", "follower": "s2", "lag": 1, "corr": 0.3},
    ]}})
    catalog.close()

    res = train(p, "demo", "nhits", params={"input_size": 24, "batch_size": 32},
                spec=BacktestSpec(horizon=6, n_windows=1), max_steps=8, covariates=1)
    assert res.covariates == ["s2"]

    client = MlflowClient(p.tracking_uri)
    assert client.get_run(res.parent_run_id).data.params["covariates"] == "s2"
    mv = client.get_model_version(res.registered_name, res.version)
    assert mv.tags["tsops.covariates"] == "s2"
    catalog = p.catalog()
    run = catalog.list_runs(dataset="demo", kind="train")[0]
    catalog.close()
    assert run["status"] == "success" and run["stats"]["covariates"] == ["s2"]

    mlflow.set_tracking_uri(p.tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{res.registered_name}/{res.version}")
    assert forecaster_from_pyfunc(loaded).describe()["covariates"] == ["s2"]
    hist = load_panel(p, "demo").to_frame().groupby("series_id").tail(48)
    out = loaded.predict(hist.query("series_id in ['s0', 's2']"), params={"horizon": 6})
    assert set(out["series_id"]) == {"s0", "s2"} and len(out) == 12
    assert out["mean"].notna().all() and (out["lo_95"] <= out["hi_95"]).all()
    with pytest.raises(ForecastInputError, match=r"lacks \['s2'\]"):
        loaded.predict(hist.query("series_id == 's0'"), params={"horizon": 6})

    # one series by id: its covariate is read from the lake too, only the series asked for is written/returned
    from fastapi.testclient import TestClient

    from tsops.serving.app import create_app
    from tsops.serving.batch import forecast_dataset

    run = forecast_dataset(p, "demo", horizon=6, series=["s0"])
    assert run.n_series == 1 and set(run.frame["series_id"]) == {"s0"} and run.rows == 6
    body = TestClient(create_app(p, check_interval=0)).post("/forecast", json={"series_ids": ["s0"], "horizon": 6})
    assert body.status_code == 200, body.text
    assert {f["series_id"] for f in body.json()["forecasts"]} == {"s0"}


def test_non_neural_family_ignores_covariates_and_says_so(make_project):
    from mlflow import MlflowClient

    from tsops.tuning.evaluate import BacktestSpec
    from tsops.tuning.train import train

    p = make_project(n_series=3, length=120)
    res = train(p, "demo", "seasonal_naive", spec=BacktestSpec(horizon=6, n_windows=1), covariates=["s1"])
    assert res.covariates == []
    client = MlflowClient(p.tracking_uri)
    run = client.get_run(res.parent_run_id)
    assert run.data.params["covariates"] == "s1" and run.data.tags["tsops.covariates_ignored"] == "true"
    assert "tsops.covariates" not in client.get_model_version(res.registered_name, res.version).tags
    catalog = p.catalog()
    stats = catalog.list_runs(dataset="demo", kind="train")[0]["stats"]
    catalog.close()
    assert stats["covariates"] == [] and stats["covariates_requested"] == ["s1"]
    assert stats["covariates_ignored"] is True


@pytest.mark.slow
def test_tune_gives_neural_trials_the_covariates(make_project, ray_local):
    from mlflow import MlflowClient

    from tsops.tuning.evaluate import BacktestSpec
    from tsops.tuning.tune import tune

    p = make_project(n_series=3, length=160)
    res = tune(p, "demo", ["lstm"], trials=1, spec=BacktestSpec(horizon=6, n_windows=1), max_steps=6,
               fixed={"lstm": {"input_size": 24, "batch_size": 16}}, covariates=["s1"])
    assert res.best_model == "lstm" and res.covariates == ["s1"]
    client = MlflowClient(p.tracking_uri)
    assert client.get_run(res.parent_run_id).data.params["covariates"] == "s1"
    assert client.get_model_version(res.registered_name, res.version).tags["tsops.covariates"] == "s1"
    children = client.search_runs([client.get_run(res.parent_run_id).info.experiment_id],
                                  "tags.tsops.kind = 'trial'")
    assert [c.data.params["covariates"] for c in children] == ["['s1']"]
