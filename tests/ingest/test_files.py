"""FileSource: presets on the shipped real files, chunking and resume, grown/changed files, bad lines."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tsops.config import FileSourceConfig
from tsops.datamodel import to_long
from tsops.datasets.files import path_of, paths_of, preset_of
from tsops.ingest.base import GapError
from tsops.ingest.files import AIR_VALUES, BEIJING_VALUES, FileSource, preset_series_spec

DATA = Path(__file__).resolve().parents[1] / "data"
SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def cfg(paths, **kw) -> FileSourceConfig:
    return FileSourceConfig(kind="files", paths=paths if isinstance(paths, list) else [paths], **kw)


def run(c: FileSourceConfig, base: Path, positions=None, limit: int | None = None):
    """Batches from ``positions`` (at most ``limit``), and the positions after them (JSON round trip)."""
    pos = dict(positions or {})
    out = []
    with FileSource(c, base) as src:
        src.open(pos)
        for b in src.batches():
            out.append(b)
            pos.update(b.positions)
            if limit is not None and len(out) >= limit:
                break
    return out, json.loads(json.dumps(pos))


def records(batches) -> pa.Table:
    return pa.concat_tables([b.records for b in batches if b.records.num_rows])


def raw_csv_rows(path: Path, delimiter=",") -> list[list[str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter=delimiter))


# ------------------------------------------------------------------------------------------------ presets
def test_air_quality_preset_on_shipped_file():
    p = path_of("air_quality_uci")
    batches, pos = run(cfg(p.name, preset="air_quality_uci", batch_rows=4000), p.parent)
    t = records(batches)
    assert t.num_rows == 9357 and all(b.bad == [] for b in batches)
    assert pos[p.name]["done"] is True and pos[p.name]["rows"] == 9357 + 114  # incl. the empty ';;;;' lines
    ts = t.column("ts")
    assert ts.type == pa.timestamp("us", tz="UTC")
    assert ts[0].as_py() == datetime(2004, 3, 10, 18, tzinfo=UTC)
    assert ts[-1].as_py() == datetime(2005, 4, 4, 14, tzinfo=UTC)
    steps = np.diff(pc.cast(ts.combine_chunks().cast(pa.timestamp("us")), pa.int64()).to_numpy())
    assert (steps == 3_600_000_000).all()  # wall-clock labels as UTC: no DST gap or repeat
    # decimal comma and -200 = missing
    assert t.column("CO(GT)")[0].as_py() == 2.6 and t.column("AH")[0].as_py() == 0.7578
    nulls = {c: t.column(c).null_count for c in AIR_VALUES}
    assert nulls["NMHC(GT)"] == 8443 and nulls["T"] == 366 and sum(nulls.values()) == 16244 + 457  # "-200" and "-200,0" cells
    assert set(t.column("site").to_pylist()) == {"uci_air"}
    assert "unnamed_15" not in t.column_names
    # positions are 1-based line numbers (header = line 1)
    assert batches[0].pos[0] == 2 and batches[-1].pos[-1] == 9358

    spec = preset_series_spec("air_quality_uci")
    long = pa.concat_tables([to_long(b.records, spec, pos=b.pos).table for b in batches])
    ids = sorted(set(long.column("series_id").to_pylist()))
    assert ids == sorted(f"uci_air|{c}" for c in AIR_VALUES)
    assert long.num_rows == 13 * 9357 and long.column("value").null_count == 16701


def test_beijing_preset_on_shipped_files():
    files = paths_of("beijing_multisite")
    assert preset_of("beijing_multisite") == "beijing_multisite"
    batches, pos = run(cfg("PRSA_Data_*.csv.gz", preset="beijing_multisite", batch_rows=8760), files[0].parent)
    assert [b.src for b in batches] == [f"file:{f.name}" for f in files]  # sorted glob, one batch per file
    assert all(pos[f.name]["done"] and pos[f.name]["rows"] == 8760 for f in files)
    t = records(batches)
    assert t.num_rows == 2 * 8760
    first = t.slice(0, 1).to_pylist()[0]
    # 2013-03-01 00:00 in Beijing (UTC+8) is 2013-02-28 16:00 UTC
    assert first["ts"] == datetime(2013, 2, 28, 16, tzinfo=UTC) and first["station"] == "Aotizhongxin"
    assert first["wd"] == "NNW" and first["PM2.5"] == 4.0
    # NA -> null, counted against the raw file
    raw = raw_csv_rows(files[0])
    header, rows = raw[0], raw[1:]
    for col in ("PM2.5", "CO", "wd"):
        k = header.index(col)
        assert t.slice(0, 8760).column(col).null_count == sum(r[k] == "NA" for r in rows)
    assert t.slice(0, 8760).column("PM2.5").null_count > 0

    spec = preset_series_spec("beijing_multisite")
    long = pa.concat_tables([to_long(b.records, spec, src=b.src, pos=b.pos).table for b in batches])
    ids = set(long.column("series_id").to_pylist())
    assert ids == {f"{s}|{v}" for s in ("Aotizhongxin", "Changping") for v in BEIJING_VALUES}
    assert "wd" in long.column_names and "year" not in long.column_names
    one = long.filter(pc.equal(long.column("series_id"), "Changping|TEMP"))
    assert one.num_rows == 8760
    assert one.column("ts")[-1].as_py() == datetime(2014, 2, 28, 15, tzinfo=UTC)


def test_sales_weekly_preset(tmp_path):
    shutil.copy(DATA / "sales_weekly_head.csv", tmp_path / "sales.csv")
    batches, pos = run(cfg("*.csv", preset="sales_weekly", batch_rows=52 * 6), tmp_path)
    t = records(batches)
    assert [b.records.num_rows for b in batches] == [6 * 52, 6 * 52, 6 * 52, 2 * 52]
    assert t.column_names == ["Product_Code", "week", "ts", "sales"]
    assert t.num_rows == 20 * 52
    with open(DATA / "sales_weekly_head.csv", newline="") as f:
        raw = list(csv.reader(f))
    p1 = t.filter(pc.equal(t.column("Product_Code"), "P1"))
    assert p1.column("sales").to_pylist() == [float(x) for x in raw[1][1:53]]
    assert p1.column("week").to_pylist() == list(range(52))
    ts = p1.column("ts").to_pylist()
    assert ts[0] == datetime(2015, 1, 5, tzinfo=UTC) and ts[0].weekday() == 0
    assert ts[51] == datetime(2015, 1, 5, tzinfo=UTC) + timedelta(weeks=51)
    long = to_long(t, preset_series_spec("sales_weekly")).table
    assert len(set(long.column("series_id").to_pylist())) == 20 and long.num_rows == 20 * 52
    assert pos["sales.csv"]["rows"] == 20


def test_sales_weekly_preset_on_shipped_file():
    from tsops.datasets.sales import load_sales_weekly

    p = path_of("sales_weekly")
    batches, pos = run(cfg(p.name, preset="sales_weekly", batch_rows=20_000), p.parent)
    t = records(batches)
    assert t.num_rows == 811 * 52 and pos[p.name] == {**pos[p.name], "rows": 811, "done": True}
    wide = load_sales_weekly()
    got = t.to_pandas().pivot(index="Product_Code", columns="week", values="sales")
    assert np.array_equal(got.loc[wide.index].to_numpy(), wide.to_numpy())


def test_preset_series_spec_unknown_name():
    with pytest.raises(KeyError, match="unknown preset 'nope'"):
        preset_series_spec("nope")
    spec = preset_series_spec("beijing_multisite")
    spec.values.append("X")  # a copy: the preset is not changed
    assert "X" not in preset_series_spec("beijing_multisite").values


# ------------------------------------------------------------------------------------------------ resume
def test_chunked_resume_equals_one_pass():
    p = path_of("air_quality_uci")
    c_one = cfg(p.name, preset="air_quality_uci", batch_rows=100_000)
    one, _ = run(c_one, p.parent)
    assert len(one) == 1
    c = cfg(p.name, preset="air_quality_uci", batch_rows=1000)
    first, pos = run(c, p.parent, limit=3)
    assert pos[p.name]["rows"] == 3000 and pos[p.name]["done"] is False
    rest, pos2 = run(c, p.parent, pos)
    assert records(first + rest).equals(records(one))
    assert np.array_equal(np.concatenate([b.pos for b in first + rest]), one[0].pos)
    # replay from the same committed position: the same keys (idempotent lake files), all file-name safe
    again, _ = run(c, p.parent, pos)
    assert [b.key for b in again] == [b.key for b in rest]
    assert all(set(b.key) <= SAFE for b in again)
    assert rest[0].key == f"file-AirQualityUCI-{pos[p.name]['sha'][:10]}-r3000-4000"
    # fully ingested: skipped on the next run
    assert run(c, p.parent, pos2)[0] == []


def _write(path: Path, text: str | bytes) -> None:
    path.write_bytes(text.encode() if isinstance(text, str) else text)


def test_grown_file_continues_and_changed_file_is_reingested(tmp_path, caplog):
    f = tmp_path / "log.csv"
    _write(f, "ts,sensor,value\n" + "".join(f"2024-01-01T00:0{i}:00,s1,{i}\n" for i in range(5)))
    c = cfg("log.csv", batch_rows=2)
    b1, pos = run(c, tmp_path)
    assert [b.records.num_rows for b in b1] == [2, 2, 1] and pos["log.csv"]["done"]
    assert b1[0].records.column("value").to_pylist() == ["0", "1"]  # generic CSV: text, typed by the spec
    with open(f, "a") as fh:
        fh.write("2024-01-01T00:05:00,s1,5\n2024-01-01T00:06:00,s2,6\n")
    b2, pos2 = run(c, tmp_path, pos)
    assert records(b2).column("value").to_pylist() == ["5", "6"]
    assert list(b2[0].pos) == [7, 8]  # line numbers continue
    assert pos2["log.csv"]["rows"] == 7 and pos2["log.csv"]["sha"] != pos["log.csv"]["sha"]
    # changed in place (not an append): a gap; the run fails before reading anything ...
    _write(f, "ts,sensor,value\n2024-01-01T00:00:00,s1,99\n")
    with pytest.raises(GapError, match=r"log.csv: the file shrank from .* after 7 rows were ingested.*on_gap: skip"):
        run(c, tmp_path, pos2)
    # ... unless the source says on_gap: skip: then it is ingested again from the start, and the gap reported
    gaps = []
    c_skip = cfg("log.csv", batch_rows=2, on_gap="skip")
    with FileSource(c_skip, tmp_path) as src:
        src.gap_sink = lambda g, action: gaps.append((g, action))
        src.open(pos2)
        b3 = list(src.batches())
    assert records(b3).column("value").to_pylist() == ["99"]
    assert len(gaps) == 1 and gaps[0][1] == "skipped" and gaps[0][0].committed["rows"] == 7


def test_replaced_or_vanished_file_before_its_end_is_a_gap(tmp_path):
    f = tmp_path / "a.csv"
    _write(f, "k,v\n" + "".join(f"a,{i}\n" for i in range(10)))
    _, pos = run(cfg("a.csv", batch_rows=4), tmp_path, limit=1)  # 4 rows in, not done
    _write(f, "k,v\n" + "".join(f"b,{i}\n" for i in range(10)))  # same size, other content
    with pytest.raises(GapError, match="was replaced"):
        run(cfg("a.csv", batch_rows=4), tmp_path, pos)
    f.unlink()
    with pytest.raises(GapError, match="disappeared after 4 rows"):
        run(cfg("a.csv", batch_rows=4), tmp_path, pos)
    # a file read to the end may be archived away: not a gap
    _write(f, "k,v\na,1\n")
    _, pos = run(cfg("a.csv"), tmp_path)
    f.unlink()
    assert run(cfg("a.csv"), tmp_path, pos)[0] == []


def test_partial_last_line_is_not_treated_as_append(tmp_path, caplog):
    f = tmp_path / "a.csv"
    _write(f, "k,v\na,1\nb,2")  # no newline at the end: the last line may still be being written
    c = cfg("a.csv")
    _, pos = run(c, tmp_path)
    _write(f, "k,v\na,1\nb,23\nc,4\n")
    with pytest.raises(GapError, match="was replaced"):
        run(c, tmp_path, pos)
    b, _ = run(cfg("a.csv", on_gap="skip"), tmp_path, pos)
    assert records(b).column("v").to_pylist() == ["1", "23", "4"]


# ------------------------------------------------------------------------------------------------ bad lines
def test_malformed_and_undecodable_lines_go_to_bad(tmp_path):
    body = (b"ts,sensor,value\n"
            b"2024-01-01 00:00,s1,1.5\n"
            b"2024-01-01 01:00,s1,2.5,EXTRA\n"      # line 3: too many fields
            b"\n"                                   # line 4: blank, skipped
            b"2024-01-01 02:00,s\xff\xfe1,3.5\n"    # line 5: not UTF-8
            b"2024-01-01 03:00,\"multi\nline\",4.5\n"  # lines 6-7: one quoted record
            b"2024-01-01 04:00\n"                   # line 8: too few fields
            b"2024-01-01 05:00,s2,6.5\n")
    _write(tmp_path / "m.csv", body)
    batches, pos = run(cfg("m.csv", batch_rows=3), tmp_path)
    bad = [x for b in batches for x in b.bad]
    assert [x.pos for x in bad] == [3, 5, 8]
    assert bad[0].raw == b"2024-01-01 01:00,s1,2.5,EXTRA"
    assert bad[0].reason == "m.csv line 3: expected 3 fields separated by ',', found 4"
    assert "m.csv line 5" in bad[1].reason and "utf-8" in bad[1].reason
    assert "m.csv line 8" in bad[2].reason and "found 1" in bad[2].reason
    t = records(batches)
    assert t.column("sensor").to_pylist() == ["s1", "multi\nline", "s2"]
    assert list(np.concatenate([b.pos for b in batches])) == [2, 6, 9]
    assert pos["m.csv"]["rows"] == 8  # every physical line after the header is accounted for
    assert sum(b.consumed for b in batches) == 6


def test_preset_cell_that_is_not_a_number_is_bad(tmp_path):
    src = path_of("beijing_changping")
    lines = gzip.decompress(src.read_bytes()).split(b"\n")[:6]
    fields = lines[3].split(b",")
    fields[5] = b"abc"  # PM2.5 of the third data row (line 4)
    lines[3] = b",".join(fields)
    _write(tmp_path / "PRSA_Data_X.csv", b"\n".join(lines) + b"\n")
    batches, _ = run(cfg("*.csv", preset="beijing_multisite"), tmp_path)
    (b,) = batches
    assert b.records.num_rows == 4 and len(b.bad) == 1
    assert b.bad[0].pos == 4 and b.bad[0].reason.startswith("PRSA_Data_X.csv line 4: column ")
    assert b.bad[0].reason.endswith("column 'PM2.5': 'abc' is not a number")
    assert b.bad[0].raw == lines[3].rstrip(b"\r")


# ------------------------------------------------------------------------------------------------ parquet
def test_parquet_glob_chunked_and_resumed(tmp_path):
    (tmp_path / "pq").mkdir()
    frames = []
    for k in range(3):
        n = 10 + 5 * k
        t = pa.table({"ts": pa.array(np.arange(n) * 1000 + k, pa.int64()), "station": [f"st{k}"] * n,
                      "v": np.arange(n, dtype=np.float64)})
        pq.write_table(t, tmp_path / "pq" / f"part-{k}.parquet", row_group_size=4)
        frames.append(t)
    c = cfg("pq/*.parquet", format="parquet", batch_rows=7)
    one, pos = run(c, tmp_path)
    assert records(one).equals(pa.concat_tables(frames))
    assert all(b.records.num_rows <= 7 for b in one)
    assert [pos[f"pq/part-{k}.parquet"]["rows"] for k in range(3)] == [10, 15, 20]
    first, mid = run(c, tmp_path, limit=4)  # stops inside part-1
    assert mid["pq/part-1.parquet"]["done"] is False
    rest, _ = run(c, tmp_path, mid)
    assert records(first + rest).equals(pa.concat_tables(frames))
    assert list(rest[0].pos[:1]) == [mid["pq/part-1.parquet"]["rows"]]
    assert run(c, tmp_path, pos)[0] == []


# ------------------------------------------------------------------------------------------------ jsonl
def test_jsonl_envelopes_with_bad_line(tmp_path):
    from tsops.ingest.connect import encode_envelopes

    t = pa.table({
        "event_time": pa.array([1_700_000_000_000 + i * 1000 for i in range(7)], pa.int64())
        .cast(pa.timestamp("ms", tz="UTC")),
        "position": ["A"] * 7,
        "input_data": pa.array([float(i) for i in range(7)], pa.float32()),
    })
    lines = encode_envelopes(t, "SENSOR_DATA_VIEW")
    lines.insert(3, b'{"schema": oops')
    lines.insert(5, b"")
    _write(tmp_path / "s.jsonl", b"\n".join(lines) + b"\n")
    c = cfg("*.jsonl", format="jsonl", batch_rows=4)
    batches, pos = run(c, tmp_path)
    bad = [x for b in batches for x in b.bad]
    assert [x.pos for x in bad] == [4] and bad[0].reason.startswith("s.jsonl line 4: ")
    out = records(batches)
    assert "_index" not in out.column_names
    assert out.column("input_data").to_pylist() == [float(i) for i in range(7)]
    assert list(np.concatenate([b.pos for b in batches])) == [1, 2, 3, 5, 7, 8, 9]
    assert pos["s.jsonl"] == {**pos["s.jsonl"], "rows": 9, "done": True}
    assert run(c, tmp_path, pos)[0] == []
    # plain JSON objects per line
    _write(tmp_path / "plain.ndjson", b'{"ts": 1, "k": "a", "v": 1.5}\n{"ts": 2, "k": "b", "v": 2}\n')
    plain, _ = run(cfg("*.ndjson", format="jsonl", envelope=False), tmp_path)
    assert records(plain).column("v").to_pylist() == [1.5, 2.0]


def test_jsonl_with_local_stand_in_parser(tmp_path, monkeypatch):
    """The reader only relies on parse_envelopes' interface: `.table` with `_index`, `.bad` (index/raw/reason)."""
    from types import SimpleNamespace

    import tsops.ingest.envelope as env

    def stand_in(msgs):
        rows, idx, bad = [], [], []
        for i, m in enumerate(msgs):
            try:
                rows.append(json.loads(m)["payload"])
                idx.append(i)
            except (ValueError, KeyError) as err:
                bad.append(SimpleNamespace(index=i, raw=m, reason=f"not an envelope: {err}"))
        table = pa.Table.from_pylist(rows).append_column("_index", pa.array(idx, pa.int64()))
        return SimpleNamespace(table=table, bad=bad)

    monkeypatch.setattr(env, "parse_envelopes", stand_in)
    _write(tmp_path / "e.jsonl", b'{"payload": {"x": 1}}\nnope\n{"payload": {"x": 2}}\n')
    batches, _ = run(cfg("e.jsonl", format="jsonl"), tmp_path)
    assert records(batches).column("x").to_pylist() == [1, 2]
    assert [x.pos for x in batches[0].bad] == [2] and "e.jsonl line 2: not an envelope" in batches[0].bad[0].reason


