"""``tsops forecast``: forecasts with intervals for every series of a dataset, from its champion, into the lake.

Rows go to ``forecasts/<dataset>/year=/month=/day=`` (partitioned by forecast timestamp), one file per issue
with columns ``series_id, ts, step, mean, lo_80, hi_80, lo_95, hi_95, issued_at, created_at, model_name,
model_version, run_id``; the catalog records the run and, per series, the model version of its latest
forecast.

The horizon is the argument, else the dataset's ``forecast: {horizon}``, else ``pipeline.horizon`` when set in
``tsops.yaml``, else the champion's trained horizon. The champion forecasts with the seasons it was trained
with; series whose profile now has another main season are reported (``season_mismatch``: retrain). ``season``
overrides the season of a local champion (seasonal naive, statsforecast models) for every series.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tsops.datamodel import SERIES_ID, TS, TS_TYPE

log = logging.getLogger(__name__)


@dataclass
class ForecastRun:
    dataset: str
    name: str
    version: str
    rows: int
    n_series: int
    files: list[str]
    issued_at: pd.Timestamp
    frame: pd.DataFrame
    season_mismatch: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def default_horizon(project, dataset: str) -> int | None:
    """The horizon ``tsops.yaml`` asks for: the dataset's ``forecast.horizon``, else ``pipeline.horizon`` when it
    is set in the file; None: the model's own."""
    fc = project.dataset(dataset).forecast.horizon
    pipe = project.config.pipeline
    return fc or (pipe.horizon if "horizon" in pipe.model_fields_set else None)


def model_season(model, series_id: str) -> Any:
    """The main season ``model`` forecasts ``series_id`` with (None: no season; '-': the model takes none)."""
    if hasattr(model, "season_of"):
        return model.season_of(series_id)
    if not getattr(type(model), "supports_season", False):
        return "-"
    m = model.params.get("season_length")
    m = m[0] if isinstance(m, list) else m
    return m if m and m > 1 else None


def season_mismatch(model, profiles: dict, ids: list[str]) -> dict[str, tuple[Any, Any]]:
    """Series whose profile's main season (on the model's grid) differs from the one ``model`` uses:
    ``{id: (used, profile)}``."""
    from tsops.tuning.seasons import grid_seasons

    freq = model.history_.freq if model.history_ is not None else None
    grid = freq.total_seconds() if freq is not None else None
    out = {}
    for sid in ids:
        used = model_season(model, sid)
        prof = profiles.get(sid)
        if used == "-" or prof is None:
            continue
        now = next(iter(grid_seasons(prof, grid)), None)
        if used != now:
            out[sid] = (used, now)
    return out


def with_season_override(model, season: int):
    """A local champion set to forecast every series with ``season`` (1 = none); global models learnt their
    season in training and raise a ValueError saying so."""
    if not getattr(type(model), "supports_series_seasons", False):
        raise ValueError(f"the champion ({model.name}) learnt its season in training: --season applies to "
                         f"local models only; retrain with `tsops train --season {season}`")
    model._params.update(season_length=season if season > 1 else None, series_seasons=None)
    if hasattr(model, "season_length"):
        model.season_length = model._params["season_length"]
    return model


def to_table(fc: pd.DataFrame, issued_at: pd.Timestamp, name: str, version: str, run_id: str | None) -> pa.Table:
    """The forecast frame as a lake table (UTC timestamps, provenance columns)."""
    ts = pd.to_datetime(fc[TS])
    if getattr(ts.dt, "tz", None) is None:
        ts = ts.dt.tz_localize("UTC")
    n = len(fc)
    cols = {
        SERIES_ID: pa.array(fc[SERIES_ID].astype(str).to_numpy()),
        TS: pa.array(ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]"),
                     type=pa.timestamp("us")).cast(TS_TYPE),
        "step": pa.array(fc["step"].to_numpy(dtype=np.int32)),
    }
    for c in ("mean", "lo_80", "hi_80", "lo_95", "hi_95"):
        cols[c] = pa.array(fc[c].to_numpy(dtype=float))
    iss = issued_at.tz_convert("UTC").tz_localize(None).to_datetime64().astype("datetime64[us]")
    cols["issued_at"] = pa.array(np.full(n, iss), type=pa.timestamp("us")).cast(TS_TYPE)
    cols["created_at"] = cols["issued_at"]
    cols["model_name"] = pa.array([name] * n)
    cols["model_version"] = pa.array([str(version)] * n)
    cols["run_id"] = pa.array([run_id or ""] * n)
    return pa.table(cols)


def forecast_dataset(project, dataset: str, horizon: int | None = None, series: list[str] | None = None,
                     zone: str = "clean", alias: str = "champion", max_points: int | None = None,
                     season: int | None = None) -> ForecastRun:
    """Forecast every series (or ``series``) of ``dataset`` with its champion and write the lake rows."""
    from tsops.serving.champion import load_champion
    from tsops.tracking.forecast_pyfunc import forecast_frame, required_covariates
    from tsops.tuning.data import load_frame, regularize

    catalog = project.catalog()
    cat_run = catalog.start_run("forecast", dataset, {"alias": alias})
    try:
        horizon = horizon or default_horizon(project, dataset)
        loaded = load_champion(project, dataset, alias=alias)
        model = loaded.model
        if season is not None:
            model = with_season_override(model, season)
        freq = model.history_.freq if model.history_ is not None else None
        # a model with covariates reads other series as inputs: load them too, write only what was asked
        wanted = list(dict.fromkeys(series)) if series else None
        load_ids = list(dict.fromkeys([*wanted, *required_covariates(model)])) if wanted else None
        df, _ = load_frame(project, dataset, zone=zone, series=load_ids)
        if max_points:
            df = df.sort_values([SERIES_ID, TS]).groupby(SERIES_ID, sort=False).tail(max_points)
        grid = regularize(df, freq=freq)
        fc = forecast_frame(model, grid, horizon)
        if wanted:
            fc = fc[fc[SERIES_ID].astype(str).isin(wanted)].reset_index(drop=True)
        issued = pd.Timestamp.now(tz="UTC").floor("ms")
        stem = f"fc-{issued.strftime('%Y%m%dT%H%M%S%f')}-v{loaded.version}"
        files = project.lake().write_table("forecasts", dataset,
                                           to_table(fc, issued, loaded.name, loaded.version, loaded.run_id), stem)
        ids = sorted(fc[SERIES_ID].unique())
        mismatch = {} if season is not None else season_mismatch(model, catalog.get_profiles(dataset), ids)
        for sid, (used, now) in list(mismatch.items())[:10]:
            log.warning("series %s: the champion uses season %s, its profile now says %s: retrain", sid, used, now)
        doc = {"model": loaded.name, "version": loaded.version, "run_id": loaded.run_id,
               "issued_at": issued.isoformat(), "horizon": int(fc["step"].max())}
        catalog.upsert_series(dataset, [{"series_id": s, "forecast": doc} for s in ids])
    except BaseException as exc:
        catalog.finish_run(cat_run, "failed", error=str(exc)[:2000])
        raise
    catalog.finish_run(cat_run, "success", {"model": loaded.name, "version": loaded.version, "rows": len(fc),
                                            "series": len(ids), "files": len(files),
                                            "season_override": season,
                                            "season_mismatch": {k: list(v) for k, v in mismatch.items()}})
    log.info("wrote %d forecast rows of %d series (%s v%s) in %d file(s)", len(fc), len(ids), loaded.name,
             loaded.version, len(files))
    return ForecastRun(dataset, loaded.name, loaded.version, len(fc), len(ids), files, issued, fc, mismatch)
