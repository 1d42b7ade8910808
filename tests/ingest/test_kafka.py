"""Kafka ingestion against librdkafka's mock cluster (real wire protocol, no broker needed)."""

import os
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from tsops.config import load_project
from tsops.ingest.api import ingest
from tsops.testing.envelopes import sensor_envelope
from tsops.testing.services import need_kafka_mock

pytestmark = pytest.mark.services
T0 = 1_767_225_600_000  # 2026-01-01 UTC, ms


@pytest.fixture(scope="module")
def mock_cluster():
    need_kafka_mock()
    from confluent_kafka import Producer

    owner = Producer({"test.mock.num.brokers": 1})
    md = owner.list_topics(timeout=10)
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
    yield owner, bootstrap
    owner.flush(5)


def produce(bootstrap, topic, n, bad_every=50):
    """n messages, keyed by sensor; every ``bad_every``-th one malformed or semantically invalid."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    kinds = 0
    for i in range(n):
        sensor = i % 8
        if i % bad_every == 7:
            kinds += 1
            value = [b'{"schema": {', sensor_envelope(sensor, -5_000, 1.0),
                     sensor_envelope(sensor, T0 + i * 1000, None).replace(b'"input_data":null',
                                                                           b'"input_data":"x"'),
                     sensor_envelope(sensor, T0, 1.0, position="../up")][kinds % 4]
        else:
            value = sensor_envelope(sensor, T0 + i * 1000, 400.0 + i % 100, position=f"광 주 {sensor}")
        p.produce(topic, key=str(sensor).encode(), value=value)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def make_project(tmp_path, bootstrap, topic, group, batch_size=20_000):
    cfg = {
        "datasets": {
            "sensors": {
                "series": {"timestamp": "event_time", "keys": ["position", "type_name"], "values": ["input_data"]},
                "source": {"kind": "kafka", "bootstrap_servers": bootstrap, "topic": topic, "group_id": group,
                           "batch_size": batch_size, "idle_timeout_s": 5, "poll_timeout_s": 0.5,
                           "consumer": {"session.timeout.ms": 3000}},
            }
        }
    }
    (tmp_path / "tsops.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return load_project(tmp_path)


def lake_positions(project):
    lake = project.lake()
    keys = []
    for zone in ("raw", "quarantine"):
        t = lake.read(zone, "sensors", columns=["_src", "_pos"])
        if t.num_rows:
            keys += list(zip(t.column("_src").to_pylist(), t.column("_pos").to_pylist(), strict=True))
    return keys


def test_kafka_ingest_exactly_once_and_resume(tmp_path, mock_cluster):
    _, bootstrap = mock_cluster
    topic = f"sensors-{uuid.uuid4().hex[:8]}"
    produce(bootstrap, topic, 2000)
    project = make_project(tmp_path, bootstrap, topic, f"g-{topic}", batch_size=300)
    rep = ingest(project, "sensors")
    assert rep.consumed == 2000 and rep.accepted + rep.quarantined == 2000
    assert rep.quarantined == 40
    keys = lake_positions(project)
    assert len(keys) == len(set(keys)) == 2000
    q = project.lake().read("quarantine", "sensors").to_pandas()
    reasons = " ".join(q.reason)
    assert "malformed JSON" in reasons or "JSON" in reasons
    assert "before 1970" in reasons and "escape its partition" in reasons and "'input_data'" in reasons
    # more data arrives: only the new records are ingested
    produce(bootstrap, topic, 500, bad_every=10**9)
    rep2 = ingest(project, "sensors")
    assert rep2.consumed == 500
    assert len(set(lake_positions(project))) == 2500
    cat = project.catalog()
    assert sum(p["next_offset"] for p in cat.get_positions("sensors", f"kafka:{topic}").values()) == 2500
    s = cat.get_series("sensors", "광 주 1|C02")
    assert s["unit"] == "ppm" and s["keys"] == {"position": "광 주 1", "type_name": "C02"}
    # Kafka's own committed offsets follow the catalog
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}"})
    committed = c.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
    assert sum(tp.offset for tp in committed if tp.offset > 0) == 2500
    c.close()


@pytest.mark.slow
def test_sigkill_at_random_points_keeps_every_record_exactly_once(tmp_path, mock_cluster):
    """Kill the ingesting process with SIGKILL at random points; the lake ends with every record once.

    (librdkafka's mock keeps about 5 MB per partition, so the topic stays below that.)
    """
    _, bootstrap = mock_cluster
    topic = f"kill-{uuid.uuid4().hex[:8]}"
    n = 12_000
    produce(bootstrap, topic, n)
    project = make_project(tmp_path, bootstrap, topic, f"g-{topic}", batch_size=60)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "tsops", "-p", str(tmp_path), "ingest"]
    rng = random.Random(11)
    mid_kills = 0
    cat = project.catalog()
    for _ in range(12):
        before = cat.batch_totals("sensors")["consumed"]
        if before >= n:
            break
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # wait until this process has committed something, then kill it at a random point soon after
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            if cat.batch_totals("sensors")["consumed"] > before:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if cat.batch_totals("sensors")["consumed"] < n:
            mid_kills += 1
        if mid_kills >= 3:
            break
    assert mid_kills >= 2, "could not kill the ingestion mid-way: make the topic larger"
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    keys = lake_positions(project)
    assert len(keys) == n, f"{len(keys) - len(set(keys))} duplicates, {n - len(set(keys))} missing"
    assert len(set(keys)) == n
    totals = cat.batch_totals("sensors")
    assert totals["accepted"] + totals["quarantined"] == totals["consumed"] == n
    assert not cat.pending_batches("sensors")
    leftovers = [p for p in (tmp_path / "lake").rglob("*") if p.name.startswith(".tmp-")]
    assert not leftovers


@pytest.mark.slow
def test_two_ingests_at_once_are_serialised_by_the_dataset_lock(tmp_path, mock_cluster):
    """Two ingest processes on one project at once: one refused (exit 2, the lock's message) or queued (--wait);
    each record lands once. (Consumer-group members in one project used to roll back each other's files.)"""
    _, bootstrap = mock_cluster
    topic = f"group-{uuid.uuid4().hex[:8]}"
    n = 8000
    produce(bootstrap, topic, n)
    project = make_project(tmp_path, bootstrap, topic, f"g-{topic}", batch_size=100)
    cmd = [sys.executable, "-m", "tsops", "-p", str(tmp_path), "ingest"]
    procs = [subprocess.Popen(cmd + extra, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for extra in ([], [], ["--wait"])]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    codes = [p.returncode for p in procs]
    assert codes[2] == 0 and set(codes) <= {0, 2}, errs  # the --wait one always gets its turn
    for c, e in zip(codes, errs, strict=True):
        if c == 2:
            assert "an ingest run on dataset 'sensors' is already in progress" in e
    keys = lake_positions(project)
    assert len(keys) == len(set(keys)) == n
    runs = project.catalog().list_runs("sensors")
    assert sum(r["stats"]["consumed"] for r in runs if r["status"] == "success") == n
