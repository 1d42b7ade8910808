"""`tsops tune` end to end on a local Ray: Optuna + ASHA, child runs, leaderboard, registered winner."""

import time

import pytest
import typer
from typer.testing import CliRunner

from tsops.cli.forecasting import tune

app = typer.Typer()
app.command()(tune)
app.command("noop")(lambda: None)  # a second command keeps `tune` a named subcommand


@pytest.mark.slow
def test_tune_tracks_every_trial_and_registers_the_winner(make_project, ray_local):
    import mlflow
    from mlflow import MlflowClient

    p = make_project(n_series=3, length=160)
    t0 = time.time()
    res = CliRunner().invoke(app, [
        "tune", "--dataset", "demo", "--project", str(p.root), "--models", "seasonal_naive,naive,lstm",
        "--trials", "4", "--minutes", "5", "--horizon", "12", "--windows", "2", "--max-steps", "8",
        "--fixed", "lstm.batch_size=16", "--fixed", "lstm.input_size=24"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "leaderboard" in res.output and "promoted to champion" in res.output
    elapsed = time.time() - t0

    client = MlflowClient(p.tracking_uri)
    mlflow.set_tracking_uri(p.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["tsops-demo"], output_format="list")
    parent = [r for r in runs if r.data.tags.get("tsops.kind") == "tune"]
    children = [r for r in runs if r.data.tags.get("tsops.kind") == "trial"]
    assert len(parent) == 1 and len(children) == 4, elapsed
    pid = parent[0].info.run_id
    assert all(c.data.tags["mlflow.parentRunId"] == pid for c in children)
    assert {c.data.params["model"] for c in children} <= {"seasonal_naive", "naive", "lstm"}
    assert parent[0].data.params["search"] == "optuna" and parent[0].data.params["scheduler"] == "asha"
    board_path = client.download_artifacts(pid, "leaderboard.csv")
    import pandas as pd

    board = pd.read_csv(board_path)
    assert len(board) == 4 and board["rank"].iloc[0] == 1
    # every trial records the season its model used, from the profiles (a daily season of 24 hours)
    assert set(board["season_source"]) == {"profile"}
    assert set(board["season"]) <= {"24", "-"} and parent[0].data.params["season_length"] == "24"
    assert {c.data.params["season"] for c in children if c.data.params["model"] != "naive"} == {"24"}
    for c in children:
        assert c.info.status == "FINISHED"
        assert "backtest.csv" in {a.path for a in client.list_artifacts(c.info.run_id)}
        assert c.data.metrics["windows_done"] >= 1
        if c.data.params["model"] == "lstm":     # per-epoch metrics of the neural fits
            hist = client.get_metric_history(c.info.run_id, "window0/train_loss")
            assert [m.step for m in hist] == sorted(m.step for m in hist) and len(hist) >= 2
            assert c.data.params["hidden_size"] in {"2", "4", "8", "16", "32", "64"}
    mv = client.get_model_version_by_alias("tsops-demo", "champion")
    assert mv.run_id == pid
    assert mv.tags["tsops.model"] == board["model"].iloc[0]
    assert float(mv.tags["tsops.backtest_score"]) == board["score"].iloc[0]


@pytest.mark.slow
def test_tune_records_failed_trials_and_says_why(make_project, ray_local):
    import mlflow

    p = make_project(n_series=2, length=120)
    res = CliRunner().invoke(app, [
        "tune", "--dataset", "demo", "--project", str(p.root), "--models", "naive2", "--trials", "2",
        "--horizon", "12", "--windows", "2", "--fixed", "naive2.season_length=0"])
    assert res.exit_code == 1 and "no trial finished the backtest" in res.output
    mlflow.set_tracking_uri(p.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["tsops-demo"], output_format="list")
    trials = [r for r in runs if r.data.tags.get("tsops.kind") == "trial"]
    assert len(trials) == 2
    for r in trials:
        assert r.info.status == "FAILED" and r.data.tags["tsops.trial_state"] == "error"
        assert "season_length must be >= 1" in r.data.tags["tsops.error"]
    assert [r.info.status for r in runs if r.data.tags.get("tsops.kind") == "tune"] == ["FAILED"]
    assert p.catalog().list_runs(dataset="demo")[0]["status"] == "failed"
