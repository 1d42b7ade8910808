"""Training data for the forecasters: a dataset of the lake as a :class:`~tsops.models.base.Panel`.

The ``clean`` zone is already on each series' regular grid; when it is empty the ``raw`` zone is read and put
on a grid here: one sampling interval for the dataset (the median spacing of consecutive observations), each
series' grid anchored at its last observation, the mean of the observations falling into a slot, and gaps of
at most ``max_gap`` slots interpolated linearly (longer gaps stay missing; the models fill them).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from tsops.datamodel import SERIES_ID, TS, VALUE
from tsops.models.base import Panel, as_panel

log = logging.getLogger(__name__)


NICE_INTERVALS = tuple(pd.Timedelta(x) for x in (
    "1s", "5s", "10s", "15s", "30s", "1min", "2min", "5min", "10min", "15min", "20min", "30min",
    "1h", "2h", "3h", "4h", "6h", "12h", "1D", "7D"))


def snap_interval(step: pd.Timedelta, tolerance: float = 0.05) -> pd.Timedelta:
    """``step`` snapped to a common interval (1 min, 15 min, 1 h, 1 day, ...) within ``tolerance``,
    else rounded to whole seconds (jittered timestamps give medians such as 59 min 58 s)."""
    for nice in NICE_INTERVALS:
        if abs(step - nice) <= tolerance * nice:
            return nice
    return max(pd.Timedelta(step).round("1s"), pd.Timedelta("1s"))


def median_interval(df: pd.DataFrame) -> pd.Timedelta:
    """The common grid step of a long ``series_id, ts`` frame: each series' median spacing of consecutive
    timestamps, the coarsest of them, snapped with :func:`snap_interval`.

    Series sampled at different periods (CO2 every 10 min, humidity every 30 s) all land on the coarsest
    series' grid, the faster ones averaged per slot, so no series is mostly empty slots on a grid finer than
    its own sampling.
    """
    s = df[[SERIES_ID, TS]].sort_values([SERIES_ID, TS]).reset_index(drop=True)
    d = s.groupby(SERIES_ID, sort=False)[TS].diff()
    ok = d > pd.Timedelta(0)
    if not ok.any():
        raise ValueError("cannot infer a sampling interval: every series has fewer than two distinct timestamps")
    per_series = d[ok].groupby(s.loc[ok, SERIES_ID]).median()
    return snap_interval(pd.Timedelta(per_series.max()))


def regularize(
    df: pd.DataFrame, freq: pd.Timedelta | str | None = None, max_gap: int = 3, max_slots: int | None = None
) -> pd.DataFrame:
    """Put a long ``series_id, ts, value`` frame on a regular grid per series (pure, returns a new frame).

    ``freq`` defaults to :func:`median_interval`. Each series' grid ends at its last observation; observations
    are averaged per slot; runs of up to ``max_gap`` empty slots are interpolated linearly, longer runs stay
    NaN. Timestamps come back as naive UTC. ``max_slots`` bounds the grid length of a series (a ValueError
    names the series whose timestamps span more intervals).
    """
    missing = [c for c in (SERIES_ID, TS, VALUE) if c not in df.columns]
    if missing:
        raise ValueError(f"history lacks column(s) {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError("history is empty: give at least two observations per series")
    out = pd.DataFrame({
        SERIES_ID: df[SERIES_ID].astype(str).to_numpy(),
        TS: to_naive_utc(df[TS]),
        VALUE: pd.to_numeric(df[VALUE], errors="raise").astype(float).to_numpy(),
    })
    out = out[out[VALUE].notna() & np.isfinite(out[VALUE])]
    if out.empty:
        raise ValueError("history has no finite values")
    step = pd.Timedelta(freq) if freq is not None else median_interval(out)
    if step <= pd.Timedelta(0):
        raise ValueError(f"sampling interval must be positive (got {step})")
    parts = []
    for sid, g in out.groupby(SERIES_ID, sort=True):
        last = g[TS].max()
        slot = np.round((g[TS] - last) / step).astype(np.int64).to_numpy()
        if max_slots is not None and -int(slot.min()) + 1 > max_slots:
            raise ValueError(f"series {sid!r} spans {-int(slot.min()) + 1} intervals of {step} from "
                             f"{g[TS].min()} to {last}: at most {max_slots} are allowed")
        means = pd.Series(g[VALUE].to_numpy()).groupby(slot).mean()
        grid = np.arange(int(slot.min()), 1)
        v = means.reindex(grid)
        if max_gap > 0 and v.isna().any():
            v = v.interpolate(method="linear", limit=max_gap, limit_area="inside")
            # interpolate(limit=) fills the first max_gap points of longer runs too: undo those
            run_len = _nan_run_lengths(means.reindex(grid).isna().to_numpy())
            v[(run_len > max_gap)] = np.nan
        parts.append(pd.DataFrame({SERIES_ID: sid, TS: last + grid * step, VALUE: v.to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def _nan_run_lengths(isnan: np.ndarray) -> np.ndarray:
    """For each position, the length of the run of NaNs it belongs to (0 for observed points)."""
    out = np.zeros(len(isnan), dtype=np.int64)
    i = 0
    while i < len(isnan):
        if isnan[i]:
            j = i
            while j < len(isnan) and isnan[j]:
                j += 1
            out[i:j] = j - i
            i = j
        else:
            i += 1
    return out


def to_naive_utc(ts: Any) -> pd.Series:
    """Timestamps (datetimes, ISO strings, tz-aware or not) as naive UTC ``datetime64[ns]``."""
    s = pd.to_datetime(pd.Series(ts), utc=True, errors="raise", format="mixed") if not (
        pd.api.types.is_datetime64_any_dtype(ts)) else pd.Series(ts)
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.astype("datetime64[ns]").reset_index(drop=True)


def trim(panel: Panel, max_points: int | None) -> Panel:
    """Keep each series' last ``max_points`` points."""
    if not max_points:
        return panel
    return Panel(list(panel.ids), [v[-max_points:] for v in panel.values], list(panel.end_ts), panel.freq)


def load_frame(project, dataset: str, zone: str = "clean", series: list[str] | None = None,
               start=None, end=None) -> tuple[pd.DataFrame, str]:
    """Observations of ``dataset`` as a ``series_id, ts, value`` frame and the zone they came from.

    Reads ``zone`` (default ``clean``) and falls back to ``raw`` when it holds nothing for the request.
    """
    project.dataset(dataset)  # raises a ConfigError naming the known datasets
    lake = project.lake()
    for z in dict.fromkeys([zone, "raw"]):
        t = lake.read(z, dataset, start=start, end=end, series=series)
        if t.num_rows:
            cols = [c for c in (SERIES_ID, TS, VALUE) if c in t.column_names]
            df = t.select(cols).to_pandas()
            log.info("read %d rows of %s from the %s zone", len(df), dataset, z)
            return df, z
    what = f"series {series}" if series else "any series"
    raise LookupError(f"the lake has no {zone!r} or 'raw' data of dataset {dataset!r} for {what}: "
                      "run `tsops ingest` (and the cleaning step) first")


def load_panel(project, dataset: str, zone: str = "clean", series: list[str] | None = None,
               max_points: int | None = None, max_gap: int = 3, freq=None) -> Panel:
    """The dataset as a :class:`Panel` on a regular grid (see the module docstring)."""
    df, _ = load_frame(project, dataset, zone, series)
    grid = regularize(df, freq=freq, max_gap=max_gap)
    return trim(as_panel(grid), max_points)
