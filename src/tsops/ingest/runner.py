"""Drive a source into the lake and the catalog, exactly once.

For every batch a source yields:

1. records -> long-format observations (:func:`tsops.datamodel.to_long`); rejected records, and records the
   source could not parse, become quarantine rows (raw bytes or row, reason, source position);
2. the catalog records the batch as *pending* with the files it is about to write;
3. the raw and quarantine files are written atomically under names derived from the source position;
4. one catalog transaction marks the batch committed, stores the new source positions and adds the series
   statistics;
5. the source is acknowledged (Kafka offsets committed).

A crash between 2 and 4 leaves a pending batch: the next run deletes its files before reading again from the
committed positions, so the lake holds every record exactly once and ``accepted + quarantined = consumed``.
That roll-back assumes no other run of the dataset is writing: :func:`tsops.ingest.api.ingest` holds the
dataset's ingest lock for the run.

One record can never fail its batch: whatever the conversion to long format raises is isolated to the
records behind it (:func:`convert_records`), which are quarantined with the error as reason. Gaps the source
reports (:meth:`~tsops.ingest.base.Source.gap`) go to the audit (``ingest_gap``) and the run's stats.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tsops.catalog import Catalog
from tsops.datamodel import POS, SERIES_ID, SRC, TS, VALUE, SeriesSpec, to_long
from tsops.ingest.base import Gap, Source, SourceBatch
from tsops.lake import Lake

log = logging.getLogger(__name__)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("quarantined_at", pa.timestamp("us", tz="UTC")),
        ("reason", pa.string()),
        ("raw", pa.binary()),
        (SRC, pa.string()),
        (POS, pa.int64()),
        ("batch", pa.string()),
    ]
)


@dataclass
class IngestReport:
    dataset: str
    source: str
    batches: int = 0
    consumed: int = 0
    accepted: int = 0
    quarantined: int = 0
    observations: int = 0
    series: int = 0
    rolled_back: int = 0
    files: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    #: gaps the source found (see :class:`~tsops.ingest.base.Gap`), each with its action
    gaps: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def records_per_s(self) -> float:
        return self.consumed / self.seconds if self.seconds > 0 else 0.0


def rollback_pending(lake: Lake, catalog: Catalog, dataset: str, source: str, parts: Sequence[str] | None = None) -> int:
    """Delete the files of uncommitted batches of ``source`` (only those touching ``parts`` when given)."""
    n = 0
    for b in catalog.pending_batches(dataset, source):
        files = b["files"] or []
        if parts is not None and not set(b["stats"].get("parts", parts)) & set(parts):
            continue
        removed = lake.delete(files)
        _delete_partials(lake, files, b["batch_key"])
        catalog.drop_batch(dataset, b["batch_key"])
        log.warning("rolled back uncommitted batch %s of %s (%d files removed)", b["batch_key"], dataset, removed)
        n += 1
    return n


def _delete_partials(lake: Lake, files: Sequence[str], stem: str) -> None:
    import pyarrow.fs as pafs

    for d in sorted({f.rsplit("/", 1)[0] for f in files}):
        try:
            infos = lake.fs.get_file_info(pafs.FileSelector(lake.path(d)))
        except (FileNotFoundError, OSError):
            continue
        for i in infos:
            if i.base_name.startswith(f".tmp-{stem}-"):
                lake.fs.delete_file(i.path)


def _row_bytes(records: pa.Table, rows: np.ndarray) -> list[bytes]:
    if len(rows) == 0:
        return []
    if records.num_columns == 0:
        return [b"{}"] * len(rows)
    sub = records.take(pa.array(rows))
    try:
        dicts = sub.to_pylist()
    except (OverflowError, ValueError, pa.ArrowException):  # a value Python cannot hold (a year 300000 date)
        cols = {c: _column_pylist(sub.column(c)) for c in sub.column_names}
        dicts = [{c: v[i] for c, v in cols.items()} for i in range(sub.num_rows)]
    return [json.dumps(r, default=str, ensure_ascii=False).encode() for r in dicts]


def _column_pylist(col: pa.ChunkedArray) -> list[Any]:
    try:
        return col.to_pylist()
    except (OverflowError, ValueError, pa.ArrowException):
        t = col.type
        if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_duration(t):
            width = pa.int32() if t in (pa.date32(), pa.time32("s"), pa.time32("ms")) else pa.int64()
            return [None if v is None else f"{v} ({t})" for v in pc.cast(col, width).to_pylist()]
        return [str(v) for v in col]


def quarantine_table(batch: SourceBatch, rejected_rows: np.ndarray, rejected_reasons: list[str]) -> pa.Table:
    """Quarantine rows for a batch: unparseable records plus records rejected by validation."""
    now = pa.scalar(time.time_ns() // 1000, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    raws = [b.raw if isinstance(b.raw, bytes) else bytes(str(b.raw), "utf-8") for b in batch.bad]
    reasons = [b.reason for b in batch.bad]
    poss = [int(b.pos) for b in batch.bad]
    if len(rejected_rows):
        records = batch.records.drop_columns([c for c in batch.records.column_names if c == "_index"])
        raws += _row_bytes(records, rejected_rows)
        reasons += rejected_reasons
        src_pos = batch.pos if batch.pos is not None else np.arange(batch.records.num_rows)
        poss += [int(p) for p in np.asarray(src_pos)[rejected_rows]]
    n = len(raws)
    return pa.table(
        {
            "quarantined_at": pa.array([now.value] * n, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "reason": pa.array(reasons, pa.string()),
            "raw": pa.array(raws, pa.binary()),
            SRC: pa.array([batch.src] * n, pa.string()),
            POS: pa.array(poss, pa.int64()),
            "batch": pa.array([batch.key] * n, pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def convert_records(
    records: pa.Table, spec: SeriesSpec, src: str, pos: np.ndarray | None, n: int | None = None
) -> tuple[pa.Table | None, np.ndarray, list[str]]:
    """:func:`~tsops.datamodel.to_long` that never fails a batch for one record.

    Returns (long table or None, rejected row numbers, reasons). Records lacking the timestamp or a key
    field are rejected as missing it; records without any value field are rejected as such. When the
    conversion raises for the batch (a timestamp beyond the lake's range, a field of an unusable type), the
    batch is split in halves until the records that raise on their own are found: they are rejected with the
    error, the others are converted. ``n`` is the number of records (a table without columns has no rows).
    """
    n = records.num_rows if n is None else n
    pos = np.arange(n, dtype=np.int64) if pos is None else np.asarray(pos, dtype=np.int64)
    if not any(v in records.column_names for v in spec.values):
        why = f"none of the value fields {spec.values} is present (record fields: {records.column_names})"
        return None, np.arange(n, dtype=np.int64), [why] * n
    for c in [spec.timestamp, *spec.keys]:
        if c not in records.column_names:  # a schema without the field: each record lacks it
            records = records.append_column(c, pa.nulls(n, pa.string()))
    longs: list[pa.Table] = []
    rows: list[np.ndarray] = []
    reasons: list[str] = []

    def run(lo: int, hi: int) -> None:
        try:
            res = to_long(records.slice(lo, hi - lo), spec, src=src, pos=pos[lo:hi])
            _check_storable(res.table)
        except Exception as err:  # noqa: BLE001 - isolate the record(s) behind it
            if hi - lo == 1:
                msg = str(err).splitlines()[0] if str(err) else ""
                rows.append(np.array([lo], np.int64))
                reasons.append(f"record cannot be converted: {type(err).__name__}: {msg}"[:500])
                return
            mid = (lo + hi) // 2
            run(lo, mid)
            run(mid, hi)
            return
        if res.table.num_rows:
            longs.append(res.table)
        rows.append(res.rejected.rows + lo)
        reasons.extend(res.rejected.reasons)

    run(0, n)
    long = None
    if longs:
        long = longs[0] if len(longs) == 1 else pa.concat_tables(longs, promote_options="permissive")
    rej = np.concatenate(rows) if rows else np.empty(0, np.int64)
    order = np.argsort(rej, kind="stable")
    return long, rej[order], [reasons[i] for i in order]


def _check_storable(long: pa.Table) -> None:
    """Raise for what the lake cannot store (so that it is found per record, not at write time)."""
    if long.num_rows:
        pc.cast(long.column(TS), pa.timestamp("us", tz="UTC"))


def series_stats(table: pa.Table, spec: SeriesSpec) -> list[dict[str, Any]]:
    """Per-series first/last timestamp, count and descriptive attributes of a long table (one batch)."""
    if table.num_rows == 0:
        return []
    attrs = [c for c in table.column_names if c not in (SERIES_ID, TS, VALUE, SRC, POS)]
    # attribute names as column references: Arrow reads "a.b" as a path, so aggregate them under plain names
    plain = table.select([SERIES_ID, TS, *attrs]).rename_columns([SERIES_ID, TS, *(f"a{i}" for i in range(len(attrs)))])
    base = [(TS, "min"), (TS, "max"), (TS, "count")]
    try:
        g = plain.group_by(SERIES_ID, use_threads=False).aggregate(base + [(f"a{i}", "last") for i in range(len(attrs))])
        attr_vals = {a: _pylist(g.column(f"a{i}_last")) for i, a in enumerate(attrs)}
    except (pa.ArrowException, OverflowError, ValueError) as err:  # an attribute type Arrow cannot aggregate
        log.warning("series attributes of this batch not recorded in the catalog (%s)", err)
        g = plain.group_by(SERIES_ID, use_threads=False).aggregate(base)
        attr_vals = {}
    ts_min = pc.cast(g.column(f"{TS}_min"), pa.int64()).to_pylist()
    ts_max = pc.cast(g.column(f"{TS}_max"), pa.int64()).to_pylist()
    counts = g.column(f"{TS}_count").to_pylist()
    key_set = set(spec.keys)
    out = []
    for i, sid in enumerate(g.column(SERIES_ID).to_pylist()):
        a = {_no_nul(k): _jsonable(v[i]) for k, v in attr_vals.items()}
        doc: dict[str, Any] = {
            "series_id": sid,
            "first_ts_us": ts_min[i],
            "last_ts_us": ts_max[i],
            "count": counts[i],
            "keys": {k: a.pop(k) for k in spec.keys if k in a},
            "attributes": {k: v for k, v in a.items() if k not in key_set},
        }
        if spec.with_measure:
            doc["measure"] = sid.rsplit(spec.separator, 1)[-1]
        else:
            doc["measure"] = spec.values[0]
        for k in ("unit", "position", "type_name"):
            if k in a and a[k] is not None:
                doc[k] = a[k]
        out.append(doc)
    return out


def _pylist(col: pa.ChunkedArray) -> list[Any]:
    try:
        return col.to_pylist()
    except (OverflowError, ValueError, pa.ArrowException):  # e.g. a date beyond Python's range
        return [str(v) for v in col]


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)  # JSON (and PostgreSQL's JSONB) has no NaN / Infinity
    if isinstance(v, str):
        return _no_nul(v)
    if v is None or isinstance(v, int | float | bool):
        return v
    return _no_nul(str(v))


def _no_nul(s: str) -> str:
    """PostgreSQL's JSONB cannot hold U+0000: the catalog's summary spells it out (the lake keeps the value)."""
    return s.replace("\x00", "\\u0000") if "\x00" in s else s


def run_ingest(
    dataset: str,
    spec: SeriesSpec,
    source: Source,
    lake: Lake,
    catalog: Catalog,
    *,
    max_batches: int | None = None,
    on_batch: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Ingest everything ``source`` has from its committed positions on. Returns the counts."""
    report = IngestReport(dataset=dataset, source=source.name)
    t0 = time.perf_counter()
    catalog.upsert_dataset(dataset, {"series": spec.model_dump(), "sources": {source.name: type(source).__name__}})
    run_id = catalog.start_run("ingest", dataset, {"source": source.name})
    src_name = source.name

    def on_gap(g: Gap, action: str) -> None:
        entry = {"source": src_name, "action": action, "run": run_id, **g.as_dict()}
        report.gaps.append(entry)
        catalog.add_audit("ingest_gap", dataset, entry)

    source.gap_sink = on_gap

    def recover(parts: Sequence[str] | None = None) -> dict[str, Any]:
        report.rolled_back += rollback_pending(lake, catalog, dataset, src_name, parts)
        return catalog.get_positions(dataset, src_name)

    try:
        if hasattr(source, "bind"):
            source.bind(recover)  # sources that learn their partitions late (Kafka consumer groups)
        else:
            recover()
        source.open(catalog.get_positions(dataset, src_name))
        seen: set[str] = set()
        for batch in source.batches():
            _commit(dataset, spec, source, batch, lake, catalog, report, seen)
            if on_batch:
                report.seconds = time.perf_counter() - t0
                on_batch(report)
            if max_batches is not None and report.batches >= max_batches:
                break
        report.series = len(seen)
    except BaseException as err:
        report.seconds = time.perf_counter() - t0
        catalog.finish_run(run_id, "failed", report.as_dict(), error=f"{type(err).__name__}: {err}")
        raise
    finally:
        source.close()
    report.seconds = time.perf_counter() - t0
    catalog.finish_run(run_id, "success", report.as_dict())
    return report


def _commit(
    dataset: str,
    spec: SeriesSpec,
    source: Source,
    batch: SourceBatch,
    lake: Lake,
    catalog: Catalog,
    report: IngestReport,
    seen: set[str],
) -> None:
    records = batch.records
    n = records.num_rows
    if "_index" in records.column_names:
        records = records.drop_columns(["_index"])
    if n:
        long, rej_rows, rej_reasons = convert_records(records, spec, batch.src, batch.pos, n)
    else:
        long, rej_rows, rej_reasons = None, np.empty(0, np.int64), []
    q = quarantine_table(batch, rej_rows, rej_reasons)
    planned = []
    if long is not None and long.num_rows:
        planned += lake.plan("raw", dataset, long, batch.key)
    if q.num_rows:
        planned += lake.plan("quarantine", dataset, q, batch.key, ts_column="quarantined_at")
    accepted = n - len(rej_rows)
    stats = {
        "accepted": accepted,
        "quarantined": q.num_rows,
        "consumed": batch.consumed,
        "observations": 0 if long is None else long.num_rows,
        "parts": sorted(batch.positions),
    }
    if accepted + q.num_rows != batch.consumed:
        raise RuntimeError(
            f"batch {batch.key}: counts do not reconcile (accepted {accepted} + quarantined {q.num_rows} "
            f"!= consumed {batch.consumed})"
        )
    docs = series_stats(long, spec) if long is not None else []  # before writing: a failure here leaves nothing
    catalog.begin_batch(dataset, source.name, batch.key, [p.path for p in planned], parts=stats["parts"])
    lake.write(planned)
    committed = catalog.commit_batch(
        dataset, source.name, batch.key, positions_=batch.positions, series_docs=docs, stats=stats
    )
    if not committed:
        log.info("batch %s was already committed; skipped", batch.key)
        return
    source.ack(batch)
    report.batches += 1
    report.consumed += batch.consumed
    report.accepted += accepted
    report.quarantined += q.num_rows
    report.observations += stats["observations"]
    report.files += len(planned)
    for r in q.column("reason").to_pylist():
        head = r.split(":")[0][:60]  # "field 'event_time'", "malformed JSON", ...
        report.reasons[head] = report.reasons.get(head, 0) + 1
    seen.update(d["series_id"] for d in docs)
