"""The season reaches `tsops train/forecast` from the series profiles, without flags (issue 12, part 4)."""

import json
from pathlib import Path

import numpy as np
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


def cli(*args, ok=True):
    res = runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "300"})
    if ok:
        assert res.exit_code == 0, res.output
    return res


def sensor_10min(n_series=2, days=10, seed=0):
    """A 10-minute sensor with a daily cycle (144 samples)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-03-01", periods=144 * days, freq="10min", tz="UTC")
    t = np.arange(len(ts))
    return pd.concat([pd.DataFrame({"series_id": f"room{i}", "ts": ts,
                                    "value": 20 + 5 * np.sin(2 * np.pi * t / 144 + i) + 0.1 * rng.standard_normal(len(t))})
                      for i in range(n_series)], ignore_index=True)


def weekly_sales(n_series=2, years=4, seed=1):
    """Weekly sales with a yearly cycle (52 samples)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2021-01-04", periods=52 * years, freq="7D", tz="UTC")
    t = np.arange(len(ts))
    return pd.concat([pd.DataFrame({"series_id": f"store{i}", "ts": ts,
                                    "value": 100 + 30 * np.sin(2 * np.pi * t / 52 + i) + rng.standard_normal(len(t))})
                      for i in range(n_series)], ignore_index=True)


def runs(p, kind):
    import mlflow

    mlflow.set_tracking_uri(p.tracking_uri)
    return [r for r in mlflow.search_runs(experiment_names=["tsops-demo"], output_format="list")
            if r.data.tags.get("tsops.kind") == kind]


def test_ten_minute_sensor_trains_with_its_daily_season_from_the_profile(make_project):
    from mlflow import MlflowClient

    # the dataset's forecast: defaults give the horizon and windows; the profile gives the season
    p = make_project(data=sensor_10min(), season_lengths=(144,), config={"forecast": {"horizon": 36, "windows": 2}})
    out = cli("train", "--dataset", "demo", "--project", str(p.root), "--model", "seasonal_naive").output
    assert "promoted to champion" in out and "season: 144 (dataset: 144, from profile)" in " ".join(out.split())
    parent, = runs(p, "train")
    child, = runs(p, "trial")
    assert parent.data.params["season_length"] == "144" and parent.data.params["season_source"] == "profile"
    assert parent.data.params["backtest_horizon"] == "36" and parent.data.params["backtest_n_windows"] == "2"
    assert child.data.params["season"] == "144" and child.data.params["season_source"] == "profile"
    # the backtest MASE is scaled with lag 144: the same as a backtest run by hand with 144
    panel = load_panel(p, "demo")
    ref = backtest(make_model("seasonal_naive", season_length=144), panel, 36, n_windows=1, season_length=144,
                   min_train=288)
    board = pd.read_csv(MlflowClient(p.tracking_uri).download_artifacts(child.info.run_id, "backtest.csv"))
    assert set(board["season"]) == {144}
    last = board[board["window"] == board["window"].max()].sort_values("series_id")
    np.testing.assert_allclose(last["mase"], ref.metrics.sort_values("series_id")["mase"], rtol=1e-9)
    # seasonal naive scored with its own season: out-of-sample error about the in-sample one
    assert child.data.metrics["backtest_mase"] == pytest.approx(1.0, abs=0.1)
    mv = MlflowClient(p.tracking_uri).get_model_version("tsops-demo", "1")
    assert json.loads(mv.tags["tsops.season"])["season"] == "144"
    # the forecast defaults to the configured horizon; the champion uses 144 for every series
    out = cli("forecast", "--dataset", "demo", "--project", str(p.root)).output
    assert "wrote 72 forecast rows of 2 series" in out and "warning" not in out
    fc = p.lake().read("forecasts", "demo").to_pandas().sort_values(["series_id", "step"])
    hist = panel.values[0]
    np.testing.assert_allclose(fc[fc.series_id == "room0"]["mean"], hist[-144:][:36])

    # --season overrides the profile (and is recorded as such)
    out = cli("train", "--dataset", "demo", "--project", str(p.root), "--model", "seasonal_naive",
              "--season", "24").output
    assert "season: 24 (dataset: 24, from override)" in " ".join(out.split()) and "challenger" in out
    latest = max(runs(p, "train"), key=lambda r: r.info.start_time)
    assert latest.data.params["season_length"] == "24" and latest.data.params["season_source"] == "override"


