import numpy as np
import pytest

from tsops.models import backtest, load_model, make_model, model_names, search_space
from tsops.models.ensemble import EnsembleForecaster, combine_forecasts, select_combination
from tsops.models.registry import model_class


def test_registry_builds_every_model_and_rejects_unknown_names():
    for name in model_names():
        if name == "ensemble":
            continue
        # models that take a season declare it (and require it: it comes from the series profile)
        kw = {"season_length": 24} if model_class(name).supports_season else {}
        m = make_model(name, **kw)
        assert isinstance(m.params, dict)
    assert make_model("auto_theta", season_length=24).params["model"] == "AutoTheta"
    with pytest.raises(TypeError, match="bad parameters.*season_length"):
        make_model("seasonal_naive")
    with pytest.raises(KeyError, match="unknown model"):
        make_model("prophet")
    with pytest.raises(TypeError, match="bad parameters"):
        make_model("naive2", nonsense=1)


def test_lstm_search_space_is_the_documented_one():
    sp = search_space("lstm")
    assert sp["hidden_size"] == {"type": "choice", "values": [2, 4, 8, 16, 32, 64]}
    assert sp["learning_rate"] == {"type": "loguniform", "low": 0.001, "high": 0.1}
    assert sp["num_layers"]["values"] == [1, 2, 3, 4, 5]
    for name in ("nhits", "seasonal_naive", "auto_ets"):
        assert isinstance(search_space(name), dict)


def test_combine_forecasts():
    f = np.array([[[1.0, 2.0]], [[3.0, 4.0]], [[100.0, 100.0]]])
    np.testing.assert_array_equal(combine_forecasts(f, "median"), [[3.0, 4.0]])
    np.testing.assert_allclose(combine_forecasts(f[:2], "mean", np.array([1.0, 3.0])), [[2.5, 3.5]])
    with pytest.raises(ValueError, match="combine"):
        combine_forecasts(f, "max")


def _panel():
    rng = np.random.default_rng(0)
    t = np.arange(24 * 12)
    return {f"s{i}": 20 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.3, len(t)) for i in range(4)}


def test_ensemble_fit_predict_save_load(tmp_path):
    ens = make_model("ensemble", members=[{"name": "seasonal_naive", "params": {"season_length": 24}},
                                            {"name": "naive2", "params": {"season_length": 24}}, {"name": "naive"}])
    assert isinstance(ens, EnsembleForecaster)
    p = _panel()
    f = ens.fit(p).predict_array(24)
    parts = np.stack([m.predict_array(24) for m in ens.members])
    np.testing.assert_allclose(f, np.median(parts, axis=0))
    ens.save(tmp_path / "e")
    np.testing.assert_array_equal(load_model(tmp_path / "e").predict_array(24), f)


def test_selection_prefers_good_models_and_combines_when_it_helps():
    p = _panel()
    res = {n: backtest(make_model(n, **({} if n == "naive" else {"season_length": 24})), p, horizon=24,
                       n_windows=2, season_length=24)
           for n in ("seasonal_naive", "naive2", "naive")}
    chosen, table = select_combination(res, max_members=3)
    assert chosen[0] in ("seasonal_naive", "naive2")
    assert "naive" not in chosen[:1]
    assert all(len(v) == 2 for v in table.values())


def test_auto_ensemble_selects_on_holdout_and_refits():
    from tsops.models.ensemble import auto_ensemble

    p = _panel()
    cands = {n: make_model(n, **({} if n == "naive" else {"season_length": 24}))
             for n in ("seasonal_naive", "naive2", "naive")}
    model, rep = auto_ensemble(cands, p, horizon=24, season_length=24, max_members=3)
    assert rep.chosen[0] in ("seasonal_naive", "naive2") and "naive" not in rep.chosen[:1]
    assert rep.val_actuals.shape == (1, 4, 24)
    np.testing.assert_array_equal(rep.val_actuals[0], np.stack([v[-24:] for v in p.values()]))
    assert model.predict_array(24).shape == (4, 24)
    with pytest.raises(ValueError, match="too short"):
        auto_ensemble(cands, {"x": np.arange(30.0)}, horizon=24, season_length=24)
