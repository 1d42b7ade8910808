"""One ingestion per dataset at a time: the ingest lock, its message, and its independence from the pipeline lock."""

from __future__ import annotations

import pytest
import yaml

from tsops.config import load_project
from tsops.ingest.api import ingest
from tsops.orchestration.lock import DatasetLock, LockBusy
from tsops.testing import faults


def test_second_ingest_of_a_dataset_is_refused_naming_the_holder(tmp_path):
    faults.write_project(tmp_path, faults.files_source(100))
    faults.write_files(tmp_path, 50, 1, 1)
    p = load_project(tmp_path)
    with DatasetLock(tmp_path, "sensors", kind="ingest"), pytest.raises(
            LockBusy, match=r"an ingest run on dataset 'sensors' is already in progress \(pid \d+ on .*--wait"):
        ingest(p, "sensors")
    # the pipeline's lock is another file: the pipeline's ingest stage can take the ingest lock under it
    with DatasetLock(tmp_path, "sensors"):
        assert ingest(p, "sensors").consumed == 50
    assert (tmp_path / ".tsops" / "locks" / "sensors.ingest.lock").exists()


def test_ingest_waits_behind_a_running_one_with_wait(tmp_path):
    import threading

    faults.write_project(tmp_path, faults.files_source(100))
    faults.write_files(tmp_path, 30, 1, 2)
    lock = DatasetLock(tmp_path, "sensors", kind="ingest").acquire()
    threading.Timer(1.0, lock.release).start()
    assert ingest(load_project(tmp_path), "sensors", wait=True).consumed == 30


def test_other_datasets_are_not_blocked(tmp_path):
    faults.write_project(tmp_path, faults.files_source(100))
    cfg = yaml.safe_load((tmp_path / "tsops.yaml").read_text())
    cfg["datasets"]["other"] = cfg["datasets"]["sensors"]
    (tmp_path / "tsops.yaml").write_text(yaml.safe_dump(cfg))
    faults.write_files(tmp_path, 10, 1, 3)
    with DatasetLock(tmp_path, "sensors", kind="ingest"):
        assert ingest(load_project(tmp_path), "other").consumed == 10


def test_killed_ingest_is_marked_failed_by_the_next_run_and_by_runs_list(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    faults.write_project(tmp_path, faults.files_source(50))
    faults.write_files(tmp_path, 3000, 3, 4)
    cmd = [sys.executable, "-m", "tsops", "-p", str(tmp_path)]
    proc = subprocess.Popen(cmd + ["ingest"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while faults.committed(tmp_path) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cat = load_project(tmp_path).catalog()
    killed = cat.list_runs("sensors", "ingest")[0]
    if killed["status"] != "running":
        pytest.skip("the run finished before the kill")
    out = subprocess.run(cmd + ["runs", "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "stale: process" in out.stdout
    assert cat.get_run(killed["id"])["status"] == "failed"
    assert ingest(load_project(tmp_path), "sensors").rolled_back <= 1
    assert faults.committed(tmp_path) == 3000
