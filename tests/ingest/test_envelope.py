"""The Kafka Connect envelope parser: types, bad records with reasons, order, fast path == slow path."""

from __future__ import annotations

import base64
import datetime as dt
import json
import random

import pyarrow as pa
import pytest

from tsops.ingest.envelope import (
    EnvelopeParser,
    SchemaConflictError,
    parse_envelopes,
    parse_json_records,
)

# the real message (tests/ must not depend on ../shared): byte-identical copy of
# shared/data/sensor_envelope_example.json
EXAMPLE = (
    '{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ss_id"},{"type":"float",'
    '"optional":false,"field":"rstart"},{"type":"float","optional":false,"field":"rlev1"},{"type":"float",'
    '"optional":false,"field":"rlev2"},{"type":"float","optional":false,"field":"rlev3"},{"type":"float",'
    '"optional":false,"field":"rlev4"},{"type":"float","optional":true,"field":"rlev5"},{"type":"float",'
    '"optional":true,"field":"rlev6"},{"type":"float","optional":true,"field":"rlev7"},{"type":"float",'
    '"optional":true,"field":"rlev8"},{"type":"float","optional":false,"field":"rend"},{"type":"int64",'
    '"optional":false,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"event_time"},'
    '{"type":"float","optional":true,"field":"input_data"},{"type":"string","optional":false,"field":"position"},'
    '{"type":"string","optional":false,"field":"type_name"},{"type":"string","optional":true,"field":"unit"}],'
    '"optional":false,"name":"SENSOR_DATA_VIEW"},"payload":{"ss_id":2,"rstart":0.0,"rlev1":700.0,"rlev2":800.0,'
    '"rlev3":1000.0,"rlev4":1500.0,"rlev5":0.0,"rlev6":0.0,"rlev7":0.0,"rlev8":0.0,"rend":20000.0,'
    '"event_time":1669102545000,"input_data":460.0,"position":"광 주 A","type_name":"C02","unit":"ppm"}}'
).encode()
EX = json.loads(EXAMPLE)
SCHEMA, PAYLOAD = EX["schema"], EX["payload"]


def env(payload, schema=SCHEMA) -> bytes:
    return json.dumps({"schema": schema, "payload": payload}, separators=(",", ":"), ensure_ascii=False).encode()


def pay(**changes) -> dict:
    p = dict(PAYLOAD)
    for k, v in changes.items():
        if v is _DROP:
            del p[k]
        else:
            p[k] = v
    return p


_DROP = object()


def both(messages):
    """Parse with a fresh fast parser and the strict slow parser; assert they agree; return the fast result."""
    fast = EnvelopeParser().parse(messages)
    slow = EnvelopeParser(fast=False).parse(messages)
    assert fast.table.equals(slow.table), (fast.table, slow.table)
    assert [(b.index, b.reason) for b in fast.bad] == [(b.index, b.reason) for b in slow.bad]
    assert fast.table.num_rows + len(fast.bad) == len(messages)
    return fast


def test_real_example_message():
    r = both([EXAMPLE])
    assert not r.bad
    t = r.table
    assert t.column_names == [f["field"] for f in SCHEMA["fields"]] + ["_index"]
    row = t.to_pylist()[0]
    assert row["ss_id"] == 2 and row["input_data"] == 460.0 and row["rend"] == 20000.0
    assert row["event_time"] == dt.datetime(2022, 11, 22, 7, 35, 45, tzinfo=dt.UTC)
    assert (row["position"], row["type_name"], row["unit"]) == ("광 주 A", "C02", "ppm")
    assert t.schema.field("event_time").type == pa.timestamp("ms", tz="UTC")
    assert t.schema.field("ss_id").type == pa.int64() and t.schema.field("rlev1").type == pa.float64()
    assert row["_index"] == 0


def test_module_level_parse_envelopes_reuses_cache():
    r1 = parse_envelopes([EXAMPLE] * 3)
    r2 = parse_envelopes([EXAMPLE, EXAMPLE])
    assert r1.table.num_rows == 3 and r2.table.column("_index").to_pylist() == [0, 1]


