"""The Parquet lake: Hive-partitioned zones of immutable files, written atomically.

Layout (readable by Spark, Hive, DuckDB, pandas)::

    <root>/<zone>/<dataset>/year=YYYY/month=MM/day=DD/<deterministic-name>.parquet

Zones: ``raw`` (ingested observations), ``quarantine`` (rejected records with reason and source position),
``clean`` and ``forecasts`` (written by later stages). File names come from the source position, so a replay
after a crash rewrites the same file instead of adding a duplicate.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tsops.datamodel import SERIES_ID, TS

log = logging.getLogger(__name__)

ZONES = ("raw", "quarantine", "clean", "forecasts")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]{0,200}$")
_DAY_DIR = re.compile(r"year=(\d{4})/month=(\d{1,2})/day=(\d{1,2})$")
US_PER_DAY = 86_400_000_000
HIVE = ds.partitioning(
    pa.schema([("year", pa.int32()), ("month", pa.int32()), ("day", pa.int32())]), flavor="hive"
)


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name) or ".." in name:
        raise ValueError(f"{kind} {name!r} is not a safe lake name (letters, digits, _ . - =; no '..' or '/')")
    return name


@dataclass(frozen=True)
class PlannedFile:
    """A file the lake will write: its path relative to the lake root and its rows."""

    path: str
    table: pa.Table
    day: dt.date


def day_dir(day: dt.date) -> str:
    return f"year={day.year:04d}/month={day.month:02d}/day={day.day:02d}"


class Lake:
    """A lake rooted at a local directory or an fsspec/pyarrow URL (``s3://``, ``hdfs://``)."""

    def __init__(self, root: str, compression: str = "zstd"):
        self.uri = str(root)
        if "://" in self.uri and not self.uri.startswith("file://"):
            self.fs, self.root = pafs.FileSystem.from_uri(self.uri)
        else:
            path = self.uri[len("file://"):] if self.uri.startswith("file://") else self.uri
            self.fs, self.root = pafs.LocalFileSystem(), str(path).rstrip("/")
        self.compression = None if compression == "none" else compression
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    # ------------------------------------------------------------------ paths
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    def dataset_path(self, zone: str, dataset: str) -> str:
        if zone not in ZONES:
            raise ValueError(f"unknown lake zone {zone!r} (zones: {', '.join(ZONES)})")
        return self.path(zone, _check_name("dataset", dataset))

    # ------------------------------------------------------------------ writing
    def plan(self, zone: str, dataset: str, table: pa.Table, stem: str, ts_column: str = TS,
             presorted: bool = False) -> list[PlannedFile]:
        """Split ``table`` by UTC day of ``ts_column`` into one planned file per day partition.

        Rows are sorted by (series_id, ts) inside each file so readers can prune row groups by series
        (``presorted=True``: the caller guarantees that order already, and the sort is skipped).
        """
        _check_name("file stem", stem)
        base = f"{zone}/{_check_name('dataset', dataset)}"
        if table.num_rows == 0:
            return []
        ts = table.column(ts_column)
        us = pc.cast(pc.cast(ts, pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy(zero_copy_only=False)
        days = us // US_PER_DAY
        if SERIES_ID in table.column_names and not presorted:
            order = pc.sort_indices(table, sort_keys=[(SERIES_ID, "ascending"), (ts_column, "ascending")])
            table, days = table.take(order), days[order.to_numpy()]
        out = []
        for d in np.unique(days):
            mask = days == d
            part = table.filter(pa.array(mask)) if len(mask) != mask.sum() else table
            day = dt.date(1970, 1, 1) + dt.timedelta(days=int(d))
            out.append(PlannedFile(f"{base}/{day_dir(day)}/{stem}.parquet", part, day))
        return out

    def write(self, files: Iterable[PlannedFile]) -> list[str]:
        """Write each planned file atomically (temporary name, then rename). Returns the relative paths."""
        written = []
        for f in files:
            full = self.path(f.path)
            parent = full.rsplit("/", 1)[0]
            self.fs.create_dir(parent, recursive=True)
            stem = full.rsplit("/", 1)[1].removesuffix(".parquet")
            tmp = f"{parent}/.tmp-{stem}-{uuid.uuid4().hex}.partial"
            try:
                pq.write_table(f.table, tmp, filesystem=self.fs, compression=self.compression)
                self.fs.move(tmp, full)
            except BaseException:
                with contextlib.suppress(FileNotFoundError, OSError):
                    self.fs.delete_file(tmp)
                raise
            written.append(f.path)
        return written

    def write_table(self, zone: str, dataset: str, table: pa.Table, stem: str) -> list[str]:
        """Plan and write ``table`` into day partitions under file name ``stem``."""
        return self.write(self.plan(zone, dataset, table, stem))

    def delete(self, rel_paths: Iterable[str]) -> int:
        """Delete files (relative paths); missing ones are ignored. Returns how many were removed."""
        n = 0
        for p in rel_paths:
            try:
                self.fs.delete_file(self.path(p))
                n += 1
            except FileNotFoundError:
                pass
        return n

    def exists(self, rel_path: str) -> bool:
        return self.fs.get_file_info(self.path(rel_path)).type != pafs.FileType.NotFound

    # ------------------------------------------------------------------ listing
    def datasets(self, zone: str) -> list[str]:
        base = self.path(zone)
        if self.fs.get_file_info(base).type != pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(base))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def days(self, zone: str, dataset: str) -> list[dt.date]:
        """The day partitions present for a dataset, oldest first."""
        base = self.dataset_path(zone, dataset)
        if self.fs.get_file_info(base).type != pafs.FileType.Directory:
            return []
        out = set()
        for info in self.fs.get_file_info(pafs.FileSelector(base, recursive=True)):
            if info.type != pafs.FileType.Directory:
                continue
            m = _DAY_DIR.search(info.path)
            if m:
                out.add(dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))))
        return sorted(out)

    def files(self, zone: str, dataset: str, day: dt.date | None = None) -> list[str]:
        base = self.dataset_path(zone, dataset)
        if day is not None:
            base = f"{base}/{day_dir(day)}"
        if self.fs.get_file_info(base).type != pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        root = self.root + "/"
        return sorted(
            i.path[len(root):]
            for i in infos
            if i.type == pafs.FileType.File and i.base_name.endswith(".parquet") and not i.base_name.startswith(".")
        )

    def rows(self, zone: str, dataset: str, day: dt.date) -> int:
        """Rows in one day partition, from the Parquet footers (no data is read)."""
        return sum(pq.read_metadata(self.path(f), filesystem=self.fs).num_rows
                   for f in self.files(zone, dataset, day))

    def delete_day(self, zone: str, dataset: str, day: dt.date) -> int:
        """Remove one whole day partition; returns the number of files it held."""
        n = len(self.files(zone, dataset, day))
        path = f"{self.dataset_path(zone, dataset)}/{day_dir(day)}"
        self.fs.delete_dir(path)
        # drop now-empty month/year directories
        for parent in (path.rsplit("/", 1)[0], path.rsplit("/", 2)[0]):
            try:
                if not self.fs.get_file_info(pafs.FileSelector(parent)):
                    self.fs.delete_dir(parent)
            except (FileNotFoundError, OSError):
                pass
        return n

    # ------------------------------------------------------------------ reading
    def dataset(self, zone: str, dataset: str) -> ds.Dataset | None:
        """A pyarrow dataset over one zone of a dataset (None when nothing was written yet)."""
        files = self.files(zone, dataset)
        if not files:
            return None
        paths = [self.path(f) for f in files]
        base = self.dataset_path(zone, dataset)
        dset = ds.dataset(paths, format="parquet", filesystem=self.fs, partitioning=HIVE, partition_base_dir=base)
        schemas = {f.physical_schema for f in dset.get_fragments()} if len(paths) < 2000 else None
        if schemas and len(schemas) > 1:
            unified = pa.unify_schemas([*schemas, HIVE.schema], promote_options="permissive")
            dset = ds.dataset(
                paths, schema=unified, format="parquet", filesystem=self.fs, partitioning=HIVE,
                partition_base_dir=base,
            )
        return dset

    def filter_expr(
        self,
        start: dt.datetime | str | None = None,
        end: dt.datetime | str | None = None,
        series: Sequence[str] | None = None,
    ) -> ds.Expression | None:
        """A filter on [start, end) and series ids, with partition pruning on year/month/day."""
        expr = None

        def add(e: ds.Expression) -> None:
            nonlocal expr
            expr = e if expr is None else expr & e

        if start is not None:
            s = _utc(start)
            add(ds.field(TS) >= pa.scalar(s, pa.timestamp("us", tz="UTC")))
            add(_day_key() >= s.year * 10000 + s.month * 100 + s.day)
        if end is not None:
            e = _utc(end)
            add(ds.field(TS) < pa.scalar(e, pa.timestamp("us", tz="UTC")))
            add(_day_key() <= e.year * 10000 + e.month * 100 + e.day)
        if series is not None:
            add(ds.field(SERIES_ID).isin(list(series)))
        return expr

    def read(
        self,
        zone: str,
        dataset: str,
        start: dt.datetime | str | None = None,
        end: dt.datetime | str | None = None,
        series: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        partition_columns: bool = False,
    ) -> pa.Table:
        """Read observations in [start, end) for the given series (all by default) as one table."""
        dset = self.dataset(zone, dataset)
        if dset is None:
            return pa.table({})
        cols = list(columns) if columns is not None else [
            n for n in dset.schema.names if partition_columns or n not in ("year", "month", "day")
        ]
        return dset.to_table(columns=cols, filter=self.filter_expr(start, end, series))

    def iter_days(
        self,
        zone: str,
        dataset: str,
        days: Iterable[dt.date] | None = None,
        columns: Sequence[str] | None = None,
    ) -> Iterator[tuple[dt.date, pa.Table]]:
        """Yield (day, table) one day partition at a time: memory stays bounded by one day's data."""
        for day in days if days is not None else self.days(zone, dataset):
            files = self.files(zone, dataset, day)
            if not files:
                continue
            dset = ds.dataset([self.path(f) for f in files], format="parquet", filesystem=self.fs)
            schemas = {f.physical_schema for f in dset.get_fragments()}
            if len(schemas) > 1:
                unified = pa.unify_schemas(list(schemas), promote_options="permissive")
                dset = ds.dataset([self.path(f) for f in files], schema=unified, format="parquet", filesystem=self.fs)
            yield day, dset.to_table(columns=list(columns) if columns else None)

    def glob(self, zone: str, dataset: str) -> str:
        """A glob over the dataset's files for DuckDB / Spark (``.../**/*.parquet``)."""
        return f"{self.uri.rstrip('/')}/{zone}/{dataset}/**/*.parquet"


def _day_key() -> ds.Expression:
    return ds.field("year") * 10000 + ds.field("month") * 100 + ds.field("day")


def _utc(t: dt.datetime | str) -> dt.datetime:
    if isinstance(t, str):
        t = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    if isinstance(t, dt.date) and not isinstance(t, dt.datetime):
        t = dt.datetime(t.year, t.month, t.day)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC)
