"""One bad record never fails a batch: odd records alone and mixed into good batches, through the envelope,
JSON Lines and CSV paths into the lake. Invariant: accepted + quarantined = consumed, no exception escapes."""

from __future__ import annotations

import base64
import json
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsops.catalog import Catalog
from tsops.config import FileSourceConfig
from tsops.datamodel import SeriesSpec
from tsops.ingest.base import BadRecord, Source, SourceBatch
from tsops.ingest.files import FileSource
from tsops.ingest.kafka import parse_messages
from tsops.ingest.runner import run_ingest
from tsops.lake import Lake
from tsops.testing.envelopes import sensor_envelope

T0 = 1_767_225_600_000
SPEC = SeriesSpec(timestamp="event_time", keys=["position", "type_name"], values=["input_data"])
FLAT = SeriesSpec(timestamp="event_time", keys=["position"], values=["input_data"])
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("poison")
    cat = Catalog(f"sqlite:///{d / 'catalog.db'}")
    yield d, Lake(str(d / "lake")), cat
    cat.close()


class Messages(Source):
    """Messages as one Kafka-like batch (the KafkaSource parsing path)."""

    name = "m"

    def __init__(self, msgs, fmt="envelope"):
        self.msgs, self.fmt = msgs, fmt

    def batches(self):
        table, bad = parse_messages(self.msgs, self.fmt)
        pos = table.column("_index").to_numpy() if table.num_rows else np.empty(0, np.int64)
        yield SourceBatch(key=f"m-{uuid.uuid4().hex}", records=table, pos=pos, src="m",
                          bad=[BadRecord(raw, why, i) for i, raw, why in bad], positions={"p": 1})


def ingest_checked(store, source, spec, n):
    _, lake, cat = store
    ds = f"d{uuid.uuid4().hex[:12]}"
    rep = run_ingest(ds, spec, source, lake, cat)
    assert rep.consumed == n and rep.accepted + rep.quarantined == n, rep
    totals = cat.batch_totals(ds)
    assert totals["accepted"] + totals["quarantined"] == totals["consumed"] == n
    q = lake.read("quarantine", ds)
    assert q.num_rows == rep.quarantined
    assert not q.num_rows or all(q.column("reason").to_pylist())
    return rep


# ---------------------------------------------------------------------------------------------- envelopes
_TS = "org.apache.kafka.connect.data.Timestamp"
CONNECT_TYPES = [
    {"type": t} for t in ("int8", "int16", "int32", "int64", "float", "double", "boolean", "string", "bytes")
] + [
    {"type": "int64", "name": _TS}, {"type": "int32", "name": "org.apache.kafka.connect.data.Date"},
    {"type": "int32", "name": "org.apache.kafka.connect.data.Time"}, {"type": "array", "items": {"type": "int8"}},
]
NAMES = ["event_time", "position", "type_name", "input_data", "unit", "series_id", "_src", "_pos", "", "é\u0000"]
values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([9_300_000_000_000_000, -9_300_000_000_000_000, 2**63 - 1, -(2**63), T0]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["AAE=", "////", base64.b64encode(b"\x7f" * 40).decode(), "not base64!"]),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def connect_field(draw):
    t = dict(draw(st.sampled_from(CONNECT_TYPES + [{"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
                                                     "parameters": {"scale": str(draw(st.integers(-600, 600)))}}])))
    t["optional"] = draw(st.booleans())
    t["field"] = draw(st.sampled_from(NAMES))
    return t


@st.composite
def odd_envelope(draw):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=60))
    if kind == 1:
        return draw(st.sampled_from([None, b"", b"null", b"[]", b'{"schema":{', b'{"schema":{},"payload":{}}']))
    fields = draw(st.lists(connect_field(), max_size=6, unique_by=lambda f: f["field"]))
    if kind == 2:  # the production schema with one odd value
        return sensor_envelope(1, draw(values) if draw(st.booleans()) else T0, None).replace(
            b'"input_data":null', b'"input_data":' + json.dumps(draw(values)).encode())
    payload = {f["field"]: draw(values) for f in fields if draw(st.integers(0, 4))}
    doc = {"schema": {"type": "struct", "fields": fields, "optional": False}, "payload": payload}
    return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()


good = [sensor_envelope(i % 3, T0 + i * 1000, float(i)) for i in range(20)]


@SETTINGS
@given(st.lists(odd_envelope(), min_size=1, max_size=6), st.booleans())
def test_envelope_batches_alone_and_mixed(store, odd, mixed):
    msgs = [*good[:7], *odd, *good[7:]] if mixed else odd
    rep = ingest_checked(store, Messages(msgs), SPEC, len(msgs))
    if mixed:
        assert rep.accepted >= len(good) - 0  # the good messages land whatever sits between them