def test_rename_and_generic_options(tmp_path):
    _write(tmp_path / "x.csv", "Zeit;Ört;Wert;\n2024-01-01 00:00;a,b;-1,5;\n2024-01-01 01:00;ü;2;\n".encode("latin-1"))
    c = cfg("x.csv", delimiter=";", decimal=",", encoding="latin-1", rename={"Zeit": "ts", "Wert": "value_txt"})
    (b,), _ = run(c, tmp_path)
    assert b.records.column_names == ["ts", "Ört", "value_txt", "unnamed_3"]
    assert b.records.column("value_txt").to_pylist() == ["-1.5", "2"]  # decimal comma -> point
    assert b.records.column("Ört").to_pylist() == ["a,b", "ü"]  # not a number: unchanged


def test_datasets_helpers():
    assert path_of("air_quality_uci").name == "AirQualityUCI.csv.gz"
    with pytest.raises(KeyError, match="no shipped data set"):
        path_of("nope")
    with pytest.raises(ValueError, match="has 2 files"):
        path_of("beijing_multisite")
    total = sum(p.stat().st_size for n in ("air_quality_uci", "beijing_multisite") for p in paths_of(n))
    assert total < 2_000_000


def test_quoted_record_straddling_a_chunk_and_resume(tmp_path):
    body = 'k,note\na,"one"\nb,"two\nlines"\nc,three\n"d",four\ne,"x,y"\n'
    _write(tmp_path / "q.csv", body)
    c = cfg("q.csv", batch_rows=2)
    one, pos = run(c, tmp_path)
    t = records(one)
    assert t.column("note").to_pylist() == ["one", "two\nlines", "three", "four", "x,y"]
    assert list(np.concatenate([b.pos for b in one])) == [2, 3, 5, 6, 7]
    assert pos["q.csv"]["rows"] == 6 and all(b.bad == [] for b in one)
    first, mid = run(c, tmp_path, limit=1)
    assert mid["q.csv"]["rows"] == 3  # the chunk read on to close the quote opened on line 3
    rest, _ = run(c, tmp_path, mid)
    assert records(first + rest).equals(t)


