"""Which natural cycles (daily, weekly, yearly) a regularly sampled series really has, in samples of its grid.

A cycle is a *candidate* when it is an integer number (>= 2) of sampling periods (rounded: a 597 s grid gives a
daily cycle of 145 samples) and the series covers at least ``min_cycles`` of it. A candidate is *detected* when
the autocorrelation at its lag, of the series with its slower movements removed, reaches ``threshold`` (or, over
ten cycles or more, its per-phase means explain at least ``min_explained`` of what is left, and five times what
they explain of pure noise):

* the series is detrended by a centred moving average one cycle long (a straight line when the history holds
  fewer than three cycles), so persistence (a random walk, a slow drift) does not pass for seasonality;
* candidates are tested from the shortest up, each on what the cycles detected before it leave (their per-phase
  means removed), so a weekly cycle is reported only when it adds to the daily one (a daily cycle alone also
  repeats every week).

The strongest detected cycle comes first in the result; it is what seasonal models use as their season.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: natural cycles, shortest first: (name, seconds)
CYCLES: tuple[tuple[str, float], ...] = (("daily", 86_400.0), ("weekly", 7 * 86_400.0), ("yearly", 365.25 * 86_400.0))


@dataclass(frozen=True)
class Season:
    """A detected cycle: its name, length in samples, strength (autocorrelation at that lag of the detrended
    series, in [-1, 1]) and the share of the detrended variance its per-phase means explain."""

    name: str
    length: int
    strength: float
    explained: float = 0.0


def candidate_lengths(period_seconds: float, n: int, min_cycles: float = 2.0) -> list[tuple[str, int]]:
    """(name, samples) of the natural cycles a series of ``n`` samples every ``period_seconds`` can show."""
    if not period_seconds or period_seconds <= 0 or not np.isfinite(period_seconds):
        return []
    out = []
    for name, cycle in CYCLES:
        k = int(round(cycle / period_seconds))
        if k >= 2 and n >= min_cycles * k:
            out.append((name, k))
    return out


def _fill(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    if ok.all():
        return x
    i = np.arange(x.size)
    return np.interp(i, i[ok], x[ok])


def _detrend(x: np.ndarray, k: int) -> np.ndarray:
    """x minus a centred moving average one cycle (``k`` samples) long; NaN where the window does not fit.
    With fewer than three cycles, x minus its least-squares line."""
    n = x.size
    if n < 3 * k:
        t = np.arange(n, dtype=float)
        a, b = np.polyfit(t, x, 1)
        return x - (a * t + b)
    c = np.concatenate([[0.0], np.cumsum(x)])
    if k % 2:  # odd: plain centred window
        h = k // 2
        ma = (c[k:] - c[:-k]) / k
        out = np.full(n, np.nan)
        out[h:n - h] = x[h:n - h] - ma
        return out
    # even: 2 x k moving average (the classical centred one)
    m1 = (c[k:] - c[:-k]) / k  # windows [i, i+k)
    ma = (m1[:-1] + m1[1:]) / 2  # centred on i + k/2
    h = k // 2
    out = np.full(n, np.nan)
    out[h:h + ma.size] = x[h:h + ma.size] - ma
    return out


def _acf_at(x: np.ndarray, lag: int) -> float:
    a, b = x[:-lag], x[lag:]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < max(8, lag // 4):
        return float("nan")
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def _phase_means(x: np.ndarray, k: int) -> np.ndarray:
    ph = np.arange(x.size) % k
    ok = np.isfinite(x)
    s = np.bincount(ph[ok], weights=x[ok], minlength=k)
    c = np.bincount(ph[ok], minlength=k)
    m = np.where(c > 0, s / np.maximum(c, 1), 0.0)
    return m - m.mean()


def _explained(d: np.ndarray, seasonal: np.ndarray, k: int) -> float:
    """Share of the detrended variance the per-phase means explain (seasonal strength, 0..1)."""
    ok = np.isfinite(d)
    if ok.sum() < 2:
        return 0.0
    resid = d[ok] - seasonal[np.arange(d.size)[ok] % k]
    v = float(np.var(d[ok]))
    return max(0.0, 1.0 - float(np.var(resid)) / v) if v > 0 else 0.0


def detect_seasons(values: np.ndarray, period_seconds: float | None, *, threshold: float = 0.3,
                   min_explained: float = 0.1, min_cycles: float = 2.0) -> list[Season]:
    """The natural cycles of a series on its regular grid (NaN = missing), strongest first; [] when none.

    Detected: autocorrelation at the cycle's lag >= ``threshold``, or, over at least ten cycles (where per-phase
    means are stable), per-phase means that explain >= ``min_explained`` of the detrended variance.

    ``values`` are consecutive grid points (period ``period_seconds``), oldest first; NaNs are interpolated.
    """
    x = np.asarray(values, float)
    if period_seconds is None or np.isfinite(x).sum() < 16:
        return []
    cands = candidate_lengths(float(period_seconds), x.size, min_cycles)
    if not cands:
        return []
    x = _fill(x)
    if np.nanstd(x) == 0:
        return []
    found: list[Season] = []
    rest = x.copy()
    for name, k in cands:
        d = _detrend(rest, k)
        r = _acf_at(d, k)
        seasonal = _phase_means(d, k)
        explained = _explained(d, seasonal, k)
        long_history = x.size >= 10 * k
        # per-phase means of pure noise explain about k / n of the variance: ask for five times that
        floor = max(min_explained, 5.0 * k / x.size)
        if np.isfinite(r) and (r >= threshold or (long_history and r > 0 and explained >= floor)):
            found.append(Season(name, k, round(r, 4), round(explained, 4)))
            rest = rest - seasonal[np.arange(rest.size) % k]
    return sorted(found, key=lambda s: -s.strength)


__all__ = ["CYCLES", "Season", "candidate_lengths", "detect_seasons"]
