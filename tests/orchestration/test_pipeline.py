"""`tsops pipeline run`: the whole chain, incremental, idempotent, locked, resumable, with lineage."""

import json

import pytest

from tsops.orchestration import pipeline as P
from tsops.orchestration.lock import DatasetLock, LockBusy


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
    run = P.run_pipeline(sensor_project, "sensors", families=["seasonal_naive"])
    assert run.status == "success", run.error
    st = run.stages
    assert st["train"]["why"] == "no champion yet" and st["train"]["promoted"] is True
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
        "report": "skipped"}
    assert again.stages["ingest"]["consumed"] == 0 and again.stages["process"]["days"] == []
    assert lake_files(sensor_project) == before
    assert json.dumps(sensor_project.catalog().list_series("sensors"), sort_keys=True, default=str) == docs
