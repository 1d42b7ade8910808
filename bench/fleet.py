"""A sensor fleet through the product path: files -> ``tsops ingest`` -> ``tsops process``, against pandas.

N one-minute sensors over two days (default 2,000: ~5.5 M raw rows with +-10 % jitter, 5 % gaps, 1 %
duplicates, 0.2 % spikes, a per-row attribute) are written as Parquet files. Each stage runs in its own child
process through the functions the CLI calls (:func:`tsops.ingest.api.ingest`,
:func:`tsops.quality.process.process_dataset`), so wall time, CPU time and peak RSS are the stage's own. The
peer, measured in the same run on the same files: a straightforward pandas chain (read, per series: sort,
dedup, regular grid, IQR flags, linear interpolation, Parquet out).

    PYTHONPATH=src python bench/fleet.py                       # 2,000 sensors, 3 runs
    PYTHONPATH=src python bench/fleet.py --sensors 200,800,2000 --runs 1   # memory as N grows
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

PERIOD_S = 60
DAYS = 2


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_files(root: Path, sensors: int, seed: int = 0, files: int = 8) -> int:
    """Write the fleet's raw readings as ``files`` Parquet files (time slices); return the number of rows."""
    rng = np.random.default_rng(seed)
    n = DAYS * 86_400 // PERIOD_S
    start = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=DAYS + 1)
    t0 = start.value // 1000
    phase = rng.integers(0, PERIOD_S * 1_000_000, sensors)
    i = np.arange(n)
    (root / "incoming").mkdir(parents=True, exist_ok=True)
    total = 0
    bounds = np.linspace(0, n, files + 1).astype(int)
    for f in range(files):
        idx = i[bounds[f]:bounds[f + 1]]
        cols_t, cols_v, cols_s = [], [], []
        for s in range(sensors):
            keep = rng.random(idx.size) >= 0.05
            k = idx[keep]
            t = t0 + phase[s] + k * PERIOD_S * 1_000_000 + (
                rng.uniform(-0.1, 0.1, k.size) * PERIOD_S * 1_000_000).astype(np.int64)
            v = 20 + 3 * np.sin(2 * np.pi * k / 1440) + rng.normal(0, 0.2, k.size)
            spikes = rng.random(k.size) < 0.002
            v[spikes] += rng.choice([-15.0, 15.0], int(spikes.sum()))
            dup = rng.random(k.size) < 0.01
            t = np.concatenate([t, t[dup]])
            v = np.concatenate([v, v[dup]])
            cols_t.append(t)
            cols_v.append(v)
            cols_s.append(np.full(t.size, s, np.int32))
        t = np.concatenate(cols_t)
        v = np.concatenate(cols_v)
        s = np.concatenate(cols_s)
        table = pa.table({
            "event_time": pa.array(t, pa.timestamp("us", tz="UTC")),
            "sensor": pa.array(np.char.add("s", s.astype(str))),
            "value": v,
            "rssi": pa.array(rng.integers(-90, -40, t.size).astype(np.int16)),
        })
        pq.write_table(table, root / "incoming" / f"part-{f:03d}.parquet")
        total += table.num_rows
    (root / "tsops.yaml").write_text(yaml.safe_dump({"name": "fleet", "datasets": {"fleet": {
        "series": {"timestamp": "event_time", "keys": ["sensor"], "values": ["value"]},
        "source": {"kind": "files", "format": "parquet", "paths": ["incoming/*.parquet"]}}}}))
    return total


def stage(root: Path, name: str) -> dict:
    """Run one stage in this process (called in a child); return wall, cpu, rss, rows."""
    from tsops.config import load_project

    project = load_project(root)
    w0, c0 = time.perf_counter(), time.process_time()
    if name == "ingest":
        from tsops.ingest.api import ingest

        rep = ingest(project, "fleet")
        rows = rep.accepted
    elif name == "process":
        from tsops.quality.process import process_dataset

        rep = process_dataset(project, "fleet")
        rows = rep.rows_in
    elif name == "pandas":
        rows = pandas_chain(root)
    else:
        raise SystemExit(f"unknown stage {name}")
    return {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0, "rows": int(rows),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def pandas_chain(root: Path) -> int:
    """The peer: read the files, then per series sort, dedup, regular 1-min grid, IQR flags, interpolate."""
    df = pd.concat([pd.read_parquet(p) for p in sorted((root / "incoming").glob("*.parquet"))], ignore_index=True)
    out = []
    for sid, g in df.groupby("sensor", sort=False):
        s = g.set_index("event_time")["value"].sort_index()
        s = s[~s.index.duplicated(keep="last")]
        step = s.index.to_series().diff().median()
        grid = s.resample(step).mean()
        q1, q3 = grid.quantile([0.25, 0.75])
        iqr = q3 - q1
        bad = (grid < q1 - 3 * iqr) | (grid > q3 + 3 * iqr)
        clean = grid.mask(bad).interpolate(limit_direction="both")
        out.append(pd.DataFrame({"series_id": sid, "ts": grid.index, "value": clean.to_numpy(),
                                 "raw_value": grid.to_numpy(), "is_anomaly": bad.to_numpy()}))
    res = pd.concat(out, ignore_index=True)
    res.to_parquet(root / "pandas_out.parquet")
    return len(df)


def child(root: Path, name: str) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--root", str(root)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode:
        raise RuntimeError(f"stage {name} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", default="2000", help="comma-separated fleet sizes")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child")
    ap.add_argument("--root")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(stage(Path(args.root), args.child)))
        return
    print(f"# fleet bench ({pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC) cpu: {cpu_model()}, "
          f"{os.cpu_count()} cores; load average {tuple(round(x, 2) for x in os.getloadavg())}")
    print("| sensors | raw rows | stage | wall min / median s | CPU min / median s | M rows per CPU-s (best) | "
          "peak RSS MB | vs pandas (CPU) |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.sensors.split(",")):
        results: dict[str, list[dict]] = {"ingest": [], "process": [], "pandas": []}
        nrows = 0
        for run in range(args.runs):
            root = Path(tempfile.mkdtemp(prefix="tsops-fleet-"))
            try:
                nrows = make_files(root, n, seed=run)
                for name in ("ingest", "process", "pandas"):
                    results[name].append(child(root, name))
            finally:
                shutil.rmtree(root, ignore_errors=True)
        pandas_cpu = min(r["cpu"] for r in results["pandas"])
        for name, rs in results.items():
            walls = [r["wall"] for r in rs]
            cpus = [r["cpu"] for r in rs]
            best = min(cpus)
            ratio = pandas_cpu / best if name != "pandas" else 1.0
            print(f"| {n:,} | {nrows:,} | {name} | {min(walls):.2f} / {statistics.median(walls):.2f} | "
                  f"{best:.2f} / {statistics.median(cpus):.2f} | {rs[0]['rows'] / best / 1e6:.2f} | "
                  f"{max(r['rss_mb'] for r in rs):.0f} | {ratio:.2f}x |")
    print(f"load average after: {tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
