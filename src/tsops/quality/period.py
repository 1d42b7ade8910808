"""Sampling-period estimation for irregular, jittered, gappy timestamps."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from tsops.quality.kernels import NAT, estimate_period_sorted


@dataclass(frozen=True)
class PeriodEstimate:
    """Result of :func:`estimate_period`.

    ``period`` is None when fewer than three distinct timestamps are given. ``phase`` is the offset of the
    sampling grid from the Unix epoch, in ``[0, period)``. ``explained_share`` is the share of consecutive
    differences that are (within a quarter period) integer multiples of ``period``; ``jitter`` is the sd of
    the timestamps around the fitted grid, relative to the period; ``confidence`` in [0, 1] combines both.
    """

    period: pd.Timedelta | None
    phase: pd.Timedelta
    confidence: float
    explained_share: float
    jitter: float
    n_timestamps: int

    @property
    def period_seconds(self) -> float | None:
        return None if self.period is None else self.period.total_seconds()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["period_seconds"] = self.period_seconds
        d["phase_seconds"] = self.phase.total_seconds()
        d["period"] = None if self.period is None else str(self.period)
        d["phase"] = str(self.phase)
        d["jitter"] = None if not math.isfinite(self.jitter) else self.jitter
        return d


def to_epoch_us(timestamps) -> np.ndarray:
    """Timestamps (datetime-like, strings, or int64 microseconds) to int64 microseconds UTC; NaT -> NAT."""
    if isinstance(timestamps, np.ndarray) and timestamps.dtype == np.int64:
        return timestamps
    if isinstance(timestamps, pd.Series) and isinstance(timestamps.dtype, pd.DatetimeTZDtype):
        timestamps = pd.DatetimeIndex(timestamps)
    if isinstance(timestamps, pd.DatetimeIndex):  # fast path: no parsing, naive taken as UTC
        return timestamps.as_unit("us").asi8.astype(np.int64, copy=False)
    idx = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True))
    return idx.as_unit("us").asi8.astype(np.int64, copy=False)


def estimate_period(timestamps, coverage: float = 0.95, tol: float = 0.1,
                    max_sample: int = 1024) -> PeriodEstimate:
    """Estimate the sampling period and phase of a series from its timestamps.

    Takes the differences of the sorted distinct timestamps, clusters them (a new cluster where sorted
    differences jump by more than ``tol`` relative), keeps the clusters that hold ``coverage`` of the
    differences, and takes the approximate GCD of their modes as the period; it is then refined by a
    least-squares fit of the timestamps on their grid index, which also gives the phase. Robust to jitter of
    a few percent, missing samples, duplicates, out-of-order arrival and mixed multiples of the period.
    ``timestamps`` may be anything :func:`pandas.to_datetime` accepts, or int64 epoch microseconds.
    """
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    t = to_epoch_us(np.asarray(timestamps) if not isinstance(timestamps, pd.Index | pd.Series) else timestamps)
    t = np.unique(t[t != NAT])
    p, phase, conf, expl, jit = estimate_period_sorted(t, coverage, tol, max_sample)
    if not math.isfinite(p):
        return PeriodEstimate(None, pd.Timedelta(0), 0.0, 0.0, float("nan"), int(t.size))
    return PeriodEstimate(
        period=pd.Timedelta(int(round(p)), unit="us"),
        phase=pd.Timedelta(int(round(phase)), unit="us"),
        confidence=float(conf), explained_share=float(expl), jitter=float(jit), n_timestamps=int(t.size),
    )


def exact_gcd_period(timestamps) -> pd.Timedelta | None:
    """Baseline: the exact GCD of all positive timestamp differences (collapses under jitter)."""
    t = np.unique(to_epoch_us(timestamps))
    d = np.diff(t)
    d = d[d > 0]
    if d.size == 0:
        return None
    return pd.Timedelta(int(np.gcd.reduce(d)), unit="us")
