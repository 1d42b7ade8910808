"""Loaders for the shipped weekly sales data (UCI) and the demo capacity pattern."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

SALES_FILE = "sales_transactions_weekly.csv"
CAPACITY_FILE = "capacity_pattern.csv"
WEEK_COLUMNS = [f"W{i}" for i in range(52)]


def _open(name: str):
    return resources.files("tsops.datasets").joinpath(name).open("rb")


def load_sales_weekly(raw: bool = False) -> pd.DataFrame:
    """UCI weekly sales: 811 products x 52 weeks, one row per product.

    Default: index ``Product_Code``, columns ``W0..W51`` (purchase quantities, float). ``raw=True`` returns the
    file as shipped (``Product_Code, W0..W51, MIN, MAX, Normalized 0..51``).
    """
    with _open(SALES_FILE) as fh:
        df = pd.read_csv(fh)
    if raw:
        return df
    return df.set_index("Product_Code")[WEEK_COLUMNS].astype(float)


def load_capacity_pattern() -> np.ndarray:
    """The 52-week demo capacity pattern (float array, week W0 first)."""
    with _open(CAPACITY_FILE) as fh:
        df = pd.read_csv(fh)
    return df["capacity"].to_numpy(dtype=float)
