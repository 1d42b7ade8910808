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


# ------------------------------------------------------------------------- a clean zone that changes nothing silently
def _raw_and_clean(project):
    raw = project.lake().read("raw", "sensors").to_pandas()
    clean = project.lake().read("clean", "sensors").to_pandas()
    return raw, clean


def test_every_clean_row_keeps_its_own_attributes(sensor_project):
    import pandas as pd

    rep = process_dataset(sensor_project, "sensors")
    raw, clean = _raw_and_clean(sensor_project)
    attrs = [c for c in ("position", "type_name", "unit") if c in raw.columns]
    assert attrs
    # observed rows: the attributes of the raw row at that (series, ts) - the last one of duplicates
    last = raw.drop_duplicates(["series_id", "ts"], keep="last").set_index(["series_id", "ts"])
    obs = clean[~clean["is_missing"]].set_index(["series_id", "ts"])
    joined = obs[attrs].join(last[attrs], rsuffix="_raw", how="left")
    for c in attrs:
        pd.testing.assert_series_equal(joined[c], joined[f"{c}_raw"], check_names=False)
    # inserted rows carry the series' constant attributes (keys, unit)
    ins = clean[clean["is_missing"]]
    assert len(ins) == rep.missing_inserted > 0
    assert ins["position"].notna().all()


def test_varying_attributes_are_not_flattened(tmp_path):
    """The Beijing case: TEMP, hour ... vary per row; the clean zone keeps every value (not one per window)."""
    import numpy as np
    import pandas as pd

    from tsops.quality import CleaningConfig, clean_frame

    ts = pd.date_range("2017-02-01", periods=24 * 14, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"series_id": "Aotizhongxin|PM2.5", "ts": ts, "value": rng.gamma(2, 40, ts.size),
                       "TEMP": np.round(rng.normal(0, 5, ts.size), 1), "hour": ts.hour, "station": "Aotizhongxin"})
    df = df.drop(index=[10, 11, 200])
    out, _ = clean_frame(df, CleaningConfig())
    obs = out[~out["is_missing"]]
    assert obs["TEMP"].nunique() == df["TEMP"].nunique()
    assert (obs["hour"].to_numpy() == obs["ts"].dt.hour.to_numpy()).all()
    ins = out[out["is_missing"]]
    assert len(ins) == 3 and ins["TEMP"].isna().all() and (ins["station"] == "Aotizhongxin").all()


def test_future_rows_wait_in_raw_and_are_processed_when_their_time_comes(sensor_project):
    import pandas as pd

    from tsops.quality import CleaningConfig

    raw = sensor_project.lake().read("raw", "sensors").to_pandas()
    now = raw["ts"].max() - pd.Timedelta(hours=6)  # pretend the wall clock is 6 h before the last reading
    early = process_dataset(sensor_project, "sensors", config=CleaningConfig(now=now.isoformat(),
                                                                             future_tolerance="0s"))
    waiting = int((raw["ts"] > now).sum())
    assert early.deferred_future == waiting > 0 and early.deferred_days
    assert early.reconciled, early.as_dict()
    clean = sensor_project.lake().read("clean", "sensors").to_pandas()
    assert clean["ts"].max() <= now
    # later: the deferred days are due, nothing else changed
    later = process_dataset(sensor_project, "sensors", config=CleaningConfig(now=(raw["ts"].max()).isoformat(),
                                                                             future_tolerance="0s"))
    assert set(later.days_processed) >= set(early.deferred_days) and later.deferred_future == 0
    assert later.reconciled
    clean = sensor_project.lake().read("clean", "sensors").to_pandas()
    assert clean["ts"].max() == raw["ts"].max()


def test_accounting_reconciles_and_counts_changes(sensor_project):
    rep = process_dataset(sensor_project, "sensors")
    d = rep.as_dict()
    assert d["reconciled"], d
    assert rep.rows_out == rep.observed_out + rep.missing_inserted
    assert rep.duplicates_merged > 0  # the simulator sends duplicates


def test_profile_is_written_once_per_series_with_whole_history(sensor_project):
    from tsops.datamodel import SeriesProfile

    process_dataset(sensor_project, "sensors")
    cat = sensor_project.catalog()
    profiles = cat.get_profiles("sensors")
    assert len(profiles) == 6
    p = profiles["광주 A|C02"]
    assert isinstance(p, SeriesProfile)
    assert p.period_seconds == pytest.approx(600, rel=0.01)
    clean = sensor_project.lake().read("clean", "sensors").to_pandas()
    mine = clean[clean["series_id"] == "광주 A|C02"]
    assert p.n_rows == len(mine) and p.n_missing == int(mine["is_missing"].sum())
    assert p.n_raw == cat.get_series("sensors", "광주 A|C02")["count"]
    assert p.unit == "ppm"


