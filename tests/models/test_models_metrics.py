import numpy as np
import pytest

from tsops.models import metrics as M


def test_point_metrics_hand_computed():
    y = np.array([1.0, 2.0, 4.0])
    f = np.array([2.0, 2.0, 2.0])
    assert M.mae(y, f) == pytest.approx(1.0)
    assert M.rmse(y, f) == pytest.approx(np.sqrt(5 / 3))
    assert M.mape(y, f) == pytest.approx(100 * (1 + 0 + 0.5) / 3)
    assert M.smape(y, f) == pytest.approx((200 * 1 / 3 + 0 + 200 * 2 / 6) / 3)


def test_smape_zero_over_zero_is_zero_and_mape_skips_zero_actuals():
    assert M.smape(np.zeros(3), np.zeros(3)) == 0.0
    assert M.mape(np.array([0.0, 2.0]), np.array([1.0, 1.0])) == pytest.approx(50.0)


def test_mase_uses_seasonal_naive_scale():
    insample = np.array([1.0, 2.0, 3.0, 5.0, 6.0, 8.0])  # lag-2 diffs: 2, 3, 3, 3 -> 2.75
    assert M.mase_scale(insample, 2) == pytest.approx(2.75)
    assert M.mase(np.array([10.0, 12.0]), np.array([11.0, 10.0]), insample, 2) == pytest.approx(1.5 / 2.75)


def test_owa_and_shape_errors():
    assert M.owa(9.0, 1.0, 18.0, 2.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="shape"):
        M.mae(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="too short"):
        M.mase_scale(np.array([1.0]), 24)


def test_per_series_and_summary():
    per = M.per_series_metrics([np.array([1.0, 1.0]), np.array([2.0, 4.0])],
                               [np.array([1.0, 1.0]), np.array([2.0, 2.0])],
                               [np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 4.0])], m=1)
    assert per["mae"].tolist() == [0.0, 1.0]
    assert per["mase"].tolist() == [0.0, 0.5]
    assert M.summarize(per)["mae"] == pytest.approx(0.5)
