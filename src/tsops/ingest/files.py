"""CSV, Parquet and JSON-Lines files as an ingestion source, with presets for the real data sets.

Files matching the configured globs are read in sorted order, in bounded-memory chunks of ``batch_rows``
records, one :class:`~tsops.ingest.base.SourceBatch` per chunk. The position of a file is
``{"<relative path>": {"sha": <sha256 of the content read>, "bytes": <its size>, "rows": <rows done>,
"done": bool}}``. On the next run a file

* with the same content hash and ``done`` is skipped;
* with the same hash but not done continues after ``rows``;
* that grew (its first ``bytes`` still hash to ``sha`` and ended with a newline) continues after ``rows``
  (append-only logs);
* whose committed part changed otherwise (it shrank, was replaced, or a file not read to the end
  disappeared) is a gap (:meth:`~tsops.ingest.base.Source.gap`): the run fails before reading anything,
  unless the source says ``on_gap: skip``; then the file is re-ingested from the start under its new hash.

``rows`` counts *physical lines after the header* for CSV (including lines that were bad or skipped) and
lines for JSON Lines; for Parquet it counts rows. A batch's records carry the 1-based line number (CSV,
JSONL; the header is line 1) or the 0-based row number (Parquet) as their source position. A file is read
up to the size it had when it was hashed, so a file being appended to is read consistently.

CSV is split into records by this module (a record continues over line breaks inside double quotes) and
each chunk is parsed by :func:`pyarrow.csv.read_csv`, which gives exact line numbers. Quoting is strict
(see :func:`_group`): text after a closing quote, a bare carriage return, or a quote that is never closed
(it would swallow the rest of the file into one field) rejects that one line, and the lines after it are
read normally. A line with the
wrong number of fields, or bytes that cannot be decoded in the configured ``encoding``, becomes a
:class:`~tsops.ingest.base.BadRecord` with the raw line and a reason naming the file and line; a cell a
preset cannot convert (e.g. text in a numeric column) makes its row bad likewise. Blank lines are skipped.
Without a preset every CSV column is read as text (no type guessing that could differ between chunks);
the dataset's :class:`~tsops.datamodel.SeriesSpec` turns timestamps and values into numbers.
Columns without a header name are called ``unnamed_<i>``.

JSON Lines: with ``envelope: true`` each line is a Kafka Connect envelope parsed by
:func:`tsops.ingest.envelope.parse_envelopes`; otherwise each line is a plain JSON object
(:func:`tsops.ingest.envelope.parse_json_records`).

Presets (``preset:`` in the config) read the original files of the real data sets unchanged:

``air_quality_uci``
    UCI Air Quality (``AirQualityUCI.csv``): ``;`` separated, decimal comma, ``Date`` (dd/mm/yyyy) +
    ``Time`` (``18.00.00``) joined into ``ts``. The times are local wall-clock times of an Italian city, but
    the file has no daylight-saving gap or repeat (9,357 consecutive hours), so tsops stores them **as UTC
    labels** (``ts`` = the wall-clock time read as UTC). Reading them as Europe/Rome would invent a missing
    hour each March and a duplicate each October. ``-200`` (also ``-200,0``) becomes null, the two empty
    trailing columns are dropped, the empty ``;;;;`` lines at the end are skipped, and a constant key
    column ``site = "uci_air"`` is added.
``beijing_multisite``
    UCI Beijing Multi-Site Air Quality (``PRSA_Data_<station>_*.csv(.gz)``): ``year, month, day, hour``
    are Asia/Shanghai local time (UTC+8, no DST) and become ``ts`` in UTC; ``NA`` is null; key ``station``;
    values PM2.5 PM10 SO2 NO2 CO O3 TEMP PRES DEWP RAIN WSPM; ``wd`` (wind direction) is kept as attribute.
``sales_weekly``
    UCI Sales Transactions Weekly: one row per product with ``W0..W51`` is melted into rows
    ``Product_Code, week, ts, sales``. The data set has no dates; week ``k`` is anchored at the Monday
    ``2015-01-05 + 7k days`` (UTC). ``MIN``, ``MAX`` and ``Normalized *`` are ignored. A chunk holds
    ``batch_rows // 52`` products (at least one), so about ``batch_rows`` output rows.

:func:`preset_series_spec` gives each preset's recommended :class:`~tsops.datamodel.SeriesSpec`.
"""

from __future__ import annotations

import codecs
import collections
import functools
import gzip
import hashlib
import io
import itertools
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from tsops.config import FileSourceConfig
from tsops.datamodel import SeriesSpec
from tsops.ingest.base import BadRecord, Gap, Source, SourceBatch, safe_token

log = logging.getLogger(__name__)

TS_UTC = pa.timestamp("us", tz="UTC")
_HASH_BLOCK = 1 << 20


