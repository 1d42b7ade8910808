from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsops.quality import estimate_period, exact_gcd_period

P = pd.Timedelta(minutes=10)
START = pd.Timestamp("2024-03-01 00:05:49", tz="UTC")


def grid(k, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    t = START + pd.to_timedelta(np.asarray(k) * P.value, unit="ns")
    return t + pd.to_timedelta(rng.uniform(-jitter, jitter, len(k)) * P.total_seconds(), unit="s")


def test_regular_series_exact_period_and_phase():
    est = estimate_period(grid(np.arange(500)))
    assert est.period == P
    assert est.phase == pd.Timedelta(minutes=5, seconds=49)
    assert est.explained_share == 1.0
    assert est.confidence > 0.95


def test_jitter_missing_duplicates_out_of_order():
    rng = np.random.default_rng(3)
    k = np.sort(rng.choice(4000, 2000, replace=False))  # 50% missing
    t = grid(k, jitter=0.03, seed=1)
    t = t.append(t[rng.choice(len(t), 200)])  # duplicates
    t = t[rng.permutation(len(t))]  # out of order
    est = estimate_period(t)
    assert abs(est.period / P - 1) < 0.001
    assert abs((est.phase - pd.Timedelta(minutes=5, seconds=49)).total_seconds()) < 10
    assert est.explained_share > 0.99
    assert 0.5 < est.confidence <= 1.0
    # the peers fail on the same input
    assert exact_gcd_period(t) < pd.Timedelta(seconds=10)


def test_mixed_multiples_give_the_base_period():
    # only 10 and 20 minute gaps
    steps = np.random.default_rng(0).choice([1, 2], size=300)
    assert estimate_period(grid(np.cumsum(steps))).period == P
    # only 20 and 30 minute gaps: approximate GCD is still 10 min
    steps = np.random.default_rng(1).choice([2, 3], size=300)
    assert estimate_period(grid(np.cumsum(steps), jitter=0.01)).period == P


def test_outlier_gaps_outside_top_95_percent_are_ignored():
    k = np.arange(1000)
    t = grid(k)
    odd = t[:20] + pd.Timedelta(seconds=137)  # 2% odd readings -> 4% odd differences
    est = estimate_period(t.append(odd))
    assert est.period == P
    assert est.explained_share < 1.0


def test_accepts_strings_int_us_and_handles_tiny_inputs():
    est = estimate_period(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:00", None])
    assert est.period == pd.Timedelta(hours=1)
    us = np.array([0, 1_000_000, 2_000_000, 4_000_000], dtype=np.int64)
    assert estimate_period(us).period == pd.Timedelta(seconds=1)
    short = estimate_period(["2024-01-01", "2024-01-02"])
    assert short.period is None and short.confidence == 0.0
    d = estimate_period(grid(np.arange(10))).to_dict()
    assert d["period_seconds"] == 600.0 and d["phase_seconds"] == 349.0


def test_bad_coverage_raises():
    with pytest.raises(ValueError, match="coverage"):
        estimate_period(grid(np.arange(10)), coverage=0)


def test_a_stray_far_timestamp_does_not_bias_the_period():
    rng = np.random.default_rng(5)
    t = grid(np.arange(1000), jitter=0.02, seed=5)
    stray = pd.DatetimeIndex([t[-1] + pd.Timedelta(days=38, seconds=17)])
    for ts in (t.append(stray), stray.append(t[rng.permutation(1000)]) - pd.Timedelta(days=80)):
        est = estimate_period(ts)
        assert est.period == P and est.confidence > 0.8
