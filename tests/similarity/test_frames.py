"""Column parsing, long-to-wide, patterns, the level filter, summaries and the stretch choice rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsops.datasets.sales import load_capacity_pattern, load_sales_weekly
from tsops.similarity.analysis import choose_stretch, distance_table, lowest_decile, outliers, summarize
from tsops.similarity.frames import (
    parse_pattern_values,
    parse_value_columns,
    read_pattern,
    scale_filter,
    to_wide,
    wide_matrix,
)


def test_parse_value_columns():
    cols = [f"W{i}" for i in range(52)] + ["MIN"]
    assert parse_value_columns("W0..W51", cols) == cols[:52]
    assert parse_value_columns("W3..W5, MIN", cols) == ["W3", "W4", "W5", "MIN"]
    assert parse_value_columns("W2..4", cols) == ["W2", "W3", "W4"]
    with pytest.raises(ValueError, match="W52"):
        parse_value_columns("W50..W52", cols)


def test_wide_matrix_defaults_to_numeric_columns():
    df = pd.DataFrame({"id": ["a", "b"], "x": [1, 2], "y": [3.0, 4.0], "note": ["u", "v"]})
    values, ids, cols = wide_matrix(df, "id")
    assert cols == ["x", "y"] and list(ids) == ["a", "b"]
    np.testing.assert_array_equal(values, [[1, 3], [2, 4]])
    with pytest.raises(ValueError, match="not in the input"):
        wide_matrix(df, "nope")


def test_to_wide_regular_grid():
    long = pd.DataFrame({
        "series_id": ["a", "a", "a", "b", "b"],
        "ts": pd.to_datetime(["2024-01-01 00:10", "2024-01-01 00:50", "2024-01-01 03:05",
                              "2024-01-01 01:00", "2024-01-01 01:30"]),
        "value": [1.0, 3.0, 5.0, 4.0, 6.0],
    })
    wide = to_wide(long, "h")
    assert list(wide.columns) == list(pd.date_range("2024-01-01 00:00", periods=4, freq="h"))
    np.testing.assert_array_equal(wide.loc["a"].to_numpy(), [2.0, np.nan, np.nan, 5.0])
    np.testing.assert_array_equal(wide.loc["b"].to_numpy(), [np.nan, 5.0, np.nan, np.nan])
    weekly = to_wide(long, "W", agg="sum")
    assert weekly.shape == (2, 1) and weekly.loc["a"].iloc[0] == 9.0
    with pytest.raises(ValueError, match="lacks column"):
        to_wide(long.rename(columns={"ts": "time"}), "h")


def test_patterns(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("week,capacity\nW0,1.5\nW1,2\nW2,3\n")
    np.testing.assert_array_equal(read_pattern(str(f)), [1.5, 2, 3])
    g = tmp_path / "plain.txt"
    g.write_text("1, 2\n3\n")
    np.testing.assert_array_equal(read_pattern(str(g)), [1, 2, 3])
    np.testing.assert_array_equal(parse_pattern_values("1,2.5,3"), [1, 2.5, 3])
    with pytest.raises(ValueError, match="comma-separated"):
        parse_pattern_values("1,x")


def test_scale_filter():
    x = np.array([[10.0, 10], [19, 21], [43, 41], [5.1, 4.9], [0, 0]])
    keep = scale_filter(x, np.array([15.0, 25]), 2.0)  # pattern mean 20: keep means in [10, 40]
    np.testing.assert_array_equal(keep, [True, True, False, False, False])
    with pytest.raises(ValueError, match=">= 1"):
        scale_filter(x, np.array([1.0]), 0.5)


def test_summaries_and_choice():
    d = np.array([1.0, 5, 5, 5, 5, 5, 5, 5, 5, 9])
    table = distance_table([f"s{i}" for i in range(10)], d)
    assert table.loc[0, "rank"] == 1 and table.loc[9, "rank"] == 10
    assert list(outliers(table)["id"]) == ["s0"]  # z = -2.53
    assert list(lowest_decile(table)["id"]) == ["s0"]
    stats = summarize(d)
    assert stats["median"] == 5 and stats["p10"] == pytest.approx(4.6)
    s = {0.05: {"p10_median_ratio": 0.8}, 0.1: {"p10_median_ratio": 0.7}, 0.25: {"p10_median_ratio": 0.7}}
    assert choose_stretch(s) == 0.1  # lowest ratio, ties to the smaller stretch
    assert choose_stretch(s, "0.25") == 0.25
    with pytest.raises(ValueError, match="not among"):
        choose_stretch(s, "0.3")


def test_shipped_datasets():
    sales = load_sales_weekly()
    assert sales.shape == (811, 52) and sales.index.name == "Product_Code"
    assert load_sales_weekly(raw=True).shape == (811, 107)
    pattern = load_capacity_pattern()
    assert pattern.shape == (52,) and pattern[0] == 12.5 and pattern[-1] == 23
