"""Seasons reach the models as arguments (from the series profiles): per series, several, or none."""

import numpy as np
import pytest

from tsops.models import backtest, make_model, search_space
from tsops.models.baselines import SeasonalNaive, StatsForecastModel
from tsops.models.conformal import series_scale
from tsops.models.metrics import mase_scale
from tsops.models.nhits import NHiTSForecaster
from tsops.models.registry import model_class
from tsops.models.season import check_season, most_common, season_for


def _seasonal(m: int, n: int, seed: int = 0, level: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return level + 3 * np.sin(2 * np.pi * t / m) + 0.05 * rng.standard_normal(n)


def test_season_arguments_are_checked_and_never_defaulted():
    assert season_for(144, "a") == 144 and season_for(None, "a") is None and season_for(1, "a") is None
    assert season_for({"a": 52, "b": None}, "a") == 52 and season_for({"a": 52, "b": None}, "b") is None
    with pytest.raises(KeyError, match="no season given for series 'c'"):
        season_for({"a": 52}, "c")
    with pytest.raises(ValueError, match="must be >= 1"):
        check_season(0)
    assert most_common([144, 144, 52, None]) == 144 and most_common([52, 144]) == 52


def test_mase_and_conformal_scales_without_a_season_use_lag_1():
    x = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    assert mase_scale(x, None) == pytest.approx(np.mean(np.abs(np.diff(x))))
    assert mase_scale(x, 2) == pytest.approx(np.mean(np.abs(x[2:] - x[:-2])))
    assert series_scale(x, None) == pytest.approx(mase_scale(x, 1))


def test_seasonal_naive_uses_each_series_own_season():
    panel = {"ten_min": _seasonal(144, 144 * 4), "weekly": _seasonal(52, 52 * 4, seed=1)}
    m = SeasonalNaive(144, series_seasons={"weekly": [52]}).fit(panel)
    f = m.predict_array(200)
    np.testing.assert_array_equal(f[0], np.resize(panel["ten_min"][-144:], 200))
    np.testing.assert_array_equal(f[1], np.resize(panel["weekly"][-52:], 200))
    assert m.season_of("weekly") == 52 and m.season_of("unseen") == 144
    assert SeasonalNaive(None).fit(panel).predict_array(3)[0].tolist() == [panel["ten_min"][-1]] * 3


def test_statsforecast_groups_series_by_their_seasons():
    from statsforecast.models import AutoTheta

    a, b = _seasonal(24, 24 * 8), _seasonal(7, 7 * 20, seed=2)
    m = StatsForecastModel("AutoTheta", season_length=24, series_seasons={"b": [7]}).fit({"a": a, "b": b})
    f = m.predict_array(10)
    assert m.fallbacks_ == []
    for row, y, s in ((f[0], a, 24), (f[1], b, 7)):
        ref = AutoTheta(season_length=s).forecast(y=y, h=10)["mean"]
        np.testing.assert_allclose(row, ref, rtol=1e-6)


def test_mstl_uses_every_season_that_fits_and_no_season_means_its_trend_model():
    import statsforecast.models as sfm

    m = make_model("mstl", season_length=[24, 168])
    assert m.params["season_length"] == [24, 168]
    mstl = m._make((24, 168))
    assert isinstance(mstl, sfm.MSTL) and mstl.season_length == [24, 168]
    assert isinstance(m._make(()), sfm.AutoETS)
    y = _seasonal(24, 24 * 5)  # too short for a weekly season: MSTL with the daily one only
    f = m.fit({"x": y}).predict_array(24)
    assert np.isfinite(f).all() and m.fallbacks_ == []
    with pytest.raises(ValueError, match="not in model_kwargs"):
        make_model("mstl", season_length=24, model_kwargs={"season_length": [24]})


def test_backtest_scales_each_series_with_its_own_season():
    panel = {"daily": _seasonal(144, 144 * 6), "weekly": _seasonal(52, 52 * 6, seed=3), "flat": np.arange(300.0)}
    seasons = {"daily": 144, "weekly": 52, "flat": None}
    res = backtest(make_model("naive"), panel, horizon=12, n_windows=2, season_length=seasons)
    assert res.seasons == [144, 52, None]
    per = res.metrics.groupby("series_id")["season"].first().to_dict()
    assert per == {"daily": 144, "weekly": 52, "flat": 1}
    row = res.metrics[(res.metrics.series_id == "weekly") & (res.metrics.window == 1)].iloc[0]
    x = panel["weekly"][: int(row.cutoff)]
    assert row.mase == pytest.approx(row.mae / mase_scale(x, 52))
    assert set(res.residuals["season"]) == {144, 52, 1}


def test_conformal_intervals_scale_each_series_with_the_season_of_its_residuals():
    panel = {"a": _seasonal(24, 24 * 20), "b": _seasonal(7, 7 * 60, seed=5)}
    seasons = {"a": 24, "b": 7}
    res = backtest(SeasonalNaive(None, series_seasons={"a": [24], "b": [7]}), panel, horizon=6, n_windows=8,
                   step=3, season_length=seasons)
    m = SeasonalNaive(None, series_seasons={"a": [24], "b": [7]}).fit(panel).calibrate(res.residuals)
    assert m.conformal_.seasons_ == seasons
    df = m.predict(6)
    q = m.conformal_.q_[80]
    for sid, m_ in seasons.items():
        half = (df[df.series_id == sid]["hi_80"] - df[df.series_id == sid]["mean"]).to_numpy()
        np.testing.assert_allclose(half, q[:6] * series_scale(panel[sid], m_))


def test_neural_input_window_and_search_space_follow_the_season():
    assert NHiTSForecaster(horizon=24, season_length=144).params["input_size"] == 7 * 144
    assert NHiTSForecaster(horizon=24, season_length=None).params["input_size"] == 5 * 24
    assert make_model("lstm", horizon=12, season_length=52).params["input_size"] == 4 * 52
    assert search_space("lstm", (144,), 24)["input_size"]["values"] == [144, 288, 576, 1008]
    assert search_space("nhits", (52,), 8, max_input=400)["input_size"]["values"] == [208, 364]
    assert search_space("nhits", (), 24)["input_size"]["values"] == [24, 48, 72, 120]
    assert search_space("seasonal_naive", (144, 1008)) == {
        "season_length": {"type": "choice", "values": [144, 1008]}}
    assert search_space("seasonal_naive", (144,)) == {} and search_space("auto_ets", (144,)) == {}


def test_models_declare_what_they_support():
    caps = {n: model_class(n).capabilities() for n in ("naive", "seasonal_naive", "mstl", "lstm", "nhits")}
    assert not caps["naive"]["supports_season"]
    assert caps["seasonal_naive"]["supports_series_seasons"] and not caps["seasonal_naive"]["is_global"]
    assert caps["mstl"]["supports_multiple_seasons"]
    for n in ("lstm", "nhits"):
        assert caps[n]["supports_covariates"] and caps[n]["is_global"] and caps[n]["trained_horizon"]
        assert caps[n]["supports_season"] and not caps[n]["supports_series_seasons"]
    assert all(c["supports_intervals"] for c in caps.values())


def test_the_mase_loss_uses_the_season_lag():
    import torch

    from tsops.models._window import loss_fn

    x = torch.tensor(np.tile(np.r_[np.zeros(3), np.ones(3)], 4)[None, :], dtype=torch.float32)  # period 6
    pred, target, mask = torch.ones(1, 2), torch.zeros(1, 2), torch.ones(1, 2)
    # lag 6: no seasonal variation, the scale floor (1e-3) applies; lag 1: 7 changes in 23 differences
    assert float(loss_fn("mase", pred, target, mask, x, 6)) == pytest.approx(1000.0)
    assert float(loss_fn("mase", pred, target, mask, x, None)) == pytest.approx(23 / 7, rel=1e-5)