# ------------------------------------------------------------------------------------------------ presets
AIR_VALUES = ["CO(GT)", "PT08.S1(CO)", "NMHC(GT)", "C6H6(GT)", "PT08.S2(NMHC)", "NOx(GT)", "PT08.S3(NOx)",
              "NO2(GT)", "PT08.S4(NO2)", "PT08.S5(O3)", "T", "RH", "AH"]
BEIJING_VALUES = ["PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP", "PRES", "DEWP", "RAIN", "WSPM"]
SALES_WEEKS = 52
SALES_ANCHOR = np.datetime64("2015-01-05", "D")  # a Monday: week 0


@dataclass(frozen=True)
class _Preset:
    name: str
    delimiter: str
    spec: SeriesSpec
    #: column -> "float" | "int"; converted with the preset's decimal mark, failures make the row bad
    numeric: dict[str, str] = field(default_factory=dict)
    decimal: str = "."
    null_values: tuple[str, ...] = ("",)
    #: numbers meaning "missing" (become null after conversion)
    missing: tuple[float, ...] = ()
    #: records that carry no data and are skipped (counted as consumed), e.g. ';;;;' padding lines
    skip_if_null: str | None = None
    #: input records per chunk = batch_rows // divisor (a record becomes `divisor` output rows)
    divisor: int = 1
    finish: Callable[[pa.Table, np.ndarray], tuple[pa.Table, np.ndarray]] | None = None


