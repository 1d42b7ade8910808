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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from tsops.config import Project
from tsops.datamodel import POS, SRC, TS
from tsops.lake.store import Lake

log = logging.getLogger(__name__)

CLEAN_STEM = "clean"
#: fields of the quality document copied to the top level of the series document (dashboards, listings)
SUMMARY_FIELDS = {"period_seconds": "period_s", "phase_seconds": "phase_s", "period_confidence": "period_confidence",
                  "missing_ratio": "missing_ratio", "anomaly_ratio": "anomaly_ratio", "duplicates": "duplicates"}


@dataclass
class ProcessReport:
    dataset: str
    engine: str
    days_total: int = 0
    days_processed: list[str] = field(default_factory=list)
    series: int = 0
    rows_in: int = 0
    rows_out: int = 0
    missing_inserted: int = 0
    anomalies: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def day_fingerprint(lake: Lake, zone: str, dataset: str, day: dt.date) -> str:
    names = [f.rsplit("/", 1)[1] for f in lake.files(zone, dataset, day)]
    return hashlib.sha1("\n".join(sorted(names)).encode()).hexdigest()[:16]


def _windows(days: list[dt.date], size: int) -> list[list[dt.date]]:
    """Split sorted days into runs of contiguous days of at most ``size`` days."""
    out: list[list[dt.date]] = []
    for d in days:
        if out and len(out[-1]) < size and (d - out[-1][-1]).days == 1:
            out[-1].append(d)
        else:
            out.append([d])
    return out


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    out = {top: doc[k] for k, top in SUMMARY_FIELDS.items() if k in doc}
    imp = doc.get("imputation")
    if isinstance(imp, dict) and "method" in imp:
        out["imputation_method"] = imp["method"]
    return out


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object:
            # mixed None/str columns stay strings; None/bool flags become bool
            non_null = df[c].dropna()
            if len(non_null) and non_null.map(type).eq(bool).all():
                df[c] = df[c].astype("boolean")
    t = pa.Table.from_pandas(df, preserve_index=False)
    if TS in t.column_names:
        i = t.column_names.index(TS)
        t = t.set_column(i, TS, t.column(TS).cast(pa.timestamp("us", tz="UTC")))
    return t


def process_dataset(
    project: Project,
    dataset: str,
    *,
    engine: str | None = None,
    full: bool = False,
    config: Any = None,
    window_days: int = 7,
    context_days: int = 1,
    on_window: Callable[[ProcessReport], None] | None = None,
) -> ProcessReport:
    """Clean the raw day partitions of ``dataset`` that changed since they were last processed."""
    from tsops.engine import clean_dataset
    from tsops.quality import CleaningConfig

    engine = engine or project.config.engine
    cfg = config or CleaningConfig()
    lake, catalog = project.lake(), project.catalog()
    report = ProcessReport(dataset=dataset, engine=engine)
    t0 = time.perf_counter()
    run_id = catalog.start_run("process", dataset, {"engine": engine})
    try:
        doc = (catalog.get_dataset(dataset) or {}).get("doc", {})
        done: dict[str, str] = dict(doc.get("processed", {}))
        days = lake.days("raw", dataset)
        report.days_total = len(days)
        fps = {d: day_fingerprint(lake, "raw", dataset, d) for d in days}
        todo = [d for d in days if full or done.get(d.isoformat()) != fps[d]]
        spark = None
        if engine == "spark" and todo:
            from tsops.engine.spark import get_spark

            spark = get_spark(scratch_dir=project.root / ".tsops" / "spark")
        seen: set[str] = set()
        for window in _windows(todo, window_days):
            start = dt.datetime.combine(window[0] - dt.timedelta(days=context_days), dt.time(), dt.UTC)
            end = dt.datetime.combine(window[-1] + dt.timedelta(days=1), dt.time(), dt.UTC)
            raw = lake.read("raw", dataset, start=start, end=end)
            raw = raw.drop_columns([c for c in (SRC, POS) if c in raw.column_names])
            df = raw.to_pandas()
            report.rows_in += int((df[TS] >= pd.Timestamp(window[0], tz="UTC")).sum()) if len(df) else 0
            kwargs = {"spark": spark} if spark is not None else {}
            clean, docs = clean_dataset(df, cfg, engine=engine, **kwargs) if len(df) else (pd.DataFrame(), [])
            if len(clean):
                keep = clean[TS] >= pd.Timestamp(window[0], tz="UTC")
                clean = clean[keep & clean[TS].notna()]
            table = _to_arrow(clean) if len(clean) else None
            planned = lake.plan("clean", dataset, table, CLEAN_STEM) if table is not None else []
            written_days = {p.day for p in planned}
            lake.write(planned)
            for d in window:  # a day whose rows all vanished (e.g. all duplicates) loses its old clean file
                if d not in written_days and lake.files("clean", dataset, d):
                    lake.delete_day("clean", dataset, d)
            if docs:
                catalog.upsert_series(dataset, [{"series_id": d["series_id"], "quality": d, **_summary(d)}
                                                for d in docs])
            seen.update(d["series_id"] for d in docs)
            report.rows_out += len(clean)
            if len(clean):
                report.missing_inserted += int(clean.get("is_missing", pd.Series(dtype=bool)).fillna(False).sum())
                report.anomalies += int(clean.get("is_anomaly", pd.Series(dtype=bool)).fillna(False).sum())
            for d in window:
                done[d.isoformat()] = fps[d]
                report.days_processed.append(d.isoformat())
            catalog.upsert_dataset(dataset, {"processed": done, "cleaning": cfg.to_dict()})
            if on_window:
                on_window(report)
        report.series = len(seen)
        report.seconds = time.perf_counter() - t0
        catalog.finish_run(run_id, "success", report.as_dict())
        return report
    except BaseException as err:
        report.seconds = time.perf_counter() - t0
        catalog.finish_run(run_id, "failed", report.as_dict(), error=f"{type(err).__name__}: {err}")
        raise
    finally:
        catalog.close()


def processed_days(project: Project, dataset: str) -> list[str]:
    cat = project.catalog()
    try:
        doc = (cat.get_dataset(dataset) or {}).get("doc", {})
    finally:
        cat.close()
    return sorted(doc.get("processed", {}))


__all__ = ["ProcessReport", "day_fingerprint", "process_dataset", "processed_days"]
