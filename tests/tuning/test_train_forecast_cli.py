"""train -> register -> champion rules -> forecast, as a user runs them (CLI)."""

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from tsops.cli.forecasting import forecast, train
from tsops.models import backtest, make_model
from tsops.tuning.data import load_panel

app = typer.Typer()
app.command()(train)
app.command()(forecast)
runner = CliRunner()


def cli(*args):
    res = runner.invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_train_register_promote_and_forecast(make_project):
    import mlflow
    from mlflow import MlflowClient

    p = make_project(n_series=3, length=200)
    base = ["--dataset", "demo", "--project", str(p.root), "--horizon", "12", "--windows", "2"]
    out = cli("train", *base, "--model", "naive")
    assert "promoted to champion" in out
    out = cli("train", *base, "--model", "seasonal_naive")
    assert "promoted to champion" in out            # beats naive on the same backtest
    out = cli("train", *base, "--model", "naive")
    assert "challenger" in out                       # worse: champion stays
    client = MlflowClient(p.tracking_uri)
    mlflow.set_tracking_uri(p.tracking_uri)
    assert str(client.get_model_version_by_alias("tsops-demo", "champion").version) == "2"
    assert str(client.get_model_version_by_alias("tsops-demo", "previous").version) == "1"
    assert str(client.get_model_version_by_alias("tsops-demo", "challenger").version) == "3"
    prev = mlflow.pyfunc.load_model("models:/tsops-demo@previous")   # the old champion stays usable
    hist = load_panel(p, "demo").to_frame().query("series_id == 's0'").tail(30)
    assert len(prev.predict(hist, params={"horizon": 4})) == 4

    # every train run: parent with leaderboard + model, one child run with params and the backtest table
    runs = mlflow.search_runs(experiment_names=["tsops-demo"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("tsops.kind") == "train"]
    children = [r for r in runs if r.data.tags.get("tsops.kind") == "trial"]
    assert len(parents) == 3 and len(children) == 3
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {r.info.run_id for r in parents}
    arts = {a.path for a in client.list_artifacts(children[0].info.run_id)}
    assert "backtest.csv" in arts
    assert "leaderboard.csv" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}

    # another backtest (horizon 6): the champion is re-scored on it before the comparison
    out = cli("train", "--dataset", "demo", "--project", str(p.root), "--horizon", "6", "--windows", "2",
              "--model", "naive")
    assert "challenger" in out
    v4 = client.get_model_version("tsops-demo", "4")
    ref = backtest(make_model("seasonal_naive", season_length=24), load_panel(p, "demo"), 6, n_windows=2,
                   season_length=24, min_train=48)
    assert float(v4.tags["tsops.champion_score_same_backtest"]) == pytest.approx(ref.metrics["mase"].mean())

    out = cli("forecast", "--dataset", "demo", "--project", str(p.root), "--horizon", "5")
    assert "wrote 15 forecast rows of 3 series" in out and "version 2" in out
    fc = p.lake().read("forecasts", "demo").to_pandas()
    assert len(fc) == 15 and set(fc["model_version"]) == {"2"} and set(fc["model_name"]) == {"tsops-demo"}
    assert (fc["lo_95"] <= fc["lo_80"]).all() and (fc["lo_80"] <= fc["mean"]).all()
    assert (fc["mean"] <= fc["hi_80"]).all() and (fc["hi_80"] <= fc["hi_95"]).all()
    last = load_panel(p, "demo").end_ts[0]
    assert fc.groupby("series_id")["ts"].min().iloc[0] == pd.Timestamp(last).tz_localize("UTC") + pd.Timedelta("1h")
    doc = p.catalog().get_series("demo", "s1")
    assert doc["forecast"]["version"] == "2" and doc["forecast"]["horizon"] == 5
    kinds = [r["kind"] for r in p.catalog().list_runs(dataset="demo")]
    assert kinds.count("train") == 4 and kinds.count("forecast") == 1


def test_cli_reports_user_errors(make_project):
    p = make_project(n_series=1, length=40)
    res = runner.invoke(app, ["train", "--dataset", "nope", "--project", str(p.root), "--model", "naive"])
    assert res.exit_code == 1 and "dataset 'nope' is not defined" in res.output
    res = runner.invoke(app, ["train", "--dataset", "demo", "--project", str(p.root), "--model", "prophet"])
    assert res.exit_code == 1 and "unknown model 'prophet'" in res.output
    res = runner.invoke(app, ["forecast", "--dataset", "demo", "--project", str(p.root)])
    assert res.exit_code == 1 and "no 'champion' alias" in res.output
    res = runner.invoke(app, ["train", "--dataset", "demo", "--project", str(p.root), "-P", "oops"])
    assert res.exit_code != 0 and "KEY=VALUE" in res.output


def test_registered_at_the_root_cli(make_project):
    from tsops.cli.main import app as root

    p = make_project(n_series=2, length=120)
    res = runner.invoke(root, ["-p", str(p.root), "train", "-d", "demo", "-m", "seasonal_naive", "--horizon", "12",
                               "--windows", "2"])
    assert res.exit_code == 0, res.output
    assert "tsops-demo version 1" in res.output and "promoted to champion" in res.output
    res = runner.invoke(root, ["-p", str(p.root), "forecast", "-d", "demo", "--horizon", "3"])
    assert res.exit_code == 0 and "wrote 6 forecast rows of 2 series" in res.output
