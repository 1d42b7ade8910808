"""The pyfunc contract: history in, forecasts with intervals out; input checks; signature."""

import numpy as np
import pandas as pd
import pytest

from tsops.models import backtest, make_model
from tsops.tracking.forecast_pyfunc import (
    OUTPUT_COLUMNS,
    ForecastInputError,
    TsopsForecastModel,
    example_history,
    forecast_frame,
    signature_for,
)
from tsops.tuning.sample import synthetic_hourly


@pytest.fixture(scope="module")
def model():
    df = synthetic_hourly(3, 150, seed=7)
    m = make_model("seasonal_naive", season_length=24)
    res = backtest(m, df, 12, n_windows=8, step=6, season_length=24)
    m.fit(df).calibrate(res.residuals)
    m.default_horizon_ = 12
    return m


def test_forecast_frame_contract(model):
    hist = synthetic_hourly(1, 72, seed=8, irregular=True)
    fc = forecast_frame(model, hist, 30)
    assert list(fc.columns) == OUTPUT_COLUMNS and len(fc) == 30
    assert fc["step"].tolist() == list(range(1, 31))
    assert fc["ts"].dt.tz is None and (fc["ts"].diff().dropna() == pd.Timedelta("1h")).all()
    assert np.all(fc["lo_95"] <= fc["lo_80"]) and np.all(fc["hi_80"] <= fc["hi_95"])
    assert np.isfinite(fc[["lo_95", "hi_95"]].to_numpy()).all()
    # seasonal naive: step k repeats the value one season earlier on the grid
    assert forecast_frame(model, hist, None)["step"].max() == 12          # default: trained horizon
    assert forecast_frame(model, None, 2)["series_id"].nunique() == 3      # no history: the training series


@pytest.mark.parametrize("hist, horizon, match", [
    (pd.DataFrame(columns=["series_id", "ts", "value"]), 3, "history is empty"),
    (pd.DataFrame({"series_id": ["a", "a"], "ts": ["2024-01-01", "2024-01-02"], "value": ["x", 1]}), 3,
     "value 'x' of series 'a' is not a number"),
    (pd.DataFrame({"series_id": ["a"], "value": [1.0]}), 3, r"lacks column\(s\) \['ts'\]"),
    (pd.DataFrame({"series_id": ["a", "a"], "ts": ["2024-01-01", "soon"], "value": [1, 2]}), 3, "timestamp"),
    (pd.DataFrame({"series_id": ["a", "b", "b"], "ts": ["2024-01-01"] * 3, "value": [1, 2, 3]}), 3,
     "series 'a' has 1 observed value"),
    (synthetic_hourly(1, 30), 0, "horizon must be between 1 and"),
    (synthetic_hourly(1, 30), 10**6, "horizon must be between 1 and"),
    (synthetic_hourly(1, 30), 2.5, "horizon must be an integer"),
])
def test_bad_inputs_name_the_problem(model, hist, horizon, match):
    with pytest.raises(ForecastInputError, match=match):
        forecast_frame(model, hist, horizon)


def test_pyfunc_predict_horizon_from_param_or_column(model):
    py = TsopsForecastModel()
    py.model = model
    hist = example_history(model)
    assert len(py.predict(None, hist, params={"horizon": 4})) == 4
    assert len(py.predict(None, hist.assign(horizon=7))) == 7
    assert len(py.predict(None, hist)) == 12


def test_signature_declares_history_params_and_output(model):
    sig = signature_for(model)
    assert sig.inputs.input_names() == ["series_id", "ts", "value", "horizon"]
    assert sig.outputs.input_names() == OUTPUT_COLUMNS
    assert sig.params.to_dict()[0]["name"] == "horizon" and sig.params.to_dict()[0]["default"] == 12
    ex = example_history(model)
    assert list(ex.columns) == ["series_id", "ts", "value"] and ex["ts"].dt.tz is None


def test_on_grid_fast_path_equals_the_regularized_path(model):
    from tsops.models.base import as_panel
    from tsops.tracking.forecast_pyfunc import clean_history, on_grid_panel
    from tsops.tuning.data import regularize

    hist = synthetic_hourly(2, 60, seed=9).sample(frac=1.0, random_state=0).sort_values(["series_id", "ts"])
    assert on_grid_panel(clean_history(hist.iloc[::-1]), pd.Timedelta("1h")) is None   # descending time
    clean = clean_history(hist.sort_values(["series_id", "ts"], ascending=[False, True]))
    slow = as_panel(regularize(clean, freq=pd.Timedelta("1h")))
    assert on_grid_panel(clean, pd.Timedelta("1h")).ids == slow.ids == ["s0", "s1"]   # block order irrelevant
    clean = clean_history(hist)
    fast = on_grid_panel(clean, pd.Timedelta("1h"))
    assert fast.ids == slow.ids and fast.end_ts == slow.end_ts and fast.freq == slow.freq
    for a, b in zip(fast.values, slow.values, strict=True):
        np.testing.assert_array_equal(a, b)
    # irregular, gappy or duplicated histories go through regularize
    assert on_grid_panel(clean_history(synthetic_hourly(1, 60, irregular=True)), pd.Timedelta("1h")) is None
    assert on_grid_panel(clean_history(pd.concat([hist, hist.tail(1)])), pd.Timedelta("1h")) is None
    assert on_grid_panel(clean, None) is None