@pytest.mark.parametrize("msg", [
    sensor_envelope(1, 9_300_000_000_000_000, 1.0),  # beyond what the lake's microseconds can hold
    sensor_envelope(1, -9_300_000_000_000_000, 1.0),
    json.dumps({"schema": {"type": "struct", "optional": False, "fields": [
        {"type": "int64", "optional": False, "name": _TS, "field": "event_time"},
        {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "-400"}, "field": "input_data"},
        {"type": "string", "optional": False, "field": "position"},
        {"type": "string", "optional": False, "field": "type_name"}]},
        "payload": {"event_time": T0, "input_data": "AQ==", "position": "a", "type_name": "b"}}).encode(),
    json.dumps({"schema": {"type": "struct", "optional": False, "fields": []}, "payload": {}}).encode(),
    json.dumps({"schema": {"type": "struct", "optional": False, "fields": [
        {"type": "boolean", "optional": False, "field": "event_time"},
        {"type": "string", "optional": False, "field": "position"},
        {"type": "string", "optional": False, "field": "type_name"},
        {"type": "bytes", "optional": True, "field": "input_data"}]},
        "payload": {"event_time": True, "position": "a", "type_name": "b", "input_data": "AAE="}}).encode(),
])
@pytest.mark.parametrize("mixed", [False, True])
def test_known_poison_envelopes_are_quarantined(store, msg, mixed):
    msgs = [*good[:5], msg, *good[5:]] if mixed else [msg]
    rep = ingest_checked(store, Messages(msgs), SPEC, len(msgs))
    assert rep.quarantined == 1 and rep.accepted == len(msgs) - 1


# ---------------------------------------------------------------------------------------------- JSON Lines
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                         st.floats(allow_nan=False), st.text(max_size=10))
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=3), c,
                                                                                             max_size=2), max_leaves=4)


@st.composite
def odd_json_line(draw):
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=40)).replace(b"\n", b" ")
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    keys = st.sampled_from(["event_time", "position", "input_data", "extra", "_index", "\x00ln", "series_id"])
    return json.dumps(draw(st.dictionaries(keys, json_values, max_size=5))).encode()


def plain(i):
    return json.dumps({"event_time": T0 + i * 1000, "position": f"s{i % 3}", "input_data": i * 0.5}).encode()


@SETTINGS
@given(st.lists(odd_json_line(), min_size=1, max_size=8), st.booleans())
def test_json_lines_alone_and_mixed(store, tmp_path_factory, odd, mixed):
    lines = [*map(plain, range(6)), *odd, *map(plain, range(6, 12))] if mixed else odd
    d = tmp_path_factory.mktemp("jsonl")
    (d / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    n = sum(1 for ln in lines if ln.strip())
    src = FileSource(FileSourceConfig(kind="files", format="jsonl", envelope=False, paths=["*.jsonl"]), d)
    ingest_checked(store, src, FLAT, n)


# ---------------------------------------------------------------------------------------------- CSV
cells = st.one_of(st.sampled_from(['"', '""', '"x"y', ",", "\r", "\n", " ", "", "NaN", "1e999", "-5"]),
                  st.text(alphabet=st.sampled_from('ab,"\n\r1.- é'), max_size=8))


@SETTINGS
@given(st.lists(st.lists(cells, min_size=0, max_size=5).map(",".join), min_size=1, max_size=8), st.booleans(),
       st.integers(2, 50))
def test_csv_alone_and_mixed(store, tmp_path_factory, odd, mixed, batch_rows):
    ok = [f"2026-01-01T00:00:{i:02d},s{i % 3},{i}" for i in range(12)]
    rows = [*ok[:6], *odd, *ok[6:]] if mixed else odd
    d = tmp_path_factory.mktemp("csv")
    (d / "a.csv").write_bytes(("event_time,position,input_data\n" + "\n".join(rows) + "\n").encode())
    src = FileSource(FileSourceConfig(kind="files", paths=["*.csv"], batch_rows=batch_rows), d)
    batches = list(src.batches())
    n = sum(b.consumed for b in batches)
    src2 = FileSource(FileSourceConfig(kind="files", paths=["*.csv"], batch_rows=batch_rows), d)
    rep = ingest_checked(store, src2, FLAT, n)
    if mixed and not any('"' in r or "\r" in r for r in odd):
        assert rep.accepted >= len(ok)  # without quotes the odd rows cannot take good rows with them
