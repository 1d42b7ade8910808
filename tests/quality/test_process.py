"""`tsops process`: raw -> clean zone incrementally, identical on the local and the Spark engine."""

import pyarrow.compute as pc
import pytest

from tsops.quality.process import process_dataset


def clean_table(project):
    t = project.lake().read("clean", "sensors")
    return t.sort_by([("series_id", "ascending"), ("ts", "ascending")])


def test_process_is_incremental_and_records_quality(sensor_project):
    rep = process_dataset(sensor_project, "sensors")
    assert rep.days_processed and rep.series == 6
    t = clean_table(sensor_project)
    assert {"is_missing", "is_imputed", "is_anomaly", "raw_value"} <= set(t.column_names)
    assert t.num_rows >= rep.rows_in  # missing rows were inserted on each series' own grid
    assert pc.sum(t["is_missing"]).as_py() == rep.missing_inserted > 0
    s = sensor_project.catalog().get_series("sensors", "광주 A|C02")
    assert s["period_s"] == pytest.approx(600, rel=0.01)
    assert 0 <= s["missing_ratio"] < 0.2 and s["quality"]["imputation"]["method"] == "linear"
    # nothing new: nothing processed, clean zone unchanged
    again = process_dataset(sensor_project, "sensors")
    assert again.days_processed == []
    assert clean_table(sensor_project).equals(t)
    runs = sensor_project.catalog().list_runs("sensors", "process")
    assert [r["status"] for r in runs] == ["success", "success"]


def test_late_data_reprocesses_only_its_day(sensor_project):
    from tsops.ingest.runner import run_ingest

    process_dataset(sensor_project, "sensors")
    days = sensor_project.lake().days("raw", "sensors")
    import numpy as np
    import pyarrow as pa

    from tsops.ingest.base import Source, SourceBatch

    first = days[0]
    late_ts = int(np.datetime64(f"{first.isoformat()}T12:00:00", "ms").astype(np.int64))

    class Late(Source):
        name = "late"

        def batches(self):
            rec = pa.table({"event_time": pa.array([late_ts], pa.int64()), "position": ["광주 A"],
                            "type_name": ["C02"], "input_data": [777.0], "unit": ["ppm"]})
            yield SourceBatch("late-1", rec, positions={"x": 1}, src="late")

    cat = sensor_project.catalog()
    run_ingest("sensors", sensor_project.dataset("sensors").series, Late(), sensor_project.lake(), cat)
    rep = process_dataset(sensor_project, "sensors")
    assert rep.days_processed == [first.isoformat()]


@pytest.mark.services
@pytest.mark.slow
def test_local_and_spark_engines_write_identical_clean_zones(sensor_project, tmp_path, spark):
    import shutil

    from tsops.config import load_project

    other = tmp_path / "copy"
    shutil.copytree(sensor_project.root, other)
    process_dataset(sensor_project, "sensors", engine="local")
    process_dataset(load_project(other), "sensors", engine="spark")
    a, b = clean_table(sensor_project), clean_table(load_project(other))
    assert a.num_rows == b.num_rows > 0
    for col in ("series_id", "ts", "value", "is_missing", "is_imputed", "is_anomaly"):
        assert a[col].equals(b[col]), col
