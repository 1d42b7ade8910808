import numpy as np
import pandas as pd
import pytest

from tsops.models import as_panel
from tsops.models.base import Panel, fill_gaps, right_align
from tsops.models.baselines import SeasonalNaive


def _frame():
    ts = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    a = pd.DataFrame({"series_id": "a", "ts": ts, "value": np.arange(6.0)})
    b = pd.DataFrame({"series_id": "b", "ts": ts[[0, 1, 3, 4, 5]], "value": [1.0, 2, 4, 5, 6]})
    return pd.concat([b, a])


def test_dataframe_to_panel_fills_grid_gaps_with_nan():
    p = as_panel(_frame())
    assert p.ids == ["a", "b"]
    assert p.freq == pd.Timedelta("1h")
    np.testing.assert_array_equal(p.values[1], [1.0, 2.0, np.nan, 4.0, 5.0, 6.0])


def test_predict_carries_future_timestamps():
    df = SeasonalNaive(2).fit(_frame()).predict(3)
    assert list(df.columns) == ["series_id", "step", "ts", "mean"]
    a = df[df.series_id == "a"]
    assert a.ts.iloc[0] == pd.Timestamp("2024-01-01 06:00", tz="UTC")
    assert a["mean"].tolist() == [4.0, 5.0, 4.0]


def test_bad_panels_name_the_problem():
    with pytest.raises(ValueError, match="lacks column"):
        as_panel(pd.DataFrame({"series_id": ["a"], "value": [1.0]}))
    dup = pd.concat([_frame(), _frame().iloc[:1]])
    with pytest.raises(ValueError, match="duplicate timestamp"):
        as_panel(dup)
    with pytest.raises(ValueError, match="appears more than once"):
        Panel(["x", "x"], [np.zeros(2), np.zeros(2)])
    with pytest.raises(TypeError, match="cannot read a panel"):
        as_panel([1, 2, 3])


def test_alignment_helpers():
    m = right_align([np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0])])
    np.testing.assert_array_equal(np.isnan(m), [[True, False, False], [False, False, False]])
    np.testing.assert_array_equal(fill_gaps(np.array([np.nan, 1.0, np.nan, 3.0])), [1.0, 1.0, 1.0, 3.0])
