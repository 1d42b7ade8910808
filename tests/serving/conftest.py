from __future__ import annotations

import pytest

from tsops.tuning.evaluate import BacktestSpec
from tsops.tuning.sample import seed_tracking_db, synthetic_hourly, write_project

SPEC = BacktestSpec(horizon=12, n_windows=2)


@pytest.fixture(scope="module")
def served_project(tmp_path_factory):
    """A project whose dataset has a champion (seasonal naive, version 1)."""
    from tsops.tuning.train import train

    root = tmp_path_factory.mktemp("served")
    p = write_project(root / "proj", synthetic_hourly(3, 150, seed=5), season_lengths=(24,))
    seed_tracking_db(p, tmp_path_factory.getbasetemp() / "mlflow-template.db")
    res = train(p, "demo", "seasonal_naive", spec=SPEC)
    assert res.promoted and res.version == "1"
    return p