def test_jsonl_resume_mid_file(tmp_path):
    from tsops.ingest.connect import encode_envelopes

    t = pa.table({"ts": pa.array(np.arange(10), pa.int64()), "k": ["a"] * 10})
    _write(tmp_path / "r.jsonl", b"\n".join(encode_envelopes(t, "r")) + b"\n")
    c = cfg("r.jsonl", format="jsonl", batch_rows=3)
    first, mid = run(c, tmp_path, limit=2)
    assert mid["r.jsonl"] == {**mid["r.jsonl"], "rows": 6, "done": False}
    rest, end = run(c, tmp_path, mid)
    assert records(first + rest).column("ts").to_pylist() == list(range(10))
    assert [b.key.rsplit("-", 2)[-2:] for b in rest] == [["r6", "9"], ["r9", "10"]]
    assert end["r.jsonl"]["done"] is True


# ------------------------------------------------------------------------------------------------ quoting
def _rows(n: int) -> list[str]:
    return ["ts,sensor,value\n"] + [f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d},s{i % 3},{i}\n" for i in range(n)]


@pytest.mark.parametrize("bad_line", [
    '2026-01-01T00:00:05,"s2,5\n',  # unclosed quote in a middle field: would swallow the rest
    '2026-01-01T00:00:05,s2,"5\n',  # unclosed quote in the last field: would swallow the rest into it
    '2026-01-01T00:00:05,"s2"x,5\n',  # text after a closing quote
    '2026-01-01T00:00:05,s2,5\r6\n',  # a bare carriage return: a row break for the parser
])
@pytest.mark.parametrize("batch_rows", [100, 2000])
def test_malformed_quoting_costs_one_line_and_the_rest_is_read(tmp_path, bad_line, batch_rows):
    rows = _rows(1000)
    rows[6] = bad_line  # line 7 of the file
    (tmp_path / "a.csv").write_text("".join(rows), newline="")
    bs, pos = run(cfg("a.csv", batch_rows=batch_rows), tmp_path)
    bad = [b for x in bs for b in x.bad]
    assert [b.pos for b in bad] == [7] and "a.csv line 7:" in bad[0].reason
    t = records(bs)
    assert t.num_rows == 999 and sum(x.consumed for x in bs) == 1000
    assert t.column("value").to_pylist()[4:7] == ["4", "6", "7"] and pos["a.csv"]["done"]
    assert list(np.concatenate([x.pos for x in bs])[4:7]) == [6, 8, 9]  # line numbers of the rows after it


