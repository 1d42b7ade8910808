from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from tsops.catalog import Catalog
from tsops.catalog.store import metadata


@pytest.fixture
def catalog(catalog_url):
    cat = Catalog(catalog_url)
    yield cat
    cat.close()


pytestmark = pytest.mark.services


def test_series_upsert_is_idempotent(catalog):
    docs = [{"series_id": "A|C02", "first_ts_us": 100, "last_ts_us": 200, "count": 5, "unit": "ppm",
             "keys": {"position": "A"}}]
    catalog.upsert_series("ds", docs)
    state1 = catalog.get_series("ds", "A|C02")
    catalog.upsert_series("ds", docs)
    assert catalog.get_series("ds", "A|C02") == state1
    assert state1["count"] == 5 and state1["unit"] == "ppm" and state1["keys"] == {"position": "A"}
    # a later stage patches its figures in without touching the rest
    catalog.upsert_series("ds", [{"series_id": "A|C02", "period_s": 600.0, "first_ts_us": 50}])
    s = catalog.get_series("ds", "A|C02")
    assert s["period_s"] == 600.0 and s["unit"] == "ppm" and s["count"] == 5
    assert s["first_ts"] == "1970-01-01T00:00:00.000050Z" and s["last_ts"] == "1970-01-01T00:00:00.000200Z"


def test_batch_commit_applies_once(catalog):
    catalog.begin_batch("ds", "src", "b1", ["raw/ds/x.parquet"], parts=["t/0"])
    assert [b["batch_key"] for b in catalog.pending_batches("ds", "src")] == ["b1"]
    kw = dict(positions_={"t/0": {"next_offset": 10}},
              series_docs=[{"series_id": "s", "first_ts_us": 1, "last_ts_us": 2, "count": 10}],
              stats={"accepted": 9, "quarantined": 1, "consumed": 10})
    assert catalog.commit_batch("ds", "src", "b1", **kw) is True
    assert catalog.commit_batch("ds", "src", "b1", **kw) is False
    assert catalog.get_series("ds", "s")["count"] == 10
    assert catalog.get_positions("ds", "src") == {"t/0": {"next_offset": 10}}
    assert catalog.pending_batches("ds") == []
    assert catalog.batch_totals("ds")["consumed"] == 10


def test_concurrent_writers_lose_nothing(catalog):
    """Eight writers commit batches touching the same series at once: every count arrives exactly once."""
    def work(i):
        key = f"b{i}"
        catalog.begin_batch("ds", "src", key, [], parts=[f"t/{i}"])
        catalog.commit_batch("ds", "src", key, positions_={f"t/{i}": {"next_offset": i}},
                             series_docs=[{"series_id": s, "first_ts_us": i, "last_ts_us": i, "count": 1}
                                          for s in ("a", "b", "c")],
                             stats={"consumed": 1})
        catalog.upsert_series("ds", [{"series_id": "a", f"w{i}": i}])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(40)))
    a = catalog.get_series("ds", "a")
    assert a["count"] == 40 and a["first_ts"] == "1970-01-01T00:00:00Z" and a["last_ts"].endswith(".000039Z")
    assert all(a[f"w{i}"] == i for i in range(40))
    assert len(catalog.get_positions("ds", "src")) == 40


def test_runs_and_datasets(catalog):
    catalog.upsert_dataset("ds", {"series": {"keys": ["a"]}})
    catalog.upsert_dataset("ds", {"sources": {"kafka:t": "KafkaSource"}})
    assert catalog.get_dataset("ds")["doc"] == {"series": {"keys": ["a"]}, "sources": {"kafka:t": "KafkaSource"}}
    rid = catalog.start_run("ingest", "ds")
    catalog.finish_run(rid, "failed", {"consumed": 3}, error="boom")
    r = catalog.get_run(rid)
    assert r["status"] == "failed" and r["error"] == "boom" and r["stats"] == {"consumed": 3}
    assert [d["name"] for d in catalog.list_datasets()] == ["ds"]


def test_unsupported_dialect_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not supported"):
        Catalog("mysql+pymysql://root@127.0.0.1/test", create=False)


def test_tables_exist(catalog):
    names = set(sa.inspect(catalog.engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= names


def test_runs_record_their_process_and_dead_ones_are_marked_failed(catalog):
    import os
    import socket
    import subprocess
    import sys

    own = catalog.start_run("ingest", "ds")
    run = catalog.get_run(own)
    assert run["stats"]["pid"] == os.getpid() and run["stats"]["host"] == socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = catalog.start_run("ingest", "ds", {"source": "x"})
    other_host = catalog.start_run("ingest", "ds")
    with catalog.begin() as c:  # a run of a process that has exited, and one on another host
        from tsops.catalog.store import runs

        c.execute(sa.update(runs).where(runs.c.id == gone).values(
            stats={"source": "x", "pid": int(dead.stdout), "host": socket.gethostname()}))
        c.execute(sa.update(runs).where(runs.c.id == other_host).values(stats={"pid": 1, "host": "elsewhere"}))
    assert catalog.fail_stale_runs(dataset="ds") == [gone]
    r = catalog.get_run(gone)
    assert r["status"] == "failed" and r["error"].startswith("stale: process") and r["finished_at"]
    assert catalog.get_run(own)["status"] == "running" and catalog.get_run(other_host)["status"] == "running"
    assert catalog.fail_stale_runs() == []
