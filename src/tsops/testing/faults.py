"""Fault-injection scenarios for ingestion: each runs ``tsops ingest`` under one fault and checks the lake.

Every scenario builds a project in a scratch directory with a known input, injects its fault, lets ingestion
finish, then compares the lake (raw and quarantine zones) with the input record by record through each
record's source label and position (``_src``, ``_pos``): **lost** = input records in neither zone,
**duplicated** = records found more than once (or not in the input). Each returns a :class:`FaultResult`;
``bench/faults.py`` runs them at full size and prints the table, ``tests/ingest/test_faults.py`` at small
sizes. Scenarios:

``files_sigkill`` / ``kafka_sigkill`` / ``sql_sigkill``
    SIGKILL the ingesting process at random points (after it committed something), again and again; then one
    run to the end.
``kafka_broker_loss``
    The process owning librdkafka's mock cluster (the broker) is SIGKILLed mid-run: ingestion must fail with
    exit code 1 and one line. A mock cluster cannot be restarted, so the "restarted broker" is a new mock
    cluster holding the same log (the same messages produced to the same partitions in the same order, so the
    same offsets); the project is pointed at it and ingestion resumes from the catalog's offsets.
``disk_full``
    The lake lives on a small tmpfs (when this process may mount one, i.e. root) that fills up during a
    write: ingestion fails with exit code 1 and one line; the tmpfs is enlarged and ingestion completes. Without
    root, the lake's Parquet writer is replaced in-process by one that writes half a file and raises
    ``OSError(ENOSPC)`` at the Nth write.
``concurrent``
    Several ``tsops ingest`` processes started at once on one project, round after round, new files arriving
    between rounds; one of them SIGKILLed in some rounds (its run must then be marked failed as stale).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tsops.testing.envelopes import sensor_envelope

T0 = 1_767_225_600_000  # 2026-01-01 UTC, ms
SERIES = {"timestamp": "event_time", "keys": ["position", "type_name"], "values": ["input_data"]}
DATASET = "sensors"


@dataclass
class FaultResult:
    """Counts of one scenario (the columns of the table in bench/RESULTS.md)."""

    scenario: str
    records: int = 0
    kills: int = 0
    runs: int = 0
    lost: int = 0
    duplicated: int = 0
    quarantined: int = 0
    exit_codes: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0

    def row(self) -> str:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.exit_codes.items(), key=lambda kv: str(kv[0])))
        return (f"| {self.scenario} | {self.records:,} | {self.kills} | {self.runs} | {self.lost} | "
                f"{self.duplicated} | {self.quarantined:,} | {codes} | {self.seconds:.0f} | {self.note} |")


TABLE_HEAD = ("| scenario | records | kills / faults | runs | lost | duplicated | quarantined | exit codes (code: runs) "
              "| seconds | note |\n|---|---:|---:|---:|---:|---:|---:|---|---:|---|")


# ---------------------------------------------------------------------------------------------- helpers
def write_project(root: Path, source: dict[str, Any], lake_root: str | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {"datasets": {DATASET: {"series": SERIES, "source": source}}}
    if lake_root:
        cfg["lake"] = {"root": lake_root}
    (root / "tsops.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))


def tsops_cmd(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tsops", "-p", str(root), *args]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1")


def committed(root: Path) -> int:
    """Records committed so far (the catalog's batch totals), 0 before the catalog exists."""
    from tsops.config import load_project

    if not (root / "catalog.db").exists():
        return 0
    cat = load_project(root).catalog()
    try:
        return int(cat.batch_totals(DATASET)["consumed"])
    except Exception:  # noqa: BLE001 - tables not created yet
        return 0
    finally:
        cat.close()


def lake_keys(root: Path) -> tuple[list[tuple[str, int]], int]:
    """(_src, _pos) of every raw and quarantine row, and the number of quarantine rows."""
    from tsops.config import load_project

    lake = load_project(root).lake()
    keys: list[tuple[str, int]] = []
    quarantined = 0
    for zone in ("raw", "quarantine"):
        t = lake.read(zone, DATASET, columns=["_src", "_pos"])
        if t.num_rows:
            keys += list(zip(t.column("_src").to_pylist(), t.column("_pos").to_pylist(), strict=True))
            if zone == "quarantine":
                quarantined = t.num_rows
    return keys, quarantined


def verify(root: Path, expected: set[tuple[str, int]], res: FaultResult) -> FaultResult:
    keys, res.quarantined = lake_keys(root)
    got = Counter(keys)
    res.records = len(expected)
    res.lost = len(expected - set(got))
    res.duplicated = sum(c - 1 for c in got.values()) + len(set(got) - expected)
    leftovers = [p for p in root.rglob(".tmp-*")]
    if leftovers:
        res.note += f" {len(leftovers)} temporary files left;"
    return res


def kill_loop(root: Path, target: int, res: FaultResult, *, kills: int, seed: int, max_delay_s: float = 0.4,
              max_tries: int = 40, cmd: list[str] | None = None, timeout_s: float = 120.0) -> None:
    """Start ingestion, wait until it commits something, SIGKILL it at a random moment; ``kills`` times.

    Only kills that leave ingestion unfinished count. Then one run to the end (its exit code must be 0).
    """
    cmd = cmd or tsops_cmd(root, "ingest")
    rng = random.Random(seed)
    for _ in range(max_tries):
        if res.kills >= kills:
            break
        before = committed(root)
        if before >= target:
            break
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res.runs += 1
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and time.monotonic() < deadline and committed(root) <= before:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, max_delay_s))
        if proc.poll() is not None:
            res.exit_codes[proc.returncode] += 1
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        res.exit_codes["SIGKILL"] += 1
        if committed(root) < target:
            res.kills += 1
    final = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    res.runs += 1
    res.exit_codes[final.returncode] += 1
    if final.returncode != 0:
        res.note += f" final run failed: {final.stderr.strip().splitlines()[-1:]};"


