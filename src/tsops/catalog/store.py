"""The metadata catalog: datasets, series documents, source positions, batches, runs and an audit log.

SQLAlchemy Core over SQLite (default, a file in the project) or PostgreSQL (production). Each series has a
JSON document (JSONB on PostgreSQL) that later stages patch with their figures. Every write is an idempotent
upsert, safe under concurrent writers (``INSERT .. ON CONFLICT DO UPDATE`` in one statement; SQLite runs in WAL
mode with ``BEGIN IMMEDIATE`` transactions and a busy timeout).

Exactly-once ingestion rests on the ``batches`` table: a batch is recorded as *pending* with the list of lake
files it will write before they are written, and becomes *committed* in the same transaction that stores the
source positions and the series statistics. Committing a batch twice is a no-op; pending batches found at
start-up are rolled back (their files deleted) by the runner.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from tsops.datamodel import PROFILE_KEY, SeriesProfile
from tsops.masking import label_errors, mask_secrets, mask_url

log = logging.getLogger(__name__)

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

metadata = sa.MetaData()

datasets = sa.Table(
    "tsops_datasets",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

series = sa.Table(
    "tsops_series",
    metadata,
    sa.Column("dataset", sa.String(200), primary_key=True),
    sa.Column("series_id", sa.String(512), primary_key=True),
    sa.Column("first_ts_us", sa.BigInteger, nullable=True),
    sa.Column("last_ts_us", sa.BigInteger, nullable=True),
    sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

positions = sa.Table(
    "tsops_positions",
    metadata,
    sa.Column("dataset", sa.String(200), primary_key=True),
    sa.Column("source", sa.String(200), primary_key=True),
    sa.Column("part", sa.String(512), primary_key=True),
    sa.Column("position", JSONDoc, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

batches = sa.Table(
    "tsops_batches",
    metadata,
    sa.Column("dataset", sa.String(200), primary_key=True),
    sa.Column("batch_key", sa.String(300), primary_key=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("files", JSONDoc, nullable=False),
    sa.Column("stats", JSONDoc, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("committed_at", sa.BigInteger, nullable=True),
)

runs = sa.Table(
    "tsops_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("dataset", sa.String(200), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("finished_at", sa.BigInteger, nullable=True),
    sa.Column("stats", JSONDoc, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
)

audit = sa.Table(
    "tsops_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("dataset", sa.String(200), nullable=True),
    sa.Column("detail", JSONDoc, nullable=False),
)

sa.Index("ix_tsops_batches_status", batches.c.dataset, batches.c.source, batches.c.status)
sa.Index("ix_tsops_runs_dataset", runs.c.dataset, runs.c.started_at)


def now_us() -> int:
    return time.time_ns() // 1000


def us_to_iso(us: int | None) -> str | None:
    if us is None:
        return None
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))).isoformat().replace(
        "+00:00", "Z"
    )


class Catalog:
    """The catalog behind a SQLAlchemy URL (tables are created on first use)."""

    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        kwargs: dict[str, Any] = {"future": True}
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = sa.create_engine(url, **kwargs)
        except (sa.exc.ArgumentError, ImportError) as err:  # unparsable URL, unknown dialect or missing driver
            raise ValueError(f"catalog URL {mask_url(url)}: {mask_secrets(err)} - check catalog.url in "
                             "tsops.yaml") from None
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)
        self.dialect = self.engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(
                f"catalog URL {mask_url(url)}: dialect {self.dialect!r} is not supported (use sqlite or postgresql)"
            )
        label_errors(self.engine, "catalog", "check catalog.url in tsops.yaml")
        if create:
            self.create()

    def create(self) -> None:
        for attempt in range(5):
            try:
                metadata.create_all(self.engine)
                return
            except sa.exc.IntegrityError:  # concurrent creators on PostgreSQL
                time.sleep(0.1 * (attempt + 1))
            except sa.exc.ProgrammingError as err:
                if "already exists" not in str(err):
                    raise
                time.sleep(0.1 * (attempt + 1))

    def close(self) -> None:
        self.engine.dispose()

    def begin(self):
        """A transaction (``with catalog.begin() as conn: ...``)."""
        return self.engine.begin()

    # ---------------------------------------------------------------- upsert helper
    def _insert(self, table: sa.Table):
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def _json_patch(self, col, new):
        if self.dialect == "postgresql":
            return col.op("||")(new)
        return sa.func.json_patch(col, new)

    def _least(self, a, b):
        if self.dialect == "postgresql":
            return sa.func.least(sa.func.coalesce(a, b), sa.func.coalesce(b, a))
        return sa.func.min(sa.func.coalesce(a, b), sa.func.coalesce(b, a))

    def _greatest(self, a, b):
        if self.dialect == "postgresql":
            return sa.func.greatest(sa.func.coalesce(a, b), sa.func.coalesce(b, a))
        return sa.func.max(sa.func.coalesce(a, b), sa.func.coalesce(b, a))

    # ---------------------------------------------------------------- datasets
    def upsert_dataset(self, name: str, doc: Mapping[str, Any], conn: Connection | None = None) -> None:
        """Create or merge a dataset document (top-level keys of ``doc`` replace the stored ones)."""
        t = now_us()
        stmt = self._insert(datasets).values(name=name, doc=dict(doc), created_at=t, updated_at=t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[datasets.c.name],
            set_={"doc": self._json_patch(datasets.c.doc, stmt.excluded.doc), "updated_at": stmt.excluded.updated_at},
        )
        self._run(stmt, conn)

    def drop_dataset_doc_entries(self, name: str, key: str, entries: Sequence[str],
                                 conn: Connection | None = None) -> int:
        """Remove ``entries`` from the mapping ``doc[key]`` of dataset ``name`` (read-modify-write under a row
        lock: a merge patch cannot delete nested keys on both dialects). Returns how many went."""
        if not entries:
            return 0
        if conn is None:
            with self.engine.begin() as c:
                return self.drop_dataset_doc_entries(name, key, entries, c)
        q = sa.select(datasets.c.doc).where(datasets.c.name == name)
        row = conn.execute(q.with_for_update() if self.dialect == "postgresql" else q).first()
        doc = (json.loads(row[0]) if isinstance(row[0], str) else dict(row[0] or {})) if row else {}
        inner = dict(doc.get(key) or {})
        gone = [e for e in entries if e in inner]
        for e in gone:
            del inner[e]
        if gone:
            doc[key] = inner
            conn.execute(sa.update(datasets).where(datasets.c.name == name).values(doc=doc, updated_at=now_us()))
        return len(gone)

    def get_dataset(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(datasets).where(datasets.c.name == name)).mappings().first()
        return dict(row) if row else None

    def list_datasets(self) -> list[dict[str, Any]]:
        q = (
            sa.select(
                datasets.c.name,
                sa.func.count(series.c.series_id).label("series"),
                sa.func.coalesce(sa.func.sum(series.c.count), 0).label("observations"),
                sa.func.min(series.c.first_ts_us).label("first_ts_us"),
                sa.func.max(series.c.last_ts_us).label("last_ts_us"),
            )
            .select_from(datasets.outerjoin(series, series.c.dataset == datasets.c.name))
            .group_by(datasets.c.name)
            .order_by(datasets.c.name)
        )
        with self.engine.connect() as c:
            out = [dict(r) for r in c.execute(q).mappings()]
        for r in out:
            r["observations"] = int(r["observations"] or 0)
        return out

    # ---------------------------------------------------------------- series
    def upsert_series(
        self,
        dataset: str,
        docs: Iterable[Mapping[str, Any]],
        conn: Connection | None = None,
        add_counts: bool = False,
    ) -> int:
        """Idempotently merge series documents.

        Each doc needs ``series_id``; optional ``first_ts_us``/``last_ts_us`` widen the stored range (min/max),
        ``count`` replaces the stored count (or is added to it when ``add_counts``: only for batch commits, which
        are themselves applied once), and every other key is merged into the JSON document.
        """
        rows = []
        t = now_us()
        docs = list(docs)
        has_count = any("count" in d for d in docs)
        for d in docs:
            d = dict(d)
            sid = d.pop("series_id")
            rows.append(
                {
                    "dataset": dataset,
                    "series_id": sid,
                    "first_ts_us": d.pop("first_ts_us", None),
                    "last_ts_us": d.pop("last_ts_us", None),
                    "count": int(d.pop("count", 0) or 0),
                    "doc": d,
                    "updated_at": t,
                }
            )
        if not rows:
            return 0
        stmt = self._insert(series)
        ex = stmt.excluded
        set_ = {
            "first_ts_us": self._least(series.c.first_ts_us, ex.first_ts_us),
            "last_ts_us": self._greatest(series.c.last_ts_us, ex.last_ts_us),
            "doc": self._json_patch(series.c.doc, ex.doc),
            "updated_at": ex.updated_at,
        }
        if add_counts:
            set_["count"] = series.c.count + ex.count
        elif has_count:
            set_["count"] = ex.count
        stmt = stmt.on_conflict_do_update(index_elements=[series.c.dataset, series.c.series_id], set_=set_)
        rows.sort(key=lambda r: r["series_id"])  # a fixed lock order avoids deadlocks between writers
        for i in range(0, len(rows), 500):
            self._run(stmt, conn, rows[i : i + 500])
        return len(rows)

    def subtract_series_counts(self, dataset: str, removed: Mapping[str, int], first_ts_floor_us: int,
                               conn: Connection | None = None) -> int:
        """Retention deleted raw rows older than ``first_ts_floor_us``: each series in ``removed`` loses that
        many rows from its count (never below 0) and its first_ts_us moves up to at least the floor."""
        rows = [{"d": dataset, "sid": sid, "n": int(n), "floor": int(first_ts_floor_us), "t": now_us()}
                for sid, n in sorted(removed.items()) if n]
        if not rows:
            return 0
        n, floor = sa.bindparam("n", type_=sa.BigInteger), sa.bindparam("floor", type_=sa.BigInteger)
        stmt = sa.update(series).where(series.c.dataset == sa.bindparam("d"),
                                       series.c.series_id == sa.bindparam("sid")).values(
            count=sa.case((series.c.count > n, series.c.count - n), else_=0),
            first_ts_us=sa.case((series.c.first_ts_us < floor, floor), else_=series.c.first_ts_us),
            updated_at=sa.bindparam("t"))
        self._run(stmt, conn, rows)
        return len(rows)

    def set_series_first_ts(self, dataset: str, first: Mapping[str, int | None],
                            conn: Connection | None = None) -> int:
        """Set each series' first_ts_us (after retention: its oldest remaining raw row). None means no raw row is
        left: count 0 and no time range."""
        t = now_us()
        where = (series.c.dataset == sa.bindparam("d")) & (series.c.series_id == sa.bindparam("sid"))
        left = [{"d": dataset, "sid": sid, "first": f, "t": t} for sid, f in sorted(first.items()) if f is not None]
        gone = [{"d": dataset, "sid": sid, "t": t} for sid, f in sorted(first.items()) if f is None]
        if left:
            self._run(sa.update(series).where(where).values(
                first_ts_us=sa.bindparam("first", type_=sa.BigInteger), updated_at=sa.bindparam("t")), conn, left)
        if gone:
            self._run(sa.update(series).where(where).values(
                count=0, first_ts_us=None, last_ts_us=None, updated_at=sa.bindparam("t")), conn, gone)
        return len(first)

    def get_series(self, dataset: str, series_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(series).where(series.c.dataset == dataset, series.c.series_id == series_id)
            ).mappings().first()
        return _series_doc(row) if row else None

    def list_series(self, dataset: str | None = None, like: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(series).order_by(series.c.dataset, series.c.series_id)
        if dataset:
            q = q.where(series.c.dataset == dataset)
        if like:
            q = q.where(series.c.series_id.like(like.replace("*", "%")))
        with self.engine.connect() as c:
            return [_series_doc(r) for r in c.execute(q).mappings()]

    def get_profile(self, dataset: str, series_id: str) -> SeriesProfile | None:
        """The series' profile written by the quality stage (``tsops process``), or None before processing."""
        doc = self.get_series(dataset, series_id)
        prof = (doc or {}).get(PROFILE_KEY)
        return SeriesProfile.from_dict(prof) if _is_profile(prof) else None

    def get_profiles(self, dataset: str) -> dict[str, SeriesProfile]:
        """Every processed series' profile of ``dataset`` by series id (series not yet processed are absent)."""
        return {d["series_id"]: SeriesProfile.from_dict(d[PROFILE_KEY])
                for d in self.list_series(dataset) if _is_profile(d.get(PROFILE_KEY))}

    # ---------------------------------------------------------------- positions
    def get_positions(self, dataset: str, source: str) -> dict[str, Any]:
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(positions.c.part, positions.c.position).where(
                    positions.c.dataset == dataset, positions.c.source == source
                )
            ).all()
        return {r.part: r.position for r in rows}

    def set_positions(
        self, dataset: str, source: str, parts: Mapping[str, Any], conn: Connection | None = None
    ) -> None:
        if not parts:
            return
        t = now_us()
        stmt = self._insert(positions)
        stmt = stmt.on_conflict_do_update(
            index_elements=[positions.c.dataset, positions.c.source, positions.c.part],
            set_={"position": stmt.excluded.position, "updated_at": stmt.excluded.updated_at},
        )
        rows = [
            {"dataset": dataset, "source": source, "part": k, "position": v, "updated_at": t}
            for k, v in sorted(parts.items())
        ]
        self._run(stmt, conn, rows)

    # ---------------------------------------------------------------- batches (exactly-once)
    def begin_batch(
        self, dataset: str, source: str, key: str, files: Sequence[str], parts: Sequence[str] = ()
    ) -> None:
        """Record the intent to write ``files`` for batch ``key`` (before writing them).

        ``parts`` names the source partitions the batch reads, so a consumer that takes over a partition
        rolls back only that partition's uncommitted batches.
        """
        stmt = self._insert(batches).values(
            dataset=dataset, batch_key=key, source=source, status="pending", files=list(files),
            stats={"parts": list(parts)}, created_at=now_us(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[batches.c.dataset, batches.c.batch_key],
            set_={"files": stmt.excluded.files, "stats": stmt.excluded.stats, "created_at": stmt.excluded.created_at},
            where=batches.c.status == "pending",
        )
        self._run(stmt)

    def commit_batch(
        self,
        dataset: str,
        source: str,
        key: str,
        *,
        positions_: Mapping[str, Any],
        series_docs: Sequence[Mapping[str, Any]],
        stats: Mapping[str, Any],
    ) -> bool:
        """Atomically mark the batch committed, store positions and add series statistics.

        Returns False (and changes nothing) when the batch was already committed.
        """
        with self.engine.begin() as conn:
            res = conn.execute(
                sa.update(batches)
                .where(
                    batches.c.dataset == dataset,
                    batches.c.batch_key == key,
                    batches.c.status == "pending",
                )
                .values(status="committed", committed_at=now_us(), stats=dict(stats))
            )
            if res.rowcount == 0:
                return False
            self.set_positions(dataset, source, positions_, conn)
            self.upsert_series(dataset, series_docs, conn, add_counts=True)
        return True

    def pending_batches(self, dataset: str, source: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(batches).where(batches.c.dataset == dataset, batches.c.status == "pending")
        if source is not None:
            q = q.where(batches.c.source == source)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def drop_batch(self, dataset: str, key: str) -> None:
        self._run(
            sa.delete(batches).where(
                batches.c.dataset == dataset, batches.c.batch_key == key, batches.c.status == "pending"
            )
        )

    def batch_totals(self, dataset: str) -> dict[str, int]:
        """Sum of accepted / quarantined / consumed over the committed batches of a dataset."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(batches.c.stats).where(batches.c.dataset == dataset, batches.c.status == "committed")
            ).all()
        out = {"batches": len(rows), "accepted": 0, "quarantined": 0, "consumed": 0, "observations": 0}
        for (s,) in rows:
            for k in ("accepted", "quarantined", "consumed", "observations"):
                out[k] += int(s.get(k, 0))
        return out

    # ---------------------------------------------------------------- runs and audit
    def start_run(self, kind: str, dataset: str | None = None, stats: Mapping[str, Any] | None = None) -> int:
        """Record a running run; its stats carry ``pid`` and ``host`` so that a dead run can be recognised."""
        doc = {**dict(stats or {}), "pid": os.getpid(), "host": socket.gethostname()}
        with self.engine.begin() as c:
            res = c.execute(
                sa.insert(runs).values(kind=kind, dataset=dataset, status="running", started_at=now_us(), stats=doc)
            )
            return int(res.inserted_primary_key[0])

    def fail_stale_runs(self, kind: str | None = None, dataset: str | None = None) -> list[int]:
        """Mark failed the runs still "running" whose process is gone; returns their ids.

        Only runs recorded on this host can be checked (their ``pid`` is not alive, or is now another process
        started after the run). Runs of other hosts are left to those hosts.
        """
        q = sa.select(runs.c.id, runs.c.kind, runs.c.started_at, runs.c.stats).where(runs.c.status == "running")
        if kind:
            q = q.where(runs.c.kind == kind)
        if dataset:
            q = q.where(runs.c.dataset == dataset)
        host = socket.gethostname()
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        stale = []
        for r in rows:
            st = r.stats if isinstance(r.stats, dict) else json.loads(r.stats or "{}")
            pid = st.get("pid")
            if st.get("host") != host or not isinstance(pid, int) or _process_alive(pid, r.started_at):
                continue
            err = f"stale: process {pid} on {host} ended without finishing the run (killed?)"
            self._run(sa.update(runs).where(runs.c.id == r.id, runs.c.status == "running")
                      .values(status="failed", finished_at=now_us(), error=err))
            log.warning("run %s (%s) marked failed: %s", r.id, r.kind, err)
            stale.append(int(r.id))
        return stale

    def finish_run(
        self, run_id: int, status: str = "success", stats: Mapping[str, Any] | None = None, error: str | None = None
    ) -> None:
        values: dict[str, Any] = {"status": status, "finished_at": now_us(), "error": error}
        if stats is not None:
            values["stats"] = dict(stats)
        self._run(sa.update(runs).where(runs.c.id == run_id).values(**values))

    def list_runs(self, dataset: str | None = None, kind: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        q = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        if dataset:
            q = q.where(runs.c.dataset == dataset)
        if kind:
            q = q.where(runs.c.kind == kind)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
        return dict(row) if row else None

    def add_audit(self, action: str, dataset: str | None, detail: Mapping[str, Any]) -> None:
        self._run(sa.insert(audit).values(at=now_us(), action=action, dataset=dataset, detail=dict(detail)))

    def list_audit(self, action: str | None = None, dataset: str | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
        """Audit entries oldest first (with ``limit``: the most recent ``limit`` entries, oldest first)."""
        q = sa.select(audit).order_by(audit.c.id.desc() if limit else audit.c.id)
        if action:
            q = q.where(audit.c.action == action)
        if dataset:
            q = q.where(audit.c.dataset == dataset)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(q).mappings()]
        return rows[::-1] if limit else rows

    # ---------------------------------------------------------------- internals
    def _run(self, stmt, conn: Connection | None = None, params=None) -> None:
        if conn is not None:
            conn.execute(stmt, params) if params is not None else conn.execute(stmt)
            return
        for attempt in range(8):
            try:
                with self.engine.begin() as c:
                    c.execute(stmt, params) if params is not None else c.execute(stmt)
                return
            except sa.exc.OperationalError as err:  # e.g. PostgreSQL serialization / deadlock: retry
                if attempt == 7 or not _retryable(err):
                    raise
                time.sleep(0.05 * 2**attempt)


def _is_profile(doc: Any) -> bool:
    """A stored profile (catalogs from before the profile kept the analysis statistics under that key)."""
    return isinstance(doc, dict) and "series_id" in doc


def _process_alive(pid: int, started_at_us: int) -> bool:
    """Whether ``pid`` is a live process that already existed when the run started (not a reused pid)."""
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return p.create_time() <= started_at_us / 1e6 + 1.0
    except psutil.AccessDenied:  # another user's live process
        return True
    except (psutil.NoSuchProcess, ProcessLookupError):
        return False


def _retryable(err: Exception) -> bool:
    s = str(err).lower()
    return any(w in s for w in ("deadlock", "could not serialize", "database is locked", "busy"))


def _series_doc(row: Mapping[str, Any]) -> dict[str, Any]:
    doc = dict(row["doc"] or {})
    if isinstance(doc, str):  # some drivers return JSON text
        doc = json.loads(doc)
    doc.update(
        {
            "dataset": row["dataset"],
            "series_id": row["series_id"],
            "first_ts": us_to_iso(row["first_ts_us"]),
            "last_ts": us_to_iso(row["last_ts_us"]),
            "count": int(row["count"]),
        }
    )
    return doc


def _sqlite_pragmas(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # pragma: no cover - exercised through every sqlite use
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):  # pragma: no cover
        conn.exec_driver_sql("BEGIN IMMEDIATE")
