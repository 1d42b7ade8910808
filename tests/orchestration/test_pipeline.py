"""`tsops pipeline run`: the whole chain, incremental, idempotent, locked, resumable, with lineage."""

import json

import pytest

from tsops.orchestration import pipeline as P
from tsops.orchestration.lock import DatasetLock, LockBusy

PERIODS = {"C02": 600.0, "TEMP": 60.0, "HUMI": 30.0}  # the simulator's sampling periods by kind


def write_profiles(project, dataset="sensors"):
    """Daily-season profiles of every series, as the quality stage stores them (tests do not depend on it)."""
    from tsops.datamodel import SeriesProfile

    cat = project.catalog()
    docs = []
    for s in cat.list_series(dataset):
        period = PERIODS[s["series_id"].rsplit("|", 1)[-1]]
        prof = SeriesProfile(s["series_id"], period_seconds=period, season_lengths=(int(86400 / period),),
                             season_names=("daily",))
        docs.append({"series_id": s["series_id"], "profile": prof.to_dict()})
    cat.upsert_series(dataset, docs)
    cat.close()


def lake_files(project):
    lake = project.lake()
    return {z: lake.files(z, "sensors") for z in ("raw", "quarantine", "clean", "forecasts")}


def test_lock_keeps_two_runs_apart(sensor_project):
    with DatasetLock(sensor_project.root, "sensors"), pytest.raises(LockBusy, match="already in progress"):
        P.run_pipeline(sensor_project, "sensors", ["ingest"])
    # released: the next run goes through
    assert P.run_pipeline(sensor_project, "sensors", ["ingest"]).status == "success"


def test_failed_stage_keeps_earlier_outputs_and_next_run_resumes(sensor_project, monkeypatch):
    def boom(ctx):
        raise RuntimeError("analysis exploded")

    monkeypatch.setitem(P.STAGE_FUNCS, "analyze", boom)
    run = P.run_pipeline(sensor_project, "sensors", ["ingest", "process", "analyze", "report"])
    assert run.status == "failed" and "analysis exploded" in run.error
    assert "report" not in run.stages  # stopped at the failure
    assert sensor_project.lake().files("clean", "sensors")  # the process stage's output stays
    rec = sensor_project.catalog().get_run(run.run_id)
    assert rec["status"] == "failed" and rec["stats"]["stages"]["process"]["status"] == "ran"
    monkeypatch.undo()
    run2 = P.run_pipeline(sensor_project, "sensors", ["ingest", "process", "analyze", "report"])
    assert run2.status == "success"
    assert run2.stages["process"]["days"] == []  # already processed: not redone
    assert run2.stages["analyze"]["status"] == "ran"  # never succeeded before: runs now
    assert (sensor_project.root / "reports" / "sensors.html").exists()


def test_unknown_stage_and_dataset(sensor_project):
    with pytest.raises(ValueError, match="unknown stage"):
        P.run_pipeline(sensor_project, "sensors", ["nope"])
    from tsops.config import ConfigError

    with pytest.raises(ConfigError, match="not defined"):
        P.run_pipeline(sensor_project, "other")


