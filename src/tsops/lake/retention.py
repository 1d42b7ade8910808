"""Retention: delete whole day partitions older than a dataset's per-zone policy, with an audit entry.

Every zone of the lake (``raw``, ``quarantine``, ``clean``, ``forecasts``) has its own policy
(:class:`tsops.config.RetentionPolicy`; ``forever`` keeps a zone). A day partition [D, D+1) is deleted only when
all of it is older than ``now - policy``, so the day holding the cutoff instant is always kept.

Deleting raw days keeps the catalog true: each affected series loses the rows it had in those days from its
``count``, its ``first_ts`` moves to its oldest remaining raw row (a series with no raw rows left gets count 0 and
no range), and the deleted days leave the dataset's ``processed`` fingerprints so ``tsops process`` does not
look for them. Clean days whose raw days are still there are *not* reprocessed: the fingerprint of their raw
day is unchanged. Each pruned zone writes one ``retention`` audit entry (``tsops audit``).

Raw days are deleted one at a time, oldest first, like a batch commit in reverse: the day's rows per series are
recorded in the dataset document (``retention_pending``) before its files go, and the counts, the fingerprint and
that record change together in one catalog transaction after. A run killed in between leaves the record; the
next run deletes what is left of the day and applies the recorded counts, so counts never drift from the lake.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tsops.catalog import Catalog
from tsops.config import FOREVER, RETENTION_ZONES, Project, RetentionPolicy, retention_duration
from tsops.datamodel import SERIES_ID, TS
from tsops.lake.store import US_PER_DAY, Lake, day_dir

log = logging.getLogger(__name__)

#: the dataset document key holding the quality stage's raw-day fingerprints (day ISO -> fingerprint)
PROCESSED_KEY = "processed"
#: the dataset document key recording raw days being deleted (day ISO -> rows per series), cleared per day
PENDING_KEY = "retention_pending"


@dataclass
class RetentionResult:
    """What retention removed (or would remove, with ``dry_run``) from one zone of one dataset."""

    dataset: str
    zone: str
    policy: str
    cutoff: dt.date
    removed: list[dt.date] = field(default_factory=list)
    files: int = 0
    kept: int = 0
    rows: int = 0
    series_updated: int = 0
    dry_run: bool = False
    recovered: list[dt.date] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"zone": self.zone, "policy": self.policy, "cutoff": self.cutoff.isoformat(),
                "removed": [d.isoformat() for d in self.removed], "files": self.files, "rows": self.rows,
                "kept": self.kept, "series_updated": self.series_updated, "dry_run": self.dry_run,
                "recovered": [d.isoformat() for d in self.recovered]}


def cutoff_day(policy: str, now: dt.datetime | None = None) -> dt.date:
    """The first day that is kept: every partition strictly before it is older than ``policy``.

    A day partition [D, D+1) is deleted only when all of it is older than ``now - policy``, i.e. when
    D + 1 day <= now - policy.
    """
    keep = retention_duration(policy)
    if keep is None:
        raise ValueError(f"retention {policy!r} keeps data for ever: it has no cutoff day")
    now = now or dt.datetime.now(dt.UTC)
    limit = now - keep
    return limit.date()  # day D ends at D+1 00:00, which is <= limit exactly when D < limit.date()


def _day_series_counts(lake: Lake, zone: str, dataset: str, day: dt.date) -> Counter[str]:
    """Rows per series id in one day partition (reads only the series id column)."""
    files = lake.files(zone, dataset, day)
    if not files:
        return Counter()
    dset = ds.dataset([lake.path(f) for f in files], format="parquet", filesystem=lake.fs)
    if SERIES_ID not in dset.schema.names:
        return Counter({"": dset.count_rows()})
    counts = pc.value_counts(dset.to_table(columns=[SERIES_ID]).column(SERIES_ID))
    return Counter({str(v["values"]): int(v["counts"]) for v in counts.to_pylist()})


def _day_rows(lake: Lake, zone: str, dataset: str, day: dt.date) -> int:
    """Rows in one day partition, from the Parquet footers."""
    files = lake.files(zone, dataset, day)
    return sum(pq.ParquetFile(lake.path(f), filesystem=lake.fs).metadata.num_rows for f in files)


def _first_ts_us(lake: Lake, dataset: str, wanted: set[str], days: Iterable[dt.date]) -> dict[str, int]:
    """The oldest raw timestamp (epoch us) of each wanted series, reading the remaining days oldest first
    and stopping as soon as every wanted series was seen."""
    out: dict[str, int] = {}
    pending = set(wanted)
    for day in days:
        if not pending:
            break
        files = lake.files("raw", dataset, day)
        if not files:
            continue
        t = ds.dataset([lake.path(f) for f in files], format="parquet", filesystem=lake.fs).to_table(
            columns=[SERIES_ID, TS], filter=ds.field(SERIES_ID).isin(sorted(pending)))
        if t.num_rows == 0:
            continue
        t = t.set_column(1, TS, pc.cast(pc.cast(t.column(TS), pa.timestamp("us", tz="UTC")), pa.int64()))
        for row in t.group_by(SERIES_ID).aggregate([(TS, "min")]).to_pylist():
            sid, first = str(row[SERIES_ID]), row[f"{TS}_min"]
            if first is not None:
                out[sid] = int(first)
                pending.discard(sid)
    return out


def _day_start_us(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * US_PER_DAY


def _commit_raw_day(catalog: Catalog, dataset: str, day: dt.date, counts: Mapping[str, int]) -> None:
    """In one catalog transaction: the day's rows leave their series' counts (first_ts moves past the day), the
    day leaves the processed fingerprints, and its pending-deletion record is cleared."""
    with catalog.begin() as conn:
        catalog.subtract_series_counts(dataset, counts, _day_start_us(day + dt.timedelta(days=1)), conn)
        catalog.drop_dataset_doc_entries(dataset, PROCESSED_KEY, [day.isoformat()], conn)
        catalog.drop_dataset_doc_entries(dataset, PENDING_KEY, [day.isoformat()], conn)


def _finish_pending(lake: Lake, catalog: Catalog, dataset: str, res: RetentionResult) -> Counter[str]:
    """Finish the raw days a killed retention run had started to delete: delete what is left of them and apply
    the counts recorded before the deletion began (a recount would miss the files already gone)."""
    pending = ((catalog.get_dataset(dataset) or {}).get("doc") or {}).get(PENDING_KEY) or {}
    counts: Counter[str] = Counter()
    for day_iso, day_counts in sorted(pending.items()):
        day = dt.date.fromisoformat(day_iso)
        if day in lake.days("raw", dataset):
            res.files += lake.delete_day("raw", dataset, day)
        _commit_raw_day(catalog, dataset, day, day_counts)
        counts.update(day_counts)
        res.rows += sum(day_counts.values())
        res.recovered.append(day)
        log.warning("finished the deletion of raw/%s/%s left by an interrupted retention run", dataset, day_iso)
    return counts


def _set_first_ts(lake: Lake, catalog: Catalog, dataset: str, affected: set[str], cutoff: dt.date) -> int:
    """Each affected series' first_ts becomes its oldest remaining raw row (none left: count 0, no range)."""
    known = {s["series_id"]: s for s in catalog.list_series(dataset)}
    affected = {sid for sid in affected if sid in known}
    # a series last seen before the cutoff had every row in the deleted days: no scan needed
    look = {sid for sid in affected
            if known[sid].get("last_ts") is None or _iso_us(known[sid]["last_ts"]) >= _day_start_us(cutoff)}
    first = _first_ts_us(lake, dataset, look, lake.days("raw", dataset)) if look else {}
    return catalog.set_series_first_ts(dataset, {sid: first.get(sid) for sid in affected})


