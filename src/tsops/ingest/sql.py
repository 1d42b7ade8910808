"""Poll a SQL table or view like Kafka Connect's JDBC source connector (``timestamp+incrementing`` mode).

Each poll reads the rows after the watermark, ordered by (timestamp, id), at most ``batch_size`` of them::

    SELECT * FROM t
    WHERE ts <= :now_minus_delay AND ((ts > :ts) OR (ts = :ts AND id > :id))
    ORDER BY ts, id LIMIT :batch_size

The watermark (last timestamp and last id) is the source position ``{"<table>": {"ts": ..., "id": ...}}``;
the ingestion runner stores it in the catalog atomically with the data, so a re-opened source resumes exactly
after the last committed batch. ``ts`` is the ISO 8601 text of the database value (naive for DATETIME /
``timestamp without time zone``, with offset for ``timestamp with time zone``) or the integer for epoch
columns.

Without an id column (``timestamp`` mode) a batch never ends inside a group of equal timestamps: when a poll
is full, the rows sharing its last timestamp are left for the next poll (which then starts at ``ts > :ts``
after the complete group), and a poll that is one single timestamp group reads that group whole, however
large. So rows sharing a timestamp are neither lost nor repeated across polls.

The upper bound ``ts <= now - delay_s`` (Connect's ``timestamp.delay.interval.ms``) leaves rows alone whose
transaction may still be open. As with Connect, a row committed later with a timestamp (and id) below the
watermark is never read: choose ``delay_s`` larger than the longest writing transaction.

A table whose newest row is below the committed watermark was truncated or recreated: a gap, checked when
polling starts (:meth:`SqlPollingSource.check_gap`; fails the run unless ``on_gap: skip``). Connection and
login failures raise :class:`~tsops.ingest.base.SourceUnavailable` naming the URL without its password.
With an integer id column, each record's source position (``_pos`` in the lake) is its id.

Timestamp columns may be DATETIME / ``timestamp`` (naive: interpreted in ``timezone``, UTC by default),
``timestamp with time zone`` / MySQL TIMESTAMP (the session runs in UTC), or integer epochs (``epoch_unit``,
ms by default). Rows with a NULL timestamp are never read. Records come out as Arrow tables typed from the
reflected column types: integers int64, FLOAT/REAL float32, DOUBLE float64, DECIMAL/NUMERIC float64,
DATETIME/TIMESTAMP timestamp[us, UTC], DATE date32, text string, binary binary, anything else its text.
Identifiers are quoted by SQLAlchemy per dialect (upper-case view names, columns with spaces); on
PostgreSQL a name created unquoted (folded to lower case) is found too. The delay bound uses this machine's
clock. SQLite has no date type: DATETIME columns must hold SQLAlchemy's text form
``YYYY-MM-DD HH:MM:SS.ffffff`` (as SQLAlchemy and pandas ``to_sql`` write it), since the watermark is compared
as text there; use an integer epoch column otherwise.

:class:`SqlToKafka` publishes the rows as Kafka Connect JSON envelopes instead of writing the lake.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from tsops.config import SqlSourceConfig
from tsops.ingest.base import Gap, Source, SourceBatch, SourceUnavailable, safe_token
from tsops.ingest.connect import EnvelopeEncoder

log = logging.getLogger(__name__)

_EPOCH_PER_S = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
TS_UTC = pa.timestamp("us", tz="UTC")




def make_engine(url: str) -> sa.Engine:
    """An engine whose sessions run in UTC (MySQL TIMESTAMP / PostgreSQL timestamptz come back as UTC)."""
    u = sa.engine.make_url(url)
    args: dict[str, Any] = {}
    if u.get_backend_name() in ("mysql", "mariadb") and u.get_driver_name() == "pymysql":
        args["init_command"] = "SET time_zone = '+00:00'"
    elif u.get_backend_name() == "postgresql" and u.get_driver_name() in ("psycopg", "psycopg2"):
        args["options"] = "-c timezone=UTC"
    return sa.create_engine(url, connect_args=args, pool_pre_ping=True)


def reflect_table(engine: sa.Engine, name: str) -> sa.Table:
    """Reflect a table or view; ``schema.table`` and PostgreSQL's folding of unquoted names are handled."""
    candidates: list[tuple[str | None, str]] = [(None, name)]
    if engine.dialect.name == "postgresql" and name != name.lower():
        candidates.append((None, name.lower()))
    if "." in name:
        schema, _, tbl = name.partition(".")
        candidates += [(schema, tbl)]
        if engine.dialect.name == "postgresql":
            candidates.append((schema.lower(), tbl.lower()))
    last: Exception | None = None
    for schema, tbl in candidates:
        try:
            return sa.Table(tbl, sa.MetaData(), schema=schema, autoload_with=engine)
        except sa.exc.NoSuchTableError as err:
            last = err
    raise LookupError(
        f"table or view {name!r} does not exist at {engine.url.render_as_string(hide_password=True)} "
        f"(tried {[f'{s}.{t}' if s else t for s, t in candidates]}); check `table:` in the source config"
    ) from last


