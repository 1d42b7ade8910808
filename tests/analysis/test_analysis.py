from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsops.analysis import (
    MinMaxScaler,
    RobustScaler,
    SeriesScaler,
    StandardScaler,
    acf,
    acf_season_length,
    align,
    best_lags,
    correlation,
    decompose,
    describe,
    downsample,
    infer_season_length,
    kde,
    make_windows,
    make_windows_frame,
    profile,
    stationarity,
    strength,
    upsample,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def seasonal(n=24 * 20, season=24, seed=0, trend=0.0):
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    return 10 + trend * i + 3 * np.sin(2 * np.pi * i / season) + rng.normal(0, 0.3, n)


def test_describe_kde_acf():
    x = seasonal()
    d = describe(np.append(x, np.nan))
    assert d["count"] == len(x) and d["missing"] == 1 and d["min"] <= d["median"] <= d["max"]
    k = kde(x)
    assert k["density"].min() >= 0 and np.trapezoid(k["density"], k["x"]) == pytest.approx(1, abs=0.02)
    r = acf(x, 48)
    assert r[0] == pytest.approx(1) and r[24] > 0.8 and r[12] < -0.8
    assert acf_season_length(x, 60) == 24
    with pytest.raises(ValueError, match="KDE"):
        kde([1.0, 1.0])


def test_stationarity_and_strength():
    rng = np.random.default_rng(1)
    assert stationarity(rng.normal(size=400))["verdict"] == "stationary"
    assert stationarity(np.cumsum(rng.normal(size=400)) + 0.05 * np.arange(400))["verdict"] != "stationary"
    s = strength(seasonal(trend=0.05), 24)
    assert s["seasonal_strength"] > 0.9 and s["trend_strength"] > 0.9
    assert strength(rng.normal(size=480), 24)["seasonal_strength"] < 0.3
    json.dumps(profile(seasonal(), 24))


def test_decompose_stl_mstl_and_season_inference():
    x = seasonal()
    d = decompose(x, 24)
    np.testing.assert_allclose(d.sum(axis=1), x)
    assert np.std(d["resid"]) < 0.5
    m = decompose(seasonal(n=24 * 7 * 4) + np.sin(2 * np.pi * np.arange(24 * 7 * 4) / 168), [24, 168])
    assert np.std(m["resid"]) < 0.5
    assert infer_season_length(pd.Timedelta(hours=1), 1000) == 24
    assert infer_season_length(pd.Timedelta(minutes=10), 1000) == 144
    assert infer_season_length(pd.Timedelta(days=1), 100) == 7
    assert infer_season_length(pd.Timedelta(seconds=7), 100) is None


def test_resampling():
    ts = pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC")
    df = pd.DataFrame({"series_id": "a", "ts": ts, "value": np.arange(48.0)})
    day = downsample(df, "1D", "mean")
    assert day["value"].tolist() == [11.5, 35.5]
    assert downsample(df, "1D", "sum")["value"].iloc[0] == sum(range(24))
    assert downsample(df, "1D", "last")["value"].tolist() == [23.0, 47.0]
    up = upsample(df.iloc[:3], "15min")
    assert len(up) == 9 and up["value"].iloc[1] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="how must be"):
        downsample(df, "1D", "mode")


def sensors():
    """Three sensors at different moments: b follows a by 2 hours, c is noise."""
    rng = np.random.default_rng(3)
    n = 24 * 30
    base = pd.Timestamp("2024-01-01", tz="UTC")
    sig = np.sin(2 * np.pi * np.arange(n + 10) / 24) + rng.normal(0, 0.1, n + 10)
    a = pd.DataFrame({"series_id": "a", "ts": base + pd.to_timedelta(np.arange(n), unit="h"), "value": sig[2:n + 2]})
    b = pd.DataFrame({"series_id": "b", "ts": base + pd.to_timedelta(np.arange(n) * 60 + 7, unit="min"),
                      "value": sig[:n] * 2 + 1})
    c = pd.DataFrame({"series_id": "c", "ts": base + pd.to_timedelta(np.arange(n) * 60 + 31, unit="min"),
                      "value": rng.normal(size=n)})
    return pd.concat([a, b, c], ignore_index=True)


