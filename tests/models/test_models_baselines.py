import numpy as np
import pytest
from statsmodels.tsa.seasonal import seasonal_decompose

from tsops.models.baselines import (
    Naive2,
    SeasonalNaive,
    classical_seasonal_indices,
    naive2_forecast,
    seasonal_naive_forecast,
    seasonality_test,
)
from tsops.models.metrics import mase, smape


def test_seasonal_naive_repeats_last_season():
    y = np.arange(10.0)
    assert seasonal_naive_forecast(y, 5, 4).tolist() == [6.0, 7.0, 8.0, 9.0, 6.0]
    assert seasonal_naive_forecast(np.array([3.0, np.nan]), 2, 4).tolist() == [3.0, 3.0]


def test_naive2_on_exact_multiplicative_pattern():
    pattern = np.array([1.0, 2.0, 3.0, 2.0])
    y = np.tile(pattern, 12) * 10.0
    assert seasonality_test(y, 4)
    si = classical_seasonal_indices(y, 4)
    np.testing.assert_allclose(si, pattern / pattern.mean())
    # last value 20 at index position 3 (si = 2/2 = 1) -> level 20; forecast = 20 * si
    np.testing.assert_allclose(naive2_forecast(y, 6, 4), 20.0 * np.resize(pattern / 2.0, 6))


def test_naive2_without_seasonality_is_naive():
    rng = np.random.default_rng(0)
    noise = 10 + rng.standard_normal(200)
    assert not seasonality_test(noise, 24)
    assert naive2_forecast(noise, 3, 24).tolist() == [noise[-1]] * 3


def test_seasonal_indices_match_statsmodels_classical_decomposition():
    rng = np.random.default_rng(1)
    t = np.arange(24 * 20)
    y = (100 + 0.1 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 24)) + rng.standard_normal(len(t))
    ref = seasonal_decompose(y, model="multiplicative", period=24).seasonal[:24]
    np.testing.assert_allclose(classical_seasonal_indices(y, 24), ref, rtol=1e-10)


def test_baselines_on_m4_slice_known_numbers(m4_small):
    train, test = m4_small
    ids = sorted(train)
    n2 = Naive2(24).fit(train).predict_array(48)
    sn = SeasonalNaive(24).fit(train).predict_array(48)
    s_n2 = np.mean([smape(test[s], f) for s, f in zip(ids, n2, strict=True)])
    s_sn = np.mean([smape(test[s], f) for s, f in zip(ids, sn, strict=True)])
    m_sn = np.mean([mase(test[s], f, train[s], 24) for s, f in zip(ids, sn, strict=True)])
    # recorded from this implementation, which reproduces the official M4 hourly Naive2 (18.383 / 2.395)
    # and seasonal naive (13.912 / 1.193) scores on all 414 series
    assert s_n2 == pytest.approx(KNOWN["naive2_smape"], rel=1e-6)
    assert s_sn == pytest.approx(KNOWN["snaive_smape"], rel=1e-6)
    assert m_sn == pytest.approx(KNOWN["snaive_mase"], rel=1e-6)


KNOWN = {"naive2_smape": 5.951303631228868, "snaive_smape": 6.444500673468719, "snaive_mase": 1.2934146796149573}
