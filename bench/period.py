"""Sampling-period estimation accuracy on synthetic series with a known period.

Scenarios: clean, jitter (3% of the period), 50% missing, duplicates + out-of-order arrival, mixed
multiples (steps of 1 and 2 periods), everything together, and a hard case (5% jitter, 70% missing). Estimators: ``tsops estimate_period``,
``pandas.infer_freq`` (on the sorted unique timestamps) and an exact-GCD estimator. Prints the share of
series whose estimate lies within 1% of the true period, per scenario, plus the time per series.

    PYTHONPATH=src python bench/period.py --series 200
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd

from tsops.quality.period import estimate_period, exact_gcd_period

PERIODS_S = np.array([1, 15, 60, 300, 600, 900, 3600, 86400])
SCENARIOS = {
    "clean": dict(),
    "jitter 3%": dict(jitter=0.03),
    "50% missing": dict(missing=0.5),
    "dups + out-of-order": dict(dups=0.1, shuffle=True),
    "mixed 1x/2x steps": dict(mixed=True),
    "jitter+missing+dups+shuffle": dict(jitter=0.03, missing=0.5, dups=0.1, shuffle=True),
    "all + mixed": dict(jitter=0.02, missing=0.3, dups=0.05, shuffle=True, mixed=True),
    "hard: jitter 5% + 70% missing": dict(jitter=0.05, missing=0.7, dups=0.05, shuffle=True),
}


def synth(rng: np.random.Generator, period_s: float, n: int, jitter: float = 0.0, missing: float = 0.0,
          dups: float = 0.0, shuffle: bool = False, mixed: bool = False) -> pd.DatetimeIndex:
    p = int(period_s * 1e6)
    steps = rng.choice([1, 2], size=n) if mixed else np.ones(n, np.int64)
    k = np.cumsum(steps)
    k = k[rng.random(n) >= missing]
    t = 1_700_000_000_000_000 + int(rng.integers(0, p)) + k * p
    t = t + (rng.uniform(-jitter, jitter, k.size) * p).astype(np.int64)
    if dups:
        t = np.concatenate([t, rng.choice(t, int(dups * t.size))])
    if shuffle:
        rng.shuffle(t)
    return pd.DatetimeIndex(pd.to_datetime(t, unit="us", utc=True))


def infer_freq_period(idx: pd.DatetimeIndex) -> pd.Timedelta | None:
    u = idx.sort_values().unique()
    try:
        f = pd.infer_freq(u)
    except (ValueError, TypeError):
        return None
    if f is None:
        return None
    try:
        return pd.Timedelta(pd.tseries.frequencies.to_offset(f if f[0].isdigit() else "1" + f))
    except ValueError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=200, help="series per scenario")
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    estimate_period(pd.date_range("2024", periods=10, freq="h"))  # JIT warm-up
    rows = []
    times = {"tsops": 0.0, "infer_freq": 0.0, "exact_gcd": 0.0}
    for name, kw in SCENARIOS.items():
        hits = {k: 0 for k in times}
        for _ in range(args.series):
            p_true = float(rng.choice(PERIODS_S))
            idx = synth(rng, p_true, args.points, **kw)
            truth = pd.Timedelta(seconds=p_true)
            for est, fn in (("tsops", lambda i: estimate_period(i).period), ("infer_freq", infer_freq_period),
                            ("exact_gcd", exact_gcd_period)):
                t0 = time.perf_counter()
                got = fn(idx)
                times[est] += time.perf_counter() - t0
                if got is not None and abs(got / truth - 1) <= 0.01:
                    hits[est] += 1
        rows.append({"scenario": name, **{k: hits[k] / args.series for k in hits}})
    df = pd.DataFrame(rows).set_index("scenario")
    print(f"share of series within 1% of the true period ({args.series} series x {args.points} points each)")
    print(df.to_string(float_format=lambda x: f"{x:.2f}"))
    mean = df.mean()
    print("mean:", ", ".join(f"{k} {v:.2f}" for k, v in mean.items()))
    best_peer = max(mean["infer_freq"], mean["exact_gcd"])
    print(f"ratio tsops / best peer (mean share): {mean['tsops'] / max(best_peer, 1e-9):.1f}x")
    n_total = args.series * len(SCENARIOS)
    print("time per series: " + ", ".join(f"{k} {v / n_total * 1e3:.2f} ms" for k, v in times.items()))
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
