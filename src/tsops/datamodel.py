"""The one data model of tsops: records in, long-format observations out.

A *dataset* is one logical source (a Kafka topic, a SQL view, a family of files). Its records are turned into
long format, one row per observation::

    series_id (string) | ts (timestamp[us, UTC]) | value (float64) | <attribute columns> | _src | _pos

Series identity comes from configurable key columns (e.g. ``position`` + ``type_name``) and the value column:
a wide record (Beijing: PM2.5, PM10, ... per row) becomes one series per (entity, measure).

Everything else in tsops imports these names instead of spelling column names itself.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SERIES_ID = "series_id"
TS = "ts"
VALUE = "value"
SRC = "_src"
POS = "_pos"
TS_TYPE = pa.timestamp("us", tz="UTC")
RESERVED = (SERIES_ID, TS, VALUE, SRC, POS)
#: Hive partition columns of the lake: a record's own columns of these names are not carried as attributes
PARTITION_COLUMNS = ("year", "month", "day")

#: Earliest accepted observation time and how far in the future a timestamp may lie.
MIN_TS_US = 0
MAX_FUTURE_US = 86_400 * 1_000_000

# Characters that would let a series id escape its partition or break quoting downstream.
_BAD_ID = re.compile(r"(\.\.|[/\\\"'`\x00-\x1f\x7f])")


class SeriesSpec(BaseModel):
    """How a dataset's records map onto series."""

    model_config = ConfigDict(extra="forbid")

    timestamp: str = Field(description="column holding the observation time")
    timestamp_unit: str | None = Field(
        default=None, description="for numeric epochs: s, ms, us or ns (default ms)"
    )
    timestamp_format: str | None = Field(default=None, description="strptime format for string timestamps")
    timezone: str = Field(default="UTC", description="time zone of naive timestamps")
    keys: list[str] = Field(min_length=1, description="columns that identify the entity")
    values: list[str] = Field(min_length=1, description="measure columns; one series per (entity, measure)")
    attributes: list[str] | None = Field(
        default=None, description="columns kept beside each observation (default: every other column)"
    )
    measure_in_id: bool | None = Field(
        default=None, description="append the measure name to the series id (default: when several values)"
    )
    separator: str = "|"
    missing_values: list[str] = Field(default_factory=list, description="sentinel values meaning 'missing'")

    @field_validator("timestamp_unit")
    @classmethod
    def _unit(cls, v: str | None) -> str | None:
        if v is not None and v not in ("s", "ms", "us", "ns"):
            raise ValueError(f"timestamp_unit must be one of s, ms, us, ns (got {v!r})")
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> SeriesSpec:
        clash = set(self.keys) & set(self.values)
        if clash:
            raise ValueError(f"columns {sorted(clash)} are both keys and values")
        if self.timestamp in self.keys or self.timestamp in self.values:
            raise ValueError(f"timestamp column {self.timestamp!r} is also a key or value column")
        if _BAD_ID.search(self.separator) or not self.separator:
            raise ValueError(f"separator {self.separator!r} is not allowed in series ids")
        clash = [c for c in (self.attributes or []) + self.keys if c in PARTITION_COLUMNS]
        if clash:
            raise ValueError(
                f"columns {clash} have the names of the lake's partition columns (year, month, day); "
                "rename them in the source (e.g. `rename:` for files)"
            )
        return self

    @property
    def with_measure(self) -> bool:
        return self.measure_in_id if self.measure_in_id is not None else len(self.values) > 1

    def attribute_columns(self, available: Sequence[str]) -> list[str]:
        """Columns kept beside each observation: the keys first, then the attributes."""
        used = {self.timestamp, *self.keys, *self.values, *RESERVED, *PARTITION_COLUMNS}
        if self.attributes is not None:
            rest = [c for c in self.attributes if c not in used and c in available]
        else:
            rest = [c for c in available if c not in used and not c.startswith("_")]
        return [k for k in self.keys if k not in RESERVED] + rest


@dataclass
class Rejected:
    """Rows of a record table that failed validation: ``rows`` index the input table."""

    rows: np.ndarray
    reasons: list[str]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class LongResult:
    table: pa.Table
    rejected: Rejected = field(default_factory=lambda: Rejected(np.empty(0, np.int64), []))


def series_id_of(keys: Sequence[str], measure: str | None = None, separator: str = "|") -> str:
    """The series id for one entity (and measure), as :func:`to_long` builds it."""
    parts = [str(k) for k in keys] + ([measure] if measure is not None else [])
    return separator.join(parts)