@pytest.mark.slow
@pytest.mark.services
def test_full_pipeline_twice_second_run_changes_nothing(sensor_project):
    write_profiles(sensor_project)
    run = P.run_pipeline(sensor_project, "sensors", families=["seasonal_naive"])
    assert run.status == "success", run.error
    st = run.stages
    assert st["train"]["why"] == "no champion yet" and st["train"]["promoted"] is True
    # every series has a daily season: 144 steps of the 10-minute training grid, from the profiles
    train_run = [r for r in sensor_project.catalog().list_runs(dataset="sensors") if r["kind"] == "tune"][0]
    assert train_run["stats"]["season_length"] == 144 and train_run["stats"]["season_source"] == "profile"
    assert st["forecast"]["rows"] == 6 * 6 and st["forecast"]["model_version"] == "1"
    rec = sensor_project.catalog().get_run(run.run_id)
    lin = rec["stats"]["lineage"]
    assert lin["model_version"] == "tsops-sensors v1" and lin["processed_days"] and lin["quality"]["series"] == 6
    assert any(o.startswith("forecasts/sensors/") for o in lin["outputs"])
    before = lake_files(sensor_project)
    docs = json.dumps(sensor_project.catalog().list_series("sensors"), sort_keys=True, default=str)

    again = P.run_pipeline(sensor_project, "sensors", families=["seasonal_naive"])
    assert again.status == "success"
    assert {s: r["status"] for s, r in again.stages.items()} == {
        "ingest": "ran", "process": "ran", "analyze": "skipped", "train": "skipped", "forecast": "skipped",
        "report": "skipped", "retention": "skipped"}
    assert again.stages["ingest"]["consumed"] == 0 and again.stages["process"]["days"] == []
    assert lake_files(sensor_project) == before
    assert json.dumps(sensor_project.catalog().list_series("sensors"), sort_keys=True, default=str) == docs

    # a series' profile now finds another season than the champion uses: the train stage retrains, says why
    import dataclasses

    cat = sensor_project.catalog()
    sid = sorted(s["series_id"] for s in cat.list_series("sensors"))[0]
    prof = cat.get_profile("sensors", sid)
    hourly = dataclasses.replace(prof, season_lengths=(int(3600 / prof.period_seconds),), season_names=("hourly",))
    cat.upsert_series("sensors", [{"series_id": sid, "profile": hourly.to_dict()}])
    cat.close()
    due, why, mon = P.training_due(P.Context(sensor_project, "sensors"))
    assert due and why.startswith("season changed in 1 series") and sid in why and mon["season_changed"][sid][0] == 144

    # the champion ages past retrain_every: the train stage retrains, and says why
    sensor_project.config.pipeline.retrain_every = "1s"
    import time

    time.sleep(1.1)
    third = P.run_pipeline(sensor_project, "sensors", ["train"], families=["seasonal_naive"])
    assert third.stages["train"]["why"].startswith("champion older than retrain_every")
    # runs are listed and shown with their lineage
    from typer.testing import CliRunner

    from tsops.cli.main import app

    out = CliRunner().invoke(app, ["-p", str(sensor_project.root), "runs", "show", str(run.run_id)])
    assert out.exit_code == 0 and "tsops-sensors v1" in out.output and "input_partitions" in out.output
    listed = CliRunner().invoke(app, ["-p", str(sensor_project.root), "runs", "list", "--kind", "pipeline"])
    assert listed.exit_code == 0 and listed.output.count("pipeline") >= 3