def _air_finish(t: pa.Table, pos: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    text = pc.binary_join_element_wise(t.column("Date"), t.column("Time"), " ")
    ts = pc.strptime(text, format="%d/%m/%Y %H.%M.%S", unit="us", error_is_null=True).cast(TS_UTC)
    cols = {"ts": ts, "site": pa.array(["uci_air"] * t.num_rows, pa.string())}
    cols.update({c: t.column(c) for c in AIR_VALUES})
    cols.update({"Date": t.column("Date"), "Time": t.column("Time")})
    return pa.table(cols), pos


def _beijing_finish(t: pa.Table, pos: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    parts = pd.DataFrame({k: t.column(k).to_numpy(zero_copy_only=False) for k in ("year", "month", "day", "hour")})
    local = pd.to_datetime(parts, errors="coerce")
    utc = local.dt.tz_localize("Asia/Shanghai", ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    ts = pa.array(utc, TS_UTC)
    cols = {"ts": ts, "station": t.column("station")}
    cols.update({c: t.column(c) for c in BEIJING_VALUES})
    cols.update({c: t.column(c) for c in ("wd", "No", "year", "month", "day", "hour")})
    return pa.table(cols), pos


def _sales_finish(t: pa.Table, pos: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    n = t.num_rows
    weeks = [f"W{k}" for k in range(SALES_WEEKS)]
    sales = np.column_stack([t.column(w).to_numpy(zero_copy_only=False) for w in weeks]) if n else \
        np.empty((0, SALES_WEEKS))
    nulls = np.column_stack([pc.is_null(t.column(w)).to_numpy(zero_copy_only=False) for w in weeks]) if n else \
        np.empty((0, SALES_WEEKS), bool)
    week = np.tile(np.arange(SALES_WEEKS, dtype=np.int64), n)
    days = SALES_ANCHOR + 7 * week.astype("timedelta64[D]")
    ts = pa.array(days.astype("datetime64[us]"), pa.timestamp("us")).cast(TS_UTC)
    out = pa.table({
        "Product_Code": pc.take(t.column("Product_Code"), pa.array(np.repeat(np.arange(n), SALES_WEEKS))),
        "week": pa.array(week),
        "ts": ts,
        "sales": pa.array(sales.reshape(-1), pa.float64(), mask=nulls.reshape(-1)),
    })
    return out, np.repeat(pos, SALES_WEEKS)


PRESETS: dict[str, _Preset] = {
    "air_quality_uci": _Preset(
        name="air_quality_uci",
        delimiter=";",
        decimal=",",
        numeric={c: "float" for c in AIR_VALUES},
        missing=(-200.0,),
        skip_if_null="Date",
        spec=SeriesSpec(timestamp="ts", keys=["site"], values=AIR_VALUES, attributes=[]),
        finish=_air_finish,
    ),
    "beijing_multisite": _Preset(
        name="beijing_multisite",
        delimiter=",",
        null_values=("", "NA"),
        numeric={"No": "int", "year": "int", "month": "int", "day": "int", "hour": "int",
                 **{c: "float" for c in BEIJING_VALUES}},
        spec=SeriesSpec(timestamp="ts", keys=["station"], values=BEIJING_VALUES, attributes=["wd"]),
        finish=_beijing_finish,
    ),
    "sales_weekly": _Preset(
        name="sales_weekly",
        delimiter=",",
        numeric={f"W{k}": "float" for k in range(SALES_WEEKS)},
        divisor=SALES_WEEKS,
        spec=SeriesSpec(timestamp="ts", keys=["Product_Code"], values=["sales"], attributes=["week"]),
        finish=_sales_finish,
    ),
}


def preset_series_spec(name: str) -> SeriesSpec:
    """The recommended series spec of a preset (for ``tsops init`` and the demo)."""
    try:
        return PRESETS[name].spec.model_copy(deep=True)
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}") from None


# ------------------------------------------------------------------------------------------------ helpers


def file_digest(path: Path, limit: int | None = None) -> tuple[str, int]:
    """sha256 hex of the first ``limit`` bytes of ``path`` (all when None) and the number of bytes hashed."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while limit is None or n < limit:
            block = f.read(_HASH_BLOCK if limit is None else min(_HASH_BLOCK, limit - n))
            if not block:
                break
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def _ends_with_newline(path: Path, size: int) -> bool:
    if size == 0:
        return True
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"


def _is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


class _Limited(io.RawIOBase):
    """A read-only view of the first ``limit`` bytes of a binary file."""

    def __init__(self, f: BinaryIO, limit: int):
        self._f = f
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(b)[: min(len(b), self._left)]
        n = self._f.readinto(view) or 0
        self._left -= n
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def _open_binary(path: Path, size: int) -> BinaryIO:
    """The content of ``path`` (decompressed for .gz; else only its first ``size`` bytes) as a buffered stream."""
    if _is_gzip(path):
        return io.BufferedReader(gzip.GzipFile(path, "rb"), 1 << 20)  # type: ignore[arg-type]
    return io.BufferedReader(_Limited(open(path, "rb"), size), 1 << 20)  # noqa: SIM115 - closed by the caller


def _chomp(raw: bytes) -> bytes:
    return raw.rstrip(b"\r\n")


@dataclass
class _Chunk:
    """Records of one chunk: raw bytes (line endings kept) and the 1-based line number each starts on, and
    the lines rejected while splitting records (line number, raw line, reason)."""

    recs: list[bytes]
    first: np.ndarray
    nlines: int
    bad: list[tuple[int, bytes, str]] = field(default_factory=list)


#: a quoted field may span at most this many lines; an opening quote not closed within them is malformed
MAX_RECORD_LINES = 10_000
_QBODY = re.compile(rb'(?:[^"]++|"")*+')


@functools.lru_cache(maxsize=8)
def _record_re(delim: bytes) -> re.Pattern[bytes]:
    """A complete, well-quoted CSV record on one line: quoted fields ("" escapes a quote) or unquoted
    fields that do not start with a quote (a quote inside them is a literal, as pyarrow reads it)."""
    d = re.escape(delim)
    fld = rb'(?>"(?:[^"]++|"")*+"|[^"' + d + rb'\r\n][^' + d + rb'\r\n]*+|)'
    return re.compile(fld + rb"(?:" + d + fld + rb")*+(?:\r?\n)?")


@functools.lru_cache(maxsize=8)
def _records_re(delim: bytes) -> re.Pattern[bytes]:
    """Lines that are each one complete, well-quoted record (no quoted line breaks): one check per chunk."""
    d = re.escape(delim)
    fld = rb'(?>"(?:[^"\r\n]++|"")*+"|[^"' + d + rb'\r\n][^' + d + rb'\r\n]*+|)'  # atomic: no backtracking
    return re.compile(rb"(?:" + fld + rb"(?:" + d + fld + rb")*+(?:\r?\n|\Z))*+")


def _scan(ln: bytes, delim: bytes, inq: bool) -> tuple[bool, int, str | None]:
    """Follow the quoting of one physical line as pyarrow's parser does, but strictly.

    ``inq``: the line starts inside a quoted field. Returns (a quoted field is still open at the end of the
    line, delimiters seen outside quotes, the error or None). Errors: text after a closing quote, and a
    carriage return outside quotes (pyarrow would start a new row there).
    """
    end = len(ln) - (2 if ln.endswith(b"\r\n") else 1 if ln.endswith(b"\n") else 0)
    i = nd = 0
    while True:
        if inq:
            i = _QBODY.match(ln, i, end).end()  # type: ignore[union-attr]
            if i >= end:
                return True, nd, None
            i += 1  # the closing quote
            inq = False
            if i >= end:
                return False, nd, None
            if ln[i:i + 1] == delim:
                nd += 1
                i += 1
                continue
            return False, nd, (f"column {i + 1}: {ln[i:i + 1]!r} after a closing double quote (expected "
                               f"{delim.decode()!r} or the end of the line)")
        if i < end and ln[i] == 0x22:
            inq = True
            i += 1
            continue
        j = ln.find(delim, i, end)
        k = ln.find(b"\r", i, j if j >= 0 else end)
        if k >= 0:
            return False, nd, f"column {k + 1}: a carriage return outside quotes"
        if j < 0:
            return False, nd, None
        nd += 1
        i = j + 1


def _plain(ln: bytes, quote: bytes) -> bool:
    """No quote and no carriage return except in the line ending: the line is one record as it is."""
    return quote not in ln and (b"\r" not in ln or b"\r" not in ln.rstrip(b"\r\n"))


def _group(lines: list[bytes], lineno: int, f: BinaryIO, quote: bytes | None, delim: bytes = b",",
           nfields: int | None = None) -> _Chunk:
    """Group physical lines into records; a record continues over line breaks inside quotes (reads on).

    CSV quoting is checked strictly: a line with text after a closing quote is rejected; a quoted field that
    is never closed (end of file, or :data:`MAX_RECORD_LINES` lines), or whose record then has another number
    of fields than the header, or runs into a malformed line, or spans two or more inner lines that each
    look like a complete record (quote-free, the header's number of fields), is an unclosed quote: its
    first line is rejected and the lines after it are read as records again. So one stray quote costs one
    line (two stray quotes closing each other over a single line break stay one record: valid CSV).
    """
    n = len(lines)
    if quote is None:
        return _Chunk(lines, lineno + np.arange(n, dtype=np.int64), n)
    blob = b"".join(lines)
    if (quote not in blob and blob.count(b"\r") == blob.count(b"\r\n")) or _records_re(delim).fullmatch(blob):
        return _Chunk(lines, lineno + np.arange(n, dtype=np.int64), n)  # every line one well-formed record
    ok = _record_re(delim).fullmatch
    suspect = [j for j, ln in enumerate(lines) if not _plain(ln, quote) and not ok(ln)]
    if not suspect:
        return _Chunk(lines, lineno + np.arange(n, dtype=np.int64), n)
    recs: list[bytes] = lines[:suspect[0]]
    firsts: list[int] = list(range(lineno, lineno + suspect[0]))
    bad: list[tuple[int, bytes, str]] = []
    pending = collections.deque(lines[suspect[0]:])
    cur = lineno + suspect[0]
    while pending:
        ln = pending.popleft()
        if _plain(ln, quote) or ok(ln):
            recs.append(ln)
            firsts.append(cur)
            cur += 1
            continue
        inq, nd, err = _scan(ln, delim, False)
        if err is not None:
            bad.append((cur, ln, err))
            cur += 1
            continue
        if not inq:
            recs.append(ln)
            firsts.append(cur)
            cur += 1
            continue
        buf = [ln]
        why = None
        while inq:  # the quoted field goes on over the next lines
            if len(buf) >= MAX_RECORD_LINES:
                why = f"a double quote opened on this line is not closed within {MAX_RECORD_LINES:,} lines"
                break
            nxt = pending.popleft() if pending else f.readline()
            if not nxt:
                why = "a double quote opened on this line is never closed (end of file)"
                break
            buf.append(nxt)
            inq, more, err = _scan(nxt, delim, True)
            nd += more
            if err is not None:
                why = (f"a double quote opened on this line runs on to line {cur + len(buf) - 1}, "
                       f"where {err}: taken as an unclosed quote")
                break
        if why is None and nfields is not None and nd + 1 != nfields:
            why = (f"a quoted field opened on this line spans lines {cur}-{cur + len(buf) - 1} and gives "
                   f"{nd + 1} fields, expected {nfields}: taken as an unclosed quote")
        if why is None and nfields is not None and len(buf) > 3 and all(
                quote not in x and x.count(delim) == nfields - 1 for x in buf[1:-1]):
            why = (f"a quoted field opened on this line spans lines {cur}-{cur + len(buf) - 1}, whose inner "
                   f"lines are records of {nfields} fields each: taken as an unclosed quote")
        if why is None:
            recs.append(b"".join(buf))
            firsts.append(cur)
            cur += len(buf)
            continue
        bad.append((cur, ln, why))
        cur += 1
        pending.extendleft(reversed(buf[1:]))  # the lines after it are read again as records
    return _Chunk(recs, np.asarray(firsts, dtype=np.int64), cur - lineno, bad)


def _read_chunks(
    f: BinaryIO, lineno: int, skip_lines: int, size: int, quote: bytes | None, delim: bytes = b",",
    nfields: int | None = None,
) -> Iterator[tuple[_Chunk, int, bool]]:
    """Chunks of about ``size`` records after ``skip_lines`` lines: (chunk, lines skipped before it, last).

    ``lineno`` is the number of the next line of ``f``. One chunk of look-ahead flags the last chunk, so a
    file always ends with a batch marked done; nothing left after ``skip_lines`` gives one empty chunk.
    """
    skipped = 0
    while skipped < skip_lines:
        block = list(itertools.islice(f, min(skip_lines - skipped, 1 << 16)))
        if not block:
            break
        skipped += len(block)
    lineno += skipped
    pending: _Chunk | None = None
    while True:
        lines = list(itertools.islice(f, size))
        if not lines:
            break
        chunk = _group(lines, lineno, f, quote, delim, nfields)
        lineno += chunk.nlines
        if pending is not None:
            yield pending, skipped, False
            skipped = 0
        pending = chunk
    yield (pending or _Chunk([], np.empty(0, np.int64), 0)), skipped, True


# ------------------------------------------------------------------------------------------------ source
@dataclass
class _FileState:
    rel: str
    path: Path
    sha: str
    size: int
    start_rows: int


class FileSource(Source):
    """CSV / Parquet / JSON-Lines files matching ``cfg.paths`` under ``base_dir`` (see module doc)."""

    def __init__(self, cfg: FileSourceConfig, base_dir: Path | str, name: str = "files"):
        self.cfg = cfg
        self.base_dir = Path(base_dir)
        self.name = name
        self.preset = PRESETS[cfg.preset] if cfg.preset else None
        if self.preset is not None and cfg.format != "csv":
            raise ValueError(f"preset {cfg.preset!r} reads CSV files, but format is {cfg.format!r}")
        self._positions: dict[str, Any] = {}
        self.on_gap = cfg.on_gap

    # ------------------------------------------------------------------ discovery and positions
    def files(self) -> list[tuple[str, Path]]:
        """(relative path, path) of every matching file, sorted, without duplicates."""
        found: dict[str, Path] = {}
        base = self.base_dir.resolve()
        for pattern in self.cfg.paths:
            p = Path(pattern)
            if p.is_absolute():
                anchor = Path(p.anchor)
                matches = anchor.glob(str(p.relative_to(anchor)))
            else:
                matches = base.glob(pattern)
            for m in matches:
                if m.is_file():
                    try:
                        rel = m.resolve().relative_to(base).as_posix()
                    except ValueError:
                        rel = m.resolve().as_posix()
                    found[rel] = m
        if not found:
            log.warning("no files match %s under %s", self.cfg.paths, base)
        return sorted(found.items())

    def open(self, positions: Mapping[str, Any]) -> None:
        self._positions = {k: dict(v) for k, v in positions.items() if isinstance(v, Mapping)}

    def plan(self, rel: str, path: Path) -> _FileState | None:
        """Where to start reading ``path`` given its stored position; None when it is fully ingested."""
        sha, size = file_digest(path)
        p = self._positions.get(rel)
        if p is None:
            return _FileState(rel, path, sha, size, 0)
        if p.get("sha") == sha:
            return None if p.get("done") else _FileState(rel, path, sha, size, int(p.get("rows", 0)))
        old_size = int(p.get("bytes", -1))
        if (
            self.cfg.format != "parquet"
            and 0 <= old_size < size
            and file_digest(path, old_size)[0] == p.get("sha")
            and (_is_gzip(path) or _ends_with_newline(path, old_size))
        ):
            log.info("%s grew from %d to %d bytes: continuing after %s rows", rel, old_size, size, p.get("rows"))
            return _FileState(rel, path, sha, size, int(p.get("rows", 0)))
        how = f"shrank from {old_size:,} to {size:,} bytes" if size < old_size else \
            f"was replaced (sha {str(p.get('sha'))[:10]}... -> {sha[:10]}..., {old_size:,} -> {size:,} bytes)"
        rest = "" if p.get("done") else " before it was read to the end"
        self.gap(Gap(rel, {k: p.get(k) for k in ("sha", "bytes", "rows", "done")},
                     {"sha": sha, "bytes": size},
                     f"the file {how} after {p.get('rows')} rows were ingested{rest}; with on_gap: skip it is "
                     "ingested again from the start as a new file"))
        return _FileState(rel, path, sha, size, 0)

    def _stem(self, rel: str) -> str:
        stem = rel
        for suffix in (".gz", ".csv", ".jsonl", ".json", ".ndjson", ".parquet", ".txt"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
        return safe_token(stem.replace("/", "_"))

    def _batch(self, st: _FileState, first: int, last: int, done: bool, records: pa.Table,
               bad: list[BadRecord], pos: np.ndarray) -> SourceBatch:
        if self.cfg.rename:
            records = records.rename_columns([self.cfg.rename.get(c, c) for c in records.column_names])
        position = {"sha": st.sha, "bytes": st.size, "rows": last, "done": done}
        self._positions[st.rel] = position
        return SourceBatch(
            key=f"file-{self._stem(st.rel)}-{st.sha[:10]}-r{first}-{last}",
            records=records,
            bad=bad,
            pos=np.asarray(pos, dtype=np.int64),
            positions={st.rel: dict(position)},
            src=f"file:{st.rel}",
        )

    def batches(self) -> Iterator[SourceBatch]:
        found = self.files()
        here = {rel for rel, _ in found}
        for rel, p in sorted(self._positions.items()):
            if rel not in here and not p.get("done"):
                self.gap(Gap(rel, {k: p.get(k) for k in ("sha", "bytes", "rows", "done")}, None,
                             f"the file disappeared after {p.get('rows')} rows were ingested, before it was "
                             "read to the end"))
        plans = [(rel, self.plan(rel, path)) for rel, path in found]  # every gap is found before reading
        for rel, st in plans:
            if st is None:
                log.debug("%s already ingested: skipped", rel)
                continue
            reader = {"csv": self._csv, "parquet": self._parquet, "jsonl": self._jsonl}[self.cfg.format]
            yield from reader(st)

    # ------------------------------------------------------------------ CSV
    def _csv_header(self, st: _FileState, header_raw: bytes) -> list[str]:
        delim = self.preset.delimiter if self.preset else self.cfg.delimiter
        try:
            text = header_raw.decode(self.cfg.encoding)
        except UnicodeDecodeError as err:
            raise ValueError(f"{st.rel} line 1: the header is not valid {self.cfg.encoding}: {err}") from None
        names = pcsv_split(text.encode("utf-8"), delim)
        out = [n if n.strip() else f"unnamed_{i}" for i, n in enumerate(names)]
        dup = sorted({n for n in out if out.count(n) > 1})
        if dup:
            raise ValueError(f"{st.rel} line 1: duplicate column names {dup}; use distinct header names")
        if self.preset is not None:
            missing = [c for c in self.preset.numeric if c not in out]
            if missing:
                raise ValueError(
                    f"{st.rel}: columns {missing} required by preset {self.preset.name!r} are missing "
                    f"(header has {out})"
                )
        return out

    def _csv(self, st: _FileState) -> Iterator[SourceBatch]:
        with _open_binary(st.path, st.size) as f:
            header_raw = f.readline()
            if header_raw.startswith(b"\xef\xbb\xbf"):
                header_raw = header_raw[3:]  # UTF-8 byte order mark
            if not header_raw.strip():
                yield self._batch(st, 0, 0, True, pa.table({}), [], np.empty(0, np.int64))
                return
            names = self._csv_header(st, _chomp(header_raw))
            per_chunk = self.cfg.batch_rows
            if self.preset is not None:
                per_chunk = max(1, per_chunk // self.preset.divisor)
            done = 0  # physical lines after the header consumed so far
            delim = (self.preset.delimiter if self.preset else self.cfg.delimiter).encode("utf-8")
            for chunk, skipped, last in _read_chunks(f, 2, st.start_rows, per_chunk, b'"', delim, len(names)):
                done += skipped
                table, pos, bad = self._csv_chunk_table(st, names, chunk)
                yield self._batch(st, done, done + chunk.nlines, last, table, bad, pos)
                done += chunk.nlines

    def _csv_chunk_table(self, st: _FileState, names: list[str],
                         chunk: _Chunk) -> tuple[pa.Table, np.ndarray, list[BadRecord]]:
        preset = self.preset
        delim = preset.delimiter if preset else self.cfg.delimiter
        nulls = list(preset.null_values) if preset else [""]
        enc = self.cfg.encoding
        recs, first = chunk.recs, chunk.first
        bad = [BadRecord(_chomp(raw), f"{st.rel} line {n}: {why}", n) for n, raw, why in chunk.bad]
        blank = [not r.strip() for r in recs]
        if any(blank):  # blank lines carry nothing: skipped
            keep = ~np.asarray(blank)
            recs = [r for r, k in zip(recs, keep, strict=True) if k]
            first = first[keep]
        if recs and not recs[-1].endswith(b"\n"):
            recs[-1] += b"\n"  # the file's last line without a line break
        blob = b"".join(recs)
        try:
            text = blob.decode(enc)
            if codecs.lookup(enc).name not in ("utf-8", "ascii"):
                blob = text.encode("utf-8")
        except UnicodeDecodeError:
            keep_l, texts = [], []
            for r, n in zip(recs, first, strict=True):
                try:
                    t = r.decode(enc)
                except UnicodeDecodeError as err:
                    body = _chomp(r)
                    bad.append(BadRecord(body, f"{st.rel} line {n}: bytes {r[err.start:err.end]!r} at column "
                                               f"{err.start + 1} are not valid {enc}", int(n)))
                    keep_l.append(False)
                    continue
                keep_l.append(True)
                texts.append(t.encode("utf-8"))
            keep = np.asarray(keep_l, bool)
            recs = [r for r, k in zip(recs, keep, strict=True) if k]
            first = first[keep]
            blob = b"".join(texts)
        invalid: list[int] = []  # pyarrow's row numbers: 1 = the header, 2 = the first record of the chunk

        def on_invalid(row: Any) -> str:
            invalid.append(row.number)
            return "skip"

        header = pcsv_header(names, delim)

        def read(data: bytes) -> pa.Table:
            return pcsv.read_csv(
                pa.py_buffer(header + data),
                read_options=pcsv.ReadOptions(use_threads=False,
                                              block_size=max(1 << 20, 2 * (len(data) + len(header)))),
                parse_options=pcsv.ParseOptions(delimiter=delim, newlines_in_values=True,
                                                invalid_row_handler=on_invalid, ignore_empty_lines=False),
                convert_options=pcsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, null_values=nulls, strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )

        table = read(blob)
        if table.num_rows + len(invalid) != len(recs):  # the parser split records otherwise: one by one
            log.warning("%s: the CSV parser read %d rows from %d records; reading them one by one", st.rel,
                        table.num_rows + len(invalid), len(recs))
            invalid.clear()
            parts, keep_l = [], []
            for j, r in enumerate(recs):
                before = len(invalid)
                t1 = read(r)
                if t1.num_rows == 1 and len(invalid) == before:
                    parts.append(t1)
                    keep_l.append(True)
                    continue
                del invalid[before:]
                keep_l.append(False)
                bad.append(BadRecord(_chomp(r), f"{st.rel} line {first[j]}: not one CSV record "
                                                f"({t1.num_rows} rows)", int(first[j])))
            keep = np.asarray(keep_l, bool)
            recs = [r for r, k in zip(recs, keep, strict=True) if k]
            first = first[keep]
            table = pa.concat_tables(parts) if parts else read(b"")
        if invalid:
            keep = np.ones(len(recs), bool)
            for number in invalid:
                i = number - 2
                keep[i] = False
                raw = _chomp(recs[i])
                bad.append(BadRecord(raw, f"{st.rel} line {first[i]}: expected {len(names)} fields separated "
                                          f"by {delim!r}, found {len(pcsv_split(raw, delim))}", int(first[i])))
            recs = [r for r, k in zip(recs, keep, strict=True) if k]
            first = first[keep]
        bad.sort(key=lambda b: b.pos)
        if preset is None:
            if self.cfg.decimal != ".":
                table = _decimal_to_point(table, self.cfg.decimal)
            return table, first, bad
        table, pos, more = self._apply_preset(st, table, first, recs)
        return table, pos, sorted(bad + more, key=lambda b: b.pos)

    def _apply_preset(self, st: _FileState | None, t: pa.Table, pos: np.ndarray,
                      raws: list[bytes]) -> tuple[pa.Table, np.ndarray, list[BadRecord]]:
        preset = self.preset
        assert preset is not None
        if preset.skip_if_null:
            keep = pc.is_valid(t.column(preset.skip_if_null)).to_numpy(zero_copy_only=False)
            if not keep.all():
                t = t.filter(pa.array(keep))
                pos = pos[keep]
                raws = [r for r, k in zip(raws, keep, strict=True) if k]
        bad_rows: dict[int, list[str]] = {}
        cols = {}
        for name, kind in preset.numeric.items():
            col = t.column(name)
            vals, bad = _to_number(col, preset.decimal, kind)
            for i in np.flatnonzero(bad):
                bad_rows.setdefault(int(i), []).append(f"column {name!r}: {col[int(i)].as_py()!r} is not a number")
            if preset.missing and kind == "float":
                hit = np.isin(vals, preset.missing)
                vals = np.where(hit, np.nan, vals)
            mask = np.isnan(vals) if kind == "float" else pc.is_null(col).to_numpy(zero_copy_only=False) | bad
            if kind == "int":
                cols[name] = pa.array(np.nan_to_num(vals).astype(np.int64), pa.int64(), mask=mask | np.isnan(vals))
            else:
                cols[name] = pa.array(vals, pa.float64(), mask=mask)
        for name, arr in cols.items():
            t = t.set_column(t.column_names.index(name), name, arr)
        out_bad: list[BadRecord] = []
        if bad_rows:
            idx = np.asarray(sorted(bad_rows))
            out_bad = [BadRecord(_chomp(raws[i]), f"{st.rel if st else '?'} line {pos[i]}: " + "; ".join(bad_rows[i]),
                                 int(pos[i])) for i in idx]
            keep = np.ones(t.num_rows, bool)
            keep[idx] = False
            t = t.filter(pa.array(keep))
            pos = pos[keep]
        t, pos = preset.finish(t, pos) if preset.finish else (t, pos)
        return t, pos, out_bad

    # ------------------------------------------------------------------ Parquet
    def _parquet(self, st: _FileState) -> Iterator[SourceBatch]:
        pf = pq.ParquetFile(st.path)
        total = pf.metadata.num_rows
        done = st.start_rows
        groups, skip, acc = [], 0, 0
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if acc + n <= done:
                acc += n
                continue
            if not groups:
                skip = done - acc
            groups.append(g)
            acc += n
        if not groups:
            yield self._batch(st, done, done, True, pf.schema_arrow.empty_table(), [], np.empty(0, np.int64))
            return
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for rb in pf.iter_batches(batch_size=self.cfg.batch_rows, row_groups=groups):
            if skip:
                cut = min(skip, rb.num_rows)
                rb, skip = rb.slice(cut), skip - cut
            if rb.num_rows == 0:
                continue
            pending.append(rb)
            pending_rows += rb.num_rows
            while pending_rows >= self.cfg.batch_rows:
                t = pa.Table.from_batches(pending)
                head, tail = t.slice(0, self.cfg.batch_rows), t.slice(self.cfg.batch_rows)
                end = done + head.num_rows
                yield self._batch(st, done, end, end >= total, head.combine_chunks(), [],
                                  np.arange(done, end, dtype=np.int64))
                done = end
                pending = tail.to_batches()
                pending_rows = tail.num_rows
        if pending_rows or done < total or done == st.start_rows:
            t = pa.Table.from_batches(pending, schema=pf.schema_arrow) if pending else pf.schema_arrow.empty_table()
            end = done + t.num_rows
            yield self._batch(st, done, end, True, t.combine_chunks(), [], np.arange(done, end, dtype=np.int64))

    # ------------------------------------------------------------------ JSON Lines
    def _jsonl(self, st: _FileState) -> Iterator[SourceBatch]:
        with _open_binary(st.path, st.size) as f:
            done = 0
            for chunk, skipped, last in _read_chunks(f, 1, st.start_rows, self.cfg.batch_rows, None):
                done += skipped
                pairs = [(int(n), r) for n, r in zip(chunk.first, chunk.recs, strict=True)]
                yield from self._jsonl_chunk(st, pairs, done, last)
                done += chunk.nlines

    def _jsonl_chunk(self, st: _FileState, chunk: list[tuple[int, bytes]], done: int,
                     last: bool) -> Iterator[SourceBatch]:
        from tsops.ingest import envelope as env

        msgs = [(n, _chomp(r)) for n, r in chunk if r.strip()]
        if not msgs:
            yield self._batch(st, done, done + len(chunk), last, pa.table({}), [], np.empty(0, np.int64))
            return
        pieces = [msgs]
        out: list[tuple[list[tuple[int, bytes]], Any]] = []
        while pieces:  # split at schema conflicts until every piece parses into one table
            piece = pieces.pop(0)
            try:
                values = [m for _, m in piece]
                parse = env.parse_envelopes if self.cfg.envelope else env.parse_json_records
                parsed = env.parse_isolating(parse, values)
                out.append((piece, parsed))
            except env.SchemaConflictError:
                if len(piece) < 2:
                    raise
                half = len(piece) // 2
                pieces[:0] = [piece[:half], piece[half:]]
        start = done
        for k, (piece, parsed) in enumerate(out):
            is_last = k == len(out) - 1
            # lines up to the last message of this piece (blank lines belong to the following piece)
            end = done + len(chunk) if is_last else piece[-1][0]
            lines = np.asarray([n for n, _ in piece], dtype=np.int64)
            table = parsed.table
            idx = table.column(env.INDEX_COLUMN).to_numpy(zero_copy_only=False).astype(np.int64)
            table = table.drop_columns([env.INDEX_COLUMN])
            bad = [BadRecord(b.raw, f"{st.rel} line {lines[b.index]}: {b.reason}", int(lines[b.index]))
                   for b in parsed.bad]
            yield self._batch(st, start, end, last and is_last, table, bad, lines[idx])
            start = end


def pcsv_header(names: list[str], delim: str) -> bytes:
    """A CSV header line for ``names`` (quoted as needed)."""
    out = []
    for n in names:
        if any(ch in n for ch in (delim, '"', "\n", "\r")):
            n = '"' + n.replace('"', '""') + '"'
        out.append(n)
    return (delim.join(out) + "\n").encode("utf-8")


def pcsv_split(raw: bytes, delim: str) -> list[str]:
    """The fields of one raw CSV record (for error messages); undecodable bytes are replaced."""
    import csv
    import io

    text = raw.decode("utf-8", errors="replace")
    try:
        return next(csv.reader(io.StringIO(text), delimiter=delim), [])
    except csv.Error:
        return text.split(delim)


def _decimal_to_point(t: pa.Table, decimal: str) -> pa.Table:
    """Rewrite cells that are numbers written with ``decimal`` (``-1,5``, ``2,0e3``) with a decimal point."""
    mark = re.escape(decimal)
    pattern = rf"^(\s*[+-]?\d*){mark}(\d+(?:[eE][+-]?\d+)?\s*)$"
    cols = [pc.replace_substring_regex(c, pattern, r"\1.\2") for c in t.columns]
    return pa.Table.from_arrays(cols, schema=t.schema)


def _to_number(col: pa.ChunkedArray, decimal: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Text column -> float64 values (NaN for null) and a mask of cells that are text but not numbers."""
    if decimal != ".":
        col = pc.replace_substring(col, decimal, ".")
    try:
        vals = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        bad = np.zeros(len(vals), bool)
    except pa.ArrowException:  # not parseable as numbers (invalid text, or a type arrow cannot cast)
        s = pd.Series(col.to_pandas(), dtype=object)
        num = pd.to_numeric(s.str.strip(), errors="coerce")
        vals = num.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = s.notna().to_numpy() & np.isnan(vals)
    vals = np.asarray(vals, dtype=np.float64)
    if kind == "int":
        frac = ~np.isnan(vals) & (vals != np.round(vals))
        bad = bad | frac
    return vals, bad

