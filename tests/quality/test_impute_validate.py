from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsops.quality import (
    IMPUTERS,
    apply_treatment,
    compare_imputers,
    impute_values,
    iqr_anomalies,
    robust_z,
    validate_frame,
)


def seasonal_series(n=144 * 6, season=144, seed=0):
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    t = (1_700_000_000 + i * 600).astype(np.int64) * 1_000_000
    return t, 20 + 5 * np.sin(2 * np.pi * i / season) + 0.01 * i + rng.normal(0, 0.1, n)


@pytest.mark.parametrize("method", IMPUTERS)
def test_each_imputer_fills_and_flags(method):
    t, v = seasonal_series()
    x = v.copy()
    x[[0, 5, 6, 7, 400, 863]] = np.nan
    filled, mask = impute_values(t, x, method, season_length=144)
    assert np.isfinite(filled).all()
    assert mask.sum() == 6 and mask[[0, 5, 863]].all()
    assert np.array_equal(filled[~mask], x[~mask])
    assert np.abs(filled[[5, 6, 7, 400]] - v[[5, 6, 7, 400]]).max() < 1.5


def test_linear_is_time_aware():
    t = np.array([0, 1, 3, 4], np.int64) * 1_000_000
    filled, _ = impute_values(t, np.array([0.0, np.nan, np.nan, 4.0]), "linear")
    np.testing.assert_allclose(filled, [0, 1, 3, 4])


def test_seasonal_beats_linear_on_a_long_gap():
    t, v = seasonal_series()
    x = v.copy()
    x[300:372] = np.nan  # half a season
    lin, _ = impute_values(t, x, "linear")
    sea, _ = impute_values(t, x, "seasonal", season_length=144)
    err = lambda f: np.sqrt(np.mean((f[300:372] - v[300:372]) ** 2))  # noqa: E731
    assert err(sea) < 0.3 < err(lin)
    scores = compare_imputers(t, v, season_length=144, block_len=48, seed=1)
    assert scores.index[0] == "seasonal"
    assert set(scores.index) == set(IMPUTERS) and (scores["n_hidden"] > 0).all()


def test_compare_imputers_needs_known_values():
    with pytest.raises(ValueError, match="too few known values"):
        compare_imputers(np.arange(3, dtype=np.int64), np.array([1.0, np.nan, np.nan]))
    with pytest.raises(ValueError, match="unknown imputation"):
        impute_values(np.arange(3, dtype=np.int64), np.array([1.0, np.nan, 2.0]), "cubic")


def test_iqr_rules_and_treatment():
    v = np.array([1.0, 2, 1, 2, 1, 2, 1, 2, 9, 2, 1, 2, 1.5])
    code, lo, hi = iqr_anomalies(v, k=1.5, k_diff=1.5)
    assert code[8] == 3 and (code[np.arange(13) != 8] == 0).all()
    assert lo == pytest.approx(1 - 1.5) and hi == pytest.approx(2 + 1.5)
    t = np.arange(13, dtype=np.int64)
    assert apply_treatment(t, v, code != 0, "clip", lo, hi)[8] == hi
    assert apply_treatment(t, v, code != 0, "interpolate")[8] == 2.0
    with pytest.raises(ValueError, match="unknown treatment"):
        apply_treatment(t, v, code != 0, "winsorize")
    z = robust_z(np.array([1.0, 1.0, 2.0, 2.0, 100.0]))
    assert z.argmax() == 4 and z[0] < 0


def test_validate_reports_per_series_with_examples():
    df = pd.DataFrame({
        "series_id": ["a", "a", "a", "b", "b", "b"],
        "ts": ["2024-01-01 00:00", "not a date", "2024-01-01 00:10", "2024-01-02", "2024-01-01", "2099-01-01"],
        "value": ["1.5", "x", "2", 1, 2, 3],
        "unit": ["C", "C", "F", "C", "C", "C"],
    })
    res = validate_frame(df, now=pd.Timestamp("2025-01-01", tz="UTC"))
    a = {i.code: i for i in res.issues["a"]}
    b = {i.code: i for i in res.issues["b"]}
    assert a["ts_unparseable"].count == 1 and a["ts_unparseable"].examples == ["not a date"]
    assert a["value_not_numeric"].count == 1 and a["unit_inconsistent"].count == 2
    assert b["ts_out_of_order"].count == 1 and b["ts_future"].count == 1
    assert str(res.frame["ts"].dtype) == "datetime64[us, UTC]" and res.frame["value"].dtype == np.float64
    assert set(res.counts()["code"]) >= {"ts_unparseable", "ts_future"}
    naive = validate_frame(pd.DataFrame({"series_id": "c", "ts": pd.to_datetime(["2024-01-01"]), "value": [1.0]}))
    assert naive.issues["c"][0].code == "ts_naive_timezone"
    with pytest.raises(ValueError, match="missing required column"):
        validate_frame(pd.DataFrame({"series_id": ["a"], "value": [1.0]}))


def test_interpolation_skips_anomalies_and_nans_as_anchors():
    t = np.arange(8, dtype=np.int64)
    v = np.array([0.0, 50.0, np.nan, 60.0, 4.0, 5.0, 70.0, 7.0])
    anom = np.array([0, 1, 0, 1, 0, 0, 1, 0], bool)
    out = apply_treatment(t, v, anom, "interpolate")
    np.testing.assert_allclose(out[[0, 1, 3, 4, 5, 6, 7]], [0, 1, 3, 4, 5, 6, 7])
    assert np.isnan(out[2])  # a missing reading is not an anomaly: left to the imputer
    only = apply_treatment(t[:2], np.array([9.0, 9.0]), np.array([True, True]), "interpolate")
    assert np.isnan(only).all()
    ema = apply_treatment(t, np.array([100.0, 1, 1, 1, 1, 1, 1, 1]), np.array([1, 0, 0, 0, 0, 0, 0, 0], bool), "ema")
    assert ema[0] == 1.0


def test_iqr_floor_on_quantised_and_constant_data():
    rng = np.random.default_rng(0)
    quantised = np.round(np.cumsum(rng.normal(0, 0.3, 2000))) * 100  # mostly unchanged, steps of 100
    code, _, _ = iqr_anomalies(quantised, k=3.0, k_diff=3.0)
    assert (code & 2).mean() < 0.01
    flat = np.full(500, 7.0)
    flat[250] = 9.0
    code, lo, hi = iqr_anomalies(flat, k=3.0, k_diff=3.0)
    assert np.flatnonzero(code).tolist() == [250] and code[250] == 3
