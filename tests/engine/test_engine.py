from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tsops.engine import clean_dataset, map_series, series_from_tables
from tsops.quality import CleaningConfig

DATA = Path(__file__).resolve().parents[1] / "data"
CFG = CleaningConfig(now="2030-01-01")


def dataset() -> pd.DataFrame:
    """Four synthetic jittered/gappy/duplicated series and two real Beijing series, shuffled."""
    rng = np.random.default_rng(7)
    parts = []
    for i, period in enumerate([60, 600, 3600, 900]):
        n = 400
        k = np.sort(rng.choice(n + 40, n, replace=False))
        t = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(k * period + rng.uniform(-0.02, 0.02, n) * period,
                                                                    unit="s")
        v = np.sin(k / 10) + rng.normal(0, 0.05, n)
        v[rng.choice(n, 3)] += 9
        parts.append(pd.DataFrame({"series_id": f"syn{i}", "ts": t, "value": v, "unit": "C"}))
    raw = pd.read_csv(DATA / "beijing_aotizhongxin_2013_6w.csv").iloc[:400]
    ts = pd.to_datetime(raw[["year", "month", "day", "hour"]]).dt.tz_localize("UTC")
    for col in ("PM2.5", "TEMP"):
        parts.append(pd.DataFrame({"series_id": f"bj/{col}", "ts": ts, "value": raw[col], "unit": "x"}))
    df = pd.concat(parts, ignore_index=True)
    df = pd.concat([df, df.iloc[::50]], ignore_index=True)  # duplicates
    df["ts"] = df["ts"].dt.as_unit("us")
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)


def tables(df: pd.DataFrame, rows_per_table: int):
    d = df.sort_values("series_id", kind="mergesort").reset_index(drop=True)
    for a in range(0, len(d), rows_per_table):
        yield pa.Table.from_pandas(d.iloc[a:a + rows_per_table], preserve_index=False)


@pytest.fixture(scope="module")
def reference():
    return clean_dataset(dataset(), CFG, engine="local", vectorized=False, n_workers=0)


def test_in_process_reference_is_sane(reference):
    out, docs = reference
    assert sorted(d["series_id"] for d in docs) == ["bj/PM2.5", "bj/TEMP", "syn0", "syn1", "syn2", "syn3"]
    periods = {d["series_id"]: d["period_seconds"] for d in docs}
    assert periods == {"syn0": 60, "syn1": 600, "syn2": 3600, "syn3": 900, "bj/PM2.5": 3600, "bj/TEMP": 3600}
    assert out.groupby("series_id")["ts"].is_monotonic_increasing.all()
    assert out["is_missing"].sum() > 0 and out["is_anomaly"].sum() > 0


def test_process_pool_and_arrow_stream_match(reference):
    out, docs = reference
    pool_out, pool_docs = clean_dataset(dataset(), CFG, engine="local", vectorized=False, n_workers=2,
                                        chunk_series=2)
    pd.testing.assert_frame_equal(pool_out, out)
    stream_out, stream_docs = clean_dataset(tables(dataset(), 333), CFG, engine="local", vectorized=False,
                                            n_workers=0)
    pd.testing.assert_frame_equal(stream_out, out)
    key = lambda d: d["series_id"]  # noqa: E731
    assert sorted(pool_docs, key=key) == sorted(docs, key=key) == sorted(stream_docs, key=key)


def test_vectorized_local_matches_per_series(reference):
    out, docs = reference
    key = lambda d: d["series_id"]  # noqa: E731
    for data in (dataset(), tables(dataset(), 333)):
        vec_out, vec_docs = clean_dataset(data, CFG, engine="local", chunk_rows=1000)
        pd.testing.assert_frame_equal(vec_out, out)
        assert sorted(vec_docs, key=key) == sorted(docs, key=key)


def test_stream_must_be_grouped_by_series():
    a = pa.table({"series_id": ["a", "b"], "value": [1.0, 2.0]})
    b = pa.table({"series_id": ["a"], "value": [3.0]})
    with pytest.raises(ValueError, match="appears again"):
        list(series_from_tables([a, b]))
    parts = list(series_from_tables([a, pa.table({"series_id": ["b", "c"], "value": [3.0, 4.0]})]))
    assert [len(p) for p in parts] == [1, 2, 1]


def _double(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(value=df["value"] * 2)


def test_map_series_generic_and_errors():
    df = pd.DataFrame({"series_id": ["b", "a", "a"], "ts": pd.to_datetime([3, 2, 1], unit="s", utc=True),
                       "value": [1.0, 2.0, 3.0]})
    out = map_series(df, _double, n_workers=0)
    assert out["series_id"].tolist() == ["a", "a", "b"] and out["value"].tolist() == [6.0, 4.0, 2.0]
    with pytest.raises(ValueError, match="engine must be"):
        map_series(df, _double, engine="dask")


@pytest.mark.services
@pytest.mark.slow
def test_spark_matches_local(spark, reference):
    out, docs = reference
    spark_out, spark_docs = clean_dataset(dataset(), CFG, engine="spark", spark=spark)
    pd.testing.assert_frame_equal(spark_out, out)
    key = lambda d: d["series_id"]  # noqa: E731
    assert sorted(spark_docs, key=key) == sorted(docs, key=key)
    # a Spark DataFrame as input (as read from the lake) gives the same result
    sdf_out, _ = clean_dataset(spark.createDataFrame(dataset()), CFG, engine="spark", spark=spark)
    pd.testing.assert_frame_equal(sdf_out, out)


def test_progress_counts_series():
    seen = []
    df = dataset()
    map_series(df, _double, n_workers=0, chunk_series=4, progress=seen.append)
    assert sum(seen) == df["series_id"].nunique() == 6
    out = map_series(df, _double, n_workers=0, progress=True)
    assert len(out) == len(df)
