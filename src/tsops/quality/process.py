"""``tsops process``: raw zone -> clean zone, incrementally, with each series' quality document in the catalog.

Raw files are immutable and named by their source position, so the list of files of a day partition is its
fingerprint: a day is (re)processed when its fingerprint differs from the one recorded after its last processing
(new data, late data, a replay). Days are processed in windows of a few contiguous days, each read with one day
of context before it (gaps, periods and anomalies near midnight need their neighbours), so memory stays bounded
by a window whatever the size of the lake. The clean rows of a day are written as one file
``clean/<dataset>/year=/month=/day=/clean.parquet`` that replaces the previous one atomically.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tsops.analysis.seasonality import Season, candidate_lengths, detect_seasons
from tsops.catalog.store import Catalog
from tsops.config import Project
from tsops.datamodel import POS, PROFILE_KEY, SERIES_ID, SRC, TS, VALUE, SeriesProfile
from tsops.engine import clean_dataset
from tsops.lake.sql import connect as connect_lake
from tsops.lake.sql import view_name
from tsops.lake.store import Lake
from tsops.quality.chain import CleaningConfig, clean_many
from tsops.quality.kernels import NAT
from tsops.quality.profile import build_profile, needs_season_check

log = logging.getLogger(__name__)

CLEAN_STEM = "clean"
_EPOCH = dt.date(1970, 1, 1)


@dataclass
class ProcessReport:
    """What one ``tsops process`` run did. Row accounting over the processed days (context days excluded):
    ``rows_in = observed_out + duplicates_merged + deferred_future``, and
    ``rows_out = observed_out + missing_inserted``."""

    dataset: str
    engine: str
    days_total: int = 0
    days_processed: list[str] = field(default_factory=list)
    series: int = 0
    rows_in: int = 0
    rows_out: int = 0
    observed_out: int = 0
    missing_inserted: int = 0
    duplicates_merged: int = 0
    deferred_future: int = 0
    deferred_days: list[str] = field(default_factory=list)
    anomalies: int = 0
    values_changed: int = 0
    profiles: int = 0
    seasons_checked: int = 0
    seconds: float = 0.0

    @property
    def reconciled(self) -> bool:
        return self.rows_in == self.observed_out + self.duplicates_merged + self.deferred_future

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["reconciled"] = self.reconciled
        return d


def day_fingerprint(lake: Lake, zone: str, dataset: str, day: dt.date) -> str:
    names = [f.rsplit("/", 1)[1] for f in lake.files(zone, dataset, day)]
    return hashlib.sha1("\n".join(sorted(names)).encode()).hexdigest()[:16]


def _windows(days: list[dt.date], rows: dict[dt.date, int], max_rows: int,
             max_days: int | None = None, max_gap: int = 1) -> list[list[dt.date]]:
    """Split sorted days into windows: days at most ``max_gap`` days apart, holding at most ``max_rows`` raw rows
    (a day larger than that is a window alone) and at most ``max_days`` days. Few, large windows for slow series
    (a year of weekly sales in one), bounded memory for fast ones."""
    out: list[list[dt.date]] = []
    held = 0
    for d in days:
        n = rows.get(d, 0)
        if (out and (d - out[-1][-1]).days <= max_gap and held + n <= max_rows
                and (max_days is None or len(out[-1]) < max_days)):
            out[-1].append(d)
            held += n
        else:
            out.append([d])
            held = n
    return out


def _summary(profile: SeriesProfile, doc: dict[str, Any]) -> dict[str, Any]:
    """Top-level copies of the profile for listings and dashboards (the profile stays the owner)."""
    return {"period_s": profile.period_seconds, "phase_s": profile.phase_seconds,
            "period_confidence": profile.period_confidence, "season_length": profile.season_length,
            "missing_ratio": profile.missing_ratio, "anomaly_ratio": profile.anomaly_ratio,
            "imputation_method": profile.imputation_method, "duplicates": doc.get("duplicates")}


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    """The clean frame as an Arrow table: None/bool flag columns (Spark's rows) as booleans, ts as UTC us."""
    fix = {c: df[c].astype("boolean") for c in df.columns
           if df[c].dtype == object and pd.api.types.infer_dtype(df[c], skipna=True) == "boolean"}
    t = pa.Table.from_pandas(df.assign(**fix) if fix else df, preserve_index=False)
    if TS in t.column_names:
        i = t.column_names.index(TS)
        t = t.set_column(i, TS, t.column(TS).cast(pa.timestamp("us", tz="UTC")))
    return t


def cleaning_config(project: Project, dataset: str) -> CleaningConfig:
    """The dataset's ``cleaning:`` section of tsops.yaml as a :class:`CleaningConfig` (defaults where unset)."""
    ds_cfg = project.config.datasets.get(dataset)
    kwargs = ds_cfg.cleaning.to_cleaning_kwargs() if ds_cfg is not None else {}
    try:
        return CleaningConfig(**kwargs)
    except ValueError as err:
        raise ValueError(f"datasets.{dataset}.cleaning: {err}") from err


def process_dataset(
    project: Project,
    dataset: str,
    *,
    engine: str | None = None,
    full: bool = False,
    config: CleaningConfig | None = None,
    max_rows: int = 2_000_000,
    window_days: int | None = None,
    context_days: int | None = None,
    on_window: Callable[[ProcessReport], None] | None = None,
) -> ProcessReport:
    """Clean the raw day partitions of ``dataset`` that changed since they were last processed, or whose
    rows were in the future then and whose time has come; then refresh each touched series' profile.

    Days are cleaned in windows of contiguous days of at most ``max_rows`` raw rows (and ``window_days`` days),
    each read with ``context_days`` before it (default: three sampling periods of the slowest profiled series,
    at least one day), so gaps, periods and anomalies at a window's edge see their neighbours.
    """
    engine = engine or project.config.engine
    cfg = (config or cleaning_config(project, dataset)).frozen_now()
    cutoff = pd.Timestamp(cfg.now_us(), unit="us", tz="UTC")  # rows after it wait in raw
    lake, catalog = project.lake(), project.catalog()
    report = ProcessReport(dataset=dataset, engine=engine)
    t0 = time.perf_counter()
    run_id = catalog.start_run("process", dataset, {"engine": engine})
    try:
        doc = (catalog.get_dataset(dataset) or {}).get("doc", {})
        done: dict[str, str] = dict(doc.get("processed", {}))
        deferred: dict[str, int] = {k: int(v) for k, v in (doc.get("deferred") or {}).items()}
        days = lake.days("raw", dataset)
        report.days_total = len(days)
        fps = {d: day_fingerprint(lake, "raw", dataset, d) for d in days}
        due = {d for d, last_us in deferred.items() if last_us <= cfg.now_us()}
        todo = [d for d in days if full or done.get(d.isoformat()) != fps[d] or d.isoformat() in due]
        spark = None
        if engine == "spark" and todo:
            from tsops.engine.spark import get_spark

            spark = get_spark(scratch_dir=project.root / ".tsops" / "spark")
        docs_by_series: dict[str, dict] = {}
        units: dict[str, str] = {}
        if context_days is None:
            context_days = max(1, math.ceil(3 * _slowest_period(catalog, dataset) / 86_400))
        day_rows = {d: lake.rows("raw", dataset, d) for d in todo}
        # each series is cleaned with its profile's seasons; a series never profiled gets them from a first look
        # at its window (the same detection the profile uses), before its anomalies are judged
        seasons = {sid: p.season_lengths for sid, p in catalog.get_profiles(dataset).items()
                   if "season_checked_rows" in p.extra}
        for window in _windows(todo, day_rows, max_rows, window_days, max_gap=context_days):
            start = dt.datetime.combine(window[0] - dt.timedelta(days=context_days), dt.time(), dt.UTC)
            end = dt.datetime.combine(window[-1] + dt.timedelta(days=1), dt.time(), dt.UTC)
            raw = lake.read("raw", dataset, start=start, end=end)
            raw = raw.drop_columns([c for c in (SRC, POS) if c in raw.column_names])
            df = raw.to_pandas()
            w0 = pd.Timestamp(window[0], tz="UTC")
            _account_input(report, df, w0, cutoff, deferred, window)
            kwargs = {"spark": spark} if spark is not None else {}
            if len(df):
                seasons.update(first_look_seasons(df, cfg, seasons))
            clean, docs = (clean_dataset(df, cfg, engine=engine, seasons=seasons, **kwargs) if len(df)
                           else (pd.DataFrame(), []))
            if len(clean):  # only the window's own days (the others in its span were context)
                c_us = clean[TS].to_numpy(dtype="datetime64[us]").view(np.int64)
                own = np.array([(d - _EPOCH).days for d in window], np.int64)
                keep = np.isin(c_us // 86_400_000_000, own) & (c_us >= w0.value // 1000) & clean[TS].notna().to_numpy()
                if not keep.all():
                    clean = clean[keep]
            table = _to_arrow(clean) if len(clean) else None
            # clean frames come sorted by (series_id, ts) from every engine (see tsops.engine)
            planned = lake.plan("clean", dataset, table, CLEAN_STEM, presorted=True) if table is not None else []
            written_days = {p.day for p in planned}
            lake.write(planned)
            for d in window:  # a day whose rows all vanished (e.g. all duplicates) loses its old clean file
                if d not in written_days and lake.files("clean", dataset, d):
                    lake.delete_day("clean", dataset, d)
            if docs:
                catalog.upsert_series(dataset, [{"series_id": d["series_id"], "quality": d} for d in docs])
            docs_by_series.update((d["series_id"], d) for d in docs)
            if len(clean) and "unit" in clean.columns:
                units.update(clean.dropna(subset=["unit"]).groupby("series_id", sort=False)["unit"].last().to_dict())
            _account_output(report, clean)
            for d in window:
                done[d.isoformat()] = fps[d]
                report.days_processed.append(d.isoformat())
            catalog.upsert_dataset(dataset, {"processed": done, "deferred": deferred, "cleaning": cfg.to_dict()})
            if on_window:
                on_window(report)
        report.deferred_days = sorted(deferred)
        report.series = len(docs_by_series)
        if docs_by_series:
            report.profiles, report.seasons_checked = refresh_profiles(lake, catalog, dataset, docs_by_series, units)
        report.seconds = time.perf_counter() - t0
        catalog.finish_run(run_id, "success", report.as_dict())
        return report
    except BaseException as err:
        report.seconds = time.perf_counter() - t0
        catalog.finish_run(run_id, "failed", report.as_dict(), error=f"{type(err).__name__}: {err}")
        raise
    finally:
        catalog.close()


def first_look_seasons(df: pd.DataFrame, cfg: CleaningConfig, known: dict[str, tuple[int, ...]]
                       ) -> dict[str, tuple[int, ...]]:
    """Seasons of the series in ``df`` that have none yet: the window on its grid (dedup and gaps only, no
    anomaly rule), through :func:`detect_seasons`.

    Arrays only (one :func:`clean_many` call, no frames, attributes or quality documents): this look runs
    before the real cleaning pass on every series seen for the first time.
    """
    new = df[~df[SERIES_ID].isin(list(known))] if known else df
    if not len(new):
        return {}
    look = replace(cfg, anomaly_methods=(), treatment="none", impute="linear", score_imputation=False
                   ).frozen_now()
    codes, uniques = pd.factorize(new[SERIES_ID], sort=False)
    order = np.argsort(codes, kind="stable")
    offsets = np.zeros(len(uniques) + 1, np.int64)
    offsets[1:] = np.cumsum(np.bincount(codes, minlength=len(uniques)))
    ts = new[TS]
    us = np.where(ts.isna().to_numpy(), NAT, ts.to_numpy(dtype="datetime64[us]").view(np.int64))[order]
    vals = pd.to_numeric(new[VALUE], errors="coerce").to_numpy(np.float64)[order]
    batch = clean_many(us, vals, offsets, look, season_lengths=[()] * len(uniques))
    period_us = batch.stats["period_us"].to_numpy(float)
    out = {}
    for s, sid in enumerate(uniques):
        p = period_us[s] / 1e6 if math.isfinite(period_us[s]) else None
        x = batch.value[batch.offsets[s]:batch.offsets[s + 1]]
        out[str(sid)] = tuple(season.length for season in detect_seasons(x, p))
    return out


def _slowest_period(catalog: Catalog, dataset: str) -> float:
    """Seconds between samples of the dataset's slowest series: its profiled period, or, before any profile,
    the mean spacing the ingest statistics give (first to last timestamp over the count)."""
    slowest = 0.0
    for s in catalog.list_series(dataset):
        prof = s.get(PROFILE_KEY) or {}
        p = prof.get("period_seconds")
        if not p and s.get("count", 0) > 1 and s.get("first_ts") and s.get("last_ts"):
            span = (pd.Timestamp(s["last_ts"]) - pd.Timestamp(s["first_ts"])).total_seconds()
            p = span / (s["count"] - 1)
        slowest = max(slowest, float(p or 0))
    return slowest


def _account_input(report: ProcessReport, df: pd.DataFrame, w0: pd.Timestamp, cutoff: pd.Timestamp,
                   deferred: dict[str, int], window: list[dt.date]) -> None:
    """Count the window's raw rows (context day excluded): in, deferred to the future, merged duplicates;
    record per day the latest timestamp that had to wait (the day is processed again once it has passed)."""
    for d in window:
        deferred.pop(d.isoformat(), None)
    if not len(df):
        return
    us = df[TS].to_numpy(dtype="datetime64[us]").view(np.int64)
    day = us // 86_400_000_000
    own = np.array([(d - _EPOCH).days for d in window], np.int64)
    mine = np.isin(day, own) & (us >= (w0.value // 1000))
    future = mine & (us > cutoff.value // 1000)
    eligible = mine & ~future
    report.rows_in += int(mine.sum())
    report.deferred_future += int(future.sum())
    if future.any():
        f_day, f_us = day[future], us[future]
        for d in np.unique(f_day):
            deferred[(_EPOCH + dt.timedelta(days=int(d))).isoformat()] = int(f_us[f_day == d].max())
    codes, _ = pd.factorize(df[SERIES_ID])
    keys = pd.DataFrame({"s": codes[eligible], "t": us[eligible]})
    report.duplicates_merged += int(keys.duplicated().sum())


def _account_output(report: ProcessReport, clean: pd.DataFrame) -> None:
    if not len(clean):
        return
    missing = clean["is_missing"].to_numpy(bool)
    report.rows_out += len(clean)
    report.missing_inserted += int(missing.sum())
    report.observed_out += int((~missing).sum())
    report.anomalies += int(clean["is_anomaly"].to_numpy(bool).sum())
    raw, val = clean["raw_value"].to_numpy(float), clean["value"].to_numpy(float)
    same = (raw == val) | (np.isnan(raw) & np.isnan(val))
    report.values_changed += int((~same & ~missing).sum())


# ---------------------------------------------------------------------------------------------- profiles
def history_figures(lake: Lake, dataset: str) -> dict[str, dict[str, Any]]:
    """Whole-history figures of every series in the clean zone (one DuckDB scan of four columns)."""
    if not lake.files("clean", dataset):
        return {}
    view = view_name("clean", dataset)
    con = connect_lake(lake)
    try:
        rows = con.execute(
            f'SELECT series_id, count(*) AS n_rows, sum(is_missing::INT) AS n_missing, '
            f'sum(is_imputed::INT) AS n_imputed, sum(is_anomaly::INT) AS n_anomalies, '
            f'min(ts) AS first_ts, max(ts) AS last_ts FROM "{view}" GROUP BY series_id').fetchall()
    finally:
        con.close()
    out = {}
    for sid, n, miss, imp, anom, first, last in rows:
        out[str(sid)] = {"n_rows": int(n), "n_missing": int(miss or 0), "n_imputed": int(imp or 0),
                         "n_anomalies": int(anom or 0), "first_ts": pd.Timestamp(first).isoformat(),
                         "last_ts": pd.Timestamp(last).isoformat()}
    return out


def refresh_profiles(lake: Lake, catalog: Catalog, dataset: str, docs: dict[str, dict], units: dict[str, str],
                     max_points: int = 50_000, batch_points: int = 5_000_000) -> tuple[int, int]:
    """Write the profile of every series in ``docs`` (cleaned this run); return (profiles, seasons checked).

    Seasons are detected on at most ``max_points`` recent grid points per series (enough for three cycles of
    the longest cycle that fits), read from the clean zone in batches of about ``batch_points`` values, so memory
    stays bounded by a batch whatever the size of the lake.
    """
    history = history_figures(lake, dataset)
    stored = {s["series_id"]: s for s in catalog.list_series(dataset)}
    previous = {sid: SeriesProfile.from_dict(s[PROFILE_KEY]) for sid, s in stored.items() if s.get(PROFILE_KEY)}
    check: dict[str, tuple[float, int]] = {}  # series -> (period s, points to read)
    for sid, d in docs.items():
        h = history.get(sid, {})
        p = d.get("period_seconds")
        if p and needs_season_check(previous.get(sid), int(h.get("n_rows", 0))):
            cands = candidate_lengths(p, min(int(h.get("n_rows", 0)), max_points))
            need = 3 * max((k for _, k in cands), default=0)
            check[sid] = (p, min(max(need, 1), max_points, int(h.get("n_rows", 0))))
    seasons: dict[str, list[Season]] = {}
    order = sorted(check, key=lambda s: check[s][0])
    batch: list[str] = []
    points = 0
    for sid in order + [None]:
        if sid is not None and (not batch or points + check[sid][1] <= batch_points):
            batch.append(sid)
            points += check[sid][1]
            continue
        if batch:
            span = max(check[s][0] * check[s][1] for s in batch)
            last = max(pd.Timestamp(history[s]["last_ts"]) for s in batch)
            start = (last - pd.Timedelta(seconds=span)).to_pydatetime()
            tab = lake.read("clean", dataset, start=start, series=batch, columns=[SERIES_ID, TS, VALUE])
            for s, x in _values_by_series(tab):
                seasons[s] = detect_seasons(x[-check[s][1]:], check[s][0])
            for s in batch:
                seasons.setdefault(s, [])
        batch, points = ([sid], check[sid][1]) if sid is not None else ([], 0)
    rows = []
    for sid, d in docs.items():
        h = dict(history.get(sid, {}))
        h["n_raw"] = int(stored.get(sid, {}).get("count") or 0)
        h["n_future_deferred"] = int((d.get("dropped") or {}).get("future", 0))
        prof = build_profile(sid, d, h, seasons.get(sid), previous.get(sid), unit=units.get(sid))
        rows.append({"series_id": sid, PROFILE_KEY: prof.to_dict(), **_summary(prof, d)})
    catalog.upsert_series(dataset, rows)
    return len(rows), len(check)


def _values_by_series(tab: pa.Table) -> list[tuple[str, np.ndarray]]:
    """The value column of a (series_id, ts, value) table per series, in time order (Arrow dictionary codes
    and one integer lexsort: sorting the string column through pandas costs several times more)."""
    if not tab.num_rows:
        return []
    col = tab.column(SERIES_ID)
    if pa.types.is_dictionary(col.type):  # chunks may carry different dictionaries
        col = pc.cast(col, pa.string())
    enc = pc.dictionary_encode(col.combine_chunks())
    codes = enc.indices.to_numpy(zero_copy_only=False)
    names = enc.dictionary.to_pylist()
    ts = pc.cast(tab.column(TS), pa.int64()).to_numpy()
    order = np.lexsort((ts, codes))
    vals = tab.column(VALUE).to_numpy().astype(float)[order]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(names)))])
    return [(str(names[c]), vals[bounds[c]:bounds[c + 1]]) for c in range(len(names)) if bounds[c + 1] > bounds[c]]


def processed_days(project: Project, dataset: str) -> list[str]:
    cat = project.catalog()
    try:
        doc = (cat.get_dataset(dataset) or {}).get("doc", {})
    finally:
        cat.close()
    return sorted(doc.get("processed", {}))


__all__ = ["ProcessReport", "cleaning_config", "day_fingerprint", "history_figures", "process_dataset",
           "processed_days", "refresh_profiles"]