def check_series_id(series_id: str) -> str | None:
    """Return why ``series_id`` is unsafe, or None when it is fine."""
    if not series_id or not series_id.strip():
        return "empty series id"
    m = _BAD_ID.search(series_id)
    if m:
        return f"series id {series_id!r} contains {m.group(0)!r}, which could escape its partition"
    if len(series_id) > 512:
        return f"series id longer than 512 characters ({len(series_id)})"
    return None


def _to_ts_us(col: pa.ChunkedArray, spec: SeriesSpec) -> tuple[np.ndarray, np.ndarray]:
    """Convert a timestamp column to int64 epoch microseconds; returns (values, valid mask)."""
    t = col.type
    name = spec.timestamp
    if pa.types.is_timestamp(t):
        if t.tz is None and spec.timezone != "UTC":
            s = col.to_pandas().dt.tz_localize(spec.timezone, ambiguous="NaT", nonexistent="NaT")
            return _pd_us(s), s.notna().to_numpy()
        arr = pc.cast(col, pa.timestamp("us", tz=t.tz) if t.tz else pa.timestamp("us"))
        ints = pc.cast(arr, pa.int64())
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        unit = spec.timestamp_unit or "ms"
        mult = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}[unit]
        f = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        valid = np.isfinite(f)
        out = np.zeros(len(f), dtype=np.int64)
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = f[valid] * mult
        ok = np.abs(scaled) < 9.2e18
        idx = np.flatnonzero(valid)
        valid[idx[~ok]] = False
        out[idx[ok]] = scaled[ok].astype(np.int64)
        return out, valid
    elif pa.types.is_date(t):
        ints = pc.multiply(pc.cast(pc.cast(col, pa.date32()), pa.int64()), 86_400_000_000)
        valid = ~pc.is_null(ints).to_numpy(zero_copy_only=False)
        return ints.fill_null(0).to_numpy(), valid
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        import pandas as pd

        s = pd.Series(col.to_pandas(), dtype=object)
        parsed = pd.to_datetime(s, format=spec.timestamp_format, errors="coerce", utc=spec.timezone == "UTC")
        if spec.timezone != "UTC":
            if parsed.dt.tz is None:
                parsed = parsed.dt.tz_localize(spec.timezone, ambiguous="NaT", nonexistent="NaT")
            parsed = parsed.dt.tz_convert("UTC")
        valid = parsed.notna().to_numpy()
        return _pd_us(parsed), valid
    else:
        raise TypeError(f"timestamp column {name!r} has unsupported type {t}")
    valid = ~pc.is_null(ints).to_numpy(zero_copy_only=False)
    return ints.fill_null(0).to_numpy(zero_copy_only=False), valid


def _pd_us(s) -> np.ndarray:  # pandas datetime series (tz-aware or naive) -> int64 us, NaT -> 0
    import pandas as pd

    s = pd.Series(s)
    if s.dt.tz is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    arr = s.to_numpy(dtype="datetime64[us]")
    ints = arr.astype(np.int64)
    ints[np.isnat(arr)] = 0
    return ints


