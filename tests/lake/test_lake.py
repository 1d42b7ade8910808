import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from tsops.catalog import Catalog
from tsops.lake import Lake
from tsops.lake.retention import apply_retention, cutoff_day
from tsops.lake.sql import query


def long_table(times, ids, values):
    ts = pa.array(np.array(times, dtype="datetime64[us]")).cast(pa.timestamp("us", tz="UTC"))
    return pa.table({"series_id": ids, "ts": ts, "value": values})


def test_write_is_partitioned_sorted_and_deterministic(tmp_path):
    lake = Lake(str(tmp_path))
    t = long_table(["2026-01-01T10:00", "2026-01-02T03:00", "2026-01-01T09:00"], ["b", "a", "a"], [1.0, 2.0, 3.0])
    paths = lake.write_table("raw", "ds", t, "kafka-t-p0-o0-2")
    assert paths == ["raw/ds/year=2026/month=01/day=01/kafka-t-p0-o0-2.parquet",
                     "raw/ds/year=2026/month=01/day=02/kafka-t-p0-o0-2.parquet"]
    day1 = lake.read("raw", "ds", start="2026-01-01", end="2026-01-02")
    assert day1.column("series_id").to_pylist() == ["a", "b"]  # sorted by series, ts inside the file
    # a replay rewrites the same files: no duplicates
    lake.write_table("raw", "ds", t, "kafka-t-p0-o0-2")
    assert lake.read("raw", "ds").num_rows == 3
    assert not list(tmp_path.rglob(".tmp-*"))


def test_read_prunes_partitions_and_filters_series(tmp_path):
    lake = Lake(str(tmp_path))
    for d in range(1, 6):
        lake.write_table("raw", "ds", long_table([f"2026-03-0{d}T12:00"] * 2, ["a", "b"], [d, -d]), f"b{d}")
    t = lake.read("raw", "ds", start="2026-03-02T00:00", end="2026-03-04T00:00", series=["a"])
    assert t.column("value").to_pylist() == [2.0, 3.0]
    dset = lake.dataset("raw", "ds")
    frags = list(dset.get_fragments(filter=lake.filter_expr("2026-03-02", "2026-03-03")))
    assert len(frags) == 2  # partition pruning keeps day 2 and the end day only
    days = [d for d, _ in lake.iter_days("raw", "ds")]
    assert days == [dt.date(2026, 3, d) for d in range(1, 6)]


def test_unsafe_names_rejected(tmp_path):
    lake = Lake(str(tmp_path))
    t = long_table(["2026-01-01"], ["a"], [1.0])
    with pytest.raises(ValueError, match="not a safe lake name"):
        lake.write_table("raw", "../x", t, "s")
    with pytest.raises(ValueError, match="not a safe lake name"):
        lake.write_table("raw", "ds", t, "a/b")
    with pytest.raises(ValueError, match="unknown lake zone"):
        lake.read("nozone", "ds")


def test_sql_views(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_table("raw", "sensors", long_table(["2026-01-01", "2026-01-02"], ["a", "a"], [1.0, 3.0]), "x")
    df = query(lake, "SELECT series_id, avg(value) AS m, count(*) AS n, min(day) AS d FROM raw_sensors GROUP BY 1")
    assert df.to_dict("records") == [{"series_id": "a", "m": 2.0, "n": 2, "d": 1}]


def test_retention_deletes_only_whole_days_before_cutoff(tmp_path):
    lake = Lake(str(tmp_path))
    cat = Catalog(f"sqlite:///{tmp_path}/c.db")
    for d in range(1, 11):
        lake.write_table("raw", "ds", long_table([f"2026-01-{d:02d}T23:00"], ["a"], [d]), "b")
    now = dt.datetime(2026, 1, 10, 6, 0, tzinfo=dt.UTC)
    assert cutoff_day("3d", now) == dt.date(2026, 1, 7)
    dry = apply_retention(lake, cat, "ds", "3d", dry_run=True, now=now)
    assert len(dry.removed) == 6 and len(lake.days("raw", "ds")) == 10 and not cat.list_audit()
    res = apply_retention(lake, cat, "ds", "3d", now=now)
    assert res.removed == [dt.date(2026, 1, d) for d in range(1, 7)]
    assert lake.days("raw", "ds") == [dt.date(2026, 1, d) for d in range(7, 11)]
    # the day containing now - 3d (Jan 7, 06:00) is kept even though part of it is older
    audit = cat.list_audit("retention")
    assert audit[0]["detail"]["files"] == 6 and audit[0]["detail"]["cutoff"] == "2026-01-07"
    assert apply_retention(lake, cat, "ds", "3d", now=now).removed == []


def test_pandas_reads_the_hive_layout(tmp_path):
    import pandas as pd

    lake = Lake(str(tmp_path))
    lake.write_table("raw", "ds", long_table(["2026-01-01", "2026-02-03"], ["a", "b"], [1.0, 2.0]), "x")
    (tmp_path / "raw" / "ds" / "year=2026" / "month=01" / "day=01" / ".tmp-x-123.partial").write_bytes(b"junk")
    df = pd.read_parquet(tmp_path / "raw" / "ds")
    assert sorted(df["series_id"]) == ["a", "b"]
    assert sorted(df["month"].astype(int)) == [1, 2]