def _iso_us(iso: str) -> int:
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def apply_retention(
    lake: Lake,
    catalog: Catalog | None,
    dataset: str,
    policy: str,
    *,
    zone: str = "raw",
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> RetentionResult:
    """Delete day partitions of ``zone/dataset`` older than ``policy`` (never one at or after the cutoff).

    On the raw zone (and with a catalog) the affected series' counts and first timestamps and the dataset's
    processed-day fingerprints are updated; every zone with deletions gets one ``retention`` audit entry.
    """
    if zone not in RETENTION_ZONES:
        raise ValueError(f"unknown lake zone {zone!r} (zones: {', '.join(RETENTION_ZONES)})")
    cut = cutoff_day(policy, now)
    res = RetentionResult(dataset, zone, policy, cut, dry_run=dry_run)
    track = zone == "raw" and catalog is not None and not dry_run
    removed_rows = _finish_pending(lake, catalog, dataset, res) if track else Counter()
    for day in lake.days(zone, dataset):
        if day >= cut:
            res.kept += 1
            continue
        res.removed.append(day)
        counts = _day_series_counts(lake, zone, dataset, day) if zone == "raw" else None
        res.rows += sum(counts.values()) if counts is not None else _day_rows(lake, zone, dataset, day)
        if dry_run:
            res.files += len(lake.files(zone, dataset, day))
            continue
        if track:  # intent first: a run killed during the deletion is finished by the next one
            catalog.upsert_dataset(dataset, {PENDING_KEY: {day.isoformat(): dict(counts)}})
        res.files += lake.delete_day(zone, dataset, day)  # one day at a time, oldest first
        if track:
            _commit_raw_day(catalog, dataset, day, counts)
            removed_rows.update(counts)
    if track and (res.removed or res.recovered):
        res.series_updated = _set_first_ts(lake, catalog, dataset, {sid for sid in removed_rows if sid}, cut)
    if (res.removed or res.recovered) and not dry_run and catalog is not None:
        catalog.add_audit(
            "retention",
            dataset,
            {
                "zone": zone,
                "policy": policy,
                "cutoff": cut.isoformat(),
                "removed": [day_dir(d) for d in res.removed],
                "files": res.files,
                "rows": res.rows,
                **({"series_updated": res.series_updated} if zone == "raw" else {}),
                **({"finished_interrupted": [day_dir(d) for d in res.recovered]} if res.recovered else {}),
            },
        )
    if res.removed:
        log.info("%s %d day partitions of %s/%s before %s", "would remove" if dry_run else "removed",
                 len(res.removed), zone, dataset, cut)
    return res


def apply_policy(
    lake: Lake,
    catalog: Catalog | None,
    dataset: str,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> list[RetentionResult]:
    """Apply every bounded zone of ``policy`` (zones kept ``forever`` are skipped), raw first."""
    now = now or dt.datetime.now(dt.UTC)
    return [apply_retention(lake, catalog, dataset, p, zone=z, dry_run=dry_run, now=now)
            for z, p in policy.zones().items()]


def retain_dataset(project: Project, dataset: str, *, dry_run: bool = False,
                   now: dt.datetime | None = None) -> list[RetentionResult]:
    """Apply ``dataset``'s retention policy from tsops.yaml to its lake zones and catalog entries.

    The caller holds the dataset's lock (``tsops retention`` and the pipeline's retention stage do), so no
    pipeline stage reads or processes the days being deleted.
    """
    policy = project.dataset(dataset).retention
    if not policy.zones():
        return []
    catalog = project.catalog()
    try:
        return apply_policy(project.lake(), catalog, dataset, policy, dry_run=dry_run, now=now)
    finally:
        catalog.close()


__all__ = ["FOREVER", "PENDING_KEY", "PROCESSED_KEY", "RetentionResult", "apply_policy", "apply_retention", "cutoff_day",
           "retain_dataset"]
