import numpy as np
import pandas as pd
import pytest

from tsops.models import backtest
from tsops.models.base import Forecaster, Panel
from tsops.models.baselines import Naive, SeasonalNaive
from tsops.models.lstm import LSTMForecaster

FULL: dict[str, np.ndarray] = {}


class Recorder(Forecaster):
    """Records the longest history it was given at fit and predict time."""

    name = "recorder"
    seen: list[tuple[str, int]] = []

    def __init__(self) -> None:
        super().__init__()

    def _fit(self, panel: Panel) -> None:
        Recorder.seen.append(("fit", max(len(v) for v in panel.values)))

    def _predict(self, panel: Panel, h: int) -> np.ndarray:
        Recorder.seen.append(("predict", max(len(v) for v in panel.values)))
        return np.vstack([np.full(h, v[-1]) for v in panel.values])


class Peeker(Forecaster):
    """A model that cheats if the arrays it gets are views into the full data (it reads ``.base``)."""

    name = "peeker"

    def __init__(self) -> None:
        super().__init__()

    def _fit(self, panel: Panel) -> None:
        return None

    def _predict(self, panel: Panel, h: int) -> np.ndarray:
        out = []
        for v in panel.values:
            base = v.base if v.base is not None and v.base.size > v.size else None
            out.append(base[len(v): len(v) + h] if base is not None else np.full(h, v[-1]))
        return np.vstack(out)


def _panel(n=4, length=200, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return {f"s{i}": 10 + np.sin(2 * np.pi * t / 24) + rng.standard_normal(length) * 0.1 for i in range(n)}


def test_windows_never_show_the_future():
    Recorder.seen = []
    res = backtest(Recorder(), _panel(), horizon=24, n_windows=3, step=12, season_length=24)
    assert Recorder.seen == [("fit", 200 - 24 - 24), ("predict", 152),
                             ("fit", 200 - 24 - 12), ("predict", 164),
                             ("fit", 176), ("predict", 176)]
    assert sorted(res.metrics.cutoff.unique()) == [152, 164, 176]
    assert len(res.metrics) == 4 * 3 and len(res.residuals) == 4 * 3 * 24


def test_a_model_that_peeks_beyond_the_cutoff_gets_nothing():
    panel = {k: v for k, v in _panel().items()}
    cheat = backtest(Peeker(), panel, horizon=24, n_windows=2, season_length=24)
    honest = backtest(Naive(), panel, horizon=24, n_windows=2, season_length=24)
    # if the training arrays were views of the full series, Peeker would score a perfect 0 MAE
    assert cheat.summary()["mae"] == pytest.approx(honest.summary()["mae"])
    assert cheat.summary()["mae"] > 0


def test_series_scalers_are_fitted_on_the_training_part_only():
    panel = _panel(n=2, length=200)
    spiked = {k: np.r_[v[:-24], v[-24:] * 100] for k, v in panel.items()}
    kw = dict(horizon=24, input_size=48, max_steps=5, eval_every=5, n_threads=1, val_size=24)
    a = LSTMForecaster(**kw).fit(panel)
    b = LSTMForecaster(**kw).fit(spiked)
    # the held-out validation window (last 24 points) does not move the scaler
    assert a.scaler_ == b.scaler_
    for s, v in panel.items():
        assert a.scaler_[s][0] == pytest.approx(np.mean(v[:-24]))
        assert a.scaler_[s][1] == pytest.approx(np.std(v[:-24]))


def test_metrics_table_and_per_series_summary():
    res = backtest(SeasonalNaive(24), _panel(n=3), horizon=24, n_windows=2, season_length=24)
    per = res.per_series()
    assert list(per.index) == ["s0", "s1", "s2"]
    assert set(per.columns) == {"rmse", "mae", "mape", "smape", "mase"}
    assert res.forecasts.shape == (2, 3, 24) and np.isfinite(res.forecasts).all()
    assert res.mase_scales.shape == (2, 3)
    assert isinstance(res.metrics, pd.DataFrame)


def test_short_series_are_skipped_not_crashing():
    panel = {"long": np.arange(300.0), "short": np.arange(30.0)}
    res = backtest(Naive(), panel, horizon=12, n_windows=2, season_length=24)
    assert set(res.metrics.series_id) == {"long"}
    with pytest.raises(ValueError, match="horizon"):
        backtest(Naive(), panel, horizon=0, season_length=24)