def envelope_lines(n: int, seed: int, bad_every: int = 97, start: int = 0) -> list[bytes]:
    """n sensor envelopes (1 value each), one in ``bad_every`` malformed or invalid (quarantined)."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        sensor = i % 8
        if bad_every and i % bad_every == 5:
            out.append(rng.choice([b'{"schema": {', sensor_envelope(sensor, -5_000, 1.0),
                                   sensor_envelope(sensor, 9_300_000_000_000_000, 1.0)]))
        else:
            out.append(sensor_envelope(sensor, T0 + i * 1000, 400.0 + i % 100, position=f"s{sensor}"))
    return out


def write_files(root: Path, n: int, files: int, seed: int, prefix: str = "part", start: int = 0
                ) -> set[tuple[str, int]]:
    """``files`` JSON Lines files of envelopes under ``root/incoming``; returns their expected lake keys."""
    d = root / "incoming"
    d.mkdir(parents=True, exist_ok=True)
    lines = envelope_lines(n, seed, start=start)
    per = -(-n // files)
    expected = set()
    for k in range(files):
        chunk = lines[k * per:(k + 1) * per]
        if not chunk:
            continue
        rel = f"incoming/{prefix}-{k:03d}.jsonl"
        (root / rel).write_bytes(b"\n".join(chunk) + b"\n")
        expected |= {(f"file:{rel}", j + 1) for j in range(len(chunk))}
    return expected


def files_source(batch_rows: int) -> dict[str, Any]:
    return {"kind": "files", "format": "jsonl", "paths": ["incoming/*.jsonl"], "batch_rows": batch_rows}


# ---------------------------------------------------------------------------------------------- scenarios
def files_sigkill(root: Path, n: int = 20_000, files: int = 4, batch_rows: int = 400, kills: int = 4,
                  seed: int = 1) -> FaultResult:
    t0 = time.perf_counter()
    res = FaultResult("SIGKILL, files (JSON Lines)")
    write_project(root, files_source(batch_rows))
    expected = write_files(root, n, files, seed)
    kill_loop(root, n, res, kills=kills, seed=seed)
    res.seconds = time.perf_counter() - t0
    return verify(root, expected, res)


def produce_topic(bootstrap: str, topic: str, lines: list[bytes], partitions: int = 4) -> set[tuple[str, int]]:
    """Produce ``lines`` round-robin to explicit partitions (deterministic offsets); returns the lake keys."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0})
    counts = [0] * partitions
    for i, v in enumerate(lines):
        part = i % partitions
        p.produce(topic, value=v, partition=part)
        counts[part] += 1
        if i % 1000 == 0:
            p.poll(0)
    if p.flush(60):
        raise RuntimeError("kafka: messages still in flight after 60 s")
    return {(f"kafka:{topic}/{part}", o) for part in range(partitions) for o in range(counts[part])}


