"""Anomaly detection and treatment.

Rules (bits of the per-row ``anomaly_code``, names in ``anomaly_method``): ``iqr`` / ``iqr_diff`` (IQR fences on
values and on differences), ``residual`` (robust z of a decomposition residual, per-series Python),
``decomposition`` (residual of a robust decomposition with the series' given season lengths, local robust
scale, plus a step test for level shifts; in the numba kernel), ``bounds`` (outside the declared physical
range) and ``stuck`` (a long run of identical readings).

Every flagged point gets a class (``anomaly_class``): faults (``spike``: an isolated 1-2 point excursion with
normal neighbours and opposite-sign jumps; ``implausible``: outside the bounds; ``stuck``) and events
(``episode``: a sustained excursion; ``level_shift``: a persistent change of level). The default treatment
``faults`` replaces faults only; ``none``, ``drop``, ``clip``/``minmax``, ``ema`` and ``interpolate`` act on every
flagged point, as before.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsops.quality import kernels as K

TREATMENTS = {"none": K.TREAT_NONE, "drop": K.TREAT_DROP, "clip": K.TREAT_CLIP, "minmax": K.TREAT_CLIP,
              "ema": K.TREAT_EMA, "interpolate": K.TREAT_INTERPOLATE}
#: treatment policies of the cleaning chain: the methods above (all flagged points) or 'faults'
TREATMENT_POLICIES = (*TREATMENTS, "faults")
METHOD_BITS = {"iqr": K.ANOM_IQR, "iqr_diff": K.ANOM_IQR_DIFF, "residual": K.ANOM_RESIDUAL,
               "decomposition": K.ANOM_DECOMP, "bounds": K.ANOM_BOUNDS, "stuck": K.ANOM_STUCK}
#: class code -> name ('' = not flagged)
CLASS_NAMES = ("", "spike", "implausible", "stuck", "episode", "level_shift")
FAULT_CLASSES = ("spike", "implausible", "stuck")
EVENT_CLASSES = ("episode", "level_shift")

_METHOD_NAMES = np.array(["+".join(n for n, b in METHOD_BITS.items() if c & b) for c in range(64)], dtype=object)


def method_names(code: np.ndarray) -> np.ndarray:
    """Anomaly bit codes -> '+'-joined method names ('' for none), e.g. 'iqr+iqr_diff'."""
    return _METHOD_NAMES[np.asarray(code, np.uint8) & 63]


def class_names(cls: np.ndarray) -> np.ndarray:
    """Anomaly class codes -> names ('' for a point not flagged)."""
    return np.array(CLASS_NAMES, dtype=object)[np.asarray(cls, np.uint8)]


def fault_mask(cls: np.ndarray) -> np.ndarray:
    """True where the class is a fault (spike, implausible, stuck)."""
    c = np.asarray(cls, np.uint8)
    return (c == K.CLS_SPIKE) | (c == K.CLS_IMPLAUSIBLE) | (c == K.CLS_STUCK)


def anomaly_events(ts_us: np.ndarray, raw: np.ndarray, cls: np.ndarray, score: np.ndarray,
                   treated: np.ndarray | None = None) -> list[dict]:
    """Group flagged rows into events: consecutive rows of one class (rows without a reading in between do not
    break a run). Each event: class, start / end (ISO timestamps), n_points, peak (the raw value furthest from
    the expected one) and peak_ts (its time; for a level shift the first reading at the new level), magnitude (that distance: the residual; for a level shift the change of level; None
    when the rule gives none, e.g. implausible or stuck readings) and n_treated."""
    cls = np.asarray(cls, np.uint8)
    raw = np.asarray(raw, float)
    flagged = np.flatnonzero(cls != 0)
    if flagged.size == 0:
        return []
    normal = (cls == 0) & np.isfinite(raw)  # a reading that is not flagged ends a run
    seen = np.cumsum(normal)
    brk = np.ones(flagged.size, bool)
    brk[1:] = (cls[flagged[1:]] != cls[flagged[:-1]]) | (seen[flagged[1:]] != seen[flagged[:-1]])
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], flagged.size)
    score = np.asarray(score, float)
    treated = np.zeros(cls.size, bool) if treated is None else np.asarray(treated, bool)
    ts_us = np.asarray(ts_us, np.int64)

    def iso(i: int) -> str:  # only the event bounds are converted (a whole series' index would cost more)
        return pd.Timestamp(int(ts_us[i]), unit="us", tz="UTC").isoformat()

    out = []
    for a, b in zip(starts, ends, strict=True):
        rows = flagged[a:b]
        sc = np.abs(score[rows])
        if np.isfinite(sc).any():
            p = rows[int(np.nanargmax(sc))]
            mag = float(score[p])
        else:
            p, mag = rows[0], None
        out.append({"class": CLASS_NAMES[cls[rows[0]]], "start": iso(rows[0]),
                    "end": iso(rows[-1]), "peak_ts": iso(p), "n_points": int(rows.size),
                    "peak": float(raw[p]) if np.isfinite(raw[p]) else None, "magnitude": mag,
                    "n_treated": int(treated[rows].sum())})
    return out


def iqr_anomalies(values: np.ndarray, k: float = 1.5, k_diff: float | None = None,
                  usable: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """IQR rule: return (bit codes, lower fence, upper fence).

    A value outside ``[q1 - k*IQR, q3 + k*IQR]`` gets bit 1 ('iqr'); with ``k_diff``, a point whose
    differences to both neighbours are outside the IQR fences of all differences, with opposite signs (a
    spike), gets bit 2 ('iqr_diff'). ``usable`` restricts the rule to real readings.
    """
    v = np.ascontiguousarray(values, float)
    use = np.ones(v.size, bool) if usable is None else np.ascontiguousarray(usable, bool)
    code = np.zeros(v.size, np.uint8)
    methods = K.ANOM_IQR | (K.ANOM_IQR_DIFF if k_diff is not None else 0)
    lo, hi = K.detect_anomalies(v, use, methods, float(k), float(k_diff or 0.0), code)
    return code, float(lo), float(hi)


def robust_z(x: np.ndarray) -> np.ndarray:
    """0.6745 * (x - median) / MAD (NaN-aware; zeros when MAD is 0)."""
    x = np.asarray(x, float)
    med = np.nanmedian(x)
    mad = np.nanmedian(np.abs(x - med))
    if not np.isfinite(mad) or mad == 0:
        return np.zeros_like(x)
    return 0.6745 * (x - med) / mad


def residual_anomalies(values: np.ndarray, season_length: int | None, threshold: float = 3.5,
                       method: str = "robust") -> tuple[np.ndarray, np.ndarray]:
    """Residual analysis: robust z-score of the decomposition residual; return (mask, z).

    ``method='robust'`` (default) uses the rolling-median / per-phase-median decomposition, which a spike
    cannot bend; ``'stl'`` uses robust STL (on short series STL may absorb a spike into the seasonal part).
    """
    from tsops.analysis.decompose import decompose, robust_decompose

    if method == "robust":
        resid = robust_decompose(values, season_length)["resid"].to_numpy()
    elif method == "stl":
        resid = decompose(values, season_length)["resid"].to_numpy()
    else:
        raise ValueError(f"residual method must be 'robust' or 'stl', got {method!r}")
    z = robust_z(resid)
    return np.abs(z) > threshold, z


def apply_treatment(ts_us: np.ndarray, values: np.ndarray, anomalous: np.ndarray, method: str,
                    lo: float = -np.inf, hi: float = np.inf, alpha: float = 0.3,
                    classes: np.ndarray | None = None, fault_method: str = "interpolate") -> np.ndarray:
    """Return a treated copy: 'drop' (NaN), 'clip'/'minmax' (to the fences), 'ema', 'interpolate', 'none' on the
    ``anomalous`` points; 'faults' applies ``fault_method`` to the points whose ``classes`` are faults only."""
    if method == "faults":
        if classes is None:
            raise ValueError("treatment 'faults' needs the anomaly classes (classes=...)")
        return apply_treatment(ts_us, values, np.asarray(anomalous, bool) & fault_mask(classes), fault_method,
                               lo, hi, alpha)
    if method not in TREATMENTS:
        raise ValueError(f"unknown treatment {method!r}; choose one of {sorted(TREATMENT_POLICIES)}")
    v = np.array(values, float, copy=True)
    code = np.asarray(anomalous).astype(np.uint8)
    K.treat(np.ascontiguousarray(ts_us, np.int64), v, code, TREATMENTS[method], float(lo), float(hi),
            float(alpha))
    return v
