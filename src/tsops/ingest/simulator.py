"""Realistic building-sensor traffic in the production Kafka Connect envelope format, with ground truth.

A fleet of sensors (CO2 ``C02`` in ppm, temperature in degC, humidity in %) samples on its own period and
phase; the simulator adds timestamp jitter, missing samples, outage blocks, spikes, duplicates, late and
out-of-order delivery, and malformed messages, and records exactly what it injected (:class:`SimTruth`) so
tests can check a pipeline end to end.

Malformed kinds are of two sorts:

* *structural* (``broken_json``, ``string_in_float``, ``missing_key``, ``nonfinite_string``,
  ``nonfinite_token``): the envelope parser rejects them as bad records;
* *semantic* (``timestamp_1960``, ``timestamp_future``, ``position_dotdot``, ``position_quote``): valid
  Connect JSON that a validator must reject (absurd time, path-like or quoted position). They are counted in
  ``expected_valid_count`` (the parser accepts them) and flagged ``semantic_invalid``.

Plan generation is vectorised with numpy; the message bytes are built lazily while iterating.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

UTC = dt.UTC
#: The schema block of the production feed (Kafka Connect JDBC source over ``SENSOR_DATA_VIEW``), byte-exact.
SCHEMA_JSON = (
    '{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ss_id"},'
    '{"type":"float","optional":false,"field":"rstart"},{"type":"float","optional":false,"field":"rlev1"},'
    '{"type":"float","optional":false,"field":"rlev2"},{"type":"float","optional":false,"field":"rlev3"},'
    '{"type":"float","optional":false,"field":"rlev4"},{"type":"float","optional":true,"field":"rlev5"},'
    '{"type":"float","optional":true,"field":"rlev6"},{"type":"float","optional":true,"field":"rlev7"},'
    '{"type":"float","optional":true,"field":"rlev8"},{"type":"float","optional":false,"field":"rend"},'
    '{"type":"int64","optional":false,"name":"org.apache.kafka.connect.data.Timestamp","version":1,'
    '"field":"event_time"},{"type":"float","optional":true,"field":"input_data"},'
    '{"type":"string","optional":false,"field":"position"},{"type":"string","optional":false,"field":"type_name"},'
    '{"type":"string","optional":true,"field":"unit"}],"optional":false,"name":"SENSOR_DATA_VIEW"}'
)
ENVELOPE_PREFIX = ('{"schema":' + SCHEMA_JSON + ',"payload":').encode()
LEVEL_FIELDS = ("rstart", "rlev1", "rlev2", "rlev3", "rlev4", "rlev5", "rlev6", "rlev7", "rlev8", "rend")

STRUCTURAL_KINDS = ("broken_json", "string_in_float", "missing_key", "nonfinite_string", "nonfinite_token")
SEMANTIC_KINDS = ("timestamp_1960", "timestamp_future", "position_dotdot", "position_quote")
MALFORMED_KINDS = STRUCTURAL_KINDS + SEMANTIC_KINDS
_REQUIRED_KEYS = ("ss_id", "rstart", "event_time", "position", "type_name", "rend")


@dataclass(frozen=True)
class ValueModel:
    """Daily cycle between ``low`` and ``high`` peaking at ``peak_hour`` local time, plus Gaussian noise."""

    low: float
    high: float
    peak_hour: float = 14.0
    noise: float = 0.0
    decimals: int = 1
    clip: tuple[float, float] = (-math.inf, math.inf)

    def values(self, t_ms: np.ndarray, tz_offset_h: float, rng: np.random.Generator) -> np.ndarray:
        hours = ((t_ms / 3_600_000.0) + tz_offset_h) % 24.0
        cyc = 0.5 + 0.5 * np.cos(2 * np.pi * (hours - self.peak_hour) / 24.0)
        v = self.low + (self.high - self.low) * cyc + rng.normal(0.0, self.noise, len(t_ms))
        return np.round(np.clip(v, *self.clip), self.decimals)


@dataclass(frozen=True)
class SensorSpec:
    """One sensor of the fleet: identity, sampling grid (period, phase in seconds), thresholds and values."""

    ss_id: int
    position: str
    type_name: str
    unit: str
    period_s: float
    phase_s: float
    levels: tuple[float | None, ...]  # rstart, rlev1..rlev8, rend (rlev5..8 may be None)
    model: ValueModel

    def __post_init__(self) -> None:
        if self.period_s <= 0:
            raise ValueError(f"sensor {self.ss_id}: period_s must be > 0, got {self.period_s}")
        if not 0 <= self.phase_s < self.period_s:
            raise ValueError(f"sensor {self.ss_id}: phase_s must be in [0, period_s), got {self.phase_s}")
        if len(self.levels) != len(LEVEL_FIELDS):
            raise ValueError(f"sensor {self.ss_id}: levels needs {len(LEVEL_FIELDS)} values {LEVEL_FIELDS}")


_KINDS = {
    # type_name, unit, period, levels, model
    "co2": ("C02", "ppm", 600.0, (0.0, 700.0, 800.0, 1000.0, 1500.0, 0.0, 0.0, 0.0, 0.0, 20000.0),
            ValueModel(420.0, 1500.0, 14.0, 25.0, 0, (350.0, 5000.0))),
    "temp": ("TEMP", "°C", 60.0, (-20.0, 18.0, 22.0, 26.0, 30.0, None, None, None, None, 60.0),
             ValueModel(19.0, 26.0, 15.0, 0.3, 1, (-20.0, 60.0))),
    "humid": ("HUMI", "%", 30.0, (0.0, 30.0, 40.0, 60.0, 70.0, None, None, None, None, 100.0),
              ValueModel(55.0, 38.0, 15.0, 1.0, 1, (0.0, 100.0))),
}
_POSITIONS = ("광주 A", "광주 B", "서울 1층")


def default_fleet(n: int = 9) -> tuple[SensorSpec, ...]:
    """``n`` sensors: CO2 (10 min), temperature (1 min), humidity (30 s) at "광주 A", "광주 B", "서울 1층", ...

    Phases are fixed per sensor (spread over the period) so a fleet is the same for every seed.
    """
    if n < 1:
        raise ValueError(f"a fleet needs at least one sensor, got n={n}")
    out = []
    for i in range(n):
        kind = ("co2", "temp", "humid")[i % 3]
        site = i // 3
        pos = _POSITIONS[site] if site < len(_POSITIONS) else f"서울 {site - len(_POSITIONS) + 2}층"
        type_name, unit, period, levels, model = _KINDS[kind]
        phase = round((0.137 + 0.618 * i) % 1.0 * period, 3)
        out.append(SensorSpec(i + 1, pos, type_name, unit, period, phase, levels, model))
    return tuple(out)


@dataclass(frozen=True)
class SimulatorConfig:
    """What to simulate. Rates are per sample (or per message) probabilities; times in seconds."""

    sensors: tuple[SensorSpec, ...] = field(default_factory=default_fleet)
    start: dt.datetime = dt.datetime(2024, 3, 1, tzinfo=UTC)
    duration_s: float = 86_400.0
    seed: int = 0
    tz_offset_h: float = 9.0  # local time of the daily cycle (KST)
    jitter: float = 0.05  # timestamp jitter, uniform in +-jitter*period (must be < 0.5)
    missing_rate: float = 0.01
    outages_per_day: float = 0.5  # per sensor
    outage_s: tuple[float, float] = (600.0, 3600.0)
    spike_rate: float = 0.002
    spike_scale: float = 3.0  # spike size in units of (high - low) of the value model
    duplicate_rate: float = 0.005
    late_rate: float = 0.005
    late_s: tuple[float, float] = (60.0, 3600.0)
    out_of_order_rate: float = 0.005
    malformed_rate: float = 0.0
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("SimulatorConfig.start must be timezone-aware (e.g. tzinfo=datetime.UTC)")
        if self.duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if not 0 <= self.jitter < 0.5:
            raise ValueError(f"jitter is a fraction of the period in [0, 0.5), got {self.jitter}")
        for name in ("missing_rate", "spike_rate", "duplicate_rate", "late_rate", "out_of_order_rate",
                     "malformed_rate"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        bad = [k for k in self.malformed_kinds if k not in MALFORMED_KINDS]
        if bad or not self.malformed_kinds:
            raise ValueError(f"malformed_kinds {bad or '()'} invalid; choose from {MALFORMED_KINDS}")
        ids = [s.ss_id for s in self.sensors]
        if len(set(ids)) != len(ids) or not ids:
            raise ValueError(f"sensor ss_id values must be unique and non-empty, got {ids}")


@dataclass(frozen=True)
class SimMessage:
    """One Kafka record: key (ss_id), value (envelope bytes), timestamp, and what it is."""

    key: bytes
    value: bytes
    timestamp_ms: int
    ss_id: int
    event_time_ms: int
    fault: str | None = None  # e.g. "duplicate", "late", "spike", "malformed:broken_json"
    valid: bool = True  # the envelope parser accepts it
    semantic_invalid: bool = False  # parser accepts, a validator must reject


@dataclass(frozen=True)
class SensorTruth:
    ss_id: int
    position: str
    type_name: str
    unit: str
    period_s: float
    phase_s: float
    slots: int  # grid points in the window
    emitted: int  # distinct samples emitted as well-formed, semantically valid records
    missing: int
    outage: int


@dataclass
class SimTruth:
    """Ground truth of one simulation run."""

    sensors: list[SensorTruth]
    faults: Counter  # kind -> count ("missing", "outage", "outage_blocks", "spike", "duplicate", ...)
    total_messages: int
    expected_valid_count: int  # accepted by the envelope parser (includes duplicates and semantic_invalid)
    expected_malformed_count: int  # rejected by the parser
    semantic_invalid_count: int
    messages_per_sensor: dict[int, int]

    @property
    def expected_clean_count(self) -> int:
        """Messages that are well-formed and semantically valid (duplicates included)."""
        return self.expected_valid_count - self.semantic_invalid_count


class Simulation:
    """An iterator of :class:`SimMessage`; ``truth`` is known before the first message is drawn."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self._plan = _plan(config)
        self.truth: SimTruth = self._plan.pop("truth")
        self._it = self._messages()

    def __iter__(self) -> Simulation:
        return self

    def __next__(self) -> SimMessage:
        return next(self._it)

    def __len__(self) -> int:
        return self.truth.total_messages

    def _messages(self) -> Iterator[SimMessage]:
        p, cfg = self._plan, self.config
        sensors = cfg.sensors
        rng = np.random.default_rng([cfg.seed, 1])
        end_year = (cfg.start + dt.timedelta(seconds=cfg.duration_s)).year
        for j in range(len(p["sensor"])):
            s = sensors[p["sensor"][j]]
            kind = p["kind"][j]
            ev = int(p["event"][j])
            payload = _payload(s, ev, float(p["value"][j]))
            fault = p["fault"][j] or None
            valid, semantic = True, False
            if kind:
                value, ev_out = _malformed(kind, s, payload, rng, end_year)
                fault = f"malformed:{kind}"
                valid, semantic = kind not in STRUCTURAL_KINDS, kind in SEMANTIC_KINDS
                ev = ev_out if ev_out is not None else ev
            else:
                value = _envelope(payload)
            yield SimMessage(str(s.ss_id).encode(), value, int(p["emit"][j]), s.ss_id, ev, fault, valid, semantic)


