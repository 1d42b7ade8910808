import math

import numpy as np
import optuna
import pandas as pd
import pytest

from tsops.models import backtest, make_model
from tsops.models.base import as_panel
from tsops.tuning.evaluate import BacktestSpec, fingerprint, run_backtest
from tsops.tuning.sample import synthetic_hourly
from tsops.tuning.trials import SearchSpace, read_trial, run_trial, split_config
from tsops.tuning.tune import leaderboard


def test_lstm_space_is_the_one_from_the_study():
    space = SearchSpace(["lstm", "seasonal_naive"], seasons=(24, 168), horizon=24)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"hidden_size": set(), "num_layers": set(), "lr": []}
    for _ in range(60):
        t = study.ask()
        space(t)
        fam, params = split_config(t.params)
        if fam == "lstm":
            seen["hidden_size"].add(params["hidden_size"])
            seen["num_layers"].add(params["num_layers"])
            seen["lr"].append(params["learning_rate"])
        else:
            assert set(params) == {"season_length"}
        study.tell(t, 1.0)
    assert seen["hidden_size"] <= {2, 4, 8, 16, 32, 64} and len(seen["hidden_size"]) >= 4
    assert seen["num_layers"] <= {1, 2, 3, 4, 5} and len(seen["num_layers"]) >= 3
    assert min(seen["lr"]) >= 1e-3 and max(seen["lr"]) <= 0.1
    # log-uniform: about as many draws below 0.01 as above
    assert 0.2 < np.mean(np.array(seen["lr"]) < 0.01) < 0.8


def test_unknown_family_fails_early():
    with pytest.raises(KeyError, match="no search space"):
        SearchSpace(["prophet"])


def test_windowed_backtest_matches_the_models_backtest():
    panel = as_panel(synthetic_hourly(3, 150, seed=3))
    spec = BacktestSpec(horizon=12, n_windows=3, season_length=24)
    sn = make_model("seasonal_naive", season_length=24)
    score, metrics, residuals, wins = run_backtest(sn, panel, spec)
    ref = backtest(sn, panel, 12, n_windows=3, season_length=24, min_train=48)
    pd.testing.assert_series_equal(metrics.sort_values(["window", "series_id"])["mase"].reset_index(drop=True),
                                   ref.metrics.sort_values(["window", "series_id"])["mase"].reset_index(drop=True))
    assert score == pytest.approx(ref.metrics["mase"].mean())
    assert [w.window for w in wins] == [0, 1, 2]
    assert len(residuals) == 3 * 3 * 12


def test_fingerprint_depends_on_data_and_spec():
    panel = as_panel(synthetic_hourly(2, 100))
    spec = BacktestSpec(horizon=12, n_windows=2, season_length=24)
    fp = fingerprint(panel, spec)
    assert fp == fingerprint(as_panel(synthetic_hourly(2, 100)), spec)
    assert fp != fingerprint(panel, BacktestSpec(horizon=6, n_windows=2, season_length=24))
    assert fp != fingerprint(panel, BacktestSpec(horizon=12, n_windows=2, season_length=12))  # another MASE scale
    # where the seasons came from does not matter, only the MASE season of each series
    assert fp == fingerprint(panel, BacktestSpec(horizon=12, n_windows=2, series_seasons={"s0": (24,), "s1": (24, 168)}))
    assert fp != fingerprint(panel, BacktestSpec(horizon=12, n_windows=2, series_seasons={"s0": (24,), "s1": (12,)}))
    assert fp != fingerprint(as_panel(synthetic_hourly(2, 101)), spec)


def test_run_trial_records_windows_epochs_and_backtest(tmp_path):
    panel = as_panel(synthetic_hourly(2, 120, seed=4))
    spec = BacktestSpec(horizon=12, n_windows=2, series_seasons={"s0": (24,), "s1": (24,)})
    reports = []
    score = run_trial("lstm", {"hidden_size": 4, "input_size": 24, "max_steps": 6, "eval_every": 2,
                               "batch_size": 16}, panel, spec, tmp_path / "t", report=reports.append)
    assert [r["window"] for r in reports] == [0, 1] and math.isfinite(score)
    rec = read_trial(tmp_path / "t")
    assert rec["model"] == "lstm" and rec["params"]["hidden_size"] == 4
    assert len(rec["windows"]) == 2 and rec["score"] == pytest.approx(score)
    assert [r["step"] for r in rec["windows"][0]["train_logs"][0]] == [2, 4, 6]
    assert set(rec["metrics"]["window"]) == {0, 1} and len(rec["residuals"]) == 2 * 2 * 12
    assert rec["season"] == {"season": "24", "season_source": "profile"}
    assert set(rec["metrics"]["season"]) == {24}


def test_leaderboard_ranks_only_complete_trials():
    recs = [
        {"trial_id": "a", "run_id": "r1", "model": "lstm", "params": {"x": 1}, "score": 0.5, "windows": 1,
         "state": "stopped after 1 window(s)", "seconds": 1.0},
        {"trial_id": "b", "run_id": "r2", "model": "naive", "params": {}, "score": 2.0, "windows": 3,
         "state": "complete", "seconds": 1.0},
        {"trial_id": "c", "run_id": "r3", "model": "seasonal_naive", "params": {}, "score": 1.0, "windows": 3,
         "state": "complete", "seconds": 1.0},
    ]
    board = leaderboard(recs)
    assert list(board["trial_id"]) == ["c", "b", "a"]
    assert list(board["rank"][:2]) == [1, 2] and np.isnan(board["rank"].iloc[2])


def test_failing_configuration_leaves_a_trial_record(tmp_path):
    panel = as_panel(synthetic_hourly(1, 40, seed=4))
    with pytest.raises(ValueError, match="no series has"):
        run_trial("seasonal_naive", {}, panel, BacktestSpec(horizon=30, n_windows=2, season_length=24), tmp_path / "t")
    rec = read_trial(tmp_path / "t")
    assert rec["windows"] == [] and math.isnan(rec["score"]) and rec["metrics"].empty