ALL_TYPES_SCHEMA = {
    "type": "struct", "name": "ALL", "optional": False, "fields": [
        {"type": "int8", "optional": False, "field": "i8"},
        {"type": "int16", "optional": False, "field": "i16"},
        {"type": "int32", "optional": False, "field": "i32"},
        {"type": "int64", "optional": False, "field": "i64"},
        {"type": "float", "optional": False, "field": "f"},
        {"type": "float32", "optional": True, "field": "f32"},
        {"type": "double", "optional": True, "field": "d"},
        {"type": "float64", "optional": True, "field": "f64"},
        {"type": "boolean", "optional": False, "field": "b"},
        {"type": "string", "optional": True, "field": "s"},
        {"type": "bytes", "optional": True, "field": "raw"},
        {"type": "int64", "optional": False, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1,
         "field": "ts"},
        {"type": "int32", "optional": True, "name": "org.apache.kafka.connect.data.Date", "version": 1,
         "field": "day"},
        {"type": "int32", "optional": True, "name": "org.apache.kafka.connect.data.Time", "version": 1,
         "field": "tod"},
        {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
         "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "amount"},
    ]}


def dec_b64(unscaled: int) -> str:
    n = max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(n, "big", signed=True)).decode()


def all_types_payload(k: int = 0) -> dict:
    return {"i8": -128 + k % 256, "i16": 32767 - k, "i32": -(2**31) + k, "i64": 2**63 - 1 - k, "f": 460 + k,
            "f32": 1.5, "d": -0.25 * k, "f64": None, "b": k % 2 == 0, "s": f"x{k} 한글 \"q\"",
            "raw": base64.b64encode(bytes([k % 256, 0, 255])).decode(), "ts": 1669102545000 + k,
            "day": 19318 + k, "tod": 3_600_000 + k, "amount": dec_b64(-12345 - k)}


def test_every_connect_type_maps_to_arrow():
    msgs = [env(all_types_payload(k), ALL_TYPES_SCHEMA) for k in range(5)]
    r = both(msgs)
    assert not r.bad
    s = r.table.schema
    expect = {"i8": pa.int64(), "i16": pa.int64(), "i32": pa.int64(), "i64": pa.int64(), "f": pa.float64(),
              "f32": pa.float64(), "d": pa.float64(), "f64": pa.float64(), "b": pa.bool_(), "s": pa.string(),
              "raw": pa.binary(), "ts": pa.timestamp("ms", tz="UTC"), "day": pa.date32(), "tod": pa.time32("ms"),
              "amount": pa.float64(), "_index": pa.int64()}
    assert {f.name: f.type for f in s} == expect
    row = r.table.to_pylist()[1]
    assert row["i8"] == -127 and row["i64"] == 2**63 - 2 and row["f"] == 461.0 and row["b"] is False
    assert row["s"] == 'x1 한글 "q"' and row["raw"] == bytes([1, 0, 255]) and row["f64"] is None
    assert row["ts"] == dt.datetime(2022, 11, 22, 7, 35, 45, 1000, tzinfo=dt.UTC)
    assert row["day"] == dt.date(1970, 1, 1) + dt.timedelta(days=19319)
    assert row["tod"] == dt.time(1, 0, 0, 1000)
    assert row["amount"] == pytest.approx(-123.46)


def test_decimal_as_json_number_is_accepted():
    p = all_types_payload()
    p["amount"] = 12.5
    r = both([env(all_types_payload(), ALL_TYPES_SCHEMA)] * 3 + [env(p, ALL_TYPES_SCHEMA)])
    assert r.table.column("amount").to_pylist()[-1] == 12.5


GOOD = env(PAYLOAD)
UNKNOWN_TYPE_SCHEMA = {**SCHEMA, "fields": [*SCHEMA["fields"][:-1], {"type": "array", "optional": True,
                                                                       "field": "unit"}]}
