"""Pure helpers between tables and the DTW engine: column selection, long-to-wide, patterns, level filter."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

_RANGE = re.compile(r"^(?P<prefix>.*?)(?P<a>\d+)\.\.(?P=prefix)?(?P<b>\d+)$")
_INDEX_NAMES = {"week", "step", "t", "ts", "time", "date", "timestamp", "index", "period"}


def parse_value_columns(spec: str, available: Sequence[str]) -> list[str]:
    """``"W0..W51"``, ``"a,b,c"`` or a mix (``"W0..W9,W20"``) -> column names, each checked against ``available``.

    A range ``P<a>..P<b>`` (or ``P<a>..<b>``) expands to ``P<a>, P<a+1>, ..., P<b>``.
    """
    cols: list[str] = []
    for part in (s.strip() for s in spec.split(",")):
        if not part:
            continue
        m = _RANGE.match(part)
        if m and ".." in part:
            a, b = int(m["a"]), int(m["b"])
            step = 1 if b >= a else -1
            cols.extend(f"{m['prefix']}{i}" for i in range(a, b + step, step))
        else:
            cols.append(part)
    if not cols:
        raise ValueError(f"--value-columns {spec!r} names no column")
    have = set(map(str, available))
    missing = [c for c in cols if c not in have]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(f"value columns not in the input: {shown} (available: {', '.join(list(map(str, available))[:8])}...)")
    return cols


def wide_matrix(
    df: pd.DataFrame, id_column: str | None = None, value_columns: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(values float (n, m), ids, value column names) from a wide frame.

    Default value columns: every numeric column except the id column. Without an id column the ids are the
    frame's index.
    """
    if id_column is not None and id_column not in df.columns:
        raise ValueError(f"id column {id_column!r} not in the input (columns: {', '.join(map(str, df.columns[:8]))}...)")
    if value_columns is None:
        value_columns = [c for c in df.columns if c != id_column and pd.api.types.is_numeric_dtype(df[c])]
        if not value_columns:
            raise ValueError("the input has no numeric value columns")
    value_columns = [str(c) for c in value_columns]
    frame = df.rename(columns=str)
    bad = [c for c in value_columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise ValueError(f"value columns are not numeric: {', '.join(bad[:5])}")
    ids = frame[id_column].to_numpy() if id_column is not None else frame.index.to_numpy()
    return frame[value_columns].to_numpy(dtype=np.float64), ids, value_columns


def to_wide(
    long_df: pd.DataFrame,
    freq: str,
    agg: str = "mean",
    id_col: str = "series_id",
    ts_col: str = "ts",
    value_col: str = "value",
) -> pd.DataFrame:
    """Pivot a long frame (series_id, ts, value) onto one regular grid of ``freq`` bins.

    Rows = series (index ``series_id``), columns = bin start timestamps spanning the union of all series;
    values are aggregated per bin with ``agg`` ("mean", "sum", "last", ...); empty bins are NaN. Fixed
    frequencies ("15min", "h", "D") bin by flooring; calendar ones ("W", "MS", "M") by calendar period.
    Time-zone-aware timestamps are converted to UTC first.
    """
    missing = [c for c in (id_col, ts_col, value_col) if c not in long_df.columns]
    if missing:
        raise ValueError(f"long input lacks column(s) {missing}; expected {id_col}, {ts_col}, {value_col}")
    if len(long_df) == 0:
        raise ValueError("long input is empty")
    ts = pd.to_datetime(long_df[ts_col], errors="coerce")
    if ts.isna().any():
        raise ValueError(f"{int(ts.isna().sum())} rows have a missing or unparseable {ts_col!r}")
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    offset = pd.tseries.frequencies.to_offset(freq)
    try:
        offset.nanos  # noqa: B018  (raises for calendar offsets)
        fixed = True
    except ValueError:
        fixed = False
    if fixed:
        bins = ts.dt.floor(freq)
        grid = pd.date_range(bins.min(), bins.max(), freq=freq)
    else:
        periods = ts.dt.to_period(freq)
        bins = periods.dt.start_time
        grid = pd.period_range(periods.min(), periods.max(), freq=periods.dt.freq).start_time
    frame = pd.DataFrame({"sid": long_df[id_col].to_numpy(), "bin": bins.to_numpy(), "v": long_df[value_col].to_numpy()})
    wide = frame.groupby(["sid", "bin"])["v"].agg(agg).unstack("bin")
    wide = wide.reindex(columns=grid)
    wide.columns.name = None
    wide.index.name = id_col
    return wide.astype(float)


def read_pattern(path: str, column: str | None = None) -> np.ndarray:
    """Pattern values from a file: a CSV column (``column``, else the only/last numeric non-index column),
    or plain numbers separated by commas/whitespace/newlines."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    tokens = [t for t in re.split(r"[,\s;]+", text.strip()) if t]
    try:
        return np.array([float(t) for t in tokens], dtype=float)
    except ValueError:
        pass
    df = pd.read_csv(path)
    if column is not None:
        if column not in df.columns:
            raise ValueError(f"pattern column {column!r} not in {path} (columns: {list(df.columns)})")
        values = pd.to_numeric(df[column], errors="raise")
    else:
        numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        numeric = [c for c in numeric if str(c).lower() not in _INDEX_NAMES] or numeric
        if not numeric:
            raise ValueError(f"{path} has no numeric column to use as the pattern")
        values = df[numeric[-1]]
    out = values.to_numpy(dtype=float)
    if not np.isfinite(out).all():
        raise ValueError(f"pattern in {path} has missing or non-numeric values at rows {np.flatnonzero(~np.isfinite(out)).tolist()[:5]}")
    return out


def parse_pattern_values(spec: str) -> np.ndarray:
    """``"1,2,3.5"`` -> array."""
    try:
        return np.array([float(t) for t in spec.split(",") if t.strip()], dtype=float)
    except ValueError as exc:
        raise ValueError(f"--pattern-values must be comma-separated numbers: {exc}") from None


def scale_filter(series: np.ndarray, pattern: np.ndarray, tolerance: float) -> np.ndarray:
    """Mask of series whose mean level is within a factor ``tolerance`` of the pattern's mean.

    Keeps rows with ``1/tolerance <= mean(series)/mean(pattern) <= tolerance`` (NaNs ignored in the mean).
    """
    if not tolerance >= 1:
        raise ValueError(f"scale tolerance is a ratio >= 1 (e.g. 2 keeps means within x0.5..x2), got {tolerance}")
    level = float(np.mean(pattern))
    if level <= 0:
        raise ValueError(f"scale tolerance needs a pattern with a positive mean level, got {level:g}")
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.nanmean(np.asarray(series, dtype=float), axis=1) if np.size(series) else np.empty(0)
    ratio = means / level
    return (ratio >= 1.0 / tolerance) & (ratio <= tolerance)
