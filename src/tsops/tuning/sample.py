"""A small self-contained project with hourly series in the lake: for demos, tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from tsops.datamodel import SERIES_ID, TS, TS_TYPE, VALUE


def synthetic_hourly(n_series: int = 3, length: int = 240, seed: int = 0,
                     start: str = "2024-01-01", irregular: bool = False) -> pd.DataFrame:
    """Daily-seasonal hourly series (level, amplitude and phase differ per series) as ``series_id, ts, value``;
    with ``irregular`` timestamps jitter by up to 10 minutes and 5% of points are dropped."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    ts0 = pd.date_range(start, periods=length, freq="h", tz="UTC")
    parts = []
    for i in range(n_series):
        v = 10 + 2 * i + (1 + 0.3 * i) * np.sin(2 * np.pi * t / 24 + rng.uniform(0, 6.28)) \
            + 0.1 * rng.standard_normal(length)
        ts = ts0
        if irregular:
            ts = ts0 + pd.to_timedelta(rng.integers(-600, 600, length), unit="s")
            keep = rng.random(length) > 0.05
            keep[[0, -1]] = True
            ts, v = ts[keep], v[keep]
        parts.append(pd.DataFrame({SERIES_ID: f"s{i}", TS: ts, VALUE: v}))
    return pd.concat(parts, ignore_index=True)


def write_project(directory: str | Path, data: pd.DataFrame, dataset: str = "demo", zone: str = "raw"):
    """Create ``tsops.yaml`` with one dataset in ``directory`` and write ``data`` (``series_id, ts, value``)
    into the lake ``zone``; returns the loaded :class:`~tsops.config.Project`."""
    from tsops.config import PROJECT_FILE, load_project

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = {"name": "sample", "datasets": {dataset: {"series": {"timestamp": TS, "keys": ["sensor"],
                                                                "values": [VALUE]}}}}
    (d / PROJECT_FILE).write_text(yaml.safe_dump(cfg), encoding="utf-8")
    project = load_project(d)
    ts = pd.to_datetime(data[TS], utc=True)
    table = pa.table({SERIES_ID: pa.array(data[SERIES_ID].astype(str).to_numpy()),
                      TS: pa.array(ts.to_numpy(dtype="datetime64[us]"), type=pa.timestamp("us")).cast(TS_TYPE),
                      VALUE: pa.array(data[VALUE].to_numpy(dtype=float))})
    if zone == "clean":
        table = table.append_column("is_missing", pa.array(np.isnan(data[VALUE].to_numpy(dtype=float))))
    project.lake().write_table(zone, dataset, table, "sample")
    return project


def seed_tracking_db(project, template: str | Path) -> Path:
    """Give ``project`` an MLflow SQLite store copied from ``template`` (an empty, migrated store that is
    created on first use): creating the MLflow schema takes seconds, a copy milliseconds."""
    import shutil

    uri = project.tracking_uri
    if not uri.startswith("sqlite:///"):
        raise ValueError(f"seed_tracking_db needs a sqlite tracking URI (got {uri!r})")
    target = Path(uri[len("sqlite:///"):])
    template = Path(template)
    if not template.exists():
        from mlflow import MlflowClient

        template.parent.mkdir(parents=True, exist_ok=True)
        tmp = template.with_suffix(".creating")
        MlflowClient(f"sqlite:///{tmp}").search_experiments()
        tmp.replace(template)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    return target
