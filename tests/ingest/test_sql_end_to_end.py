"""A sensor view in MariaDB / PostgreSQL, polled straight into the lake or published to Kafka and consumed."""

import uuid

import pytest
import sqlalchemy as sa
import yaml

from tsops.config import load_project
from tsops.ingest.api import ingest
from tsops.testing.services import need_kafka_mock, need_mariadb, need_postgres

pytestmark = pytest.mark.services
SERIES = {"timestamp": "event_time", "keys": ["position", "type_name"], "values": ["input_data"]}


def make_view(url, n):
    """A SENSOR_DATA table and a view over it, like the production sensor database."""
    eng = sa.create_engine(url)
    tag = uuid.uuid4().hex[:8]
    table, view = f"sensor_data_{tag}", f"SENSOR_DATA_VIEW_{tag}"
    md = sa.MetaData()
    t = sa.Table(table, md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("ss_id", sa.BigInteger), sa.Column("event_time", sa.DateTime),
                 sa.Column("input_data", sa.Float), sa.Column("position", sa.String(50)),
                 sa.Column("type_name", sa.String(20)), sa.Column("unit", sa.String(10)))
    md.create_all(eng)
    import datetime as dt

    t0 = dt.datetime(2026, 1, 1)
    rows = [{"id": i, "ss_id": i % 4, "event_time": t0 + dt.timedelta(minutes=10 * (i // 4)),
             "input_data": 400.0 + i, "position": f"광주 {'AB'[i % 2]}", "type_name": ["C02", "TEMP"][i % 4 // 2],
             "unit": "ppm"} for i in range(n)]
    with eng.begin() as c:
        c.execute(t.insert(), rows)
        q = eng.dialect.identifier_preparer.quote
        c.exec_driver_sql(f"CREATE VIEW {q(view)} AS SELECT * FROM {q(table)}")
    return eng, t, view


def drop(eng, t, view):
    q = eng.dialect.identifier_preparer.quote
    with eng.begin() as c:
        c.exec_driver_sql(f"DROP VIEW IF EXISTS {q(view)}")
    t.drop(eng)
    eng.dispose()


@pytest.mark.parametrize("db", ["mariadb", "postgresql"])
def test_view_polled_into_the_lake_incrementally(tmp_path, db):
    url = need_mariadb() if db == "mariadb" else need_postgres()
    eng, t, view = make_view(url, 1000)
    try:
        cfg = {"datasets": {"building": {"series": SERIES, "source": {
            "kind": "sql", "url": url, "table": view, "timestamp_column": "event_time", "id_column": "id",
            "batch_size": 128}}}}
        (tmp_path / "tsops.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
        project = load_project(tmp_path)
        rep = ingest(project, "building")
        assert rep.consumed == rep.accepted == 1000
        with eng.begin() as c:  # new rows, some sharing the last timestamp
            c.execute(t.insert(), [{"id": 1000 + i, "ss_id": 0, "event_time": "2026-01-01 00:00:00",
                                    "input_data": 1.0, "position": "광주 A", "type_name": "C02", "unit": "ppm"}
                                   for i in range(3)])
        import datetime as dt

        with eng.begin() as c:
            c.execute(t.insert(), [{"id": 2000, "ss_id": 0, "event_time": dt.datetime(2026, 1, 3),
                                    "input_data": 2.0, "position": "광주 A", "type_name": "C02", "unit": "ppm"}])
        rep2 = ingest(project, "building")
        # rows with an older timestamp than the watermark are not seen (as with Kafka Connect's JDBC source)
        assert rep2.consumed == 1
        raw = project.lake().read("raw", "building")
        assert raw.num_rows == 1001
        assert sorted(set(raw.column("series_id").to_pylist())) == sorted(
            ["광주 A|C02", "광주 B|C02", "광주 A|TEMP", "광주 B|TEMP"])
    finally:
        drop(eng, t, view)


def test_view_published_to_kafka_then_ingested(tmp_path):
    url = need_mariadb()
    need_kafka_mock()
    from confluent_kafka import Producer

    owner = Producer({"test.mock.num.brokers": 1})
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in owner.list_topics(timeout=10).brokers.values())
    eng, t, view = make_view(url, 600)
    topic = f"sensors-{uuid.uuid4().hex[:6]}"
    try:
        cfg = {"datasets": {
            "publisher": {"series": SERIES, "source": {
                "kind": "sql", "url": url, "table": view, "timestamp_column": "event_time", "id_column": "id",
                "batch_size": 100, "to": "kafka", "kafka_bootstrap_servers": bootstrap, "kafka_topic": topic,
                "kafka_key_columns": ["ss_id"]}},
            "sensors": {"series": SERIES, "source": {
                "kind": "kafka", "bootstrap_servers": bootstrap, "topic": topic, "group_id": f"g{topic}",
                "idle_timeout_s": 5, "consumer": {"session.timeout.ms": 3000}}},
        }}
        (tmp_path / "tsops.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
        project = load_project(tmp_path)
        pub = ingest(project, "publisher")
        assert pub.consumed == 600
        assert ingest(project, "publisher").consumed == 0  # the watermark is in the catalog
        rep = ingest(project, "sensors")
        assert rep.consumed == rep.accepted == 600
        raw = project.lake().read("raw", "sensors").to_pandas()
        assert raw["ss_id"].nunique() == 4 and raw["value"].sum() == sum(400.0 + i for i in range(600))
        assert str(raw["ts"].min()) == "2026-01-01 00:00:00+00:00"
    finally:
        drop(eng, t, view)
        owner.flush(1)
