"""Throughput of the full cleaning chain (validate, dedup, period, gaps, impute, anomalies) on many series.

Compares ``tsops.quality.clean_many`` (batched numba kernels) with a straightforward pandas implementation
(sort / drop_duplicates / infer_freq with a median fallback / resample().mean() / interpolate / IQR with
groupby) measured in the same run on a subset of the same data. Prints points/s, the ratio and peak RSS.

    PYTHONPATH=src python bench/cleaning.py --series 10000 --points 10000
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import pandas as pd

from tsops.quality import CleaningConfig, clean_frame, clean_many


def make_data(n_series: int, n_points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays of jittered (2%), gappy (5% missing), duplicated (1%) series with spikes (0.5%)."""
    rng = np.random.default_rng(seed)
    periods = rng.choice(np.array([60, 300, 600, 3600], np.int64) * 1_000_000, size=n_series)
    start = np.int64(1_700_000_000_000_000) + rng.integers(0, 3600, n_series) * 1_000_000
    ts = np.empty(n_series * n_points, np.int64)
    val = np.empty(n_series * n_points, np.float64)
    i = np.arange(n_points, dtype=np.float64)
    for s in range(n_series):
        a = s * n_points
        t = start[s] + (i * periods[s] + rng.uniform(-0.02, 0.02, n_points) * periods[s]).astype(np.int64)
        keep = rng.random(n_points) >= 0.05
        t = np.where(keep, t, t[np.maximum(np.arange(n_points) - 1, 0)])  # 5% gaps become duplicates
        v = 10 + np.sin(i * 2 * np.pi / 144) + rng.normal(0, 0.1, n_points)
        spikes = rng.random(n_points) < 0.005
        v[spikes] += rng.choice([-8.0, 8.0], int(spikes.sum()))
        ts[a:a + n_points] = t
        val[a:a + n_points] = v
    offsets = np.arange(n_series + 1, dtype=np.int64) * n_points
    dup = rng.random(ts.size) < 0.01
    dup[offsets[:-1]] = False  # the first point of a series has no predecessor to duplicate
    ts[1:][dup[1:]] = ts[:-1][dup[1:]]
    return ts, val, offsets


def pandas_chain(df: pd.DataFrame) -> pd.DataFrame:
    """The straightforward pandas implementation used as the baseline."""
    out = []
    for sid, g in df.groupby("series_id", sort=False):
        s = g.set_index("ts")["value"].sort_index()
        s = s[~s.index.duplicated(keep="last")]
        s = s[s.index.notna()]
        freq = None
        try:
            freq = pd.infer_freq(s.index)
        except ValueError:
            freq = None
        if freq is None:
            freq = s.index.to_series().diff().median()
        r = s.resample(freq).mean()
        r = r.interpolate(method="time")
        out.append(pd.DataFrame({"series_id": sid, "ts": r.index, "value": r.to_numpy()}))
    res = pd.concat(out, ignore_index=True)
    grp = res.groupby("series_id")["value"]
    q1 = grp.transform(lambda x: x.quantile(0.25))
    q3 = grp.transform(lambda x: x.quantile(0.75))
    iqr = q3 - q1
    res["is_anomaly"] = (res["value"] < q1 - 3 * iqr) | (res["value"] > q3 + 3 * iqr)
    return res


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--baseline-series", type=int, default=50, help="series measured with the pandas baseline")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    t0 = time.perf_counter()
    ts, val, off = make_data(args.series, args.points)
    n = ts.size
    print(f"data: {args.series} series x {args.points} points = {n:,} points "
          f"({time.perf_counter() - t0:.1f} s to generate)")
    cfg = CleaningConfig(now="2100-01-01")
    # warm-up / JIT compile on a small slice
    clean_many(ts[: off[2]], val[: off[2]], off[:3], cfg)
    best = float("inf")
    best_cpu = float("inf")
    for _ in range(args.repeat):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        res = clean_many(ts, val, off, cfg)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, cpu_seconds() - c0)
        n_out = int(res.offsets[-1])
        del res
    ours = n / best
    print(f"tsops clean_many: {best:.2f} s wall -> {ours / 1e6:.1f} M points/s "
          f"({n_out:,} rows out; {best_cpu:.2f} CPU-s = {n / best_cpu / 1e6:.1f} M points per CPU-second, "
          f"i.e. {os.cpu_count() * n / best_cpu / 1e6:.1f} M points/s on {os.cpu_count()} idle cores)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    nf = min(1000, args.series)
    long = pd.DataFrame({
        "series_id": np.repeat(np.array([f"s{i:05d}" for i in range(nf)], dtype=object), np.diff(off[: nf + 1])),
        "ts": pd.to_datetime(ts[: off[nf]], unit="us", utc=True).as_unit("us"),
        "value": val[: off[nf]],
    })
    t0 = time.perf_counter()
    out, docs = clean_frame(long, CleaningConfig(now="2100-01-01", score_imputation=False))
    tf = time.perf_counter() - t0
    print(f"tsops clean_frame (pandas long frame in/out + quality documents, {nf} series): {tf:.2f} s -> "
          f"{len(long) / tf / 1e6:.1f} M points/s")
    del out, docs, long

    nb = min(args.baseline_series, args.series)
    sub = pd.DataFrame({
        "series_id": np.repeat(np.arange(nb), args.points),
        "ts": pd.to_datetime(ts[: off[nb]], unit="us", utc=True),
        "value": val[: off[nb]],
    })
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    pandas_chain(sub)
    tb = time.perf_counter() - t0
    cb = cpu_seconds() - c0
    base = len(sub) / tb
    print(f"pandas baseline ({nb} series, one core): {tb:.2f} s -> {base / 1e6:.2f} M points/s "
          f"({len(sub) / cb / 1e6:.2f} M points per CPU-second)")
    print(f"ratio tsops / pandas (wall): {ours / base:.1f}x; per CPU-second: {(n / best_cpu) / (len(sub) / cb):.1f}x"
          "  (targets: >= 20 M points/s, >= 10x)")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
