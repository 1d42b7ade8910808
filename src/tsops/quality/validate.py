"""Schema and timestamp validation of long-format frames, reported per series with counts and examples."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("series_id", "ts", "value")
MAX_EXAMPLES = 5


@dataclass
class Issue:
    """One kind of violation in one series: a code, how many rows, and a few example values."""

    code: str
    count: int
    message: str
    examples: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"code": self.code, "count": int(self.count), "message": self.message,
                "examples": [str(e) for e in self.examples[:MAX_EXAMPLES]]}


@dataclass
class ValidationResult:
    """The normalised frame (ts as datetime64[us, UTC], value float64) and the issues per series."""

    frame: pd.DataFrame
    issues: dict[str, list[Issue]]

    def to_dict(self) -> dict:
        return {sid: [i.to_dict() for i in lst] for sid, lst in self.issues.items()}

    def counts(self) -> pd.DataFrame:
        """One row per (series_id, code) with the count: handy for reports."""
        rows = [(sid, i.code, i.count) for sid, lst in self.issues.items() for i in lst]
        return pd.DataFrame(rows, columns=["series_id", "code", "count"])


def _add(issues: dict, sid: str, issue: Issue) -> None:
    issues.setdefault(str(sid), []).append(issue)


def _per_series(issues: dict, df: pd.DataFrame, mask: np.ndarray, code: str, message: str, col: str) -> None:
    if not mask.any():
        return
    bad = df.loc[mask, ["series_id", col]]
    for sid, grp in bad.groupby("series_id", sort=True, observed=True):
        _add(issues, sid, Issue(code, len(grp), message, grp[col].head(MAX_EXAMPLES).tolist()))


def validate_frame(df: pd.DataFrame, now: pd.Timestamp | None = None,
                   future_tolerance: pd.Timedelta = pd.Timedelta(minutes=5),
                   consistent_columns: tuple[str, ...] = ("unit",)) -> ValidationResult:
    """Check schema and timestamps of a long frame; return it normalised plus the issues per series.

    Checks: required columns; ``ts`` parseable (unparseable -> NaT, counted), time zone (naive timestamps
    are taken as UTC and reported, others converted to UTC), not in the future (beyond ``future_tolerance``),
    arrival order (rows going back in time before sorting); ``value`` numeric (non-numeric -> NaN, counted;
    +-inf counted); attribute columns in ``consistent_columns`` (e.g. ``unit``) constant per series.
    Rows are not dropped here: the cleaning kernels drop NaT / future rows and count them.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"long frame is missing required column(s) {missing}; got columns {list(df.columns)}")
    out = df.copy()
    issues: dict[str, list[Issue]] = {}
    out["series_id"] = out["series_id"].astype(str)
    ts = out["ts"]
    if pd.api.types.is_datetime64_any_dtype(ts):
        if getattr(ts.dt, "tz", None) is None:
            for sid, n in out.groupby("series_id", observed=True).size().items():
                _add(issues, sid, Issue("ts_naive_timezone", int(n), "tz-naive timestamps taken as UTC"))
            parsed = ts.dt.tz_localize("UTC")
        else:
            parsed = ts.dt.tz_convert("UTC")
    else:
        if pd.api.types.is_numeric_dtype(ts):
            raise ValueError("column 'ts' is numeric: convert epoch numbers with pd.to_datetime(unit=...) first")
        parsed = pd.to_datetime(ts, utc=True, errors="coerce", format="mixed")
        bad = parsed.isna().to_numpy() & ts.notna().to_numpy()
        _per_series(issues, out, bad, "ts_unparseable", "timestamps that could not be parsed", "ts")
    out["ts"] = parsed.dt.as_unit("us")
    _per_series(issues, out, df["ts"].isna().to_numpy(), "ts_null", "rows without a timestamp", "ts")
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now.tzinfo is None:
        now = now.tz_localize("UTC")
    fut = (out["ts"] > now + future_tolerance).to_numpy()
    _per_series(issues, out, fut, "ts_future", f"timestamps after {now + future_tolerance}", "ts")
    # arrival order: a row earlier than the previous row of the same series
    t64 = out["ts"].astype("int64").where(~out["ts"].isna())
    prev = t64.groupby(out["series_id"], observed=True).shift(1)
    ooo = (t64 < prev).to_numpy()
    _per_series(issues, out, ooo, "ts_out_of_order", "rows that arrived earlier than the previous row (sorted)",
                "ts")
    val = out["value"]
    if not pd.api.types.is_float_dtype(val):
        num = pd.to_numeric(val, errors="coerce")
        bad = num.isna().to_numpy() & val.notna().to_numpy()
        _per_series(issues, out, bad, "value_not_numeric", "values that are not numbers (set to NaN)", "value")
        val = num
    out["value"] = val.astype("float64")
    _per_series(issues, out, np.isinf(out["value"].to_numpy()), "value_infinite", "infinite values (set to NaN)",
                "value")
    for col in consistent_columns:
        if col not in out.columns:
            continue
        nun = out.groupby("series_id", observed=True)[col].nunique(dropna=True)
        for sid in nun[nun > 1].index:
            vals = out.loc[out["series_id"] == sid, col].dropna().unique().tolist()
            _add(issues, sid, Issue(f"{col}_inconsistent", len(vals), f"more than one {col} in the series", vals))
    return ValidationResult(out, issues)
