"""The sensor-traffic simulator: production format, determinism, ground truth, sinks."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter

import numpy as np
import pytest

from tsops.ingest.envelope import EnvelopeParser
from tsops.ingest.simulator import (
    ENVELOPE_PREFIX,
    MALFORMED_KINDS,
    SEMANTIC_KINDS,
    STRUCTURAL_KINDS,
    SimulatorConfig,
    config_for,
    default_fleet,
    simulate,
    to_files,
    to_kafka,
)
from tsops.testing.services import need_kafka_mock

# schema block of shared/data/sensor_envelope_example.json (the production feed), byte for byte
EXAMPLE_PREFIX = (
    b'{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ss_id"},{"type":"float",'
    b'"optional":false,"field":"rstart"},{"type":"float","optional":false,"field":"rlev1"},{"type":"float",'
    b'"optional":false,"field":"rlev2"},{"type":"float","optional":false,"field":"rlev3"},{"type":"float",'
    b'"optional":false,"field":"rlev4"},{"type":"float","optional":true,"field":"rlev5"},{"type":"float",'
    b'"optional":true,"field":"rlev6"},{"type":"float","optional":true,"field":"rlev7"},{"type":"float",'
    b'"optional":true,"field":"rlev8"},{"type":"float","optional":false,"field":"rend"},{"type":"int64",'
    b'"optional":false,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"event_time"},'
    b'{"type":"float","optional":true,"field":"input_data"},{"type":"string","optional":false,"field":"position"},'
    b'{"type":"string","optional":false,"field":"type_name"},{"type":"string","optional":true,"field":"unit"}],'
    b'"optional":false,"name":"SENSOR_DATA_VIEW"},"payload":'
)


def test_messages_use_the_production_envelope_format():
    assert ENVELOPE_PREFIX == EXAMPLE_PREFIX
    msgs = list(simulate(config_for(days=0.05, malformed_rate=0.0)))
    assert msgs
    m = msgs[0]
    assert m.value.startswith(EXAMPLE_PREFIX) and m.value.endswith(b"}}")
    doc = json.loads(m.value)
    compact = json.dumps(doc["payload"], separators=(",", ":"), ensure_ascii=False).encode()
    assert m.value == EXAMPLE_PREFIX + compact + b"}"
    assert list(doc["payload"]) == ["ss_id", "rstart", "rlev1", "rlev2", "rlev3", "rlev4", "rlev5", "rlev6",
                                    "rlev7", "rlev8", "rend", "event_time", "input_data", "position",
                                    "type_name", "unit"]
    assert m.key == str(doc["payload"]["ss_id"]).encode()
    assert "광주 A".encode() in b"".join(x.value for x in msgs)  # raw UTF-8, like the real feed
    types = {json.loads(x.value)["payload"]["type_name"] for x in msgs}
    assert types == {"C02", "TEMP", "HUMI"}


def test_default_fleet_periods_and_positions():
    fleet = default_fleet()
    assert len(fleet) == 9 and len({s.ss_id for s in fleet}) == 9
    assert {s.period_s for s in fleet} == {600.0, 60.0, 30.0}
    assert {s.position for s in fleet} == {"광주 A", "광주 B", "서울 1층"}
    co2 = [s for s in fleet if s.type_name == "C02"]
    assert all(s.unit == "ppm" for s in co2)
    assert len({s.phase_s / s.period_s for s in fleet}) == 9


def test_seed_makes_runs_deterministic():
    cfg = config_for(days=0.2, seed=5, malformed_rate=0.05)
    a = [(m.key, m.value, m.timestamp_ms) for m in simulate(cfg)]
    b = [(m.key, m.value, m.timestamp_ms) for m in simulate(cfg)]
    c = [(m.key, m.value, m.timestamp_ms) for m in simulate(config_for(days=0.2, seed=6, malformed_rate=0.05))]
    assert a == b and a != c
    assert simulate(cfg).truth.faults == simulate(cfg).truth.faults


def test_periods_and_phases_match_the_truth():
    cfg = SimulatorConfig(sensors=default_fleet(6), duration_s=86_400.0, seed=3, jitter=0.05, late_rate=0.0,
                          out_of_order_rate=0.0, duplicate_rate=0.0)
    sim = simulate(cfg)
    start_ms = cfg.start.timestamp() * 1000
    ev: dict[int, list[int]] = {}
    for m in sim:
        if m.valid and not m.semantic_invalid:
            ev.setdefault(m.ss_id, []).append(m.event_time_ms)
    for tr in sim.truth.sensors:
        t = np.sort(np.array(ev[tr.ss_id], dtype=np.float64))
        period_ms = tr.period_s * 1000
        assert np.median(np.diff(t)) == pytest.approx(period_ms, rel=0.03)
        # every timestamp is on the grid start + phase + k*period, within the jitter
        off = (t - start_ms - tr.phase_s * 1000) / period_ms
        assert np.abs(off - np.round(off)).max() <= cfg.jitter + 1e-9
        assert tr.emitted == len(t)
        assert tr.slots == math.ceil((cfg.duration_s - tr.phase_s) / tr.period_s)


def test_fault_counts_follow_the_configured_rates():
    cfg = config_for(days=2, seed=11, malformed_rate=0.02, missing_rate=0.03, spike_rate=0.01,
                     duplicate_rate=0.02, late_rate=0.01, out_of_order_rate=0.01)
    sim = simulate(cfg)
    msgs = list(sim)
    tr = sim.truth
    slots = sum(s.slots for s in tr.sensors)
    kept = slots - tr.faults["missing"] - tr.faults["outage"]

    def near(count: int, rate: float, n: int) -> bool:
        mu = rate * n
        return abs(count - mu) <= 4 * math.sqrt(mu) + 2

    assert near(tr.faults["missing"], 0.03, slots)
    assert near(tr.faults["spike"], 0.01 * (1 - 0.02), kept)
    assert near(tr.faults["duplicate"], 0.02 * (1 - 0.02), kept)
    assert near(tr.faults["late"], 0.01 * (1 - 0.02), kept)
    n_malformed = sum(v for k, v in tr.faults.items() if k.startswith("malformed:"))
    assert near(n_malformed, 0.02, kept)
    assert {k.split(":")[1] for k in tr.faults if k.startswith("malformed:")} == set(MALFORMED_KINDS)
    # the per-message labels agree with the truth
    assert len(msgs) == tr.total_messages == kept + tr.faults["duplicate"]
    labels = Counter(m.fault for m in msgs)
    for kind in MALFORMED_KINDS:
        assert labels[f"malformed:{kind}"] == tr.faults[f"malformed:{kind}"]
    assert labels["duplicate"] == tr.faults["duplicate"]
    assert sum(tr.messages_per_sensor.values()) == len(msgs)
    # late records arrive after records with later event times
    late = [m for m in msgs if m.fault == "late"]
    assert late and all(m.timestamp_ms > m.event_time_ms for m in late)


def test_every_structural_malformed_message_is_rejected_by_the_parser():
    cfg = config_for(days=1, seed=2, malformed_rate=0.05)
    sim = simulate(cfg)
    msgs = list(sim)
    r = EnvelopeParser().parse([m.value for m in msgs])
    rejected = {b.index for b in r.bad}
    assert len(rejected) == sim.truth.expected_malformed_count
    assert r.table.num_rows == sim.truth.expected_valid_count
    for i, m in enumerate(msgs):
        assert (i in rejected) == (not m.valid), (m.fault, m.value[-200:])
        kind = m.fault.split(":")[1] if m.fault and m.fault.startswith("malformed:") else None
        assert (kind in STRUCTURAL_KINDS) == (not m.valid)
        assert (kind in SEMANTIC_KINDS) == m.semantic_invalid
    # semantically invalid ones come through the parser and carry what a validator must catch
    rows = r.table.to_pylist()
    idx = {row["_index"]: row for row in rows}
    years = [idx[i]["event_time"].year for i, m in enumerate(msgs) if m.fault == "malformed:timestamp_1960"]
    assert years and set(years) == {1960}
    future = [idx[i]["event_time"].year for i, m in enumerate(msgs) if m.fault == "malformed:timestamp_future"]
    assert future and min(future) > cfg.start.year
    assert any("../" in idx[i]["position"] for i, m in enumerate(msgs) if m.fault == "malformed:position_dotdot")
    assert any('"' in idx[i]["position"] for i, m in enumerate(msgs) if m.fault == "malformed:position_quote")
    assert sim.truth.semantic_invalid_count == sum(m.semantic_invalid for m in msgs)


def test_config_validation_names_the_argument():
    with pytest.raises(ValueError, match="jitter"):
        SimulatorConfig(jitter=0.7)
    with pytest.raises(ValueError, match="malformed_rate"):
        config_for(malformed_rate=1.5)
    with pytest.raises(ValueError, match="malformed_kinds"):
        SimulatorConfig(malformed_kinds=("nope",))


def test_to_files_writes_deterministic_jsonl(tmp_path):
    cfg = config_for(days=0.1, seed=4, malformed_rate=0.02)
    res = to_files(cfg, tmp_path / "a", records_per_file=500)
    res2 = to_files(cfg, tmp_path / "b", records_per_file=500)
    assert [p.name for p in res.paths] == [p.name for p in res2.paths]
    assert res.paths[0].name == "sim-s4-00000.jsonl"
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(res.paths, res2.paths, strict=True))
    lines = [ln for p in res.paths for ln in p.read_bytes().split(b"\n")[:-1]]
    assert len(lines) == res.produced == res.truth.total_messages
    assert len(res.paths) == math.ceil(res.produced / 500)
    r = EnvelopeParser().parse(lines)
    assert len(r.bad) == res.truth.expected_malformed_count
    assert sum(res.per_sensor.values()) == res.produced


@pytest.mark.services
def test_to_kafka_round_trip_on_mock_cluster():
    need_kafka_mock()
    from confluent_kafka import Consumer, Producer, TopicPartition

    owner = Producer({"test.mock.num.brokers": 1})
    md = owner.list_topics(timeout=10)
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
    topic = f"sim-{uuid.uuid4().hex[:8]}"
    cfg = config_for(days=0.1, sensors=3, seed=9, malformed_rate=0.03)
    res = to_kafka(cfg, {"bootstrap.servers": bootstrap, "linger.ms": 5}, topic)
    expected = [(m.key, m.value, m.timestamp_ms) for m in simulate(cfg)]
    assert res.produced == len(expected) > 0

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < len(expected) and time.monotonic() < deadline:
        for m in consumer.consume(500, timeout=0.2):
            assert m.error() is None, m.error()
            got.append((m.key(), m.value(), m.timestamp()[1]))
    consumer.close()
    assert sorted(got) == sorted(expected)
    # key = ss_id: all records of one sensor land in one partition, in emission order
    r = EnvelopeParser().parse([v for _, v, _ in got])
    assert len(r.bad) == res.truth.expected_malformed_count
    owner.flush(5)


@pytest.mark.services
def test_to_kafka_raises_on_delivery_failure():
    need_kafka_mock()
    cfg = config_for(days=0.01, sensors=1, seed=1)
    with pytest.raises(RuntimeError, match="undelivered|failed delivery"):
        to_kafka(cfg, {"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 500}, "t", flush_timeout_s=5)


def test_produce_command_writes_files_and_prints_counts(tmp_path):
    import typer
    from typer.testing import CliRunner

    from tsops.cli.produce import produce

    app = typer.Typer()
    app.command()(produce)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["--to", "files", "--out", str(out), "--days", "0.05", "--seed", "3",
                                 "--malformed-rate", "0.05", "--records-per-file", "300"])
    assert r.exit_code == 0, r.output
    files = sorted(out.glob("sim-s3-*.jsonl"))
    n = sum(len(f.read_bytes().splitlines()) for f in files)
    assert len(files) == math.ceil(n / 300) and f"produced {n} messages" in r.output
    assert "malformed:" in r.output and "C02" in r.output
    bad = CliRunner().invoke(app, ["--to", "files"])
    assert bad.exit_code != 0 and "--out" in bad.output