def _arrow_type(t: sa.types.TypeEngine, dialect: str) -> pa.DataType:
    name = type(t).__name__.upper()
    if isinstance(t, sa.Boolean):
        return pa.bool_()
    if isinstance(t, sa.Integer):
        return pa.int64()
    if isinstance(t, sa.Float):
        single = dialect != "sqlite" and (
            (name == "REAL" and dialect == "postgresql")
            or (name == "FLOAT" and dialect in ("mysql", "mariadb") and (t.precision or 0) <= 24)
        )
        return pa.float32() if single else pa.float64()
    if isinstance(t, sa.Numeric):
        return pa.float64()
    if isinstance(t, sa.DateTime):
        return TS_UTC
    if isinstance(t, sa.Date):
        return pa.date32()
    if isinstance(t, sa.Time):
        return pa.time64("us")
    if isinstance(t, sa.LargeBinary | sa.types._Binary):
        return pa.binary()
    return pa.string()


class SqlPollingSource(Source):
    """Incremental reads of a table/view by timestamp (+ optional strictly increasing id); see module doc.

    ``timezone`` is the zone of naive DATETIME values; ``now`` (a callable returning an aware datetime)
    replaces the clock for the delay bound; ``follow=True`` keeps polling every ``poll_interval_s`` instead
    of stopping when caught up.
    """

    def __init__(
        self,
        cfg: SqlSourceConfig,
        name: str | None = None,
        *,
        engine: sa.Engine | None = None,
        timezone: str = "UTC",
        epoch_unit: str = "ms",
        now: Callable[[], datetime] | None = None,
        follow: bool = False,
        poll_interval_s: float = 5.0,
    ):
        if epoch_unit not in _EPOCH_PER_S:
            raise ValueError(f"epoch_unit must be one of {sorted(_EPOCH_PER_S)} (got {epoch_unit!r})")
        self.cfg = cfg
        self.name = name or f"sql:{cfg.table}"
        self._own_engine = engine is None
        self._engine = engine
        self.tz = ZoneInfo(timezone)
        self.epoch_unit = epoch_unit
        self._now = now or (lambda: datetime.now(UTC))
        self.follow = follow
        self.poll_interval_s = poll_interval_s
        self._table: sa.Table | None = None
        self._wm: tuple[Any, Any] | None = None  # (ts, id) in database-native form
        self.on_gap = cfg.on_gap
        self._schema: pa.Schema | None = None

    # ------------------------------------------------------------------ setup
    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = make_engine(self.cfg.url)
        return self._engine

    @property
    def table(self) -> sa.Table:
        if self._table is None:
            self._table = reflect_table(self.engine, self.cfg.table)
            cols = self._table.c
            for c in (self.cfg.timestamp_column, self.cfg.id_column):
                if c is not None and c not in cols:
                    raise KeyError(
                        f"column {c!r} not found in {self.cfg.table!r} (columns: {list(cols.keys())}); "
                        "check timestamp_column / id_column in the source config"
                    )
            tt = cols[self.cfg.timestamp_column].type
            if not isinstance(tt, sa.DateTime | sa.Integer):
                raise TypeError(
                    f"timestamp column {self.cfg.timestamp_column!r} of {self.cfg.table!r} has type {tt}; "
                    "expected DATETIME/TIMESTAMP or an integer epoch"
                )
        return self._table

    @property
    def ts_col(self) -> sa.Column:
        return self.table.c[self.cfg.timestamp_column]

    @property
    def id_col(self) -> sa.Column | None:
        return self.table.c[self.cfg.id_column] if self.cfg.id_column else None

    @property
    def _epoch(self) -> bool:
        return isinstance(self.ts_col.type, sa.Integer)

    def _naive_zone(self, col: sa.Column) -> ZoneInfo:
        """The zone naive values of ``col`` are in: MySQL TIMESTAMP follows the (UTC) session."""
        if self.engine.dialect.name in ("mysql", "mariadb") and type(col.type).__name__ == "TIMESTAMP":
            return ZoneInfo("UTC")
        return self.tz

    @property
    def arrow_schema(self) -> pa.Schema:
        if self._schema is None:
            d = self.engine.dialect.name
            self._schema = pa.schema(
                [pa.field(c.name, _arrow_type(c.type, d), nullable=bool(c.nullable)) for c in self.table.c]
            )
        return self._schema

    # ------------------------------------------------------------------ positions
    @property
    def position_key(self) -> str:
        return self.cfg.table

    def open(self, positions: Mapping[str, Any]) -> None:
        p = positions.get(self.position_key)
        self._wm = None if p is None else self._decode(p)

    def _decode(self, p: Any) -> tuple[Any, Any]:
        if not isinstance(p, Mapping) or "ts" not in p:
            raise ValueError(f"stored position of {self.cfg.table!r} is {p!r}; expected {{'ts': ..., 'id': ...}}")
        ts, id_ = p["ts"], p.get("id")
        if self._epoch:
            return int(ts), id_
        v = datetime.fromisoformat(str(ts))
        tz_col = bool(getattr(self.ts_col.type, "timezone", False))
        if tz_col and v.tzinfo is None:
            v = v.replace(tzinfo=self._naive_zone(self.ts_col))
        elif not tz_col and v.tzinfo is not None:
            v = v.astimezone(self._naive_zone(self.ts_col)).replace(tzinfo=None)
        return v, id_

    @staticmethod
    def _encode(wm: tuple[Any, Any]) -> dict[str, Any]:
        ts, id_ = wm
        if isinstance(ts, datetime):
            ts = ts.isoformat()
        elif hasattr(ts, "item"):
            ts = ts.item()
        if hasattr(id_, "item"):
            id_ = id_.item()
        return {"ts": ts, "id": id_}

    @staticmethod
    def _token(wm: tuple[Any, Any] | None) -> str:
        if wm is None:
            return "start"
        ts, id_ = wm
        if isinstance(ts, datetime):
            if ts.tzinfo is not None:
                ts = ts.astimezone(UTC).replace(tzinfo=None)
                tok = ts.strftime("%Y%m%dT%H%M%S%fZ")
            else:
                tok = ts.strftime("%Y%m%dT%H%M%S%f")
        else:
            tok = str(ts)
        if id_ is not None:
            tok += "_" + str(id_)
        return safe_token(tok)

    def batch_key(self, start: tuple[Any, Any] | None, end: tuple[Any, Any]) -> str:
        return f"sql-{safe_token(self.cfg.table)}-{self._token(start)}-{self._token(end)}"

    # ------------------------------------------------------------------ polling
    def upper_bound(self) -> Any:
        """Newest timestamp a poll may read now: now - delay, in the column's own representation."""
        t = self._now() - timedelta(seconds=self.cfg.delay_s)
        if self._epoch:
            return int(t.timestamp() * _EPOCH_PER_S[self.epoch_unit])
        if getattr(self.ts_col.type, "timezone", False):
            return t.astimezone(UTC)
        return t.astimezone(self._naive_zone(self.ts_col)).replace(tzinfo=None)

    def poll(self) -> list[sa.Row]:
        """The next batch of rows after the watermark (empty when caught up); does not move the watermark."""
        ts, idc = self.ts_col, self.id_col
        n = self.cfg.batch_size
        conds = [ts.isnot(None), ts <= self.upper_bound()]
        if self._wm is not None:
            wts, wid = self._wm
            if idc is not None and wid is not None:
                conds.append(sa.or_(ts > wts, sa.and_(ts == wts, idc > wid)))
            else:
                conds.append(ts > wts)
        order = [ts] if idc is None else [ts, idc]
        q = sa.select(self.table).where(sa.and_(*conds)).order_by(*order).limit(n)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            if idc is not None or len(rows) < n:
                return rows
            t_i = self.table.columns.keys().index(ts.name)
            last = rows[-1][t_i]
            cut = len(rows)
            while cut > 0 and rows[cut - 1][t_i] == last:
                cut -= 1
            if cut > 0:
                return rows[:cut]  # complete timestamp groups only; the cut group comes next poll
            # the whole poll is one timestamp group: read all of it
            return conn.execute(sa.select(self.table).where(ts == last)).all()

    def to_arrow(self, rows: list[sa.Row]) -> pa.Table:
        """Rows -> Arrow table with the reflected types (decimals as float64, timestamps UTC)."""
        schema = self.arrow_schema
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
        arrays = []
        for f, c, vals in zip(schema, self.table.c, cols, strict=True):
            arrays.append(self._column(f, c, list(vals)))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _column(self, f: pa.Field, c: sa.Column, vals: list) -> pa.Array:
        t = f.type
        if pa.types.is_timestamp(t):
            if any(isinstance(v, datetime) and v.tzinfo is not None for v in vals):
                return pa.array(vals, TS_UTC)
            arr = pa.array(vals, pa.timestamp("us"))
            zone = self._naive_zone(c).key
            if zone == "UTC":
                return arr.cast(TS_UTC)
            return pc.assume_timezone(arr, zone, ambiguous="earliest", nonexistent="earliest").cast(TS_UTC)
        if pa.types.is_floating(t):
            try:
                return pa.array(vals, t)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # Decimal values
                return pa.array([None if v is None else float(v) for v in vals], t)
        if pa.types.is_string(t):
            return pa.array(
                [None if v is None else v if isinstance(v, str) else _text(v) for v in vals], pa.string()
            )
        try:
            return pa.array(vals, t)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as err:
            raise TypeError(f"column {c.name!r} of {self.cfg.table!r}: cannot convert to {t}: {err}") from err

    def check_gap(self) -> None:
        """A table whose newest row is below the committed watermark was truncated or recreated: a gap.

        (Rows below the watermark appearing while newer ones exist are late data, left to ``delay_s``.)
        """
        if self._wm is None:
            return
        ts, idc = self.ts_col, self.id_col
        wts, wid = self._wm
        order = [ts.desc()] if idc is None else [ts.desc(), idc.desc()]
        cols = [ts] if idc is None else [ts, idc]
        with self.engine.connect() as conn:
            top = conn.execute(sa.select(*cols).where(ts.isnot(None)).order_by(*order).limit(1)).first()
            if top is not None:
                newest = (top[0], top[1] if idc is not None else None)
                behind = newest[0] < wts or (newest[0] == wts and idc is not None and wid is not None
                                             and newest[1] < wid)
                if not behind:
                    return
            below = [ts.isnot(None), ts <= wts]
            n = conn.execute(sa.select(sa.func.count()).select_from(self.table).where(sa.and_(*below))).scalar()
        newest_txt = "the table is empty" if top is None else f"its newest row is {self._encode(newest)}"
        self.gap(Gap(self.position_key, self._encode(self._wm), None if top is None else self._encode(newest),
                     f"{newest_txt}, below the committed watermark {self._encode(self._wm)}: the table was "
                     f"truncated or recreated ({n:,} rows at or below the watermark will not be read)",
                     skipped=None))

    def batches(self) -> Iterator[SourceBatch]:
        try:
            yield from self._batches()
        except sa.exc.DBAPIError as err:
            if not isinstance(err, sa.exc.OperationalError | sa.exc.InterfaceError) and not err.connection_invalidated:
                raise
            url = sa.engine.make_url(self.cfg.url).render_as_string(hide_password=True)
            orig = str(getattr(err, "orig", None) or err).strip().splitlines()
            raise SourceUnavailable(f"sql: cannot query {self.cfg.table!r} at {url}: "
                                    f"{orig[0] if orig else type(err).__name__}") from None

    def _batches(self) -> Iterator[SourceBatch]:
        self.check_gap()
        while True:
            rows = self.poll()
            if not rows:
                if not self.follow:
                    return
                time.sleep(self.poll_interval_s)
                continue
            keys = self.table.columns.keys()
            t_i = keys.index(self.ts_col.name)
            i_i = keys.index(self.id_col.name) if self.id_col is not None else None
            last = rows[-1]
            end = (last[t_i], last[i_i] if i_i is not None else None)
            start = self._wm
            ids = None  # an integer id is each record's source position (else its row number in the batch)
            if i_i is not None and isinstance(self.id_col.type, sa.Integer):
                ids = np.fromiter((-1 if r[i_i] is None else int(r[i_i]) for r in rows), np.int64, len(rows))
            batch = SourceBatch(
                key=self.batch_key(start, end),
                records=self.to_arrow(rows),
                pos=ids,
                positions={self.position_key: self._encode(end)},
                src=f"sql:{self.cfg.table}",
            )
            self._wm = end
            yield batch

    def close(self) -> None:
        if self._own_engine and self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _text(v: Any) -> str:
    if isinstance(v, dict | list):
        return json.dumps(v, default=str, ensure_ascii=False)
    if isinstance(v, bytes | bytearray):
        return v.decode("utf-8", errors="replace")
    return str(v)