def test_cleaning_section_of_the_project_file_is_used(sensor_project):
    import yaml

    from tsops.config import load_project

    path = sensor_project.root / "tsops.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["datasets"]["sensors"]["cleaning"] = {"impute": "locf", "dedup": "first", "bounds": [0, None]}
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    project = load_project(sensor_project.root)
    process_dataset(project, "sensors")
    s = project.catalog().get_series("sensors", "광주 A|C02")
    assert s["quality"]["imputation"]["method"] == "locf"
    assert s["quality"]["duplicates"]["policy"] == "first"
    assert s["profile"]["imputation_method"] == "locf"


def test_cleaning_section_errors_name_the_key(tmp_path):
    import yaml

    from tsops.config import ConfigError, load_project

    (tmp_path / "tsops.yaml").write_text(yaml.safe_dump({"datasets": {"s": {
        "series": {"timestamp": "t", "keys": ["k"], "values": ["v"]},
        "cleaning": {"impute": "magic"}}}}))
    with pytest.raises(ConfigError, match=r"datasets\.s\.cleaning\.impute"):
        load_project(tmp_path)
    (tmp_path / "tsops.yaml").write_text(yaml.safe_dump({"datasets": {"s": {
        "series": {"timestamp": "t", "keys": ["k"], "values": ["v"]},
        "cleaning": {"dedupe": "last"}}}}))
    with pytest.raises(ConfigError, match=r"datasets\.s\.cleaning\.dedupe"):
        load_project(tmp_path)


def test_cleaning_settings_allow_what_the_chain_allows():
    """The file's allowed values and the chain's must not drift apart."""
    from typing import get_args

    from tsops.config import CleaningSettings
    from tsops.quality import IMPUTERS
    from tsops.quality.anomaly import TREATMENT_POLICIES, TREATMENTS
    from tsops.quality.chain import _ANOMALY_METHODS, _DEDUP

    f = CleaningSettings.model_fields
    assert set(get_args(get_args(f["dedup"].annotation)[0])) == set(_DEDUP)
    assert set(get_args(get_args(f["impute"].annotation)[0])) == set(IMPUTERS) | {"none", "auto"}
    assert set(get_args(get_args(f["treatment"].annotation)[0])) == set(TREATMENT_POLICIES)
    assert set(get_args(get_args(f["fault_treatment"].annotation)[0])) == set(TREATMENTS)
    methods = get_args(get_args(get_args(f["anomaly_methods"].annotation)[0])[0])
    assert set(methods) == set(_ANOMALY_METHODS)


def test_weekly_series_are_cleaned_in_one_window_and_get_their_period(tmp_path):
    """Days one week apart are one window (context from the ingest statistics), so a weekly series has a period."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import yaml

    from tsops.config import load_project
    from tsops.ingest.base import Source, SourceBatch
    from tsops.ingest.runner import run_ingest

    (tmp_path / "tsops.yaml").write_text(yaml.safe_dump({"datasets": {"sales": {
        "series": {"timestamp": "ts", "keys": ["product"], "values": ["sales"]}}}}))
    project = load_project(tmp_path)
    weeks = pd.date_range("2024-01-01", periods=52, freq="7D", tz="UTC")
    rng = np.random.default_rng(0)

    class Weekly(Source):
        name = "weekly"

        def batches(self):
            n = len(weeks)
            yield SourceBatch("w-1", pa.table({
                "ts": pa.array(np.tile(weeks.as_unit("us").asi8, 3), pa.timestamp("us", tz="UTC")),
                "product": np.repeat(["P1", "P2", "P3"], n).tolist(),
                "sales": rng.poisson(20, 3 * n).astype(float)}), positions={"x": 1}, src="weekly")

    run_ingest("sales", project.dataset("sales").series, Weekly(), project.lake(), project.catalog())
    rep = process_dataset(project, "sales")
    assert len(rep.days_processed) == 52 and rep.reconciled
    prof = project.catalog().get_profile("sales", "P1")
    assert prof.period_seconds == 7 * 86400 and prof.season_lengths == ()


def test_series_are_cleaned_with_their_seasons_from_the_first_run(sensor_project):
    """Anomalies are judged against the series' real season: from the profile, or on the very first run from a
    first look at the window (the same detection the profile uses), never a default."""
    process_dataset(sensor_project, "sensors")
    s = sensor_project.catalog().get_series("sensors", "광주 A|C02")
    assert s["quality"]["season_lengths"] == [144] and s["profile"]["season_lengths"] == [144]
    again = process_dataset(sensor_project, "sensors", full=True)  # from the stored profile now
    assert again.reconciled
    assert sensor_project.catalog().get_series("sensors", "광주 A|C02")["quality"]["season_lengths"] == [144]
