from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


def beijing_long(column: str = "PM2.5") -> pd.DataFrame:
    raw = pd.read_csv(DATA / "beijing_aotizhongxin_2013_6w.csv")
    ts = pd.to_datetime(raw[["year", "month", "day", "hour"]]).dt.tz_localize("Asia/Shanghai").dt.tz_convert("UTC")
    return pd.DataFrame({"series_id": f"aotizhongxin/{column}", "ts": ts.dt.as_unit("us"),
                         "value": raw[column].astype(float), "unit": "ug/m3", "station": raw["station"]})


@pytest.fixture
def beijing() -> pd.DataFrame:
    return beijing_long()


def synth_long(n: int = 600, period_s: int = 600, phase_s: int = 349, jitter: float = 0.0, missing=(),
               seed: int = 0, series_id: str = "s1") -> pd.DataFrame:
    """A daily-seasonal series on a known grid; ``missing`` are grid indices left out."""
    rng = np.random.default_rng(seed)
    k = np.setdiff1d(np.arange(n), np.asarray(missing, int))
    t = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(phase_s + k * period_s, unit="s")
    t = t + pd.to_timedelta(rng.uniform(-jitter, jitter, k.size) * period_s, unit="s")
    season = 86400 // period_s
    v = 20 + 5 * np.sin(2 * np.pi * k / season) + rng.normal(0, 0.2, k.size)
    return pd.DataFrame({"series_id": series_id, "ts": t.as_unit("us"), "value": v, "unit": "C"})


@pytest.fixture
def make_synth():
    return synth_long