def simulate(config: SimulatorConfig) -> Simulation:
    """Plan a run (ground truth in ``.truth``) and return the iterator over its messages."""
    return Simulation(config)


# ---------------------------------------------------------------------------------------------- planning
def _plan(cfg: SimulatorConfig) -> dict[str, Any]:
    rng = np.random.default_rng([cfg.seed, 0])
    start_ms = int(cfg.start.timestamp() * 1000)
    dur_ms = cfg.duration_s * 1000.0
    faults: Counter = Counter()
    cols: dict[str, list[np.ndarray]] = {"sensor": [], "event": [], "value": [], "spike": []}
    truths = []
    for si, s in enumerate(cfg.sensors):
        period_ms, phase_ms = s.period_s * 1000.0, s.phase_s * 1000.0
        n = max(0, math.ceil((dur_ms - phase_ms) / period_ms))
        k = np.arange(n)
        grid = start_ms + phase_ms + k * period_ms
        keep = np.ones(n, dtype=bool)
        missing = rng.random(n) < cfg.missing_rate
        outage = np.zeros(n, dtype=bool)
        n_out = rng.poisson(cfg.outages_per_day * cfg.duration_s / 86_400.0)
        for _ in range(n_out):
            o0 = start_ms + rng.random() * dur_ms
            o1 = o0 + rng.uniform(*cfg.outage_s) * 1000.0
            outage |= (grid >= o0) & (grid < o1)
        faults["outage_blocks"] += n_out
        outage &= ~missing
        keep &= ~missing & ~outage
        jit = rng.uniform(-cfg.jitter, cfg.jitter, n) * period_ms
        t = np.round(grid + jit).astype(np.int64)
        v = s.model.values(t.astype(np.float64), cfg.tz_offset_h, rng)
        spike = (rng.random(n) < cfg.spike_rate) & keep
        sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        amp = abs(s.model.high - s.model.low) * cfg.spike_scale
        v = np.where(spike, np.round(v + sign * amp * rng.uniform(1.0, 2.0, n), s.model.decimals), v)
        cols["sensor"].append(np.full(int(keep.sum()), si))
        cols["event"].append(t[keep])
        cols["value"].append(v[keep])
        cols["spike"].append(spike[keep])
        faults["missing"] += int(missing.sum())
        faults["outage"] += int(outage.sum())
        faults["spike"] += int(spike.sum())
        truths.append([s, n, int(missing.sum()), int(outage.sum())])
    sensor = np.concatenate(cols["sensor"]).astype(np.int64)
    event = np.concatenate(cols["event"])
    value = np.concatenate(cols["value"])
    spike = np.concatenate(cols["spike"])
    n = len(event)
    kinds = np.array(cfg.malformed_kinds, dtype=object)
    is_bad = rng.random(n) < cfg.malformed_rate
    kind = np.where(is_bad, kinds[rng.integers(0, len(kinds), n)], "").astype(object)
    late = (rng.random(n) < cfg.late_rate) & ~is_bad
    emit = event + np.where(late, np.round(rng.uniform(*cfg.late_s, n) * 1000.0), 0).astype(np.int64)
    fault = np.where(late, "late", np.where(spike & ~is_bad, "spike", "")).astype(object)
    faults["late"] = int(late.sum())
    faults["spike"] = int((spike & ~is_bad).sum())
    # duplicates: a second copy of a well-formed record, delivered up to 5 s later
    dup = np.flatnonzero((rng.random(n) < cfg.duplicate_rate) & ~is_bad)
    faults["duplicate"] = len(dup)
    sensor = np.concatenate([sensor, sensor[dup]])
    event = np.concatenate([event, event[dup]])
    value = np.concatenate([value, value[dup]])
    kind = np.concatenate([kind, kind[dup]])
    fault = np.concatenate([fault, np.full(len(dup), "duplicate", dtype=object)])
    emit = np.concatenate([emit, emit[dup] + rng.integers(1, 5000, len(dup))])
    order = np.lexsort((sensor, emit))
    sensor, event, value, kind, fault, emit = (a[order] for a in (sensor, event, value, kind, fault, emit))
    # out of order: swap a message with its successor (pairs do not overlap)
    m = len(emit)
    swap = np.flatnonzero(rng.random(max(m - 1, 0)) < cfg.out_of_order_rate)
    if len(swap):
        swap = swap[np.concatenate([[True], np.diff(swap) > 1])]
        a, b = swap, swap + 1
        for arr in (sensor, event, value, kind, fault, emit):
            arr[a], arr[b] = arr[b].copy(), arr[a].copy()
        fault[a] = np.where(fault[a] == "", "out_of_order", fault[a])
    faults["out_of_order"] = len(swap)
    for k in cfg.malformed_kinds:
        c = int((kind == k).sum())
        if c:
            faults[f"malformed:{k}"] = c
    structural = np.isin(kind, STRUCTURAL_KINDS)
    semantic = np.isin(kind, SEMANTIC_KINDS)
    n_bad = int(structural.sum())
    per_sensor = np.bincount(sensor, minlength=len(cfg.sensors))
    sensor_truth = []
    for si, (s, slots, miss, out) in enumerate(truths):
        good_distinct = int(((sensor == si) & (kind == "") & (fault != "duplicate")).sum())
        sensor_truth.append(SensorTruth(s.ss_id, s.position, s.type_name, s.unit, s.period_s, s.phase_s,
                                        slots, good_distinct, miss, out))
    truth = SimTruth(
        sensors=sensor_truth,
        faults=faults,
        total_messages=m,
        expected_valid_count=m - n_bad,
        expected_malformed_count=n_bad,
        semantic_invalid_count=int(semantic.sum()),
        messages_per_sensor={cfg.sensors[i].ss_id: int(c) for i, c in enumerate(per_sensor)},
    )
    return {"sensor": sensor, "event": event, "value": value, "kind": kind, "fault": fault, "emit": emit,
            "truth": truth}