def kafka_source(bootstrap: str, topic: str, batch_size: int, idle_s: float = 4.0, **consumer: Any) -> dict[str, Any]:
    return {"kind": "kafka", "bootstrap_servers": bootstrap, "topic": topic, "group_id": f"g-{topic}",
            "batch_size": batch_size, "idle_timeout_s": idle_s, "poll_timeout_s": 0.5,
            "consumer": {"session.timeout.ms": 3000, "log_level": 0, **consumer}}


def mock_cluster() -> tuple[Any, str]:
    """A librdkafka mock cluster owned by this process (keep the owner alive) and its bootstrap address."""
    from confluent_kafka import Producer

    owner = Producer({"test.mock.num.brokers": 1, "log_level": 0})
    md = owner.list_topics(timeout=10)
    return owner, ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())


def kafka_sigkill(root: Path, bootstrap: str, n: int = 12_000, batch_size: int = 60, kills: int = 3,
                  seed: int = 2) -> FaultResult:
    t0 = time.perf_counter()
    res = FaultResult("SIGKILL, Kafka (mock cluster)")
    topic = f"kill-{os.getpid()}-{seed}-{int(time.time() * 1000) % 10**8}"
    expected = produce_topic(bootstrap, topic, envelope_lines(n, seed))
    write_project(root, kafka_source(bootstrap, topic, batch_size))
    kill_loop(root, n, res, kills=kills, seed=seed)
    res.seconds = time.perf_counter() - t0
    return verify(root, expected, res)


