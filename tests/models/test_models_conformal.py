import numpy as np
import pandas as pd
import pytest

from tsops.models import backtest
from tsops.models.baselines import SeasonalNaive
from tsops.models.conformal import ConformalIntervals, conformal_quantile


def _noisy_seasonal(n_series, length, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return {f"s{i}": 50 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1 + i % 3, length)
            for i in range(n_series)}


def test_conformal_quantile_is_finite_sample_corrected():
    s = np.arange(1.0, 11.0)  # n = 10
    assert conformal_quantile(s, 0.8) == 9.0  # ceil(11 * 0.8) = 9th smallest
    assert conformal_quantile(s, 0.95) == np.inf


def test_intervals_cover_near_nominal_on_synthetic_data():
    calib = _noisy_seasonal(60, 24 * 20, seed=1)
    model = SeasonalNaive(24)
    res = backtest(model, calib, horizon=24, n_windows=4, season_length=24)
    fitted = model.fit({k: v[:-24] for k, v in _noisy_seasonal(60, 24 * 20, seed=2).items()})
    fitted.calibrate(res.residuals, levels=(80, 95))
    fresh = _noisy_seasonal(60, 24 * 20, seed=2)
    df = fitted.predict(24)
    y = np.concatenate([fresh[s][-24:] for s in fitted.history_.ids])
    for lv in (80, 95):
        cov = np.mean((y >= df[f"lo_{lv}"].to_numpy()) & (y <= df[f"hi_{lv}"].to_numpy()))
        assert abs(cov - lv / 100) < 0.05, (lv, cov)
    assert (df["hi_95"] >= df["hi_80"]).all() and (df["lo_95"] <= df["lo_80"]).all()


def test_calibration_input_is_checked():
    with pytest.raises(ValueError, match="lack column"):
        ConformalIntervals().fit(pd.DataFrame({"step": [1], "y": [1.0]}))
    with pytest.raises(ValueError, match="percentage"):
        ConformalIntervals(levels=(120,))


def test_few_residuals_borrow_neighbouring_steps_instead_of_infinite_bounds():
    rng = np.random.default_rng(0)
    res = pd.DataFrame({"step": np.tile(np.arange(1, 25), 5), "y": rng.normal(0, 1, 120), "yhat": 0.0,
                        "scale": 1.0})
    ci = ConformalIntervals(levels=(80, 95)).fit(res)
    assert np.isfinite(ci.q_[95]).all() and np.isfinite(ci.q_[80]).all()
    assert (ci.q_[95] >= ci.q_[80] - 1e-12).all() or np.mean(ci.q_[95] >= ci.q_[80]) > 0.9


def _residuals(rng, widths):
    """Backtest-like residuals whose per-step spread is ``widths[step-1]`` (not monotone on purpose)."""
    rows = []
    for s, w in enumerate(widths, start=1):
        err = rng.normal(0, w, 200)
        rows.append(pd.DataFrame({"step": s, "y": 10 + err, "yhat": 10.0, "scale": 1.0}))
    return pd.concat(rows, ignore_index=True)


def test_interval_width_never_shrinks_with_the_step_and_levels_nest():
    rng = np.random.default_rng(0)
    ci = ConformalIntervals(levels=(80, 95)).fit(_residuals(rng, [1.0, 3.0, 0.5, 2.0, 0.2, 4.0]))
    for lv in (80, 95):
        assert (np.diff(ci.q_[lv]) >= 0).all(), ci.q_[lv]
    assert (ci.q_[95] >= ci.q_[80]).all()
    mean = np.full((2, 8), 100.0)  # longer than the calibrated horizon: the last step's width carries on
    hist = [100 + rng.normal(0, 5, 300), 100 + rng.normal(0, 1, 300)]
    out = ci.intervals(mean, hist)
    for lv in (80, 95):
        width = out[f"hi_{lv}"] - out[f"lo_{lv}"]
        assert (np.diff(width, axis=1) >= -1e-12).all()
    assert (out["lo_95"] <= out["lo_80"]).all() and (out["hi_95"] >= out["hi_80"]).all()


def test_intervals_respect_a_non_negative_domain():
    rng = np.random.default_rng(1)
    ci = ConformalIntervals(levels=(80, 95)).fit(_residuals(rng, [2.0, 4.0, 6.0]))
    counts = rng.poisson(1.0, 300).astype(float)  # counts near zero: mean - half-width < 0
    signed = rng.normal(0, 1, 300)  # a series that goes negative keeps unbounded intervals
    mean = np.array([[0.5, 0.8, 1.0], [0.5, 0.8, 1.0]])
    out = ci.intervals(mean, [counts, signed])
    assert np.isnan(ci.domain_lower_[1]) and ci.domain_lower_[0] == 0.0
    for lv in (80, 95):
        assert (out[f"lo_{lv}"][0] >= 0).all() and (out[f"lo_{lv}"][0] == 0).any()
        assert (out[f"lo_{lv}"][1] < 0).all()  # unclipped
        assert (out[f"hi_{lv}"] >= out[f"lo_{lv}"]).all()


def test_forecast_of_counts_has_no_negative_bounds():
    rng = np.random.default_rng(2)
    t = np.arange(24 * 20)
    series = {f"s{i}": rng.poisson(0.3 + 0.3 * (1 + np.sin(2 * np.pi * t / 24))).astype(float) for i in range(8)}
    model = SeasonalNaive(24)
    res = backtest(model, series, horizon=24, n_windows=3, season_length=24)
    df = model.fit(series).calibrate(res.residuals).predict(24)
    for lv in (80, 95):
        assert (df[f"lo_{lv}"] >= 0).all()