# ---------------------------------------------------------------------------------------------- bytes
def _payload(s: SensorSpec, event_ms: int, value: float) -> dict[str, Any]:
    p: dict[str, Any] = {"ss_id": s.ss_id}
    for name, lv in zip(LEVEL_FIELDS, s.levels, strict=True):
        p[name] = None if lv is None else float(lv)
    p["event_time"] = event_ms
    p["input_data"] = float(value)
    p["position"], p["type_name"], p["unit"] = s.position, s.type_name, s.unit
    # production key order: ... rlev8, rend, event_time, input_data, position, type_name, unit
    return p


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _envelope(payload: dict[str, Any]) -> bytes:
    return ENVELOPE_PREFIX + _dumps(payload) + b"}"


def _malformed(kind: str, s: SensorSpec, p: dict[str, Any], rng: np.random.Generator,
               end_year: int) -> tuple[bytes, int | None]:
    """The bytes of a malformed message of ``kind`` and its (possibly absurd) event time."""
    if kind == "broken_json":
        full = _envelope(p)
        cut = int(rng.integers(1, 40))
        return full[: len(full) - cut], None
    if kind == "string_in_float":
        p["input_data"] = str(rng.choice(["ERR", "n/a", f"{p['input_data']}a", ""]))
        return _envelope(p), None
    if kind == "missing_key":
        del p[str(rng.choice(_REQUIRED_KEYS))]
        return _envelope(p), None
    if kind == "nonfinite_string":
        p["input_data"] = str(rng.choice(["NaN", "Infinity", "-Infinity"]))
        return _envelope(p), None
    if kind == "nonfinite_token":
        p["input_data"] = 0.125
        token = str(rng.choice(["NaN", "Infinity", "-Infinity"])).encode()
        return _envelope(p).replace(b'"input_data":0.125', b'"input_data":' + token), None
    if kind == "timestamp_1960":
        t0 = dt.datetime(1960, 1, 1, tzinfo=UTC)
        ev = int(t0.timestamp() * 1000) + int(rng.integers(0, 365 * 86_400_000))
        p["event_time"] = ev
        return _envelope(p), ev
    if kind == "timestamp_future":
        t0 = dt.datetime(end_year + 1, 1, 1, tzinfo=UTC)
        ev = int(t0.timestamp() * 1000) + int(rng.integers(0, 365 * 86_400_000))
        p["event_time"] = ev
        return _envelope(p), ev
    if kind == "position_dotdot":
        p["position"] = "../../" + s.position
        return _envelope(p), None
    if kind == "position_quote":
        p["position"] = s.position + '"; DROP TABLE x; --'
        return _envelope(p), None
    raise ValueError(f"unknown malformed kind {kind!r}; choose from {MALFORMED_KINDS}")


