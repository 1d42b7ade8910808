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