def sql_table(url: str, n: int, seed: int) -> tuple[str, set[tuple[str, int]]]:
    """A sensor table of n rows (integer epoch-ms timestamps, integer ids) at ``url``."""
    import sqlalchemy as sa

    rng = random.Random(seed)
    name = f"faults_{os.getpid()}_{seed}_{rng.randrange(10**6)}"
    eng = sa.create_engine(url)
    md = sa.MetaData()
    t = sa.Table(name, md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("event_time", sa.BigInteger), sa.Column("position", sa.String(20)),
                 sa.Column("type_name", sa.String(20)), sa.Column("input_data", sa.Float))
    md.create_all(eng)
    rows = [{"id": i, "event_time": T0 + (i // 4) * 60_000, "position": f"s{i % 4}", "type_name": "C02",
             "input_data": float(i % 97)} for i in range(n)]
    with eng.begin() as c:
        for k in range(0, n, 5000):
            c.execute(t.insert(), rows[k:k + 5000])
    eng.dispose()
    return name, {(f"sql:{name}", i) for i in range(n)}


def drop_table(url: str, name: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql(f"DROP TABLE IF EXISTS {eng.dialect.identifier_preparer.quote(name)}")
    eng.dispose()


def sql_sigkill(root: Path, url: str | None = None, n: int = 20_000, batch_size: int = 300, kills: int = 4,
                seed: int = 3) -> FaultResult:
    """SIGKILL while polling a table (SQLite file by default, or ``url``, e.g. MariaDB)."""
    t0 = time.perf_counter()
    url = url or f"sqlite:///{root / 'source.db'}"
    dialect = url.split(":", 1)[0].split("+")[0]
    res = FaultResult(f"SIGKILL, SQL ({'MariaDB' if dialect in ('mysql', 'mariadb') else dialect})")
    root.mkdir(parents=True, exist_ok=True)
    name, expected = sql_table(url, n, seed)
    try:
        write_project(root, {"kind": "sql", "url": url, "table": name, "timestamp_column": "event_time",
                             "id_column": "id", "batch_size": batch_size})
        kill_loop(root, n, res, kills=kills, seed=seed)
        res.seconds = time.perf_counter() - t0
        return verify(root, expected, res)
    finally:
        if not url.startswith("sqlite"):
            drop_table(url, name)


_OWNER = textwrap.dedent("""
    import json, sys, time
    from confluent_kafka import Producer
    owner = Producer({"test.mock.num.brokers": 1, "log_level": 0})
    md = owner.list_topics(timeout=10)
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
    from tsops.testing.faults import envelope_lines, produce_topic
    topic, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    expected = produce_topic(bootstrap, topic, envelope_lines(n, seed))
    print(json.dumps({"bootstrap": bootstrap, "n": len(expected)}), flush=True)
    while True:
        time.sleep(1)
""")


def _start_owner(topic: str, n: int, seed: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", _OWNER, topic, str(n), str(seed)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        raise RuntimeError("the mock Kafka cluster process did not start")
    return proc, json.loads(line)["bootstrap"]


def kafka_broker_loss(root: Path, n: int = 12_000, batch_size: int = 100, losses: int = 2,
                      seed: int = 4) -> FaultResult:
    """The broker process is SIGKILLed mid-run (``losses`` times); then a broker with the same log comes back."""
    t0 = time.perf_counter()
    res = FaultResult("Kafka broker killed mid-run, then back")
    topic = "sensors"
    expected = {(f"kafka:{topic}/{p}", o) for p in range(4) for o in range(-(-(n - p) // 4))}
    stderr_lines: list[str] = []
    for _ in range(losses):
        owner, bootstrap = _start_owner(topic, n, seed)
        try:
            # a small fetch queue: the broker dies with most of the topic not yet fetched
            write_project(root, kafka_source(bootstrap, topic, batch_size, idle_s=3.0,
                                             **{"queued.max.messages.kbytes": 64}))
            before = committed(root)
            err_file = open(root / f"stderr-{res.runs}.txt", "w+")  # noqa: SIM115 - a pipe could fill and block
            proc = subprocess.Popen(tsops_cmd(root, "ingest"), env=_env(), stdout=subprocess.DEVNULL,
                                    stderr=err_file, text=True)
            res.runs += 1
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline and committed(root) <= before:
                time.sleep(0.05)
        finally:
            owner.send_signal(signal.SIGKILL)  # the broker goes away
            owner.wait()
        res.kills += 1
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            res.note += " ingestion hung after the broker loss;"
        err_file.seek(0)
        err = err_file.read()
        err_file.close()
        res.exit_codes[proc.returncode] += 1
        stderr_lines += [ln for ln in err.splitlines() if "error:" in ln]
    owner, bootstrap = _start_owner(topic, n, seed)  # the broker is back with its log
    try:
        write_project(root, kafka_source(bootstrap, topic, batch_size, idle_s=3.0))
        final = subprocess.run(tsops_cmd(root, "ingest"), env=_env(), capture_output=True, text=True, timeout=600)
        res.runs += 1
        res.exit_codes[final.returncode] += 1
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    res.seconds = time.perf_counter() - t0
    if stderr_lines:
        res.note += " the runs that lost the broker: `" + stderr_lines[-1].split("error:", 1)[1].split(" at ")[0].strip() + "`;"
    return verify(root, expected, res)


@contextlib.contextmanager
def small_tmpfs(path: Path, size_kb: int) -> Iterable[Callable[[int], None]]:
    """Mount a tmpfs of ``size_kb`` at ``path`` (root only); yields a function that resizes it."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], check=True,
                   capture_output=True)

    def resize(kb: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kb}k", str(path)], check=True, capture_output=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def can_mount_tmpfs(scratch: Path) -> bool:
    if os.geteuid() != 0:
        return False
    try:
        with small_tmpfs(scratch / "probe", 64):
            return True
    except (subprocess.CalledProcessError, FileNotFoundError, OSError):
        return False


def disk_full(root: Path, n: int = 20_000, files: int = 4, batch_rows: int = 500, sizes_kb: Iterable[int] = (48, 0, 0, 0),
              seed: int = 5, mode: str = "auto") -> FaultResult:
    """The lake's file system fills up during a write, at several fill levels; then there is room again.

    ``mode``: "tmpfs" (a real ENOSPC from a small tmpfs; needs root: one run per entry of ``sizes_kb``, the
    tmpfs starting at its first entry and doubling for every run), "wrapper" (in-process: the Parquet writer
    writes half a file and raises ENOSPC at write ``k // 32`` for each ``k`` in ``sizes_kb``), "auto" (tmpfs
    when possible).
    """
    t0 = time.perf_counter()
    sizes = list(sizes_kb)
    if mode == "auto":
        mode = "tmpfs" if can_mount_tmpfs(root) else "wrapper"
    res = FaultResult(f"disk full during a lake write ({'tmpfs' if mode == 'tmpfs' else 'ENOSPC wrapper'})")
    expected = write_files(root, n, files, seed)
    if mode == "tmpfs":
        lake = root / "lakefs"
        write_project(root, files_source(batch_rows), lake_root=str(lake))
        with small_tmpfs(lake, sizes[0]) as resize:
            kb = sizes[0]
            for _ in range(len(sizes)):  # each run fills the room left, then the room grows
                resize(kb)
                kb *= 2
                r = subprocess.run(tsops_cmd(root, "ingest"), env=_env(), capture_output=True, text=True,
                                   timeout=600)
                res.runs += 1
                res.exit_codes[r.returncode] += 1
                if r.returncode != 0:
                    res.kills += 1
                    if "no space left" not in r.stderr.lower():
                        res.note += f" unexpected failure: {r.stderr.strip().splitlines()[-1:]};"
            resize(64 * 1024)
            r = subprocess.run(tsops_cmd(root, "ingest"), env=_env(), capture_output=True, text=True, timeout=600)
            res.runs += 1
            res.exit_codes[r.returncode] += 1
            res.seconds = time.perf_counter() - t0
            return verify(root, expected, res)
    write_project(root, files_source(batch_rows))
    for i, k in enumerate(sizes):  # fail at write k // 32 (or 2, 4, 8, ...) of the run
        code = _ingest_in_process(root, fail_at=max(2 ** (i + 1), k // 32))
        res.runs += 1
        res.exit_codes[code] += 1
        res.kills += code != 0
    res.exit_codes[_ingest_in_process(root, fail_at=None)] += 1
    res.runs += 1
    res.seconds = time.perf_counter() - t0
    return verify(root, expected, res)


def _ingest_in_process(root: Path, fail_at: int | None) -> int:
    """One ingestion in this process with the lake's Parquet writer failing (ENOSPC) at write ``fail_at``."""
    import pyarrow.parquet as pq

    import tsops.lake.store as store
    from tsops.config import load_project
    from tsops.ingest.api import ingest

    real = pq.write_table
    calls = {"n": 0}

    def full_disk(table: Any, where: Any, *a: Any, filesystem: Any = None, **kw: Any) -> None:
        calls["n"] += 1
        if fail_at is not None and calls["n"] >= fail_at:
            with filesystem.open_output_stream(where) as out:  # half a file, then the disk is full
                out.write(b"PAR1" + b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), where)
        real(table, where, *a, filesystem=filesystem, **kw)

    store.pq.write_table = full_disk  # the lake's writer only (restored below)
    try:
        ingest(load_project(root), DATASET)
        return 0
    except OSError as err:
        return 1 if err.errno == errno.ENOSPC else 3
    finally:
        store.pq.write_table = real


def concurrent(root: Path, rounds: int = 6, procs: int = 3, per_round: int = 2_000, batch_rows: int = 300,
               seed: int = 6) -> FaultResult:
    """``procs`` ingestions started at once, ``rounds`` times, new files each round; some wait, some exit."""
    t0 = time.perf_counter()
    res = FaultResult(f"{procs} concurrent `tsops ingest`, {rounds} rounds")
    rng = random.Random(seed)
    write_project(root, files_source(batch_rows))
    expected: set[tuple[str, int]] = set()
    stale_seen = 0
    for r in range(rounds):
        expected |= write_files(root, per_round, 2, seed + r, prefix=f"round{r:02d}", start=r * per_round)
        cmds = [tsops_cmd(root, "ingest", *(["--wait"] if k % 2 else [])) for k in range(procs)]
        errs = [open(root / f"stderr-{r}-{k}.txt", "w+") for k in range(len(cmds))]  # noqa: SIM115
        ps = [subprocess.Popen(c, env=_env(), stdout=subprocess.DEVNULL, stderr=e, text=True)
              for c, e in zip(cmds, errs, strict=True)]
        res.runs += len(ps)
        if r % 3 == 2:  # kill the one holding the lock, once it committed something
            _kill_lock_holder(root, ps, rng, res)
        for p, e in zip(ps, errs, strict=True):
            p.wait(timeout=600)
            e.seek(0)
            err = e.read()
            e.close()
            res.exit_codes["SIGKILL" if p.returncode == -signal.SIGKILL else p.returncode] += 1
            if p.returncode not in (0, 2, -signal.SIGKILL):
                res.note += f" run failed: {err.strip().splitlines()[-1:]};"
            elif p.returncode == 2 and "already in progress" not in err:
                res.note += f" exit 2 without the lock message: {err.strip()[:80]};"
    final = subprocess.run(tsops_cmd(root, "ingest", "--wait"), env=_env(), capture_output=True, text=True,
                           timeout=600)
    res.runs += 1
    res.exit_codes[final.returncode] += 1
    from tsops.config import load_project

    cat = load_project(root).catalog()
    try:
        running = [x for x in cat.list_runs(DATASET, "ingest", 1000) if x["status"] == "running"]
        stale_seen = sum(1 for x in cat.list_runs(DATASET, "ingest", 1000) if (x["error"] or "").startswith("stale"))
    finally:
        cat.close()
    if running:
        res.note += f" {len(running)} run(s) still 'running';"
    res.note += f" {stale_seen} killed run(s) marked failed as stale;"
    res.seconds = time.perf_counter() - t0
    return verify(root, expected, res)


def _kill_lock_holder(root: Path, ps: list[subprocess.Popen], rng: random.Random, res: FaultResult) -> None:
    lock = root / ".tsops" / "locks" / f"{DATASET}.ingest.lock"
    before = committed(root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(p.poll() is None for p in ps):
        try:
            holder = json.loads(lock.read_text() or "{}").get("pid")
        except (OSError, ValueError):
            holder = None
        victim = next((p for p in ps if p.pid == holder and p.poll() is None), None)
        if victim is not None and committed(root) > before:
            time.sleep(rng.uniform(0.0, 0.3))
            if victim.poll() is None:
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                if _left_running(root, victim.pid):  # killed mid-run (not while exiting)
                    res.kills += 1
            return
        time.sleep(0.05)


def _left_running(root: Path, pid: int) -> bool:
    from tsops.config import load_project

    cat = load_project(root).catalog()
    try:
        return any(r["status"] == "running" and r["stats"].get("pid") == pid
                   for r in cat.list_runs(DATASET, "ingest", 50))
    finally:
        cat.close()


def run_all(scratch: Path, *, small: bool = False, mariadb_url: str | None = None,
            only: Iterable[str] | None = None) -> list[FaultResult]:
    """Every scenario (at test sizes with ``small``) in subdirectories of ``scratch``."""
    scale = 0.25 if small else 1.0
    out: list[FaultResult] = []
    owner = None
    wanted = set(only) if only else None

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    if want("files_sigkill"):
        out.append(files_sigkill(scratch / "files", n=int(20_000 * scale), kills=2 if small else 4))
    if want("kafka_sigkill"):
        owner, bootstrap = mock_cluster()
        out.append(kafka_sigkill(scratch / "kafka", bootstrap, n=int(12_000 * scale), kills=2 if small else 3))
    if want("sql_sigkill"):
        out.append(sql_sigkill(scratch / "sqlite", n=int(20_000 * scale), kills=2 if small else 4))
        if mariadb_url:
            out.append(sql_sigkill(scratch / "mariadb", mariadb_url, n=int(20_000 * scale), kills=2 if small else 4))
    if want("kafka_broker_loss"):
        (scratch / "broker").mkdir(parents=True, exist_ok=True)
        out.append(kafka_broker_loss(scratch / "broker", n=int(12_000 * scale), losses=1 if small else 2))
    if want("disk_full"):
        (scratch / "disk").mkdir(parents=True, exist_ok=True)
        out.append(disk_full(scratch / "disk", n=int(20_000 * scale)))
    if want("concurrent"):
        (scratch / "concurrent").mkdir(parents=True, exist_ok=True)
        out.append(concurrent(scratch / "concurrent", rounds=3 if small else 6))
    del owner
    return out
