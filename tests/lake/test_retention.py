"""Retention over every zone: per-zone policies, catalog counts and first timestamps, processed fingerprints."""

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from tsops.catalog import Catalog
from tsops.config import RetentionPolicy
from tsops.lake import Lake
from tsops.lake.retention import PROCESSED_KEY, apply_policy, apply_retention, cutoff_day, retain_dataset

NOW = dt.datetime(2026, 1, 10, 6, 0, tzinfo=dt.UTC)  # with 3d: cutoff 2026-01-07, days 1..6 go


def _us(iso: str) -> int:
    return int(np.datetime64(iso, "us").astype(np.int64))


def _table(times, ids, values=None):
    ts = pa.array(np.array(times, dtype="datetime64[us]")).cast(pa.timestamp("us", tz="UTC"))
    return pa.table({"series_id": ids, "ts": ts, "value": values or [1.0] * len(ids)})


def _seed(lake: Lake, cat: Catalog) -> dict[str, list[str]]:
    """raw: 'a' twice a day on days 1-10, 'b' on days 1-3 only, 'c' on days 8-10; counted as ingest commits."""
    rows = {"a": [f"2026-01-{d:02d}T{h:02d}:00" for d in range(1, 11) for h in (1, 23)],
            "b": [f"2026-01-{d:02d}T12:00" for d in range(1, 4)],
            "c": [f"2026-01-{d:02d}T12:00" for d in range(8, 11)]}
    for sid, times in rows.items():
        lake.write_table("raw", "ds", _table(times, [sid] * len(times)), f"batch-{sid}")
        cat.upsert_series("ds", [{"series_id": sid, "first_ts_us": _us(times[0]), "last_ts_us": _us(times[-1]),
                                  "count": len(times), "unit": "ppm"}], add_counts=True)
    cat.upsert_dataset("ds", {PROCESSED_KEY: {f"2026-01-{d:02d}": f"fp{d}" for d in range(1, 11)}, "other": 1})
    return rows


def test_cutoff_and_policy_values():
    assert cutoff_day("3d", NOW) == dt.date(2026, 1, 7)
    with pytest.raises(ValueError, match="for ever"):
        cutoff_day("forever", NOW)
    with pytest.raises(ValueError, match="longer than 0"):
        cutoff_day("0d", NOW)
    with pytest.raises(ValueError, match="100 years"):
        cutoff_day("1000000w", NOW)  # used to pass validation and crash with OverflowError
    assert RetentionPolicy(raw="90d", clean="forever").zones() == {"raw": "90d"}


def test_raw_retention_updates_counts_first_ts_and_processed(tmp_path, catalog_url):
    lake, cat = Lake(str(tmp_path / "lake")), Catalog(catalog_url)
    _seed(lake, cat)
    before = {s["series_id"]: s for s in cat.list_series("ds")}
    assert before["a"]["count"] == 20 and before["b"]["count"] == 3

    dry = apply_retention(lake, cat, "ds", "3d", dry_run=True, now=NOW)
    assert len(dry.removed) == 6 and dry.rows == 12 + 3 and dry.files == 6 + 3
    assert {s["series_id"]: s["count"] for s in cat.list_series("ds")} == {"a": 20, "b": 3, "c": 3}
    assert len(lake.days("raw", "ds")) == 10 and not cat.list_audit()

    res = apply_retention(lake, cat, "ds", "3d", now=NOW)
    assert res.removed == [dt.date(2026, 1, d) for d in range(1, 7)]
    assert res.rows == 15 and res.series_updated == 2  # a and b had rows in the deleted days; c had none
    after = {s["series_id"]: s for s in cat.list_series("ds")}
    assert after["a"]["count"] == 8 and after["a"]["first_ts"] == "2026-01-07T01:00:00Z"
    assert after["a"]["last_ts"] == "2026-01-10T23:00:00Z" and after["a"]["unit"] == "ppm"
    assert after["b"]["count"] == 0 and after["b"]["first_ts"] is None and after["b"]["last_ts"] is None
    assert after["c"]["count"] == 3 and after["c"]["first_ts"] == "2026-01-08T12:00:00Z"
    # the catalog's totals equal what the lake still holds
    assert sum(s["count"] for s in after.values()) == lake.read("raw", "ds").num_rows == 11
    assert cat.list_datasets()[0]["observations"] == 11
    doc = cat.get_dataset("ds")["doc"]
    assert sorted(doc[PROCESSED_KEY]) == [f"2026-01-{d:02d}" for d in range(7, 11)] and doc["other"] == 1
    audit = cat.list_audit("retention", "ds")
    assert len(audit) == 1
    assert audit[0]["detail"] | {"removed": None} == {
        "zone": "raw", "policy": "3d", "cutoff": "2026-01-07", "removed": None, "files": 9, "rows": 15,
        "series_updated": 2}
    # a second pass finds nothing and changes nothing
    again = apply_retention(lake, cat, "ds", "3d", now=NOW)
    assert again.removed == [] and len(cat.list_audit()) == 1
    cat.close()