# ---------------------------------------------------------------------------------------------- sinks
@dataclass
class SinkResult:
    truth: SimTruth
    produced: int
    paths: list[Path] = field(default_factory=list)
    per_sensor: Counter = field(default_factory=Counter)
    per_fault: Counter = field(default_factory=Counter)


def to_files(config: SimulatorConfig, out_dir: str | Path, records_per_file: int = 100_000,
             progress: Callable[[int], None] | None = None) -> SinkResult:
    """Write the run as JSON Lines (one envelope per line, UTF-8): ``sim-s<seed>-<NNNNN>.jsonl``."""
    if records_per_file < 1:
        raise ValueError(f"records_per_file must be >= 1, got {records_per_file}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate(config)
    res = SinkResult(sim.truth, 0)
    fh = None
    try:
        for i, msg in enumerate(sim):
            if i % records_per_file == 0:
                if fh:
                    fh.close()
                path = out / f"sim-s{config.seed}-{i // records_per_file:05d}.jsonl"
                fh = path.open("wb")
                res.paths.append(path)
            fh.write(msg.value + b"\n")  # type: ignore[union-attr]
            _count(res, msg)
            if progress and i % 1000 == 999:
                progress(1000)
    finally:
        if fh:
            fh.close()
    if progress:
        progress(res.produced % 1000)
    return res


def _count(res: SinkResult, msg: SimMessage) -> None:
    res.produced += 1
    res.per_sensor[msg.ss_id] += 1
    if msg.fault:
        res.per_fault[msg.fault] += 1


def to_kafka(config: SimulatorConfig, producer_conf: dict[str, Any], topic: str,
             progress: Callable[[int], None] | None = None, flush_timeout_s: float = 60.0) -> SinkResult:
    """Produce the run to ``topic`` with confluent-kafka (key = ss_id, record timestamp = emission time).

    Raises ``RuntimeError`` naming the first failed record if any delivery fails or the flush times out.
    """
    from confluent_kafka import KafkaException, Producer

    try:
        producer = Producer(dict(producer_conf))
    except KafkaException as e:
        raise ValueError(f"invalid Kafka producer configuration {producer_conf!r}: {e}") from e
    errors: list[str] = []

    def on_delivery(err: Any, m: Any) -> None:
        if err is not None:
            errors.append(f"key={m.key()!r} partition={m.partition()}: {err}")

    sim = simulate(config)
    res = SinkResult(sim.truth, 0)
    for i, msg in enumerate(sim):
        while True:
            try:
                producer.produce(topic, value=msg.value, key=msg.key, timestamp=msg.timestamp_ms,
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
            except KafkaException as e:
                raise RuntimeError(f"producing record {i} (ss_id {msg.ss_id}) to {topic!r} failed: {e}") from e
        _count(res, msg)
        if i % 1000 == 999:
            producer.poll(0)
            if progress:
                progress(1000)
        if errors:
            break
    remaining = producer.flush(flush_timeout_s)
    if progress:
        progress(res.produced % 1000)
    if errors:
        raise RuntimeError(f"{len(errors)} record(s) failed delivery to {topic!r}; first: {errors[0]}")
    if remaining:
        raise RuntimeError(f"{remaining} record(s) still undelivered to {topic!r} after {flush_timeout_s}s flush")
    return res


def config_for(days: float = 1.0, sensors: int | Sequence[SensorSpec] = 9, seed: int = 0,
               malformed_rate: float = 0.0, **rates: Any) -> SimulatorConfig:
    """Convenience constructor: ``days`` of the default fleet (or given sensors) with the given rates."""
    fleet = default_fleet(sensors) if isinstance(sensors, int) else tuple(sensors)
    return SimulatorConfig(sensors=fleet, duration_s=days * 86_400.0, seed=seed, malformed_rate=malformed_rate,
                           **rates)
