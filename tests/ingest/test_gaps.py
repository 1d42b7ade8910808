"""Gaps between the committed position and the first available record, and unreachable sources: the run fails
with one line and an audit entry (or, with ``on_gap: skip``, the skipped range is recorded)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
import yaml

from tsops.config import load_project
from tsops.ingest.api import ingest
from tsops.ingest.base import GapError, SourceUnavailable
from tsops.testing import faults
from tsops.testing.services import need_kafka_mock

SERIES = faults.SERIES


def project(tmp_path, source, name="sensors"):
    (tmp_path / "tsops.yaml").write_text(yaml.safe_dump({"datasets": {name: {"series": SERIES, "source": source}}}))
    return load_project(tmp_path)


def cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "tsops", "-p", str(tmp_path), *args], capture_output=True,
                          text=True, timeout=300)


def gap_audit(p):
    cat = p.catalog()
    try:
        return cat.list_audit("ingest_gap"), cat.list_runs("sensors", "ingest")
    finally:
        cat.close()


# ---------------------------------------------------------------------------------------------- Kafka
@pytest.fixture(scope="module")
def kafka():
    need_kafka_mock()
    owner, bootstrap = faults.mock_cluster()
    yield bootstrap
    del owner


def _fill_partition(bootstrap, topic, n, size=20_000):
    """Messages of ``size`` bytes to partition 0: the mock keeps about 5 MB per partition, older ones go."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    for _ in range(n):
        p.produce(topic, value=b"x" * size, partition=0)
    assert p.flush(30) == 0


@pytest.mark.services
def test_kafka_retention_gap_fails_with_audit_then_skip_records_it(tmp_path, kafka):
    topic = f"gap-{uuid.uuid4().hex[:8]}"
    expected = faults.produce_topic(kafka, topic, faults.envelope_lines(400, 1, bad_every=0), partitions=1)
    src = faults.kafka_source(kafka, topic, 100, idle_s=2.0)
    p = project(tmp_path, src)
    assert ingest(p, "sensors").consumed == len(expected) == 400
    # retention: 320 large messages (not yet read) push the log start past offset 400
    _fill_partition(kafka, topic, 320)
    with pytest.raises(GapError, match=r"offsets 400\.\.\d+ were deleted by the broker .*on_gap: skip"):
        ingest(p, "sensors")
    audit, runs = gap_audit(p)
    assert audit[-1]["detail"]["action"] == "failed" and audit[-1]["detail"]["committed"] == 400
    assert runs[0]["status"] == "failed" and "GapError" in runs[0]["error"]
    r = cli(tmp_path, "ingest")
    assert r.returncode == 1 and "were deleted by the broker" in r.stderr and "Traceback" not in r.stderr
    # skip: allowed by the config, recorded with the skipped range
    p = project(tmp_path, {**src, "on_gap": "skip"})
    rep = ingest(p, "sensors")
    low = rep.gaps[0]["available"]
    assert rep.gaps[0]["committed"] == 400 and rep.gaps[0]["skipped"] == low - 400 > 0
    assert rep.consumed == 720 - low
    audit, runs = gap_audit(p)
    assert audit[-1]["detail"]["action"] == "skipped" and runs[0]["stats"]["gaps"][0]["skipped"] == low - 400


@pytest.mark.services
def test_kafka_committed_offset_beyond_the_end_is_a_gap(tmp_path, kafka):
    topic = f"recreated-{uuid.uuid4().hex[:8]}"
    faults.produce_topic(kafka, topic, faults.envelope_lines(40, 2, bad_every=0), partitions=1)
    p = project(tmp_path, faults.kafka_source(kafka, topic, 100, idle_s=2.0))
    cat = p.catalog()
    cat.set_positions("sensors", f"kafka:{topic}", {f"{topic}/0": {"next_offset": 1000}})  # an older, longer log
    cat.close()
    with pytest.raises(GapError, match="beyond the partition's end 40: the topic was deleted and recreated"):
        ingest(p, "sensors")
    p = project(tmp_path, {**faults.kafka_source(kafka, topic, 100, idle_s=2.0), "on_gap": "skip"})
    rep = ingest(p, "sensors")
    assert rep.consumed == 40 and rep.accepted == 40  # new batch keys: not mistaken for the old log's batches
    assert p.catalog().get_positions("sensors", f"kafka:{topic}")[f"{topic}/0"] == {"next_offset": 40, "gen": 1}