def test_align_correlate_and_best_lag():
    df = sensors()
    wide = align(df)  # as-of within half the largest period (30 min)
    assert list(wide.columns) == ["a", "b", "c"] and len(wide) == 24 * 30
    assert wide.iloc[1:].notna().all().all()
    wide2 = align(df, tolerance="10min")
    assert wide2["b"].notna().all() and wide2["c"].isna().all()  # c is 29 min away: beyond 10 min
    grid = align(df, how="grid")
    assert grid.notna().mean().min() > 0.95
    lags = best_lags(grid, max_lag=6)
    top = lags.iloc[0]
    assert {top["leader"], top["follower"]} == {"a", "b"} and top["leader"] == "a" and top["lag"] == 2
    assert top["corr"] > 0.95
    for m in ("pearson", "spearman"):
        c = correlation(grid, m)
        assert abs(c.loc["a", "c"]) < 0.2 and c.loc["a", "a"] == pytest.approx(1)
    with pytest.raises(ValueError, match="method"):
        correlation(grid, "kendall")


def test_real_beijing_pollutants_correlate():
    raw = pd.read_csv(DATA / "beijing_aotizhongxin_2013_6w.csv")
    ts = pd.to_datetime(raw[["year", "month", "day", "hour"]]).dt.tz_localize("UTC")
    long = pd.concat([pd.DataFrame({"series_id": c, "ts": ts, "value": raw[c]}) for c in ("PM2.5", "PM10", "TEMP")])
    wide = align(long, how="grid")
    c = correlation(wide, "spearman")
    assert c.loc["PM2.5", "PM10"] > 0.8


@pytest.mark.parametrize("cls", [MinMaxScaler, StandardScaler, RobustScaler])
def test_scalers_per_series_invertible_and_persisted(cls):
    df = pd.DataFrame({"series_id": ["a"] * 50 + ["b"] * 50,
                       "value": np.r_[np.linspace(0, 10, 50), np.linspace(1000, 1200, 50)]})
    sc = cls().fit(df)
    z = sc.transform(df)
    for _, g in z.groupby("series_id"):
        assert g["value"].abs().max() < 5
    restored = SeriesScaler.from_dict(json.loads(json.dumps(sc.to_dict())))
    np.testing.assert_allclose(restored.inverse_transform(z)["value"], df["value"])
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(cls().fit(x).inverse_transform(cls().fit(x).transform(x)), x)
    np.testing.assert_allclose(cls().fit(np.ones(3)).transform(np.ones(3)), cls().fit(np.ones(3)).transform(np.ones(3)))
    with pytest.raises(KeyError, match="not seen"):
        sc.transform(pd.DataFrame({"series_id": ["zz"], "value": [1.0]}))
    with pytest.raises(RuntimeError, match="not fitted"):
        cls().transform(x)


def test_windows():
    X, y = make_windows(np.arange(10.0), input_len=3, horizon=2, stride=2)
    assert X.tolist() == [[0, 1, 2], [2, 3, 4], [4, 5, 6]] and y.tolist() == [[3, 4], [5, 6], [7, 8]]
    X0, y0 = make_windows(np.arange(3.0), 3, 1)
    assert X0.shape == (0, 3) and y0.shape == (0, 1)
    df = pd.DataFrame({"series_id": ["a"] * 6 + ["b"] * 5, "ts": list(range(6)) + list(range(5)),
                       "value": np.arange(11.0)})
    X, y, ids = make_windows_frame(df, 2, 1)
    assert len(X) == 4 + 3 and ids.tolist().count("b") == 3 and y[-1, 0] == 10.0
    with pytest.raises(ValueError, match=">= 1"):
        make_windows(np.arange(5.0), 0)
