"""A spike next to a gap must not drag the values imputed into the gap."""

import numpy as np
import pandas as pd

from tsops.quality import CleaningConfig, clean_series


def test_imputed_values_ignore_an_adjacent_spike():
    t = pd.date_range("2026-01-01", periods=300, freq="10min", tz="UTC")
    v = 20 + np.sin(np.arange(300) / 30)
    df = pd.DataFrame({"series_id": "s", "ts": t, "value": v})
    df.loc[150, "value"] = -4000.0  # a spike ...
    df = df.drop(index=range(151, 155))  # ... right before a 4-sample gap
    out, doc = clean_series(df, CleaningConfig(now="2026-02-01"))
    gap = out[out["is_missing"]]
    assert len(gap) == 4 and gap["is_imputed"].all()
    assert gap["value"].between(18, 22).all(), gap["value"].tolist()
    spike = out[out["ts"] == t[150]].iloc[0]
    assert spike["is_anomaly"] and 18 < spike["value"] < 22 and spike["raw_value"] == -4000.0
    assert doc["n_imputed"] == 4