@pytest.mark.services
def test_kafka_unreachable_or_refused_credentials_exit_1_with_one_line(tmp_path, kafka):
    project(tmp_path, faults.kafka_source("127.0.0.1:9", "t", 100, idle_s=1.0))
    r = cli(tmp_path, "ingest")
    assert r.returncode == 1, r.stderr
    assert "cannot reach the brokers at 127.0.0.1:9" in r.stderr and "Traceback" not in r.stderr
    sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "tsops",
            "sasl.password": "hunter2-secret"}
    project(tmp_path, faults.kafka_source(kafka, "t", 100, idle_s=1.0, **sasl))
    r = cli(tmp_path, "ingest")
    assert r.returncode == 1 and "refused the connection's credentials" in r.stderr, r.stderr
    assert "hunter2" not in r.stderr + r.stdout
    runs = load_project(tmp_path).catalog().list_runs("sensors", "ingest")
    assert [x["status"] for x in runs[:2]] == ["failed", "failed"]


# ---------------------------------------------------------------------------------------------- SQL
def _sql_source(url, table, **kw):
    return {"kind": "sql", "url": url, "table": table, "timestamp_column": "event_time", "id_column": "id",
            "batch_size": 50, **kw}


def test_sql_table_truncated_below_the_watermark_is_a_gap(tmp_path):
    url = f"sqlite:///{tmp_path / 'src.db'}"
    name, expected = faults.sql_table(url, 200, 1)
    p = project(tmp_path, _sql_source(url, name))
    assert ingest(p, "sensors").consumed == 200
    eng = sa.create_engine(url)
    with eng.begin() as c:  # recreated with fewer, older rows
        c.exec_driver_sql(f"DELETE FROM {name} WHERE id >= 100")
    with pytest.raises(GapError, match=r"its newest row is .* below the committed watermark .*truncated or "
                                       r"recreated \(100 rows at or below"):
        ingest(p, "sensors")
    # late rows below the watermark while newer rows exist are not a gap (the delay bound's business)
    with eng.begin() as c:
        c.exec_driver_sql(f"INSERT INTO {name} VALUES (1000, {faults.T0 + 10**9}, 's0', 'C02', 1.0)")
    assert ingest(p, "sensors").consumed == 1
    with eng.begin() as c:
        c.exec_driver_sql(f"DELETE FROM {name}")
    p = project(tmp_path, _sql_source(url, name, on_gap="skip"))
    rep = ingest(p, "sensors")
    assert rep.consumed == 0 and "the table is empty" in rep.gaps[0]["detail"]
    eng.dispose()


def test_sql_connection_failure_exit_1_without_the_password(tmp_path):
    project(tmp_path, _sql_source("mysql+pymysql://tsops:s3cret-pw@127.0.0.1:9/db", "t"))
    r = cli(tmp_path, "ingest")
    assert r.returncode == 1 and "sql: cannot query 't' at mysql+pymysql://tsops:***@127.0.0.1:9/db" in r.stderr, \
        r.stderr
    assert "s3cret" not in r.stderr + r.stdout and "Traceback" not in r.stderr
    with pytest.raises(SourceUnavailable):
        ingest(load_project(tmp_path), "sensors")


def test_on_gap_is_validated(tmp_path):
    from tsops.config import ConfigError

    with pytest.raises(ConfigError, match="on_gap"):
        project(tmp_path, {**_sql_source("sqlite://", "t"), "on_gap": "ignore"})
