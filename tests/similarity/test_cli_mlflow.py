"""``tsops similar`` end to end on the shipped sales data: a 2-stretch sweep into a temporary sqlite MLflow
store, registration with alias champion, and the logged pyfunc model scoring exactly like dtw_distances."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from tsops.cli.similar import similar
from tsops.datasets.sales import load_capacity_pattern, load_sales_weekly
from tsops.similarity.dtw import dtw_distances
from tsops.tracking.mlflow_utils import default_artifact_root, resolve_tracking_uri


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(similar)
    return app


def test_tracking_uri_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri("http://x:5000", tmp_path) == "http://x:5000"
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/m.db")
    assert resolve_tracking_uri(None, tmp_path) == "sqlite:////elsewhere/m.db"
    assert default_artifact_root(tmp_path) == (tmp_path / "mlartifacts").resolve().as_uri()


def test_cli_rejects_bad_options(tmp_path):
    runner = CliRunner()
    res = runner.invoke(_app(), ["--demo", "--stretch", "0.1", "--sweep", "0,0.1", "--no-track"])
    assert res.exit_code == 2 and "not both" in res.output
    res = runner.invoke(_app(), ["--demo", "--value-columns", "W0..W60", "--no-track"])
    assert res.exit_code == 2 and "W52" in res.output


def test_similar_sweep_logs_runs_and_registers_model(tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data_dir = resources.files("tsops.datasets")
    sales_csv = Path(str(data_dir.joinpath("sales_transactions_weekly.csv")))
    pattern_csv = Path(str(data_dir.joinpath("capacity_pattern.csv")))
    res = CliRunner().invoke(_app(), [
        "--input", str(sales_csv), "--id-column", "Product_Code", "--value-columns", "W0..W51",
        "--pattern", str(pattern_csv), "--sweep", "0.05,0.25", "--top", "5", "--register", "sales-sim",
    ])
    assert res.exit_code == 0, res.output
    assert "closest 5" in res.output and "farthest 5" in res.output and "median distance" in res.output

    uri = f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tsops-similarity")
    assert exp.artifact_location.startswith((tmp_path / "mlartifacts").resolve().as_uri())
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 3 and len(children) == 2
    assert sorted(r.data.params["stretch_factor"] for r in children) == ["0.05", "0.25"]
    sales = load_sales_weekly()
    pattern = load_capacity_pattern()
    for run in children:
        for metric in ("median_distance", "mean_distance", "p10_distance"):
            assert np.isfinite(run.data.metrics[metric])
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"distance_histogram.png", "zscore_outliers.csv", "lowest_decile.csv", "distances.parquet"} <= names
        local = client.download_artifacts(run.info.run_id, "distances.parquet", str(tmp_path))
        logged = pd.read_parquet(local)
        expected = dtw_distances(sales.to_numpy(), pattern, float(run.data.params["stretch_factor"]))
        np.testing.assert_array_equal(logged["distance"].to_numpy(), expected)
        assert np.isclose(run.data.metrics["median_distance"], np.median(expected))

    version = client.get_model_version_by_alias("sales-sim", "champion")
    chosen = next(r for r in children if r.info.run_id == version.tags["run_id"])
    stretch = float(chosen.data.params["stretch_factor"])
    new = sales.reset_index().iloc[:40]  # rows = series, an id column + W0..W51
    expected = dtw_distances(new[list(sales.columns)].to_numpy(), pattern, stretch)
    for uri_ in ("models:/sales-sim@champion", f"runs:/{chosen.info.run_id}/model"):
        model = mlflow.pyfunc.load_model(uri_)
        out = model.predict(new)
        assert list(out["Product_Code"]) == list(new["Product_Code"])
        np.testing.assert_array_equal(out["distance"].to_numpy(), expected)
    no_id = model.predict(new.drop(columns="Product_Code"))
    np.testing.assert_array_equal(no_id["distance"].to_numpy(), expected)
    with pytest.raises(Exception, match="NaN"):
        broken = new.copy()
        broken.loc[3, "W7"] = np.nan
        model.predict(broken)
