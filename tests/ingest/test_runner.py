"""The runner's exactly-once contract, with an in-memory source and injected crashes."""

import json

import numpy as np
import pyarrow as pa
import pytest

from tsops.catalog import Catalog
from tsops.datamodel import SeriesSpec
from tsops.ingest.base import BadRecord, Source, SourceBatch
from tsops.ingest.runner import run_ingest
from tsops.lake import Lake

SPEC = SeriesSpec(timestamp="event_time", keys=["position"], values=["v"])
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


class ListSource(Source):
    """Rows 0..n-1 in fixed-size batches; row i is bad JSON when i % 17 == 0, future-dated when i % 23 == 0."""

    name = "list"

    def __init__(self, n: int, size: int):
        self.n, self.size, self.start = n, size, 0
        self.acked: list[str] = []

    def open(self, positions):
        self.start = positions.get("p", {}).get("next", 0)

    def batches(self):
        for lo in range(self.start, self.n, self.size):
            hi = min(lo + self.size, self.n)
            rows, bad, pos = [], [], []
            for i in range(lo, hi):
                if i % 17 == 0:
                    bad.append(BadRecord(raw=b"{not json", reason="malformed JSON", pos=i))
                    continue
                ts = T0 + i * 3_600_000 if i % 23 else 4_102_444_800_000  # year 2100
                rows.append({"event_time": ts, "position": f"s{i % 3}", "v": float(i)})
                pos.append(i)
            table = pa.Table.from_pylist(rows, schema=pa.schema(
                [("event_time", pa.int64()), ("position", pa.string()), ("v", pa.float64())]))
            yield SourceBatch(key=f"list-{lo}-{hi - 1}", records=table, bad=bad, pos=np.array(pos),
                              positions={"p": {"next": hi}}, src="list")

    def ack(self, batch):
        self.acked.append(batch.key)


def check_exactly_once(lake, catalog, n):
    raw = lake.read("raw", "ds")
    q = lake.read("quarantine", "ds")
    pos = sorted(raw.column("_pos").to_pylist() + q.column("_pos").to_pylist())
    assert pos == list(range(n)), "every record exactly once in raw or quarantine"
    totals = catalog.batch_totals("ds")
    assert totals["accepted"] + totals["quarantined"] == totals["consumed"] == n
    assert sum(s["count"] for s in catalog.list_series("ds")) == raw.num_rows
    return raw, q


def test_ingest_counts_reconcile_and_quarantine_has_reasons(tmp_path, catalog_url):
    lake, cat = Lake(str(tmp_path / "lake")), Catalog(catalog_url)
    src = ListSource(200, 50)
    rep = run_ingest("ds", SPEC, src, lake, cat)
    assert rep.consumed == 200 and rep.accepted + rep.quarantined == 200
    raw, q = check_exactly_once(lake, cat, 200)
    reasons = dict(zip(q.column("_pos").to_pylist(), q.column("reason").to_pylist(), strict=True))
    assert reasons[17] == "malformed JSON"
    assert "more than a day in the future" in reasons[23] and "'event_time'" in reasons[23]
    assert json.loads(q.filter(pa.compute.equal(q["_pos"], 23))["raw"][0].as_py())["v"] == 23.0
    assert src.acked == ["list-0-49", "list-50-99", "list-100-149", "list-150-199"]
    s0 = cat.get_series("ds", "s0")
    assert s0["keys"] == {"position": "s0"} and s0["first_ts"] == "2026-01-01T03:00:00Z"  # row 0 is bad JSON
    # running again ingests nothing new and changes nothing
    rep2 = run_ingest("ds", SPEC, ListSource(200, 50), lake, cat)
    assert rep2.consumed == 0
    check_exactly_once(lake, cat, 200)


@pytest.mark.parametrize("crash_at", ["after_write", "before_write"])
def test_crash_mid_batch_is_rolled_back_and_replayed(tmp_path, monkeypatch, crash_at, catalog_url):
    lake, cat = Lake(str(tmp_path / "lake")), Catalog(catalog_url)
    calls = {"n": 0}
    orig_commit, orig_write = Catalog.commit_batch, Lake.write

    def crashing_commit(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash after the files were written")
        return orig_commit(self, *a, **kw)

    def crashing_write(self, files):
        files = list(files)
        if files and "list-100-" in files[0].path:
            orig_write(self, files[:1])  # half of the batch's files land, then the crash
            raise KeyboardInterrupt("simulated crash while writing")
        return orig_write(self, files)

    if crash_at == "after_write":
        monkeypatch.setattr(Catalog, "commit_batch", crashing_commit)
    else:
        monkeypatch.setattr(Lake, "write", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        run_ingest("ds", SPEC, ListSource(300, 50), lake, cat)
    assert len(cat.pending_batches("ds")) == 1
    monkeypatch.undo()
    rep = run_ingest("ds", SPEC, ListSource(300, 50), lake, cat)
    assert rep.rolled_back == 1
    check_exactly_once(lake, cat, 300)
    assert cat.list_runs("ds")[1]["status"] == "failed"
