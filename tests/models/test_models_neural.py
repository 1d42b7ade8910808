import numpy as np
import pytest

from tsops.models import load_model, make_model
from tsops.models.baselines import Naive
from tsops.models.lstm import LSTMForecaster
from tsops.models.nhits import NHiTSForecaster

FAST = dict(horizon=24, input_size=48, max_steps=150, eval_every=50, batch_size=64, n_threads=1)


def _split(panel, h=24):
    train = {k: v[:-h] for k, v in panel.items()}
    test = np.stack([v[-h:] for v in panel.values()])
    return train, test


@pytest.mark.parametrize("cls,kw", [
    (NHiTSForecaster, dict(hidden_size=64, learning_rate=3e-3)),
    (LSTMForecaster, dict(hidden_size=16, learning_rate=1e-2)),
    (LSTMForecaster, dict(hidden_size=32, learning_rate=1e-2, patch_len=12)),  # 4 recurrent steps of 12 points
])
def test_global_models_learn_a_sine_better_than_naive(cls, kw, sine):
    train, test = _split(sine())
    f = cls(**FAST, **kw, seed=0).fit(train).predict_array(24)
    naive = Naive().fit(train).predict_array(24)
    err, err_naive = np.abs(f - test).mean(), np.abs(naive - test).mean()
    assert err < 0.5 * err_naive, (err, err_naive)


def test_seed_makes_training_deterministic(sine):
    train, _ = _split(sine(n_series=3, length=200))
    kw = dict(FAST, max_steps=40, eval_every=20, hidden_size=32)
    a = NHiTSForecaster(**kw, seed=3).fit(train).predict_array(24)
    b = NHiTSForecaster(**kw, seed=3).fit(train).predict_array(24)
    c = NHiTSForecaster(**kw, seed=4).fit(train).predict_array(24)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("name,kw", [
    ("nhits", dict(FAST, max_steps=30, hidden_size=32)),
    ("nhits", dict(FAST, max_steps=30, hidden_size=32, scaling="log")),
    ("lstm", dict(FAST, max_steps=30, hidden_size=8, num_layers=2, dropout=0.1)),
    ("lstm", dict(FAST, max_steps=30, hidden_size=8, patch_len=10, scaling="log")),  # 48 % 10: oldest 8 dropped
    ("naive2", dict(season_length=24)),
])
def test_save_load_round_trip(tmp_path, name, kw, sine):
    train, _ = _split(sine(n_series=3, length=200))
    m = make_model(name, **kw).fit(train)
    before = m.predict(24)
    m.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert type(back) is type(m) and back.params == m.params
    np.testing.assert_array_equal(back.predict(24)["mean"].to_numpy(), before["mean"].to_numpy())
    with pytest.raises(TypeError, match="not a"):
        Naive.load(tmp_path / "m")


def test_longer_horizon_than_trained_is_iterated_and_new_series_can_be_forecast(sine):
    train, _ = _split(sine(n_series=3, length=200))
    m = NHiTSForecaster(**dict(FAST, max_steps=20, hidden_size=16)).fit(train)
    assert m.predict_array(60).shape == (3, 60)
    other = {"new": sine(n_series=1, length=100, seed=9)["s0"]}
    assert np.isfinite(m.predict_array(24, other)).all()
    lstm = LSTMForecaster(**dict(FAST, max_steps=10)).fit(train)
    with pytest.raises(KeyError, match="not in the training panel"):
        lstm.predict_array(24, other)


def test_covariates_are_listed_and_used():
    rng = np.random.default_rng(0)
    driver = np.cumsum(rng.standard_normal(300)) + 50
    target = np.r_[np.full(24, 50.0), driver[:-24]] + 0.01 * rng.standard_normal(300)  # driver leads by 24
    panel = {"driver": driver, "target": target}
    m = NHiTSForecaster(**dict(FAST, max_steps=60, hidden_size=32), covariates=["driver"]).fit(panel)
    assert m.covariates_ == ["driver"]
    assert m.describe()["covariates"] == ["driver"]
    assert m.predict_array(24).shape == (2, 24)
    with pytest.raises(KeyError, match="nope"):
        NHiTSForecaster(**FAST, covariates=["nope"]).fit(panel)


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="loss"):
        NHiTSForecaster(loss="huber")
    with pytest.raises(ValueError, match="pool_sizes"):
        NHiTSForecaster(pool_sizes=(2, 1), downsample=(1,))
    with pytest.raises(ValueError, match="too short|long enough"):
        NHiTSForecaster(horizon=24, input_size=48).fit({"a": np.ones(10)})


def test_auto_covariates_pick_the_series_that_co_move():
    from tsops.models.base import Panel
    from tsops.models.covariates import select_covariates

    rng = np.random.default_rng(1)
    common = np.cumsum(rng.standard_normal(300))
    panel = {"a": common + 0.1 * rng.standard_normal(300), "b": common + 0.1 * rng.standard_normal(300),
             "c": common + 0.1 * rng.standard_normal(300), "noise": rng.standard_normal(300)}
    top = select_covariates(Panel(list(panel), list(panel.values())), 2, None)
    assert "noise" not in top and len(top) == 2
    m = NHiTSForecaster(**dict(FAST, max_steps=10, hidden_size=16), covariates="auto:2").fit(panel)
    assert m.covariates_ == top or set(m.covariates_) <= {"a", "b", "c"}
    with pytest.raises(ValueError, match="auto:K"):
        NHiTSForecaster(**FAST, covariates="best").fit(panel)


def test_validation_window_shorter_than_horizon_and_refit_clone(sine):
    train, _ = _split(sine(n_series=3, length=200))
    m = NHiTSForecaster(**dict(FAST, max_steps=20, eval_every=10, hidden_size=16), val_size=12).fit(train)
    assert m.best_step_ in (10, 20) and "val_loss" in m.train_log_[0]
    r = m.refit_clone()
    assert r.params["val_size"] == 0 and r.params["max_steps"] == m.best_step_
    assert r.fit(train).predict_array(24).shape == (3, 24)


def test_lstm_patch_len_is_checked():
    with pytest.raises(ValueError, match="patch_len"):
        LSTMForecaster(input_size=24, patch_len=25)
    with pytest.raises(ValueError, match="patch_len"):
        LSTMForecaster(input_size=24, patch_len=0)