def test_every_zone_has_its_own_policy(tmp_path):
    lake, cat = Lake(str(tmp_path / "lake")), Catalog(f"sqlite:///{tmp_path}/c.db")
    _seed(lake, cat)
    for zone in ("quarantine", "clean", "forecasts"):
        for d in range(1, 11):
            lake.write_table(zone, "ds", _table([f"2026-01-{d:02d}T05:00"], ["a"]), "x")
    policy = RetentionPolicy(raw="8d", quarantine="2d", clean="5d")  # forecasts: kept for ever
    results = apply_policy(lake, cat, "ds", policy, now=NOW)
    assert [r.zone for r in results] == ["raw", "quarantine", "clean"]
    first_kept = {z: lake.days(z, "ds")[0] for z in ("raw", "quarantine", "clean", "forecasts")}
    assert first_kept == {"raw": dt.date(2026, 1, 2), "quarantine": dt.date(2026, 1, 8),
                          "clean": dt.date(2026, 1, 5), "forecasts": dt.date(2026, 1, 1)}
    assert {a["detail"]["zone"]: len(a["detail"]["removed"]) for a in cat.list_audit("retention")} == {
        "raw": 1, "quarantine": 7, "clean": 4}
    # only raw deletions touch the catalog: clean days whose raw days remain keep their fingerprints
    assert sorted(cat.get_dataset("ds")["doc"][PROCESSED_KEY])[0] == "2026-01-02"
    cat.close()


def test_pipeline_data_after_retention_is_consistent(sensor_project):
    """Ingested and processed sensors: after raw and clean retention, `process` has nothing to chase and the
    catalog's counts and first timestamps match the lake."""
    from tsops.quality.process import process_dataset, processed_days

    project = sensor_project
    process_dataset(project, "sensors")
    lake = project.lake()
    days = lake.days("raw", "sensors")
    assert len(days) >= 2  # two days of traffic
    now = dt.datetime.combine(days[1], dt.time(12), dt.UTC) + dt.timedelta(days=1)  # 1d: cutoff = days[1]
    project.config.datasets["sensors"].retention = RetentionPolicy(raw="1d", clean="1d", quarantine="1d")
    results = retain_dataset(project, "sensors", now=now)
    assert {r.zone: r.removed for r in results if r.removed}["raw"] == [days[0]]
    assert lake.days("raw", "sensors")[0] == days[1] and lake.days("clean", "sensors")[0] == days[1]
    assert processed_days(project, "sensors") == [d.isoformat() for d in days[1:]]
    rep = process_dataset(project, "sensors")
    assert rep.days_processed == []  # nothing to reprocess, nothing chased
    cat = project.catalog()
    raw = lake.read("raw", "sensors").to_pandas()
    for s in cat.list_series("sensors"):
        mine = raw[raw["series_id"] == s["series_id"]]
        assert s["count"] == len(mine)
        assert dt.datetime.fromisoformat(s["first_ts"].replace("Z", "+00:00")) == mine["ts"].min().to_pydatetime()
    cat.close()


def test_a_run_killed_during_deletion_is_finished_by_the_next(tmp_path, catalog_url, monkeypatch):
    lake, cat = Lake(str(tmp_path / "lake")), Catalog(catalog_url)
    _seed(lake, cat)
    for d in (1, 2):  # a second file in days 1 and 2, so a deletion can stop half way through a day
        lake.write_table("raw", "ds", _table([f"2026-01-0{d}T13:00"], ["a"]), "batch-late")
        cat.upsert_series("ds", [{"series_id": "a", "count": 1}], add_counts=True)
    real = Lake.delete_day

    def killed(self, zone, dataset, day):  # removes one file of day 2, then the process "dies"
        if day == dt.date(2026, 1, 2):
            self.delete([self.files(zone, dataset, day)[0]])
            raise KeyboardInterrupt("SIGKILL")
        return real(self, zone, dataset, day)

    monkeypatch.setattr(Lake, "delete_day", killed)
    with pytest.raises(KeyboardInterrupt):
        apply_retention(lake, cat, "ds", "3d", now=NOW)
    monkeypatch.setattr(Lake, "delete_day", real)
    # day 1 was committed; day 2 is half gone and recorded as pending
    assert {s["series_id"]: s["count"] for s in cat.list_series("ds")}["a"] == 22 - 3
    assert list(cat.get_dataset("ds")["doc"]["retention_pending"]) == ["2026-01-02"]

    res = apply_retention(lake, cat, "ds", "3d", now=NOW)
    assert res.recovered == [dt.date(2026, 1, 2)] and dt.date(2026, 1, 2) not in lake.days("raw", "ds")
    assert not cat.get_dataset("ds")["doc"].get("retention_pending")
    after = {s["series_id"]: s for s in cat.list_series("ds")}
    assert sum(s["count"] for s in after.values()) == lake.read("raw", "ds").num_rows == 11
    assert after["a"]["first_ts"] == "2026-01-07T01:00:00Z" and after["b"]["count"] == 0
    assert sorted(cat.get_dataset("ds")["doc"][PROCESSED_KEY])[0] == "2026-01-07"
    assert cat.list_audit("retention")[-1]["detail"]["finished_interrupted"] == ["year=2026/month=01/day=02"]
    cat.close()
