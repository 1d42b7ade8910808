"""Dataset-level analysis: each series' profile and the correlations across series, into the catalog.

Reads the clean zone (each series on its own regular grid), profiles every series (statistics, ACF,
stationarity, trend and seasonality strength), aligns all series on a common grid (they are sampled at
different moments and periods), and computes Pearson and Spearman correlation and the best lag of every pair.
The results land in the catalog: ``stats`` in each series document (the series document's ``profile`` key is
the quality stage's :class:`~tsops.datamodel.SeriesProfile`, which this stage reads: each series' seasons for
its decomposition and strength figures, its period for the common grid), ``analysis`` in the dataset document,
so the forecasting stage can pick covariates and a user can see which sensors explain which.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsops.analysis.decompose import MAX_STL_SEASON
from tsops.analysis.multivariate import align, best_lags, correlation
from tsops.analysis.stats import profile
from tsops.config import Project

log = logging.getLogger(__name__)


@dataclass
class AnalysisReport:
    dataset: str
    series: int = 0
    pairs: int = 0
    grid: str | None = None
    top_pairs: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def read_recent(project: Project, dataset: str, zone: str = "clean", days: float | None = 30) -> pd.DataFrame:
    """The last ``days`` of a zone (all of it when None) as a pandas long frame."""
    lake = project.lake()
    all_days = lake.days(zone, dataset)
    if not all_days:
        return pd.DataFrame(columns=["series_id", "ts", "value"])
    start = None
    if days is not None:
        start = dt.datetime.combine(all_days[-1], dt.time(), dt.UTC) - dt.timedelta(days=days - 1)
    return lake.read(zone, dataset, start=start).to_pandas()


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _profile_one(arg: tuple) -> tuple[str, dict]:
    """One series' statistics (runs in a worker process); ``season``: its main season in samples or None."""
    sid, values, season, max_points, max_season = arg
    # STL and the unit-root tests cost O(n * season): profile long, fast-sampled series on block means
    k = max(1, math.ceil(len(values) / max_points), math.ceil((season or 0) / max_season))
    if season and season % k:  # blocks that divide the season keep its phase
        k = next((d for d in range(k, 2 * k + 1) if season % d == 0), k)
    if k > 1:
        m = len(values) // k * k
        values = np.nanmean(values[len(values) - m:].reshape(-1, k), axis=1)
    s = season // k if season and season % k == 0 and season // k >= 2 and 2 * (season // k) <= len(values) \
        else None
    try:
        prof = _jsonable(profile(values, season_length=s))
        prof.update(block=k, season=s)
        return sid, prof
    except (ValueError, np.linalg.LinAlgError) as err:  # too short or constant: say why
        log.info("statistics of %s incomplete: %s", sid, err)
        return sid, {"error": str(err), "block": k, "season": s}


def analyze_frame(df: pd.DataFrame, periods: dict[str, float] | None = None, max_lag: int = 24,
                  max_series: int = 60, max_points: int = 2000, max_season: int = MAX_STL_SEASON,
                  workers: int | None = None, seasons: dict[str, int | None] | None = None
                  ) -> tuple[dict[str, dict], dict[str, Any]]:
    """Statistics per series and the cross-series analysis of a clean long frame (pure function).

    ``seasons``: each series' main season in samples (from its profile; a series missing or None: no season,
    no seasonal decomposition); ``periods``: each series' sampling period in seconds (the common grid).
    Series longer than ``max_points`` (or with a season longer than ``max_season`` steps) are analysed on
    block means of ``block`` consecutive points, recorded in the statistics with the season used on them.
    """
    periods = periods or {}
    seasons = seasons or {}
    groups = [(str(sid), g.sort_values("ts")["value"].to_numpy(float), seasons.get(str(sid)))
              for sid, g in df.groupby("series_id", sort=True)]
    args = [(sid, v, m, max_points, max_season) for sid, v, m in groups]
    if len(args) >= 8 and workers != 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_profile_one, args, chunksize=max(1, len(args) // 16)))
    else:
        results = [_profile_one(a) for a in args]
    profiles: dict[str, dict] = dict(results)
    out: dict[str, Any] = {"series": len(profiles)}
    ids = list(profiles)[:max_series]
    if len(ids) >= 2:
        sub = df[df["series_id"].isin(ids)]
        grid = pd.Timedelta(seconds=max(periods.get(s, 0) or 0 for s in ids)) if periods else None
        wide = align(sub, how="grid", freq=grid if grid is not None and grid > pd.Timedelta(0) else None)
        out["grid"] = str(pd.Timedelta(wide.index.to_series().diff().median())) if len(wide) > 1 else None
        out["pearson"] = _jsonable(correlation(wide, "pearson").to_dict())
        out["spearman"] = _jsonable(correlation(wide, "spearman").to_dict())
        lags = best_lags(wide, max_lag=max_lag)
        out["best_lags"] = _jsonable(lags.to_dict(orient="records"))
    return profiles, out


def analyze_dataset(project: Project, dataset: str, days: float | None = 30, max_lag: int = 24) -> AnalysisReport:
    """Describe every series and correlate them, from the clean zone, with the seasons and periods of the series
    profiles; results go to the catalog (``stats`` per series, ``analysis`` per dataset)."""
    catalog = project.catalog()
    try:
        df = read_recent(project, dataset, "clean", days)
        rep = AnalysisReport(dataset=dataset)
        if df.empty:
            return rep
        prof = catalog.get_profiles(dataset)
        docs = catalog.list_series(dataset)
        periods = {s["series_id"]: (prof[s["series_id"]].period_seconds if s["series_id"] in prof else None)
                   or s.get("period_s") for s in docs}
        periods = {k: v for k, v in periods.items() if v}
        seasons = {sid: p.season_length for sid, p in prof.items()}
        profiles, cross = analyze_frame(df, periods, max_lag=max_lag, seasons=seasons)
        catalog.upsert_series(dataset, [{"series_id": sid, "stats": p} for sid, p in profiles.items()])
        catalog.upsert_dataset(dataset, {"analysis": cross})
        rep.series = len(profiles)
        rep.pairs = len(cross.get("best_lags", []))
        rep.grid = cross.get("grid")
        rep.top_pairs = cross.get("best_lags", [])[:5]
        return rep
    finally:
        catalog.close()
