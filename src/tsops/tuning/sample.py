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


def write_project(directory: str | Path, data: pd.DataFrame, dataset: str = "demo", zone: str = "raw",
                  season_lengths: tuple[int, ...] | None = None, config: dict | None = None):
    """Create ``tsops.yaml`` with one dataset in ``directory`` and write ``data`` (``series_id, ts, value``)
    into the lake ``zone``; returns the loaded :class:`~tsops.config.Project`.

    ``season_lengths`` (samples, strongest first; () = none) writes a series profile per series into the
    catalog, as ``tsops process`` would (period: the median spacing of the series' timestamps), so the project
    can be trained on without processing it. ``config`` adds keys to the dataset's section of ``tsops.yaml``
    (e.g. ``{"forecast": {"horizon": 12}}``)."""
    from tsops.config import PROJECT_FILE, load_project

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = {"name": "sample", "datasets": {dataset: {"series": {"timestamp": TS, "keys": ["sensor"],
                                                                "values": [VALUE]}, **(config or {})}}}
    (d / PROJECT_FILE).write_text(yaml.safe_dump(cfg), encoding="utf-8")
    project = load_project(d)
    ts = pd.to_datetime(data[TS], utc=True)
    table = pa.table({SERIES_ID: pa.array(data[SERIES_ID].astype(str).to_numpy()),
                      TS: pa.array(ts.to_numpy(dtype="datetime64[us]"), type=pa.timestamp("us")).cast(TS_TYPE),
                      VALUE: pa.array(data[VALUE].to_numpy(dtype=float))})
    if zone == "clean":
        table = table.append_column("is_missing", pa.array(np.isnan(data[VALUE].to_numpy(dtype=float))))
    project.lake().write_table(zone, dataset, table, "sample")
    if season_lengths is not None:
        write_profiles(project, dataset, data, season_lengths)
    return project


def write_profiles(project, dataset: str, data: pd.DataFrame, season_lengths: tuple[int, ...]) -> None:
    """Store a :class:`~tsops.datamodel.SeriesProfile` for every series of ``data`` in the catalog (period: the
    median spacing of its timestamps; the given season lengths)."""
    from tsops.datamodel import PROFILE_KEY, SeriesProfile

    docs = []
    for sid, g in data.groupby(SERIES_ID, sort=True):
        ts = pd.to_datetime(g[TS], utc=True).sort_values()
        period = float(ts.diff().median().total_seconds()) if len(ts) > 1 else None
        prof = SeriesProfile(str(sid), period_seconds=period, season_lengths=tuple(int(m) for m in season_lengths),
                             first_ts=ts.iloc[0].isoformat(), last_ts=ts.iloc[-1].isoformat(), n_raw=len(g),
                             n_rows=len(g))
        docs.append({"series_id": str(sid), PROFILE_KEY: prof.to_dict()})
    catalog = project.catalog()
    try:
        catalog.upsert_series(dataset, docs)
    finally:
        catalog.close()


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