def _as_string(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return pc.cast(col, pa.string()) if pa.types.is_large_string(col.type) else col
    if pa.types.is_floating(col.type):
        # 3.0 -> "3" so that numeric ids read from CSV and from JSON agree
        f = col.to_numpy(zero_copy_only=False)
        whole = np.isfinite(f) & (f == np.round(f))
        strs = np.where(whole, np.char.mod("%d", np.nan_to_num(f).astype(np.int64)), f.astype(str))
        return pa.chunked_array([pa.array(strs, mask=pc.is_null(col).to_numpy(zero_copy_only=False))])
    return pc.cast(col, pa.string())


def to_long(
    records: pa.Table,
    spec: SeriesSpec,
    *,
    src: str = "",
    pos: np.ndarray | None = None,
    now_us: int | None = None,
) -> LongResult:
    """Turn a table of records into long-format observations, rejecting invalid records with a reason.

    A record is rejected (whole, with every reason) when a key is missing, its timestamp is missing,
    unparseable, before 1970 or more than a day in the future, a value is non-finite (±inf or NaN, as opposed
    to null, which is a missing reading and kept), a value is not numeric, or its series id is unsafe.
    ``pos`` gives each record's source position (Kafka offset, row number); default: the row index.
    """
    n = records.num_rows
    cols = records.column_names
    missing_cols = [c for c in [spec.timestamp, *spec.keys] if c not in cols]
    if missing_cols:
        raise KeyError(
            f"record table lacks column(s) {missing_cols} required by the dataset spec (has: {cols})"
        )
    value_cols = [v for v in spec.values if v in cols]
    if not value_cols:
        raise KeyError(f"record table has none of the value columns {spec.values} (has: {cols})")
    reasons: dict[int, list[str]] = {}

    def reject(mask: np.ndarray, why) -> None:
        for i in np.flatnonzero(mask):
            reasons.setdefault(int(i), []).append(why(int(i)) if callable(why) else why)

    now_us = now_us if now_us is not None else int(time.time() * 1_000_000)
    ts_col = records.column(spec.timestamp)
    ts_us, ts_valid = _to_ts_us(ts_col, spec)
    raw_ts = None

    def raw_ts_at(i: int) -> str:
        nonlocal raw_ts
        if raw_ts is None:
            raw_ts = ts_col.to_pylist()
        return repr(raw_ts[i])

    reject(~ts_valid, lambda i: f"field {spec.timestamp!r}: missing or unparseable timestamp {raw_ts_at(i)}")
    early = ts_valid & (ts_us < MIN_TS_US)
    reject(early, lambda i: f"field {spec.timestamp!r}: timestamp {_iso(ts_us[i])} is before 1970")
    late = ts_valid & (ts_us > now_us + MAX_FUTURE_US)
    reject(late, lambda i: f"field {spec.timestamp!r}: timestamp {_iso(ts_us[i])} is more than a day in the future")

    key_strs = []
    for k in spec.keys:
        kc = _as_string(records.column(k))
        null = pc.is_null(kc).to_numpy(zero_copy_only=False)
        reject(null, f"field {k!r}: missing key")
        key_strs.append(kc.fill_null(""))
    base_id = key_strs[0] if len(key_strs) == 1 else pc.binary_join_element_wise(*key_strs, spec.separator)
    base_id = base_id.combine_chunks() if isinstance(base_id, pa.ChunkedArray) else base_id

    # id safety is checked per distinct id (few) rather than per row
    uniq = pc.unique(base_id)
    bad_ids = {s: r for s in uniq.to_pylist() if (r := check_series_id(s)) is not None}
    if spec.with_measure:
        for v in value_cols:
            if (r := check_series_id(v)) is not None:
                raise ValueError(f"value column name {v!r} cannot be part of a series id: {r}")
    if bad_ids:
        bad_mask = pc.is_in(base_id, value_set=pa.array(list(bad_ids), pa.string())).to_numpy(
            zero_copy_only=False
        )
        ids_py = base_id.to_pylist()
        reject(bad_mask, lambda i: f"fields {spec.keys}: {bad_ids[ids_py[i]]}")

    values = {}
    for v in value_cols:
        c = records.column(v)
        if pa.types.is_string(c.type) or pa.types.is_large_string(c.type):
            f, bad, nan_text, texts = _parse_numbers(c, spec.missing_values)
            reject(bad, lambda i, v=v, texts=texts: f"field {v!r}: not a number {texts[i]!r}")
            null = np.isnan(f) & ~bad & ~nan_text
        elif pa.types.is_integer(c.type) or pa.types.is_floating(c.type) or pa.types.is_boolean(c.type):
            arr = pc.cast(c, pa.float64())
            null = pc.is_null(arr).to_numpy(zero_copy_only=False)
            f = arr.fill_null(np.nan).to_numpy(zero_copy_only=False).copy()
        elif pa.types.is_null(c.type):
            f = np.full(n, np.nan)
            null = np.ones(n, bool)
        else:
            raise TypeError(f"value column {v!r} has non-numeric type {c.type}")
        if spec.missing_values and not (pa.types.is_string(c.type) or pa.types.is_large_string(c.type)):
            sentinels = [float(m) for m in spec.missing_values if _is_number(m)]
            if sentinels:
                hit = np.isin(f, sentinels)
                f[hit] = np.nan
                null = null | hit
        nonfinite = ~np.isfinite(f) & ~null
        reject(nonfinite, lambda i, v=v, f=f: f"field {v!r}: non-finite number {f[i]!r}")
        values[v] = f

    bad_rows = np.array(sorted(reasons), dtype=np.int64)
    keep = np.ones(n, bool)
    keep[bad_rows] = False
    rejected = Rejected(bad_rows, ["; ".join(reasons[int(i)]) for i in bad_rows])

    attrs = spec.attribute_columns(cols)
    pos_arr = np.arange(n, dtype=np.int64) if pos is None else np.asarray(pos, dtype=np.int64)
    keep_idx = pa.array(np.flatnonzero(keep))
    ts_arr = pa.array(ts_us[keep], pa.int64()).cast(TS_TYPE)
    base_kept = base_id.take(keep_idx)
    attr_kept = {a: records.column(a).take(keep_idx) for a in attrs}
    pos_kept = pa.array(pos_arr[keep])
    src_arr = pa.array([src], pa.string()).take(pa.array(np.zeros(len(keep_idx), np.int64)))
    parts = []
    for v in value_cols:
        sid = base_kept
        if spec.with_measure:
            sid = pc.binary_join_element_wise(base_kept, pa.scalar(v), spec.separator)
        vals = values[v][keep]
        parts.append(
            pa.table(
                {
                    SERIES_ID: sid,
                    TS: ts_arr,
                    VALUE: pa.array(vals, pa.float64(), mask=np.isnan(vals)),
                    **attr_kept,
                    SRC: src_arr,
                    POS: pos_kept,
                }
            )
        )
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    return LongResult(table=table, rejected=rejected)


def _parse_numbers(col: pa.ChunkedArray, missing: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """Text -> float64 (NaN for null, empty or a missing-value sentinel), a mask of texts that are not numbers,
    a mask of texts spelling NaN (non-finite, not missing), and the texts (for messages). A lone decimal comma
    ("2,6") reads as a decimal point. Vectorised."""
    import pandas as pd

    s = pd.Series(col.to_pandas(), dtype=object)
    txt = s.str.strip()
    if missing:
        txt = txt.mask(txt.isin(list(missing)))
    txt = txt.mask(txt == "")
    txt = txt.str.replace(r"^([+-]?\d*),(\d+)$", r"\1.\2", regex=True)
    f = pd.to_numeric(txt, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    spelled_nan = txt.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy()
    bad = txt.notna().to_numpy() & np.isnan(f) & ~spelled_nan
    return f, bad, spelled_nan, s


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _iso(us: int) -> str:
    return np.datetime64(int(us), "us").astype(str) + "Z"


# ---------------------------------------------------------------------------------------------- series profile
PROFILE_KEY = "profile"


@dataclass(frozen=True)
class SeriesProfile:
    """The one owner of a series' sampling facts: computed by the quality stage, stored in the catalog (the
    series document's ``profile`` key), read by every consumer (decomposition, imputation, anomalies, report,
    baselines, neural models, conformal intervals, MASE scaling, drift check, train/tune/forecast).

    ``period_seconds``/``phase_seconds``: the sampling grid (phase = offset of the grid from the Unix epoch in
    ``[0, period)``); None when the series is event-like. ``season_lengths``: seasonal cycles in samples of that
    grid detected from the data, strongest first (e.g. ``(144, 1008)`` for a 10-minute sensor with daily and
    weekly cycles, ``(52,)`` for weekly sales with a yearly cycle, ``()`` when there is none);
    ``season_names`` names them ('daily', 'weekly', 'yearly'). The quality figures (``n_raw``, ``n_rows``,
    ``missing_ratio``, ``anomaly_ratio``) cover the whole history, not the last processing window.
    """

    series_id: str
    period_seconds: float | None = None
    phase_seconds: float | None = None
    period_confidence: float = 0.0
    season_lengths: tuple[int, ...] = ()
    season_names: tuple[str, ...] = ()
    season_strengths: tuple[float, ...] = ()
    unit: str | None = None
    first_ts: str | None = None
    last_ts: str | None = None
    n_raw: int = 0
    n_rows: int = 0
    n_missing: int = 0
    n_imputed: int = 0
    n_anomalies: int = 0
    missing_ratio: float | None = None
    anomaly_ratio: float | None = None
    imputation_method: str | None = None
    events: tuple[dict, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def season_length(self) -> int | None:
        """The main seasonal cycle in samples (the strongest), or None when the series has none."""
        return self.season_lengths[0] if self.season_lengths else None

    def season_or(self, default: int = 1) -> int:
        """The main season, or ``default`` (1 = no seasonality) when there is none."""
        return self.season_lengths[0] if self.season_lengths else default

    def to_dict(self) -> dict[str, Any]:
        return {
            "series_id": self.series_id, "period_seconds": self.period_seconds, "phase_seconds": self.phase_seconds,
            "period_confidence": self.period_confidence, "season_lengths": list(self.season_lengths),
            "season_names": list(self.season_names), "season_strengths": list(self.season_strengths),
            "unit": self.unit, "first_ts": self.first_ts, "last_ts": self.last_ts, "n_raw": self.n_raw,
            "n_rows": self.n_rows, "n_missing": self.n_missing, "n_imputed": self.n_imputed,
            "n_anomalies": self.n_anomalies, "missing_ratio": self.missing_ratio,
            "anomaly_ratio": self.anomaly_ratio, "imputation_method": self.imputation_method,
            "events": [dict(e) for e in self.events], "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeriesProfile:
        d = dict(d)
        for k in ("season_lengths", "season_names", "season_strengths", "events"):
            d[k] = tuple(d.get(k) or ())
        d["season_lengths"] = tuple(int(x) for x in d["season_lengths"])
        known = set(cls.__dataclass_fields__)
        extra = dict(d.pop("extra", None) or {})
        extra.update({k: v for k, v in d.items() if k not in known})
        return cls(**{k: v for k, v in d.items() if k in known}, extra=extra)