def test_stray_quote_closed_far_away_is_rejected_and_a_valid_multiline_record_kept(tmp_path):
    rows = _rows(600)
    rows[6] = '2026-01-01T00:00:05,s2,"5\n'
    rows[500] = '2026-01-01T00:08:19,s1,5"\n'  # closes the quote 494 lines later: not one record
    rows[300] = '2026-01-01T00:04:59,"multi\nline, with a comma",299\n'  # a real quoted line break
    (tmp_path / "a.csv").write_text("".join(rows), newline="")
    bs, _ = run(cfg("a.csv", batch_rows=128), tmp_path)
    bad = [b for x in bs for b in x.bad]
    assert [b.pos for b in bad] == [7] and "taken as an unclosed quote" in bad[0].reason
    t = records(bs)
    assert t.num_rows == 599
    assert "multi\nline, with a comma" in t.column("sensor").to_pylist()
    assert '5"' in t.column("value").to_pylist()  # a quote inside an unquoted field is a literal


def test_quote_never_closed_within_the_limit(tmp_path, monkeypatch):
    import tsops.ingest.files as files

    monkeypatch.setattr(files, "MAX_RECORD_LINES", 5)
    text = 'k,v\na,"1\n' + "".join(f"b{i},{i}\n" for i in range(20)) + 'c,"x"\n'
    (tmp_path / "a.csv").write_text(text, newline="")
    bs, _ = run(cfg("a.csv"), tmp_path)
    bad = [b for x in bs for b in x.bad]
    assert [b.pos for b in bad] == [2] and "not closed within 5 lines" in bad[0].reason
    assert records(bs).num_rows == 21
