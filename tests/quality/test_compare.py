from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tsops.cli.quality import app
from tsops.quality import compare_treatments


def daily(n_days=20, seed=0):
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=24 * n_days, freq="h", tz="UTC")
    v = 10 + 3 * np.sin(2 * np.pi * np.arange(len(ts)) / 24) + rng.normal(0, 0.2, len(ts))
    return pd.DataFrame({"series_id": "s", "ts": ts, "value": v})


def test_treatments_beat_no_treatment_with_seasonal_naive():
    res = compare_treatments(daily(), inject_rate=0.1, seed=1, horizon=24, model="seasonal_naive", repeats=3,
                             season_length=24)
    assert list(res.index) == ["clean", "none", "drop", "minmax", "ema", "interpolate"]
    assert {"rmse", "mae", "mape", "n_flagged", "precision", "recall"} <= set(res.columns)
    assert res.attrs["season_length"] == 24
    assert res.loc["interpolate", "rmse"] < res.loc["none", "rmse"]
    assert res.loc["clean", "rmse"] < 0.5 < res.loc["none", "rmse"]
    assert res.loc["none", "recall"] > 0.8
    with pytest.raises(ValueError, match="inject_rate"):
        compare_treatments(daily(), inject_rate=1.5, season_length=24)
    with pytest.raises(ValueError, match="need more than"):
        compare_treatments(daily(n_days=2), horizon=48, season_length=24)


def test_cli_compare(tmp_path):
    df = daily(n_days=10)
    csv = tmp_path / "s.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "res.csv"
    r = CliRunner().invoke(app, ["compare", "--csv", str(csv), "--horizon", "24", "--model", "seasonal_naive",
                                 "--inject-rate", "0.05", "--season-length", "24", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "season 24 (given)" in " ".join(r.output.split())
    no_season = CliRunner().invoke(app, ["compare", "--csv", str(csv)])
    assert no_season.exit_code != 0 and "--season-length" in no_season.output
    assert "interpolate" in r.output and "precision" in r.output
    assert pd.read_csv(out)["treatment"].tolist()[0] == "clean"
    bad = CliRunner().invoke(app, ["compare", "--csv", str(csv), "--series-id", "nope", "--season-length", "24"])
    assert bad.exit_code != 0 and "not in" in bad.output


def test_season_without_season_is_naive():
    flat = compare_treatments(daily(), inject_rate=0.05, horizon=24, model="seasonal_naive", season_length=None)
    assert flat.attrs["season_length"] == 1
    seasonal = compare_treatments(daily(), inject_rate=0.05, horizon=24, model="seasonal_naive", season_length=24)
    assert seasonal.loc["clean", "rmse"] < flat.loc["clean", "rmse"]


def test_cli_compare_reads_the_season_from_the_profile(sensor_project):
    from tsops.cli.main import app as root
    from tsops.datamodel import SeriesProfile

    args = ["-p", str(sensor_project.root), "quality", "compare", "--dataset", "sensors", "--series-id", "광주 A|C02",
            "--horizon", "12", "--model", "seasonal_naive"]
    r = CliRunner().invoke(root, args, env={"COLUMNS": "300"})
    assert r.exit_code != 0 and "no profile for series 광주 A|C02 of dataset sensors" in r.output
    cat = sensor_project.catalog()
    cat.upsert_series("sensors", [{"series_id": "광주 A|C02",
                                   "profile": SeriesProfile("광주 A|C02", 600.0, season_lengths=(144,)).to_dict()}])
    r = CliRunner().invoke(root, args, env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "season 144 (profile)" in " ".join(r.output.split())
    r = CliRunner().invoke(root, [*args, "--season-length", "6"], env={"COLUMNS": "300"})
    assert r.exit_code == 0 and "season 6 (given)" in " ".join(r.output.split())
