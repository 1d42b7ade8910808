"""The similarity pyfunc's input contract (integer counts cast, extra columns named in an error), its logged
requirements (tsops itself), and `tsops -p PROJECT similar` tracking into the project."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import tsops
from tsops.cli.main import app
from tsops.datasets.sales import WEEK_COLUMNS, load_capacity_pattern, load_sales_weekly
from tsops.similarity.dtw import dtw_distances
from tsops.similarity.model import DTWSimilarityModel, model_requirements


@pytest.fixture
def model():
    return DTWSimilarityModel(load_capacity_pattern(), 0.05, id_column="Product_Code", value_columns=WEEK_COLUMNS)


def test_integer_counts_are_cast_not_refused(model):
    raw = load_sales_weekly(raw=True)[["Product_Code", *WEEK_COLUMNS]].head(30)
    assert all(raw[c].dtype.kind == "i" for c in WEEK_COLUMNS)  # the UCI table as shipped: int64 counts
    out = model.predict(None, raw)
    want = dtw_distances(raw[WEEK_COLUMNS].to_numpy(float), load_capacity_pattern(), 0.05)
    np.testing.assert_array_equal(out["distance"].to_numpy(), want)
    assert list(out["Product_Code"]) == list(raw["Product_Code"])
    strings = raw.astype({"W3": str})  # numbers sent as JSON strings are parsed too
    np.testing.assert_array_equal(model.predict(None, strings)["distance"].to_numpy(), want)


def test_extra_and_missing_columns_are_errors_naming_them(model):
    raw = load_sales_weekly(raw=True).head(5)  # + MIN, MAX, Normalized 0..51
    with pytest.raises(ValueError, match=r"does not use: 'MIN', 'MAX', 'Normalized 0'"):
        model.predict(None, raw)
    with pytest.raises(ValueError, match=r"missing value column\(s\) 'W51'"):
        model.predict(None, raw[["Product_Code", *WEEK_COLUMNS[:-1]]])
    bad = raw[["Product_Code", *WEEK_COLUMNS]].astype({"W2": object})
    bad.loc[1, "W2"] = "n/a"
    with pytest.raises(ValueError, match=r"column 'W2' is not numeric: row 1 holds 'n/a'"):
        model.predict(None, bad)
    unnamed = pd.DataFrame(raw[WEEK_COLUMNS].to_numpy())  # positional columns of the right count
    assert len(model.predict(None, unnamed)) == 5


def test_requirements_name_tsops():
    reqs = model_requirements()
    assert f"tsops=={tsops.__version__}" in reqs
    assert any(r.startswith("mlflow==") for r in reqs) and any(r.startswith("numba==") for r in reqs)


def test_similar_with_a_project_tracks_into_it(tmp_path, monkeypatch):
    import mlflow

    proj, elsewhere = tmp_path / "proj", tmp_path / "cwd"
    proj.mkdir()
    elsewhere.mkdir()
    (proj / "tsops.yaml").write_text(yaml.safe_dump({"name": "sim"}))
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    res = CliRunner().invoke(app, ["-p", str(proj), "similar", "--demo", "--stretch", "0.05", "--top", "3",
                                   "--register", "sales-sim"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert (proj / "mlflow.db").is_file() and not (elsewhere / "mlflow.db").exists()
    assert (proj / "mlartifacts").is_dir() and not (elsewhere / "mlartifacts").exists()
    uri = f"sqlite:///{(proj / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    from mlflow.tracking import MlflowClient

    version = MlflowClient(uri).get_model_version_by_alias("sales-sim", "champion")
    local = mlflow.artifacts.download_artifacts(f"models:/sales-sim/{version.version}", dst_path=str(tmp_path / "m"))
    reqs = (tmp_path / "m" / "requirements.txt").read_text().split()
    assert f"tsops=={tsops.__version__}" in reqs, reqs
    meta = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())
    assert meta["metadata"]["tsops_input"]["value_columns"] == WEEK_COLUMNS
    loaded = mlflow.pyfunc.load_model(local)
    raw = load_sales_weekly(raw=True)[["Product_Code", *WEEK_COLUMNS]].head(12)  # int64, through pyfunc
    out = loaded.predict(raw)
    want = dtw_distances(raw[WEEK_COLUMNS].to_numpy(float), load_capacity_pattern(), 0.05)
    np.testing.assert_array_equal(out["distance"].to_numpy(), want)
    with pytest.raises(Exception, match="MIN"):
        loaded.predict(load_sales_weekly(raw=True).head(3))