MALFORMED = [
    ("broken JSON", GOOD[:-5], "malformed JSON"),
    ("not JSON at all", b"hello", "malformed JSON"),
    ("invalid utf-8", GOOD.replace("광".encode(), b"\xff\xfe"), "malformed JSON"),
    ("string for float", env(pay(input_data="abc")), "field 'input_data': expected float, got string 'abc'"),
    ("bool for float", env(pay(rlev1=True)), "field 'rlev1': expected float, got boolean true"),
    ("float for int64", env(pay(ss_id=2.5)), "field 'ss_id': expected int64, got number 2.5"),
    ("integral float for int64", env(pay(ss_id=2.0)), "field 'ss_id': expected int64, got number 2.0"),
    ("number for string", env(pay(position=5)), "field 'position': expected string, got number 5"),
    ("object for string", env(pay(position={"a": 1})), "field 'position': expected string, got object"),
    ("int64 overflow", env(pay(ss_id=2**63)), "field 'ss_id': value 9223372036854775808 is out of range"),
    ("missing required", env(pay(event_time=_DROP)), "missing required field 'event_time'"),
    ("extra field", env(pay(foo=1)), "payload field 'foo' not in schema"),
    ("null in required", env(pay(rstart=None)), "field 'rstart': null in required (non-optional) field"),
    ("tombstone None", None, "tombstone"),
    ("tombstone empty", b"", "tombstone"),
    ("payload array", env([1, 2]), "payload is not a JSON object (got array)"),
    ("payload number", env(5), "payload is not a JSON object (got number 5)"),
    ("payload null", env(None), "payload is null"),
    ("unknown schema type", env(PAYLOAD, UNKNOWN_TYPE_SCHEMA), "schema field 'unit' has unsupported Connect type"),
    ("schema not struct", env(PAYLOAD, {"type": "foo"}), "schema type 'foo' is not supported"),
    ("NaN token", GOOD.replace(b'"input_data":460.0', b'"input_data":NaN'), "non-standard JSON token NaN"),
    ("-Infinity token", GOOD.replace(b'"input_data":460.0', b'"input_data":-Infinity'), "token -Infinity"),
    ("NaN string", env(pay(input_data="NaN")), "field 'input_data': expected float, got string 'NaN'"),
    ("float overflow", GOOD.replace(b'"input_data":460.0', b'"input_data":1e400'),
     "field 'input_data': number inf is not finite"),
    ("duplicate key", GOOD.replace(b'"ss_id":2,', b'"ss_id":2,"ss_id":3,'), "duplicate key 'ss_id'"),
    ("lone surrogate", GOOD.replace(b'"unit":"ppm"', b'"unit":"\\ud800"'),
     "field 'unit': string contains an unpaired"),
    ("extra top-level key", GOOD[:-1] + b',"x":1}', "unexpected 'x'"),
    ("envelope without schema", json.dumps({"payload": PAYLOAD}).encode(), "missing 'schema'"),
    ("envelope is array", b"[1,2]", "envelope is not a JSON object"),
    ("trailing garbage", GOOD + b"}", "malformed JSON"),
    ("raw control char in string", GOOD.replace(b'"unit":"ppm"', b'"unit":"p\tpm"'), "Invalid control character"),
    ("encoded surrogate", GOOD.replace(b'"unit":"ppm"', b'"unit":"\xed\xa0\x80"'), "malformed JSON"),
    ("exponent for int64", GOOD.replace(b'"ss_id":2', b'"ss_id":2e0'), "field 'ss_id': expected int64"),
    ("comment", GOOD.replace(b'"unit":"ppm"', b'"unit":"ppm"/*x*/'), "malformed JSON"),
    ("two objects as payload", GOOD[:-1] + b' {"ss_id":1}}', "malformed JSON"),
    ("space before the final brace", GOOD[:-1] + b" " + GOOD[-1:], None),
]


