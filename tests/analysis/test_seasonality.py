"""Season detection: the cycles a series really has, in samples of its own grid."""

import numpy as np
import pandas as pd
import pytest

from tsops.analysis.seasonality import candidate_lengths, detect_seasons

DATA = __import__("pathlib").Path(__file__).resolve().parents[1] / "data"


def test_candidates_follow_the_sampling_period():
    assert candidate_lengths(600, 10 * 144) == [("daily", 144)]
    assert candidate_lengths(597.1, 3 * 145) == [("daily", 145)]  # rounded to whole samples
    assert candidate_lengths(3600, 24 * 7 * 3) == [("daily", 24), ("weekly", 168)]
    assert candidate_lengths(7 * 86400, 52) == []  # one year of weekly sales: a yearly cycle cannot be seen yet
    assert candidate_lengths(7 * 86400, 156) == [("yearly", 52)]
    assert candidate_lengths(0, 100) == [] and candidate_lengths(float("nan"), 100) == []


def test_a_ten_minute_sensor_with_a_daily_cycle_over_two_days():
    rng = np.random.default_rng(0)
    t = np.arange(288)
    x = 20 + 3 * np.sin(2 * np.pi * t / 144) + rng.normal(0, 0.5, t.size)
    (s,) = detect_seasons(x, 600)
    assert (s.name, s.length) == ("daily", 144) and s.strength > 0.8


def test_weekly_reported_only_when_it_adds_to_daily():
    rng = np.random.default_rng(1)
    t = np.arange(24 * 7 * 8)
    daily = 5 * np.sin(2 * np.pi * t / 24)
    only_daily = detect_seasons(daily + rng.normal(0, 1, t.size), 3600)
    assert [s.length for s in only_daily] == [24]
    weekday = np.where((t // 24) % 7 >= 5, -4.0, 1.0)
    both = detect_seasons(daily + weekday + rng.normal(0, 1, t.size), 3600)
    assert sorted(s.length for s in both) == [24, 168]


@pytest.mark.parametrize("seed", range(5))
def test_persistence_and_noise_are_not_seasons(seed):
    rng = np.random.default_rng(seed)
    assert detect_seasons(np.cumsum(rng.normal(size=3000)), 3600) == []  # random walk
    ar = np.zeros(3000)
    e = rng.normal(size=3000)
    for i in range(1, ar.size):
        ar[i] = 0.95 * ar[i - 1] + e[i]
    assert detect_seasons(ar, 3600) == []
    assert detect_seasons(rng.normal(size=2000), 600) == []


def test_missing_values_and_constant_series():
    rng = np.random.default_rng(2)
    t = np.arange(24 * 20)
    x = 10 + 4 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, t.size)
    x[rng.random(t.size) < 0.3] = np.nan
    assert [s.length for s in detect_seasons(x, 3600)] == [24]
    assert detect_seasons(np.full(500, 3.0), 3600) == []
    assert detect_seasons(x, None) == []


def test_real_data_beijing_temperature_is_daily_pm25_is_not():
    raw = pd.read_csv(DATA / "beijing_aotizhongxin_2013_6w.csv")
    assert [s.name for s in detect_seasons(raw["TEMP"].to_numpy(float), 3600)] == ["daily"]
    assert detect_seasons(raw["PM2.5"].to_numpy(float), 3600) == []  # episodes, no daily rhythm that matters
