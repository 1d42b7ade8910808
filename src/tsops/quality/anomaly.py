"""Anomaly detection (IQR on values and differences, robust z of the decomposition residual) and treatment."""

from __future__ import annotations

import numpy as np

from tsops.quality import kernels as K

TREATMENTS = {"none": K.TREAT_NONE, "drop": K.TREAT_DROP, "clip": K.TREAT_CLIP, "minmax": K.TREAT_CLIP,
              "ema": K.TREAT_EMA, "interpolate": K.TREAT_INTERPOLATE}
METHOD_BITS = {"iqr": K.ANOM_IQR, "iqr_diff": K.ANOM_IQR_DIFF, "residual": K.ANOM_RESIDUAL}


def method_names(code: np.ndarray) -> np.ndarray:
    """Anomaly bit codes -> '+'-joined method names ('' for none), e.g. 'iqr+iqr_diff'."""
    code = np.asarray(code, np.uint8)
    names = np.array([""] * 8, dtype=object)
    for c in range(8):
        names[c] = "+".join(n for n, b in METHOD_BITS.items() if c & b)
    return names[code]


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
                    lo: float = -np.inf, hi: float = np.inf, alpha: float = 0.3) -> np.ndarray:
    """Return a treated copy: 'drop' (NaN), 'clip'/'minmax' (to the fences), 'ema', 'interpolate', 'none'."""
    if method not in TREATMENTS:
        raise ValueError(f"unknown treatment {method!r}; choose one of {sorted(TREATMENTS)}")
    v = np.array(values, float, copy=True)
    code = np.asarray(anomalous).astype(np.uint8)
    K.treat(np.ascontiguousarray(ts_us, np.int64), v, code, TREATMENTS[method], float(lo), float(hi),
            float(alpha))
    return v