def test_weekly_sales_use_their_yearly_season(make_project):
    p = make_project(data=weekly_sales(), season_lengths=(52,))
    out = cli("train", "--dataset", "demo", "--project", str(p.root), "--model", "seasonal_naive",
              "--horizon", "13", "--windows", "2").output
    assert "season: 52 (dataset: 52, from profile)" in " ".join(out.split())
    parent, = runs(p, "train")
    assert parent.data.params["season_length"] == "52"
    panel = load_panel(p, "demo")
    assert panel.freq == pd.Timedelta("7D")
    ref = [backtest(make_model("seasonal_naive", season_length=52), panel.head(k * 13), 13, n_windows=1,
                    season_length=52, min_train=104).metrics["mase"].mean() for k in (1, 0)]
    assert parent.data.metrics["best_score"] == pytest.approx(np.mean(ref), rel=1e-9)


def test_a_never_processed_series_fails_with_one_clear_line(make_project):
    p = make_project(n_series=3, length=120, season_lengths=None)
    res = cli("train", "--dataset", "demo", "--project", str(p.root), "--model", "seasonal_naive", ok=False)
    assert res.exit_code == 1
    assert ("error: no profile for series s0 (and 2 more) of dataset demo: run `tsops process -d demo` first "
            "(or pass --season N)") in res.output
    assert len(res.output.strip().splitlines()) == 1
    # an explicit season needs no profile
    out = cli("train", "--dataset", "demo", "--project", str(p.root), "--model", "seasonal_naive",
              "--season", "24", "--horizon", "12", "--windows", "2").output
    assert "promoted to champion" in out


def test_series_with_different_seasons(make_project):
    """Local models use each series' own season; a global model the most common one, and says so."""
    from mlflow import MlflowClient

    from tsops.tuning.evaluate import BacktestSpec
    from tsops.tuning.train import train as run

    data = pd.concat([sensor_10min(n_series=2), sensor_10min(n_series=1, seed=3).assign(series_id="half")])
    p = make_project(data=data, season_lengths=(144,))
    from tsops.datamodel import SeriesProfile

    cat = p.catalog()
    cat.upsert_series("demo", [{"series_id": "half", "profile": SeriesProfile("half", 600.0,
                                                                              season_lengths=(72,)).to_dict()}])
    spec = BacktestSpec(horizon=24, n_windows=1)
    res = run(p, "demo", "seasonal_naive", spec=spec)
    assert res.params == {} and res.season["season"] == "per-series" and res.season["season_lengths"] == "per-series"
    client = MlflowClient(p.tracking_uri)
    parent = client.get_run(res.parent_run_id)
    assert parent.data.params["season_length"] == "144"       # the most common main season
    seasons = json.loads(Path(client.download_artifacts(res.parent_run_id, "seasons.json")).read_text())
    assert seasons == {"half": [72], "room0": [144], "room1": [144]}
    from tsops.serving.champion import load_champion

    model = load_champion(p, "demo").model
    assert model.season_of("half") == 72 and model.season_of("room0") == 144
    nn = run(p, "demo", "nhits", params={"hidden_size": 8, "input_size": 144}, spec=spec, max_steps=5)
    assert nn.season["season"] == "144 (most common)"          # global: one season, the most common


@pytest.mark.parametrize("yaml_forecast,msg", [
    ({"horizon": 0}, "datasets.demo.forecast.horizon"),
    ({"metric": "r2"}, "datasets.demo.forecast.metric"),
    ({"seasons": 3}, "datasets.demo.forecast.seasons: unknown key"),
])
def test_forecast_config_errors_name_the_key(tmp_path, yaml_forecast, msg):
    from tsops.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=msg.replace(".", r"\.")):
        parse_config({"datasets": {"demo": {"series": {"timestamp": "ts", "keys": ["k"], "values": ["v"]},
                                             "forecast": yaml_forecast}}})


def test_defaults_resolve_flag_then_dataset_then_pipeline(make_project):
    from tsops.tuning.seasons import backtest_spec

    p = make_project(season_lengths=(24,), config={"forecast": {"windows": 4, "season": 12}})
    s = backtest_spec(p, "demo")
    assert (s.horizon, s.n_windows, s.season_length, s.season_source, s.metric) == (24, 4, 12, "override", "mase")
    s = backtest_spec(p, "demo", horizon=6, windows=2, season=7, metric="mae")
    assert (s.horizon, s.n_windows, s.season_length, s.metric) == (6, 2, 7, "mae")
    p.config.pipeline.horizon = 48
    assert backtest_spec(p, "demo").horizon == 48


def test_init_template_documents_the_forecast_keys():
    import re

    import yaml

    from tsops.config import TEMPLATE, parse_config

    text = TEMPLATE.format(name="t")
    assert "# forecast:" in text
    # uncommented, the template's forecast block is valid and says what it documents
    text = re.sub(r"^    # (forecast:|  horizon:|  season:|  windows:|  metric:)", r"    \1", text, flags=re.M)
    fc = parse_config(yaml.safe_load(text)).datasets["sensors"].forecast
    assert (fc.horizon, fc.season, fc.windows, fc.metric) == (144, None, 3, "mase")