def test_retention_is_the_last_stage_and_recorded_in_the_run(sensor_project):
    import yaml
    from typer.testing import CliRunner

    from tsops.cli.main import app
    from tsops.config import load_project

    assert P.STAGES[-1] == "retention"
    # no policy: the stage runs and says why it did nothing
    run = P.run_pipeline(sensor_project, "sensors", ["retention"])
    assert run.stages["retention"]["status"] == "skipped" and "forever" in run.stages["retention"]["why"]

    cfg = yaml.safe_load((sensor_project.root / "tsops.yaml").read_text())
    cfg["datasets"]["sensors"]["retention"] = {"raw": "1d", "clean": "1d"}
    (sensor_project.root / "tsops.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    project = load_project(sensor_project.root)
    first = project.lake().days("raw", "sensors")[0]  # two days of traffic up to now: the first day is > 1d old
    run = P.run_pipeline(project, "sensors", ["process", "retention"])
    assert run.status == "success", run.error
    st = run.stages["retention"]
    assert st["status"] == "ran" and st["changed"] and st["removed"]["raw"] == [first.isoformat()]
    assert st["removed"]["clean"] == [first.isoformat()] and st["series_updated"] == 6
    assert first not in project.lake().days("raw", "sensors")
    rec = project.catalog().get_run(run.run_id)
    assert rec["stats"]["lineage"]["deleted_partitions"]["raw"] == [first.isoformat()]
    cat = project.catalog()
    raw_rows = project.lake().read("raw", "sensors").num_rows
    assert sum(s["count"] for s in cat.list_series("sensors")) == raw_rows
    assert [a["detail"]["zone"] for a in cat.list_audit("retention", "sensors")] == ["raw", "clean"]
    # a second run has nothing left to delete; the CLI reports the stage like the others
    out = CliRunner().invoke(app, ["-p", str(project.root), "pipeline", "run", "--stage", "process",
                                   "--stage", "retention", "-d", "sensors"])
    assert out.exit_code == 0, out.output
    assert "retention" in out.output and "partitions_removed=0" in out.output


def test_forecast_error_measures_mase_of_past_forecasts(sensor_project):
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    lake = sensor_project.lake()
    t = pd.date_range("2026-01-01", periods=200, freq="10min", tz="UTC")
    y = np.sin(np.arange(200) / 10) * 10 + 50
    clean = pa.Table.from_pandas(pd.DataFrame({"series_id": "s", "ts": t, "value": y}), preserve_index=False)
    lake.write_table("clean", "sensors", clean, "clean")
    issued = t[150]
    fc = pd.DataFrame({"series_id": "s", "ts": t[151:171], "mean": y[151:171] + 2.0,  # off by 2 everywhere
                       "issued_at": issued})
    lake.write_table("forecasts", "sensors", pa.Table.from_pandas(fc, preserve_index=False), "fc-1")
    res = P.forecast_error(sensor_project, "sensors", season_length=24, days=None)
    hist = y[: 151]
    scale = np.mean(np.abs(hist[24:] - hist[:-24]))
    assert res["evaluated_points"] == 20
    assert res["recent_mase"] == pytest.approx(2.0 / scale, rel=1e-6)
    # by default each series' season comes from its profile; a series without one is left out and counted
    assert P.forecast_error(sensor_project, "sensors", days=None) == {"evaluated_points": 0, "no_profile": 1}
    from tsops.datamodel import SeriesProfile

    cat = sensor_project.catalog()
    cat.upsert_series("sensors", [{"series_id": "s", "profile": SeriesProfile("s", 600.0, season_lengths=(63,)).to_dict()}])
    res = P.forecast_error(sensor_project, "sensors", days=None)
    assert res["recent_mase"] == pytest.approx(2.0 / np.mean(np.abs(hist[63:] - hist[:-63])), rel=1e-6)
    assert res["season"] == "profile"
    res = P.forecast_error(sensor_project, "sensors", season_length=1, days=None)   # 1 = no season: lag 1
    assert res["recent_mase"] == pytest.approx(2.0 / np.mean(np.abs(np.diff(hist))), rel=1e-6)


def test_level_shifts_after_the_champion_trigger_retraining(tmp_path):
    import datetime as dt

    import yaml

    from tsops.config import load_project
    from tsops.datamodel import SeriesProfile
    from tsops.orchestration.pipeline import level_shifts_since

    (tmp_path / "tsops.yaml").write_text(yaml.safe_dump({"datasets": {"d": {
        "series": {"timestamp": "t", "keys": ["k"], "values": ["v"]}}}}))
    project = load_project(tmp_path)
    events = ({"class": "episode", "start": "2026-01-02T00:00:00+00:00"},
              {"class": "level_shift", "start": "2026-01-03T00:00:00+00:00",
               "peak_ts": "2026-01-03T01:00:00+00:00", "magnitude": 12.5})
    project.catalog().upsert_series("d", [
        {"series_id": "a", "profile": SeriesProfile("a", events=events).to_dict()},
        {"series_id": "b", "profile": SeriesProfile("b").to_dict()}])
    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert level_shifts_since(project, "d", since) == [
        {"series_id": "a", "at": "2026-01-03T01:00:00+00:00", "magnitude": 12.5}]
    assert level_shifts_since(project, "d", dt.datetime(2026, 2, 1, tzinfo=dt.UTC)) == []
