from __future__ import annotations

import os

import pytest

from tsops.tuning.sample import seed_tracking_db, synthetic_hourly, write_project


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """One local Ray for the whole test session (2 CPUs, no dashboard, a short temp dir)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _temp_dir=f"/tmp/tsops-test-ray-{os.getpid()}")
    yield ray
    ray.shutdown()


@pytest.fixture
def make_project(tmp_path, tmp_path_factory):
    """Factory: a project in tmp with hourly series in the lake, their profiles in the catalog (a daily season
    of 24 samples, as `tsops process` would find; ``season_lengths=None``: never processed) and a ready MLflow
    store."""
    template = tmp_path_factory.getbasetemp() / "mlflow-template.db"

    def make(n_series: int = 3, length: int = 200, zone: str = "raw", irregular: bool = False, seed: int = 0,
             name: str = "proj", season_lengths: tuple[int, ...] | None = (24,), data=None, config=None):
        if data is None:
            data = synthetic_hourly(n_series, length, seed=seed, irregular=irregular)
        p = write_project(tmp_path / name, data, zone=zone, season_lengths=season_lengths, config=config)
        seed_tracking_db(p, template)
        return p

    return make
