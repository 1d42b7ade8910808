"""SqlPollingSource against SQLite, the real MariaDB and PostgreSQL; SqlToKafka against the Kafka mock."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from tsops.config import SqlSourceConfig
from tsops.ingest.sql import KafkaDeliveryError, SqlPollingSource, SqlToKafka, make_engine
from tsops.testing.services import need_kafka_mock, need_mariadb, need_postgres

DT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
T0 = datetime(2024, 3, 1, 12, 0, 0)
EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "sensor_envelope_example.json"


@pytest.fixture(
    params=["sqlite", pytest.param("mariadb", marks=pytest.mark.services),
            pytest.param("postgres", marks=pytest.mark.services)]
)
def db(request, tmp_path):
    """(url, engine) of a fresh database; tables made by a test are dropped afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'src.db'}"
    elif request.param == "mariadb":
        url = need_mariadb()
    else:
        url = need_postgres()
    eng = make_engine(url)
    md = sa.MetaData()
    views: list[str] = []
    yield url, eng, md, views
    with eng.begin() as c:
        q = eng.dialect.identifier_preparer.quote
        for v in views:
            c.execute(sa.text(f"DROP VIEW IF EXISTS {q(v)}"))
    md.drop_all(eng)
    eng.dispose()


def uname(prefix: str = "tsops_t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def make_table(eng, md, name, *, ts_type=DT, ts_name="ts", id_col=True, extra=()):
    cols = [sa.Column(ts_name, ts_type, nullable=True)]
    if id_col:
        cols.insert(0, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
    cols += [sa.Column("val", sa.Double), sa.Column("sensor", sa.String(40)), *extra]
    t = sa.Table(name, md, *cols)
    t.create(eng)
    return t


def insert(eng, t, rows):
    with eng.begin() as c:
        c.execute(t.insert(), rows)


def cfg_for(url, table, **kw) -> SqlSourceConfig:
    return SqlSourceConfig(kind="sql", url=url, table=table, timestamp_column=kw.pop("ts", "ts"), **kw)


def drain(cfg, positions, **kw):
    """Run a fresh source from ``positions`` like the runner does; returns (batches, new positions)."""
    pos = dict(positions)
    with SqlPollingSource(cfg, **kw) as src:
        src.open(pos)
        out = list(src.batches())
    for b in out:
        pos.update(b.positions)
    # positions go through the catalog as JSON
    return out, json.loads(json.dumps(pos))


def ids_of(batches) -> list[int]:
    return [i for b in batches for i in b.records.column("id").to_pylist()]


def test_incremental_polls_with_inserts_between(db):
    url, eng, md, _ = db
    name = uname()
    t = make_table(eng, md, name)
    insert(eng, t, [{"id": i, "ts": T0 + timedelta(seconds=i), "val": i / 2, "sensor": "a"} for i in range(50)])
    cfg = cfg_for(url, name, id_column="id", batch_size=7)
    b1, pos = drain(cfg, {})
    assert ids_of(b1) == list(range(50))
    assert len(b1) == 8 and all(b.records.num_rows <= 7 for b in b1)
    assert pos[name]["id"] == 49
    insert(eng, t, [{"id": i, "ts": T0 + timedelta(seconds=i), "val": 1.0, "sensor": "b"} for i in range(50, 70)])
    b2, pos = drain(cfg, pos)
    assert ids_of(b2) == list(range(50, 70))
    b3, pos2 = drain(cfg, pos)
    assert b3 == [] and pos2 == pos
    r = b1[0].records
    assert r.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert r.schema.field("id").type == pa.int64() and r.schema.field("val").type == pa.float64()
    assert r.column("ts")[0].as_py() == T0.replace(tzinfo=UTC)
    assert b1[0].src == f"sql:{name}"


def _grouped_rows(with_id: bool):
    sizes = [3, 5, 1, 12, 2, 4]
    rows, i = [], 0
    for g, n in enumerate(sizes):
        for _ in range(n):
            r = {"ts": T0 + timedelta(minutes=g), "val": float(i), "sensor": f"s{i}"}
            if with_id:
                r["id"] = 1000 - i  # ids need not follow insertion order across timestamps
            rows.append(r)
            i += 1
    return sizes, rows


@pytest.mark.parametrize("with_id", [False, True])
def test_equal_timestamps_straddling_batches(db, with_id):
    url, eng, md, _ = db
    name = uname()
    t = make_table(eng, md, name, id_col=with_id)
    sizes, rows = _grouped_rows(with_id)
    insert(eng, t, rows)
    cfg = cfg_for(url, name, id_column="id" if with_id else None, batch_size=4)
    # resume from the committed position after every single batch (a new source each time)
    pos, got, batches = {}, [], []
    while True:
        with SqlPollingSource(cfg) as src:
            src.open(pos)
            b = next(iter(src.batches()), None)
        if b is None:
            break
        batches.append(b)
        got += b.records.column("sensor").to_pylist()
        pos = json.loads(json.dumps({**pos, **b.positions}))
    assert sorted(got) == sorted(r["sensor"] for r in rows)  # nothing lost, nothing repeated
    assert len(got) == len(rows)
    if with_id:
        assert all(b.records.num_rows <= 4 for b in batches)
    else:
        # no batch ends inside a timestamp group; the 12-row group is read whole
        ends = [b.records.column("ts")[-1].as_py() for b in batches]
        for b, end in zip(batches[:-1], ends[:-1], strict=True):
            nxt = batches[batches.index(b) + 1].records.column("ts")[0].as_py()
            assert nxt > end
        assert max(b.records.num_rows for b in batches) == 12
    keys = [b.key for b in batches]
    assert len(set(keys)) == len(keys)


def test_resume_from_position_and_deterministic_keys(db):
    url, eng, md, _ = db
    name = uname()
    t = make_table(eng, md, name)
    insert(eng, t, [{"id": i, "ts": T0 + timedelta(seconds=i // 3), "val": 0.0, "sensor": "x"} for i in range(30)])
    cfg = cfg_for(url, name, id_column="id", batch_size=5)
    with SqlPollingSource(cfg) as src:
        src.open({})
        it = src.batches()
        first = [next(it), next(it)]
    pos = json.loads(json.dumps(first[1].positions))
    assert pos == {name: {"ts": (T0 + timedelta(seconds=3)).isoformat(), "id": 9}}
    rest, _ = drain(cfg, pos)
    assert ids_of(first) + ids_of(rest) == list(range(30))
    # replaying from the same committed position yields the same batch keys (idempotent lake file names)
    again, _ = drain(cfg, pos)
    assert [b.key for b in again] == [b.key for b in rest]
    assert all(set(k) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") for k in
               [b.key for b in rest])
    assert rest[0].key.startswith(f"sql-{name}-20240301T120003000000_9-")


def test_delay_bound(db):
    url, eng, md, _ = db
    name = uname()
    t = make_table(eng, md, name)
    now = datetime(2025, 6, 1, 10, 0, 0, tzinfo=UTC)
    naive = now.replace(tzinfo=None)
    insert(eng, t, [
        {"id": 1, "ts": naive - timedelta(hours=2), "val": 1.0, "sensor": "old"},
        {"id": 2, "ts": naive - timedelta(seconds=10), "val": 2.0, "sensor": "fresh"},
    ])
    cfg = cfg_for(url, name, id_column="id", delay_s=60)
    b, pos = drain(cfg, {}, now=lambda: now)
    assert ids_of(b) == [1]
    b, pos = drain(cfg, pos, now=lambda: now + timedelta(seconds=51))
    assert ids_of(b) == [2]


def test_view_and_odd_names(db):
    url, eng, md, views = db
    suffix = uuid.uuid4().hex[:6]
    name = f"Sensor Data-{suffix}"
    t = make_table(eng, md, name, ts_name="event time", extra=[sa.Column("Input Data", sa.Float)])
    insert(eng, t, [{"id": i, "event time": T0 + timedelta(minutes=i), "val": 1.0, "sensor": "s",
                     "Input Data": i * 1.5} for i in range(9)])
    cfg = cfg_for(url, name, ts="event time", id_column="id", batch_size=4)
    b, _ = drain(cfg, {})
    assert ids_of(b) == list(range(9))
    assert b[0].records.column("Input Data").to_pylist()[:2] == [0.0, 1.5]
    assert all(set(x.key) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") for x in b)

    view = f"SENSOR_DATA_VIEW_{suffix.upper()}"
    q = eng.dialect.identifier_preparer.quote
    with eng.begin() as c:
        c.execute(sa.text(
            f"CREATE VIEW {q(view)} AS SELECT {q('id')}, {q('event time')} AS {q('event_time')}, "
            f"{q('Input Data')} AS {q('input_data')}, {q('sensor')} FROM {q(name)} WHERE {q('id')} % 2 = 0"
        ))
    views.append(view)
    vcfg = cfg_for(url, view, ts="event_time", id_column="id", batch_size=2)
    vb, vpos = drain(vcfg, {})
    assert ids_of(vb) == [0, 2, 4, 6, 8]
    assert vb[0].records.column_names == ["id", "event_time", "input_data", "sensor"]
    assert vpos[view]["id"] == 8
    if eng.dialect.name == "postgresql":  # created unquoted -> folded to lower case; configured in upper case
        low = f"sensor_view_{suffix}"
        with eng.begin() as c:
            c.execute(sa.text(f"CREATE VIEW {low} AS SELECT id, {q('event time')} AS ts FROM {q(name)}"))
        views.append(low)
        lb, _ = drain(cfg_for(url, low.upper(), id_column="id"), {})
        assert ids_of(lb) == list(range(9))


def test_epoch_ms_and_types(db):
    url, eng, md, _ = db
    name = uname()
    t = sa.Table(
        name, md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("event_ms", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.Numeric(10, 3)),
        sa.Column("f32", sa.REAL().with_variant(mysql.FLOAT(), "mysql", "mariadb")),
        sa.Column("name", sa.String(20), nullable=False),
    )
    t.create(eng)
    base = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
    insert(eng, t, [{"id": i, "event_ms": base + (i // 2) * 1000, "amount": f"{i}.125", "f32": 0.5 * i,
                     "name": "ü" * i} for i in range(11)])
    now = datetime(2024, 1, 1, 0, 0, 4, tzinfo=UTC)
    cfg = cfg_for(url, name, ts="event_ms", batch_size=3, delay_s=0)
    b, pos = drain(cfg, {}, now=lambda: now)
    got = [r for x in b for r in x.records.to_pylist()]
    assert [r["id"] for r in sorted(got, key=lambda r: r["id"])] == list(range(10))  # ts <= now: 4 s -> id<10
    assert pos[name]["ts"] == base + 4000 and pos[name]["id"] is None
    s = b[0].records.schema
    assert s.field("event_ms").type == pa.int64()
    assert s.field("amount").type == pa.float64()
    assert not s.field("name").nullable and s.field("amount").nullable
    if eng.dialect.name != "sqlite":
        assert s.field("f32").type == pa.float32()
    assert sorted(r["amount"] for r in got)[:2] == [0.125, 1.125]


def test_naive_datetime_in_configured_zone_and_tz_aware(db):
    url, eng, md, _ = db
    name = uname()
    t = make_table(eng, md, name)
    insert(eng, t, [{"id": 1, "ts": datetime(2024, 7, 1, 14, 0), "val": 1.0, "sensor": "a"}])
    b, pos = drain(cfg_for(url, name, id_column="id"), {}, timezone="Europe/Rome")
    assert b[0].records.column("ts")[0].as_py() == datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    assert pos[name]["ts"] == "2024-07-01T14:00:00"
    if eng.dialect.name == "postgresql":
        name2 = uname()
        t2 = make_table(eng, md, name2, ts_type=sa.DateTime(timezone=True))
        aware = datetime(2024, 7, 1, 14, 0, tzinfo=UTC)
        insert(eng, t2, [{"id": i, "ts": aware + timedelta(seconds=i // 2), "val": 1.0, "sensor": "a"}
                         for i in range(5)])
        cfg2 = cfg_for(url, name2, id_column="id", batch_size=2)
        b1, p1 = drain(cfg2, {})
        assert ids_of(b1) == list(range(5))
        assert datetime.fromisoformat(p1[name2]["ts"]) == aware + timedelta(seconds=2)
        b2, _ = drain(cfg2, p1)
        assert b2 == []


def test_missing_table_and_column_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    eng = make_engine(url)
    md = sa.MetaData()
    make_table(eng, md, "present")
    with pytest.raises(LookupError, match="'absent' does not exist"):
        drain(cfg_for(url, "absent"), {})
    with pytest.raises(KeyError, match="column 'nope' not found in 'present'"):
        drain(cfg_for(url, "present", id_column="nope"), {})
    eng.dispose()


# --------------------------------------------------------------------------------------------- Kafka bridge
@pytest.fixture
def kafka_mock():
    need_kafka_mock()
    from confluent_kafka import Producer

    owner = Producer({"test.mock.num.brokers": 1})
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in owner.list_topics(timeout=10).brokers.values())
    yield bootstrap
    owner.flush(1)


def _consume_all(bootstrap: str, topic: str, n: int) -> list:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uname("g"), "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out: list[bytes] = []
    import time

    deadline = time.time() + 20
    while len(out) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            out.append(m)
    c.close()
    return out


def _sensor_table(eng, md, name):
    t = sa.Table(
        name, md,
        sa.Column("ss_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("rstart", sa.Float, nullable=False),
        sa.Column("event_time", DT, nullable=False),
        sa.Column("input_data", sa.Float, nullable=True),
        sa.Column("position", sa.String(40), nullable=False),
        sa.Column("type_name", sa.String(10), nullable=False),
    )
    t.create(eng)
    rows = [{"ss_id": i, "rstart": 0.0, "event_time": T0 + timedelta(seconds=i // 2, milliseconds=250),
             "input_data": None if i == 3 else 400.0 + i, "position": "광 주 A", "type_name": "C02"}
            for i in range(25)]
    insert(eng, t, rows)
    return rows


@pytest.mark.services
def test_sql_to_kafka_round_trip(tmp_path, kafka_mock):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    eng = make_engine(url)
    name = "SENSOR_DATA_VIEW"
    rows = _sensor_table(eng, sa.MetaData(), name)
    topic = uname("sensors")
    cfg = SqlSourceConfig(kind="sql", url=url, table=name, timestamp_column="event_time", id_column="ss_id",
                          batch_size=10, to="kafka", kafka_bootstrap_servers=kafka_mock, kafka_topic=topic)
    commits: list[dict] = []
    pos = SqlToKafka(cfg, {"linger.ms": 1}, key_columns=["ss_id"]).run({}, on_commit=commits.append)
    assert [c[name]["id"] for c in commits] == [9, 19, 24]
    assert pos == commits[-1]
    consumed = _consume_all(kafka_mock, topic, len(rows))
    assert len(consumed) == len(rows)
    assert sorted(int(m.key()) for m in consumed) == list(range(25))
    msgs = [m.value() for m in consumed]
    env = json.loads(msgs[0])
    fields = {f["field"]: f for f in env["schema"]["fields"]}
    assert env["schema"]["name"] == name and env["schema"]["type"] == "struct"
    assert fields["event_time"] == {"type": "int64", "optional": False,
                                    "name": "org.apache.kafka.connect.data.Timestamp", "version": 1,
                                    "field": "event_time"}
    assert fields["ss_id"]["type"] == "int64" and fields["rstart"]["type"] == "double"
    assert fields["input_data"]["optional"] is True and fields["position"]["optional"] is False
    payloads = sorted((json.loads(m)["payload"] for m in msgs), key=lambda p: p["ss_id"])
    for p, r in zip(payloads, rows, strict=True):
        assert p["event_time"] == int(r["event_time"].replace(tzinfo=UTC).timestamp() * 1000)
        assert p["input_data"] == r["input_data"] and p["position"] == r["position"]
    # nothing new: no message, no commit; a restart from the committed watermark publishes nothing again
    commits.clear()
    assert SqlToKafka(cfg, {"linger.ms": 1}).run(pos, on_commit=commits.append) == pos
    assert commits == []

    envelope = pytest.importorskip("tsops.ingest.envelope")
    parsed = envelope.parse_envelopes(msgs)
    assert parsed.bad == []
    back = sorted(parsed.table.drop_columns(["_index"]).to_pylist(), key=lambda r: r["ss_id"])
    for b, r in zip(back, rows, strict=True):
        assert b["event_time"] == r["event_time"].replace(tzinfo=UTC)
        assert {k: b[k] for k in ("ss_id", "rstart", "input_data", "position", "type_name")} == \
            {k: r[k] for k in ("ss_id", "rstart", "input_data", "position", "type_name")}
    eng.dispose()


@pytest.mark.services
def test_sql_to_kafka_keeps_watermark_when_delivery_fails(tmp_path):
    need_kafka_mock()
    url = f"sqlite:///{tmp_path / 'f.db'}"
    eng = make_engine(url)
    _sensor_table(eng, sa.MetaData(), "t")
    cfg = SqlSourceConfig(kind="sql", url=url, table="t", timestamp_column="event_time", id_column="ss_id",
                          kafka_topic="x", kafka_bootstrap_servers="127.0.0.1:1")
    commits: list[dict] = []
    bridge = SqlToKafka(cfg, {"message.timeout.ms": 1500, "socket.connection.setup.timeout.ms": 1000},
                        flush_timeout_s=5)
    with pytest.raises(KafkaDeliveryError, match="watermark was not advanced"):
        bridge.run({}, on_commit=commits.append)
    assert commits == []
    eng.dispose()


def test_connect_encoder_matches_production_example():
    from tsops.ingest.connect import encode_envelopes

    example = EXAMPLE.read_bytes().strip()
    env = json.loads(example)
    types = {"int64": pa.int64(), "float": pa.float32(), "string": pa.string()}
    fields = []
    for f in env["schema"]["fields"]:
        t = pa.timestamp("ms", tz="UTC") if f.get("name") else types[f["type"]]
        fields.append(pa.field(f["field"], t, nullable=f["optional"]))
    schema = pa.schema(fields)
    payload = dict(env["payload"])
    payload["event_time"] = datetime.fromtimestamp(payload["event_time"] / 1000, tz=UTC)
    table = pa.Table.from_pylist([payload], schema=schema)
    assert encode_envelopes(table, "SENSOR_DATA_VIEW") == [example]