@pytest.mark.parametrize(("case", "raw", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_message_is_a_bad_record_with_reason(case, raw, reason):
    # surrounded by good messages of the same schema so that the fast path (cached prefix) sees it
    msgs = [GOOD, GOOD, raw, GOOD, GOOD]
    r = both(msgs)
    if reason is None:  # whitespace before the final brace: still a good message
        assert not r.bad
        return
    assert [b.index for b in r.bad] == [2], case
    assert reason in r.bad[0].reason, r.bad[0].reason
    assert r.bad[0].raw == (raw or b"")
    assert r.table.column("_index").to_pylist() == [0, 1, 3, 4]


def test_out_of_range_small_ints_and_bad_base64():
    s = ALL_TYPES_SCHEMA
    p1, p2, p3, p4 = (all_types_payload() for _ in range(4))
    p1["i8"] = 128
    p2["i32"] = 2**31
    p3["raw"] = "not base64!"
    p4["tod"] = 86_400_000
    good = env(all_types_payload(), s)
    r = both([good, env(p1, s), good, env(p2, s), env(p3, s), good, env(p4, s), good])
    reasons = {b.index: b.reason for b in r.bad}
    assert set(reasons) == {1, 3, 4, 6}
    assert "field 'i8': value 128 is out of range for int8" in reasons[1]
    assert "field 'i32'" in reasons[3] and "field 'raw'" in reasons[4] and "field 'tod'" in reasons[6]


def test_mixed_batch_keeps_order_and_index_mapping():
    msgs, expect_good = [], []
    for k in range(60):
        if k % 7 == 3:
            msgs.append(env(pay(input_data=f"bad{k}")))
        elif k % 11 == 5:
            msgs.append(None)
        else:
            msgs.append(env(pay(ss_id=k, input_data=float(k))))
            expect_good.append(k)
    r = both(msgs)
    assert r.table.column("_index").to_pylist() == expect_good
    assert r.table.column("ss_id").to_pylist() == expect_good
    assert [b.index for b in r.bad] == sorted(set(range(60)) - set(expect_good))
    assert all(b.raw == (msgs[b.index] or b"") for b in r.bad)


def test_whitespace_and_key_order_variants_parse_like_compact():
    ref = parse_envelopes([EXAMPLE]).table.drop(["_index"]).to_pylist()[0]
    variants = [
        json.dumps(EX, indent=2, ensure_ascii=False).encode(),
        json.dumps({"payload": PAYLOAD, "schema": SCHEMA}, ensure_ascii=False).encode(),
        json.dumps(EX, ensure_ascii=True).encode(),
        json.dumps(EX, separators=(", ", " : "), ensure_ascii=False).encode(),
        EXAMPLE + b"\n",
        b"  " + EXAMPLE.replace(b'"payload":{', b'"payload": {') + b"\r\n",
        json.dumps({"schema": SCHEMA, "payload": dict(reversed(PAYLOAD.items()))}).encode(),
        # the cached compact schema block followed by a pretty-printed payload (raw newlines / CRs)
        EXAMPLE[: EXAMPLE.index(b'"payload":') + 10] + json.dumps(PAYLOAD, indent=1).encode() + b"}",
        EXAMPLE[: EXAMPLE.index(b'"payload":') + 10] + json.dumps(PAYLOAD, indent=1).encode().replace(
            b"\n", b"\r\n") + b"}",
        EXAMPLE.replace(b'"rlev1":700.0,', b'"rlev1":700.0,\r'),
        EXAMPLE.replace(b'"rlev1":700.0,', b'"rlev1":700.0,\n') + b" \n",
    ]
    r = both([EXAMPLE, *variants, EXAMPLE])
    assert not r.bad, r.bad
    for row in r.table.drop(["_index"]).to_pylist():
        assert row == ref


def test_schema_change_mid_batch_unions_fields():
    schema2 = {**SCHEMA, "fields": [*SCHEMA["fields"], {"type": "int32", "optional": True, "field": "floor"}]}
    p2 = pay(floor=3)
    msgs = [GOOD, GOOD, env(p2, schema2), env(p2, schema2), GOOD]
    r = both(msgs)
    assert r.table.column_names[-2:] == ["floor", "_index"]
    assert r.table.column("floor").to_pylist() == [None, None, 3, 3, None]
    assert r.table.column("_index").to_pylist() == [0, 1, 2, 3, 4]


def test_schema_conflict_quarantines_minority_schema_or_raises():
    fields = [dict(f, type="string") if f["field"] == "input_data" else f for f in SCHEMA["fields"]]
    s2 = {**SCHEMA, "fields": fields}
    msgs = [env(pay(input_data="460"), s2), GOOD, GOOD]
    r = both(msgs)
    assert r.table.column("_index").to_pylist() == [1, 2]
    assert [b.index for b in r.bad] == [0]
    assert "schema conflict: field 'input_data' is string" in r.bad[0].reason and "double" in r.bad[0].reason
    with pytest.raises(SchemaConflictError, match="field 'input_data' is string .* double"):
        EnvelopeParser(on_conflict="raise").parse(msgs)


def test_field_named_payload_and_payload_text_in_values():
    s = {"type": "struct", "fields": [{"type": "string", "optional": False, "field": "payload"},
                                      {"type": "int64", "optional": False, "field": "n"}]}
    msgs = [env({"payload": '"payload":{"x":1}}', "n": k}, s) for k in range(5)]
    msgs.append(env({"payload": 7, "n": 9}, s))
    r = both(msgs)
    assert r.table.column("payload").to_pylist() == ['"payload":{"x":1}}'] * 5
    assert [b.index for b in r.bad] == [5]


def _random_value(rng: random.Random, typ: str):
    if typ == "int64":
        return rng.choice([0, -1, 2**63 - 1, -(2**63), rng.randint(-(10**12), 10**12)])
    if typ == "float":
        return rng.choice([0.0, -0.0, 460, 1e-300, 1.7976931348623157e308, rng.uniform(-1e6, 1e6),
                           round(rng.uniform(0, 3000), 1), 12345678901234567890123])
    return "".join(rng.choice('ab한\\"\n\t/ ') for _ in range(rng.randint(0, 8)))


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    k = rng.randrange(len(raw))
    op = rng.randrange(6)
    if op == 0:
        return raw[:k] + raw[k + 1:]
    if op == 1:
        return raw[:k] + rng.choice([b'"', b"}", b",", b"{", b"x", b" ", b"\n", b"\r", b"1", b"\xc3"]) + raw[k:]
    if op == 2:
        return raw.replace(b'"rlev1":', b'"rlev1":"', 1)
    if op == 3:
        return raw.replace(b'"ss_id":', b'"ss_id":1.', 1)
    if op == 4:
        return raw.replace(b',"unit":', b',"unit2":', 1)
    return raw[:k]


def test_fast_and_slow_paths_agree_on_random_messages():
    rng = random.Random(1234)
    types = {f["field"]: ("int64" if f["type"] == "int64" else "string" if f["type"] == "string" else "float")
             for f in SCHEMA["fields"]}
    optional = {f["field"] for f in SCHEMA["fields"] if f["optional"]}
    for _round in range(4):
        msgs = []
        for _ in range(400):
            p = {k: _random_value(rng, t) for k, t in types.items()}
            for k in optional:
                if rng.random() < 0.2:
                    p[k] = None
            raw = env(p)
            if rng.random() < 0.15:
                raw = _mutate(rng, raw)
            msgs.append(raw)
        r = both(msgs)
        assert 0 < len(r.bad) < len(msgs)


def test_large_batch_with_scattered_errors_matches_slow_path():
    # more lines than one vectorised chunk (8192), errors with and without a row hint from the reader
    rng = random.Random(7)
    bad_makers = [
        lambda: env(pay(input_data="x")),  # type change (row hint)
        lambda: env(pay(foo=1)),  # unexpected field (no row hint)
        lambda: env(pay(ss_id=1.5)),  # int conversion (no row hint)
        lambda: GOOD[:-9] + b"}",  # truncated
        lambda: GOOD.replace(b"460.0", b"Infinity"),  # accepted by the reader, caught by the finite check
        lambda: env(pay(position=None)),  # null in required, caught by the null check
        lambda: GOOD[:-1] + b' {"ss_id":1}}',  # two objects on one line (row count mismatch)
        lambda: GOOD.replace("광".encode(), b"\xff"),  # invalid UTF-8, caught by the UTF-8 check
    ]
    msgs = [env(pay(ss_id=k, input_data=k / 10)) for k in range(9000)]
    bad_at = sorted(rng.sample(range(9000), 40))
    for j, k in enumerate(bad_at):
        msgs[k] = bad_makers[j % len(bad_makers)]()
    r = both(msgs)
    assert [b.index for b in r.bad] == bad_at
    assert r.table.num_rows == 9000 - 40


def test_parse_json_records_with_schema_and_inferred():
    schema = pa.schema([pa.field("id", pa.int32(), nullable=False), ("v", pa.float64()), ("name", pa.string()),
                        ("ts", pa.timestamp("ms", tz="UTC"))])
    msgs = [b'{"id":1,"v":1.5,"name":"a","ts":1000}', b'{"id":2,"v":2,"name":null}', b'{"id":"3","v":1}',
            b'{"v":1}', b"not json", None, b'{"id":4,"extra":true}', b'{"id":5,"v":NaN}']
    fast = parse_json_records(msgs, schema, parser=EnvelopeParser())
    slow = parse_json_records(msgs, schema, parser=EnvelopeParser(fast=False))
    assert fast.table.equals(slow.table)
    assert [(b.index, b.reason) for b in fast.bad] == [(b.index, b.reason) for b in slow.bad]
    assert fast.table.column("id").to_pylist() == [1, 2]
    assert fast.table.column("v").to_pylist() == [1.5, 2.0]
    assert fast.table.column("ts").to_pylist()[0] == dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    reasons = {b.index: b.reason for b in fast.bad}
    assert "field 'id': expected int32, got string '3'" in reasons[2]
    assert "missing required field 'id'" in reasons[3]
    assert "malformed JSON" in reasons[4] and "empty" in reasons[5]
    assert "field 'extra' not in schema" in reasons[6] and "NaN" in reasons[7]

    inferred = parse_json_records([b'{"a":1,"b":"x"}', b'{"a":2.5,"c":true}', b'{"a":"no"}'],
                                  parser=EnvelopeParser())
    assert inferred.table.schema.field("a").type == pa.float64()
    assert inferred.table.column("a").to_pylist() == [1.0, 2.5]
    assert inferred.table.column("c").to_pylist() == [None, True]
    assert [b.index for b in inferred.bad] == [2]


def test_unsupported_arrow_schema_type_names_the_field():
    with pytest.raises(ValueError, match="field 'x': Arrow type list"):
        parse_json_records([b"{}"], pa.schema([("x", pa.list_(pa.int64()))]))


def test_empty_batch_and_fast_path_is_really_taken(monkeypatch):
    r = parse_envelopes([], parser=EnvelopeParser())
    assert r.table.num_rows == 0 and r.bad == [] and r.table.column_names == ["_index"]

    import tsops.ingest.envelope as envelope

    calls = []
    real = envelope._check_payload
    monkeypatch.setattr(envelope, "_check_payload", lambda s, p: calls.append(1) or real(s, p))
    parser = EnvelopeParser()
    msgs = [env(pay(ss_id=k)) for k in range(200)]
    r = parser.parse(msgs)
    assert r.table.num_rows == 200 and not r.bad
    assert len(calls) == 0  # no message needed the per-message path: the schema block was learnt and cached
    r = parser.parse([*msgs[:50], env(pay(input_data="x")), *msgs[50:]])
    assert len(calls) == 1 and [b.index for b in r.bad] == [50]


def test_parser_itself_never_raises_on_found_poison():
    """Messages hypothesis found making the parser raise (now bad records with a reason)."""
    date_out_of_range = json.dumps({"schema": {"type": "struct", "optional": False, "fields": [
        {"type": "int8", "optional": False, "field": "position"},
        {"type": "int32", "name": "org.apache.kafka.connect.data.Date", "optional": False, "field": "d"}]},
        "payload": {"d": 2147483648}}).encode()
    for msgs in ([date_out_of_range], [EXAMPLE, date_out_of_range, EXAMPLE]):
        out = EnvelopeParser().parse(msgs)
        assert out.table.num_rows + len(out.bad) == len(msgs) and len(out.bad) == 1
    reserved = [b'{"a": 1}', b'{"a": 2, "\\u0000ln": 0}', b'{"_index": 3}']
    out = parse_json_records(reserved)
    assert out.table.num_rows == 1 and [b.index for b in out.bad] == [1, 2]
    assert "not in schema" in out.bad[0].reason
