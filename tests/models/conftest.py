from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "m4_hourly_small.csv"


@pytest.fixture(scope="session")
def m4_small() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Five M4 hourly series: (train dict, test dict)."""
    df = pd.read_csv(DATA)
    train = {s: g.loc[g.split == "train", "value"].to_numpy(float) for s, g in df.groupby("series_id")}
    test = {s: g.loc[g.split == "test", "value"].to_numpy(float) for s, g in df.groupby("series_id")}
    return train, test


def sine_panel(n_series: int = 6, length: int = 400, period: int = 24, noise: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    out = {}
    for i in range(n_series):
        amp = 1.0 + 0.5 * i
        level = 5.0 + i
        phase = rng.uniform(0, 2 * np.pi)
        out[f"s{i}"] = level + amp * np.sin(2 * np.pi * t / period + phase) + noise * rng.standard_normal(length)
    return out


@pytest.fixture(scope="session")
def sine():
    """Factory of synthetic sine panels: ``sine(n_series, length, period, noise, seed)``."""
    return sine_panel
