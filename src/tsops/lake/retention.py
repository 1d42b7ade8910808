"""Retention: delete whole day partitions older than a dataset's policy, with an audit entry."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from tsops.catalog import Catalog
from tsops.config import parse_duration
from tsops.lake.store import Lake, day_dir

log = logging.getLogger(__name__)


@dataclass
class RetentionResult:
    dataset: str
    zone: str
    policy: str
    cutoff: dt.date
    removed: list[dt.date] = field(default_factory=list)
    files: int = 0
    kept: int = 0
    dry_run: bool = False


def cutoff_day(policy: str, now: dt.datetime | None = None) -> dt.date:
    """The first day that is kept: every partition strictly before it is older than ``policy``.

    A day partition [D, D+1) is deleted only when all of it is older than ``now - policy``, i.e. when
    D + 1 day <= now - policy.
    """
    now = now or dt.datetime.now(dt.UTC)
    limit = now - parse_duration(policy)
    return limit.date()  # day D ends at D+1 00:00, which is <= limit exactly when D < limit.date()


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
    """Delete day partitions of ``zone/dataset`` older than ``policy`` (never one at or after the cutoff)."""
    cut = cutoff_day(policy, now)
    res = RetentionResult(dataset, zone, policy, cut, dry_run=dry_run)
    for day in lake.days(zone, dataset):
        if day < cut:
            res.removed.append(day)
            res.files += len(lake.files(zone, dataset, day)) if dry_run else lake.delete_day(zone, dataset, day)
        else:
            res.kept += 1
    if res.removed and not dry_run and catalog is not None:
        catalog.add_audit(
            "retention",
            dataset,
            {
                "zone": zone,
                "policy": policy,
                "cutoff": cut.isoformat(),
                "removed": [day_dir(d) for d in res.removed],
                "files": res.files,
            },
        )
    if res.removed:
        log.info("%s %d day partitions of %s/%s before %s", "would remove" if dry_run else "removed",
                 len(res.removed), zone, dataset, cut)
    return res
