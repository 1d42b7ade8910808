import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tsops.datamodel import TS_TYPE
from tsops.tuning.data import load_panel, median_interval, regularize, snap_interval
from tsops.tuning.sample import synthetic_hourly, write_project


def _frame(ts, values, sid="a"):
    return pd.DataFrame({"series_id": sid, "ts": pd.to_datetime(ts, utc=True), "value": values})


def test_regularize_means_slots_and_interpolates_short_gaps_only():
    base = pd.Timestamp("2024-01-01", tz="UTC")
    hours = [0, 1, 1.1, 3, 9, 10]  # two values in slot 1, a 1-slot gap (2), a 5-slot gap (4..8)
    df = _frame([base + pd.Timedelta(hours=h) for h in hours], [0.0, 1.0, 3.0, 3.0, 9.0, 10.0])
    out = regularize(df, freq="1h", max_gap=3)
    assert len(out) == 11
    v = out["value"].to_numpy()
    assert v[1] == pytest.approx(2.0)          # mean of the slot
    assert v[2] == pytest.approx(2.5)          # short gap interpolated
    assert np.isnan(v[4:9]).all()              # long gap stays missing
    assert out["ts"].iloc[-1] == pd.Timestamp("2024-01-01 10:00")   # naive UTC, ends at the last point
    assert out["ts"].dt.tz is None


def test_interval_is_snapped_for_jittered_timestamps():
    df = synthetic_hourly(2, 100, irregular=True)
    assert median_interval(df) == pd.Timedelta("1h")
    assert snap_interval(pd.Timedelta("59min 50s")) == pd.Timedelta("1h")
    assert snap_interval(pd.Timedelta("37min 12.4s")) == pd.Timedelta("37min 12s")


def test_regularize_rejects_bad_input():
    with pytest.raises(ValueError, match="lacks column"):
        regularize(pd.DataFrame({"series_id": ["a"], "ts": [1]}))
    with pytest.raises(ValueError, match="empty"):
        regularize(pd.DataFrame(columns=["series_id", "ts", "value"]))


def test_load_panel_prefers_clean_and_falls_back_to_raw(tmp_path):
    raw = synthetic_hourly(2, 60, seed=1, irregular=True)
    p = write_project(tmp_path / "p", raw, zone="raw")
    panel = load_panel(p, "demo")
    assert panel.ids == ["s0", "s1"] and panel.freq == pd.Timedelta("1h")
    assert all(55 <= len(v) <= 62 for v in panel.values)
    clean = synthetic_hourly(2, 30, seed=2)
    clean["value"] = 100.0
    t = pa.table({"series_id": clean["series_id"], "ts": pa.array(clean["ts"]).cast(TS_TYPE),
                  "value": clean["value"], "is_missing": [False] * len(clean)})
    p.lake().write_table("clean", "demo", t, "clean-part")
    panel = load_panel(p, "demo", max_points=10)
    assert [len(v) for v in panel.values] == [10, 10]
    assert np.all(np.concatenate(panel.values) == 100.0)
    with pytest.raises(LookupError, match="no 'clean' or 'raw' data"):
        load_panel(p, "demo", series=["nope"])


def test_mixed_sampling_periods_share_the_coarsest_grid():
    import pandas as pd

    from tsops.tuning.data import median_interval, regularize

    fast = pd.DataFrame({"series_id": "humi", "ts": pd.date_range("2026-01-01", periods=400, freq="30s", tz="UTC"),
                         "value": 1.0})
    slow = pd.DataFrame({"series_id": "co2", "ts": pd.date_range("2026-01-01", periods=20, freq="10min", tz="UTC"),
                         "value": 2.0})
    both = pd.concat([fast, slow])
    assert median_interval(both) == pd.Timedelta("10min")
    grid = regularize(both)
    assert grid.groupby("series_id")["value"].apply(lambda v: v.notna().mean()).min() == 1.0