class KafkaDeliveryError(RuntimeError):
    """Some envelopes of a batch were not acknowledged by Kafka; the watermark was not advanced."""


class SqlToKafka:
    """Poll a table/view and publish every row to Kafka as a Connect JSON envelope (``name`` = the table).

    Delivery semantics: **at-least-once**. The producer is idempotent (``enable.idempotence=true``,
    ``acks=all``), so retries inside one run never duplicate or reorder messages of a partition. The
    watermark is handed to ``on_commit`` (which stores it, e.g. in the catalog) only after ``flush()``
    returned with every message of the batch acknowledged; a failed delivery raises
    :class:`KafkaDeliveryError` and leaves the watermark where it was. After a crash between the flush and
    ``on_commit``, the batch is published again on restart (duplicates, never losses). Consumers that need
    exactly-once deduplicate on the (table, timestamp, id) carried in each payload; the message key is set
    from ``key_columns`` when given (values joined with ``|``), else it is null as in Connect's default.

    Exactly-once (a transactional producer writing the watermark to a state topic in the same transaction)
    is not offered: librdkafka's mock cluster accepts the transaction calls but shows aborted messages to
    ``read_committed`` consumers, so it could not be tested here.
    """

    def __init__(
        self,
        cfg: SqlSourceConfig,
        producer_conf: Mapping[str, Any] | None = None,
        topic: str | None = None,
        *,
        source: SqlPollingSource | None = None,
        key_columns: list[str] | None = None,
        flush_timeout_s: float = 30.0,
    ):
        self.cfg = cfg
        self.topic = topic or cfg.kafka_topic
        if not self.topic:
            raise ValueError(f"no Kafka topic for table {cfg.table!r}: set kafka_topic in the source config")
        conf = {"enable.idempotence": True, "acks": "all", "linger.ms": 20}
        if cfg.kafka_bootstrap_servers:
            conf["bootstrap.servers"] = cfg.kafka_bootstrap_servers
        conf.update(producer_conf or {})
        if "bootstrap.servers" not in conf:
            raise ValueError("no Kafka bootstrap servers: set kafka_bootstrap_servers or pass producer_conf")
        self.producer_conf = conf
        self.source = source or SqlPollingSource(cfg)
        self.key_columns = key_columns
        self.flush_timeout_s = flush_timeout_s
        self.published = 0

    def run(
        self, positions: Mapping[str, Any], on_commit: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Publish everything after ``positions``; returns the new positions (also given to ``on_commit``)."""
        from confluent_kafka import Producer

        current = dict(positions)
        producer = Producer(self.producer_conf)
        encoder: EnvelopeEncoder | None = None
        try:
            self.source.open(current)
            for batch in self.source.batches():
                if encoder is None or encoder.schema != batch.records.schema:
                    encoder = EnvelopeEncoder(batch.records.schema, self.cfg.table)
                self._publish(producer, encoder, batch.records, batch.key)
                current.update(batch.positions)
                if on_commit is not None:
                    on_commit(dict(current))
                self.source.ack(batch)
        finally:
            self.source.close()
        return current

    def _publish(self, producer: Any, encoder: EnvelopeEncoder, records: pa.Table, key: str) -> None:
        errors: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        keys: list[bytes | None]
        if self.key_columns:
            parts = [records.column(c).to_pylist() for c in self.key_columns]
            keys = ["|".join(str(v) for v in vs).encode("utf-8") for vs in zip(*parts, strict=True)]
        else:
            keys = [None] * records.num_rows
        for msg, k in zip(encoder.encode(records), keys, strict=True):
            while True:
                try:
                    producer.produce(self.topic, value=msg, key=k, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.1)  # local queue full: serve delivery reports, then retry
            producer.poll(0)
        left = producer.flush(self.flush_timeout_s)
        if left or errors:
            raise KafkaDeliveryError(
                f"batch {key}: {left} message(s) still in flight after {self.flush_timeout_s}s and "
                f"{len(errors)} delivery error(s) (first: {errors[0] if errors else 'none'}) on topic "
                f"{self.topic!r}; the watermark was not advanced, re-run to publish the batch again"
            )
        self.published += records.num_rows
        log.info("published %d rows of %s to %s (%s)", records.num_rows, self.cfg.table, self.topic, key)


def sql_to_kafka(
    cfg: SqlSourceConfig,
    positions: Mapping[str, Any],
    producer_conf: Mapping[str, Any] | None = None,
    topic: str | None = None,
    *,
    on_commit: Callable[[dict[str, Any]], None] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Publish the rows after ``positions`` to Kafka (at-least-once, see :class:`SqlToKafka`)."""
    return SqlToKafka(cfg, producer_conf, topic, **kwargs).run(positions, on_commit)
