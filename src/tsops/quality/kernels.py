"""Numba kernels of the cleaning chain.

Everything here works on plain arrays: timestamps as int64 microseconds since the epoch (UTC), values as
float64 (NaN = missing reading). ``clean_many`` runs the whole chain (validate -> dedup -> period -> gaps ->
impute -> anomalies -> treatment) over many series at once, laid out CSR-style: series ``s`` occupies
``ts[offsets[s]:offsets[s + 1]]``. The per-series pandas API in :mod:`tsops.quality.chain` calls the very same
kernels on a single series, so both paths give identical numbers.

Anomalies (issue 12): :func:`detect_events` flags readings outside the declared bounds, long runs of identical
readings, and residuals of a robust decomposition with the series' given season lengths
(:func:`robust_decompose_seasons`), adds a step test for level shifts, and classifies every flagged reading
(spike / implausible / stuck = faults; episode / level_shift = events). ``TREAT_FAULTS`` replaces faults only.
"""

from __future__ import annotations

import types

import numpy as np
from numba import njit, prange

NAT = np.iinfo(np.int64).min

# dedup policies
DEDUP_LAST, DEDUP_FIRST, DEDUP_MEAN, DEDUP_FLAG = 0, 1, 2, 3
# imputation methods done in the kernel (spline/seasonal are done in numpy/scipy on top)
IMPUTE_NONE, IMPUTE_LINEAR, IMPUTE_LOCF, IMPUTE_EMA = 0, 1, 2, 3
# anomaly bits (which rule flagged a point)
ANOM_IQR, ANOM_IQR_DIFF, ANOM_RESIDUAL, ANOM_DECOMP, ANOM_BOUNDS, ANOM_STUCK = 1, 2, 4, 8, 16, 32
# anomaly classes (what a flagged point is): faults are spike, implausible and stuck; episodes and level shifts
# are real events
CLS_NONE, CLS_SPIKE, CLS_IMPLAUSIBLE, CLS_STUCK, CLS_EPISODE, CLS_LEVEL_SHIFT = 0, 1, 2, 3, 4, 5
# treatments; TREAT_FAULTS applies the fault method to the fault classes only
TREAT_NONE, TREAT_DROP, TREAT_CLIP, TREAT_EMA, TREAT_INTERPOLATE, TREAT_FAULTS = 0, 1, 2, 3, 4, 5
# slots of the anomaly parameter vector ``ap`` (see CleaningConfig.anomaly_params)
AP_Z, AP_LO, AP_HI, AP_LEVEL_W, AP_SHIFT_W, AP_SHIFT_Z, AP_STUCK, AP_SPIKE_LEN, AP_NORMAL, AP_FLOOR = range(10)
N_AP = 10

# per-series statistics returned by clean_many (column order of the ``stats`` matrix)
STAT_FIELDS = (
    "n_raw", "n_nat", "n_future", "n_nonfinite", "n_out_of_order", "n_exact_duplicates",
    "n_conflicting_duplicates", "n_valid", "period_us", "phase_us", "confidence", "explained_share",
    "jitter", "n_out", "n_missing_inserted", "n_nan_readings", "n_imputed", "n_anomalies",
    "n_gaps_unfilled", "fence_lo", "fence_hi",
    # anomaly classes (points) and treated rows (issue 12)
    "n_spike", "n_implausible", "n_stuck", "n_episode", "n_level_shift", "n_treated",
)
N_STATS = len(STAT_FIELDS)
_S = {name: i for i, name in enumerate(STAT_FIELDS)}
S_N_RAW, S_N_NAT, S_N_FUTURE, S_N_NONFINITE, S_N_OOO = 0, 1, 2, 3, 4
S_N_EXACT, S_N_CONFLICT, S_N_VALID, S_PERIOD, S_PHASE = 5, 6, 7, 8, 9
S_CONF, S_EXPL, S_JITTER, S_N_OUT, S_N_MISSING = 10, 11, 12, 13, 14
S_N_NANREAD, S_N_IMPUTED, S_N_ANOM, S_N_UNFILLED, S_LO, S_HI = 15, 16, 17, 18, 19, 20
S_N_SPIKE = _S["n_spike"]  # n_spike .. n_level_shift follow in class order (S_N_SPIKE + cls - 1)
S_N_TREATED = _S["n_treated"]


# --------------------------------------------------------------------------------------------- validation/dedup
@njit(cache=True)
def prepare_series(t, v, now, policy, wt, wv, wconf, wraw, stats):
    """Validate, sort and deduplicate one series into the work arrays; return the number of rows kept.

    Drops rows with NaT or future timestamps (counted), turns +-inf values into NaN (counted), sorts
    stably by time when needed and resolves duplicate timestamps by ``policy``. ``wraw`` receives the
    value as read (the last one for duplicates) and ``wconf`` marks timestamps with conflicting values.
    """
    n = t.size
    n_nat = 0
    n_future = 0
    n_nonfinite = 0
    n_ooo = 0
    m = 0
    last = NAT
    for i in range(n):
        ti = t[i]
        if ti == NAT:
            n_nat += 1
            continue
        if ti > now:
            n_future += 1
            continue
        x = v[i]
        if np.isinf(x):
            n_nonfinite += 1
            x = np.nan
        if ti < last:
            n_ooo += 1
        last = ti
        wt[m] = ti
        wv[m] = x
        m += 1
    if n_ooo > 0:
        order = np.argsort(wt[:m], kind="mergesort")
        tt = wt[:m][order]
        vv = wv[:m][order]
        wt[:m] = tt
        wv[:m] = vv
    k = 0
    n_exact = 0
    n_conf = 0
    i = 0
    while i < m:
        j = i + 1
        while j < m and wt[j] == wt[i]:
            j += 1
        if j - i == 1:
            wt[k] = wt[i]
            wv[k] = wv[i]
            wraw[k] = wv[i]
            wconf[k] = False
        else:
            # distinct values in the group (NaN equals NaN); exact duplicates are the rest
            n_distinct = 0
            s = 0.0
            c = 0
            for a in range(i, j):
                xa = wv[a]
                seen = False
                for b in range(i, a):
                    xb = wv[b]
                    if xa == xb or (np.isnan(xa) and np.isnan(xb)):
                        seen = True
                        break
                if not seen:
                    n_distinct += 1
                    if not np.isnan(xa):
                        s += xa
                        c += 1
            n_exact += (j - i) - n_distinct
            first = wv[i]
            lastv = wv[j - 1]
            wt[k] = wt[i]
            wraw[k] = lastv
            if n_distinct > 1:
                n_conf += n_distinct - 1
                wconf[k] = True
                if policy == DEDUP_FIRST:
                    wv[k] = first
                elif policy == DEDUP_MEAN:
                    wv[k] = s / c if c > 0 else np.nan
                elif policy == DEDUP_FLAG:
                    wv[k] = np.nan
                else:
                    wv[k] = lastv
            else:
                wconf[k] = False
                wv[k] = lastv
        k += 1
        i = j
    stats[S_N_RAW] = n
    stats[S_N_NAT] = n_nat
    stats[S_N_FUTURE] = n_future
    stats[S_N_NONFINITE] = n_nonfinite
    stats[S_N_OOO] = n_ooo
    stats[S_N_EXACT] = n_exact
    stats[S_N_CONFLICT] = n_conf
    stats[S_N_VALID] = k
    return k


# ----------------------------------------------------------------------------------------------------- period
@njit(cache=True)
def _fit_grid(t, p):
    """One pass: refined period = sum of the differences / sum of their step counts over differences within
    0.15 period of an integer multiple 1 <= k <= 32 of ``p``, and the share of differences explained (within
    a quarter period of a multiple k >= 1).

    A ratio estimator over gaps of at most 32 periods rather than a regression on the grid index: a stray
    timestamp far away (a huge gap that some nearby period happens to explain) has no leverage on it.
    """
    n = t.size
    inv = 1.0 / p
    sd = 0.0
    sk = 0.0
    good = 0
    for i in range(1, n):
        d = float(t[i] - t[i - 1])
        q = d * inv
        k = np.floor(q + 0.5)
        if k >= 1.0 and abs(q - k) <= 0.25:
            good += 1
            # long gaps fit many nearby periods and would dominate the ratio; loose fits are likely strays
            if k <= 32.0 and abs(q - k) <= 0.15:
                sd += d
                sk += k
    if sk <= 0.0:
        return p, 0.0
    return sd / sk, good / max(1, n - 1)


@njit(cache=True)
def _intercept(t, p):
    """Mean offset and residual sd of t_i - t_0 against p * n_i at a fixed period p."""
    n = t.size
    inv = 1.0 / p
    idx = 0.0
    sa = 0.0
    ss = 0.0
    for i in range(n):
        if i > 0:
            k = np.floor(float(t[i] - t[i - 1]) * inv + 0.5)
            idx += k  # sub-period steps (k = 0) stay on the same grid slot
        r = float(t[i] - t[0]) - p * idx
        sa += r
        ss += r * r
    a = sa / n
    return a, np.sqrt(max(0.0, ss / n - a * a))


@njit(cache=True)
def estimate_period_sorted(t, coverage, tol, max_sample):
    """Estimate the sampling period of sorted, unique int64 timestamps.

    Returns ``(period, phase, confidence, explained_share, jitter)``; period and phase in the unit of ``t``
    (phase in ``[0, period)`` relative to the epoch), jitter as residual sd / period. NaN period when fewer
    than three timestamps are given.
    """
    n = t.size
    if n < 3:
        return np.nan, 0.0, 0.0, 0.0, np.nan
    m = n - 1
    ns = m if m <= max_sample else max_sample
    d = np.empty(ns)
    for j in range(ns):
        i = j if m <= max_sample else (j * m) // ns
        d[j] = float(t[i + 1] - t[i])
    d.sort()
    start = 0
    while start < ns and d[start] <= 0.0:
        start += 1
    if ns - start < 1:
        return np.nan, 0.0, 0.0, 0.0, np.nan
    # cluster the sorted differences: a new cluster starts where the relative jump exceeds tol
    lo = np.empty(ns - start, np.int64)
    hi = np.empty(ns - start, np.int64)
    nc = 0
    lo[0] = start
    for i in range(start + 1, ns):
        if d[i] > d[i - 1] * (1.0 + tol):
            hi[nc] = i
            nc += 1
            lo[nc] = i
    hi[nc] = ns
    nc += 1
    counts = np.empty(nc)
    modes = np.empty(nc)
    for c in range(nc):
        counts[c] = hi[c] - lo[c]
        modes[c] = d[(lo[c] + hi[c] - 1) // 2]
    order = np.argsort(-counts, kind="mergesort")
    total = ns - start
    dominant = modes[order[0]]
    sel = np.empty(nc)
    nsel = 0
    cum = 0.0
    for r in range(nc):
        c = order[r]
        if modes[c] >= 0.2 * dominant or r == 0:
            sel[nsel] = modes[c]
            nsel += 1
        cum += counts[c]
        if cum >= coverage * total:
            break
    mmin = sel[0]
    for r in range(nsel):
        if sel[r] < mmin:
            mmin = sel[r]
    # approximate GCD: the largest mmin / j that leaves every selected mode close to an integer multiple
    p = mmin
    for j in range(1, 65):
        cand = mmin / j
        ok = True
        for r in range(nsel):
            q = sel[r] / cand
            k = np.floor(q + 0.5)
            if abs(q - k) > 0.1 + 0.01 * k:
                ok = False
                break
        if ok:
            p = cand
            break
    # refine on all timestamps with the cumulative grid index, then the phase at that period
    p1, explained = _fit_grid(t, p)
    if abs(p1 - p) <= 0.05 * p and p1 > 0.0:
        p = p1
    # snap to a round period (1 min .. 1 ms, t in microseconds) when within the estimation noise, so the
    # phase relative to the epoch is exact for nominal periods such as 10 min
    for unit in (60e6, 1e6, 1e5, 1e4, 1e3):
        r = np.floor(p / unit + 0.5) * unit
        if r > 0.0 and abs(r - p) <= 1e-4 * p:
            p = r
            break
    a, sd = _intercept(t, p)
    pint = np.floor(p + 0.5)
    if pint < 1.0:
        pint = 1.0
    base = t[0] % np.int64(pint)
    phase = (float(base) + a) % pint
    jitter = sd / p
    conf = explained * max(0.0, 1.0 - 4.0 * jitter) * (m / (m + 1.0))
    return p, phase, conf, explained, jitter


# ------------------------------------------------------------------------------------------------------- gaps
@njit(cache=True)
def count_output(t, p, max_fill):
    """Rows after gap filling and the number of gaps left unfilled (too long for ``max_fill``)."""
    n = t.size
    if n < 2 or not np.isfinite(p):
        return n, 0
    out = n
    unfilled = 0
    for i in range(n - 1):
        k = np.floor((t[i + 1] - t[i]) / p + 0.5)
        if k >= 2.0:
            if k - 1.0 <= max_fill:
                out += np.int64(k) - 1
            else:
                unfilled += 1
    return out, unfilled


@njit(cache=True)
def fill_gaps(t, v, raw, conf, p, max_fill, ot, ov, oraw, omiss, oconf):
    """Write observed rows and the missing rows between them (evenly placed on the series' own phase)."""
    n = t.size
    w = 0
    for i in range(n):
        ot[w] = t[i]
        ov[w] = v[i]
        oraw[w] = raw[i]
        omiss[w] = False
        oconf[w] = conf[i]
        w += 1
        if i < n - 1 and np.isfinite(p):
            dt = t[i + 1] - t[i]
            kf = np.floor(dt / p + 0.5)
            if kf >= 2.0 and kf - 1.0 <= max_fill:
                k = np.int64(kf)
                for j in range(1, k):
                    ot[w] = t[i] + (dt * j) // k
                    ov[w] = np.nan
                    oraw[w] = np.nan
                    omiss[w] = True
                    oconf[w] = False
                    w += 1
    return w


# -------------------------------------------------------------------------------------------------- imputation
@njit(cache=True)
def impute(t, v, method, alpha, imputed):
    """Fill NaNs of ``v`` in place (linear in time, last observation, or EMA); mark them in ``imputed``.

    Leading NaNs take the first observed value. Returns the number of values imputed.
    """
    n = v.size
    cnt = 0
    if method == IMPUTE_NONE:
        for i in range(n):
            imputed[i] = False
        return 0
    first = -1
    for i in range(n):
        if not np.isnan(v[i]):
            first = i
            break
    if first < 0:
        for i in range(n):
            imputed[i] = False
        return 0
    for i in range(n):
        imputed[i] = False
    for i in range(first):
        v[i] = v[first]
        imputed[i] = True
        cnt += 1
    if method == IMPUTE_LINEAR:
        prev = first
        i = first + 1
        while i < n:
            if np.isnan(v[i]):
                j = i
                while j < n and np.isnan(v[j]):
                    j += 1
                if j == n:
                    for q in range(i, n):
                        v[q] = v[prev]
                        imputed[q] = True
                        cnt += 1
                else:
                    span = float(t[j] - t[prev])
                    for q in range(i, j):
                        w = float(t[q] - t[prev]) / span if span > 0 else 0.0
                        v[q] = v[prev] + w * (v[j] - v[prev])
                        imputed[q] = True
                        cnt += 1
                i = j
            else:
                prev = i
                i += 1
    elif method == IMPUTE_LOCF:
        last = v[first]
        for i in range(first, n):
            if np.isnan(v[i]):
                v[i] = last
                imputed[i] = True
                cnt += 1
            else:
                last = v[i]
    else:  # EMA of the observations seen so far
        ema = v[first]
        for i in range(first, n):
            if np.isnan(v[i]):
                v[i] = ema
                imputed[i] = True
                cnt += 1
            else:
                ema = alpha * v[i] + (1.0 - alpha) * ema
    return cnt


# --------------------------------------------------------------------------------------------------- anomalies
@njit(cache=True)
def _select(a, lo, hi, k):
    """Partially order a[lo:hi] in place so that a[k] is the k-th smallest (quickselect, median of three)."""
    hi -= 1
    while hi > lo:
        mid = (lo + hi) >> 1
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@njit(cache=True)
def quartiles(x):
    """(q1, q3) of x with numpy's default linear interpolation; reorders x in place."""
    n = x.size
    out = np.empty(2)
    lo = 0
    for r in range(2):
        h = (n - 1) * (0.25 if r == 0 else 0.75)
        k = int(np.floor(h))
        _select(x, lo, n, k)
        xk = x[k]
        if h > k:
            nxt = x[k + 1]
            for q in range(k + 2, n):
                if x[q] < nxt:
                    nxt = x[q]
            out[r] = xk + (h - k) * (nxt - xk)
        else:
            out[r] = xk
        lo = k
    return out[0], out[1]

@njit(cache=True)
def _degenerate_spread(x, mid):
    """Spread to use when the IQR is 0: if at least 5% of the values differ from ``mid`` (quantised data,
    where changes of one quantum are normal), their mean absolute deviation; otherwise 0 (a nearly constant
    series: any departure is unusual)."""
    c = 0
    sabs = 0.0
    for j in range(x.size):
        a = abs(x[j] - mid)
        if a > 0.0:
            c += 1
            sabs += a
    if c >= 0.05 * x.size:
        return sabs / c
    return 0.0


@njit(cache=True)
def detect_anomalies(v, usable, methods, k_val, k_diff, code):
    """IQR rule on values and on differences of consecutive usable values; OR bits into ``code``.

    ``usable`` marks the points that are real readings (not inserted/imputed). When the IQR is 0 (quantised
    or mostly constant data) see :func:`_degenerate_spread`. Returns the value fences.
    """
    n = v.size
    idx = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if usable[i] and not np.isnan(v[i]):
            idx[m] = i
            m += 1
    lo = -np.inf
    hi = np.inf
    if m < 4:
        return lo, hi
    x = np.empty(m)
    for j in range(m):
        x[j] = v[idx[j]]
    q1, q3 = quartiles(x)
    for j in range(m):
        x[j] = v[idx[j]]
    iqr = q3 - q1
    if iqr == 0.0:
        iqr = _degenerate_spread(x, 0.5 * (q1 + q3))
    lo = q1 - k_val * iqr
    hi = q3 + k_val * iqr
    if methods & ANOM_IQR:
        for j in range(m):
            if x[j] < lo or x[j] > hi:
                code[idx[j]] |= ANOM_IQR
    if methods & ANOM_IQR_DIFF and m >= 5:
        dd = np.empty(m - 1)
        for j in range(m - 1):
            dd[j] = x[j + 1] - x[j]
        d1, d3 = quartiles(dd)
        for j in range(m - 1):
            dd[j] = x[j + 1] - x[j]
        diqr = d3 - d1
        if diqr == 0.0:
            diqr = _degenerate_spread(dd, 0.5 * (d1 + d3))
        dlo = d1 - k_diff * diqr
        dhi = d3 + k_diff * diqr
        for j in range(1, m - 1):
            a = dd[j - 1]
            b = dd[j]
            out_a = a < dlo or a > dhi
            out_b = b < dlo or b > dhi
            if out_a and out_b and a * b < 0.0:
                code[idx[j]] |= ANOM_IQR_DIFF
    return lo, hi


@njit(cache=True)
def treat(t, v, code, method, lo, hi, alpha):
    """Apply a treatment in place to the points with a non-zero anomaly ``code``."""
    n = v.size
    if method == TREAT_NONE:
        return
    if method == TREAT_DROP:
        for i in range(n):
            if code[i] != 0:
                v[i] = np.nan
    elif method == TREAT_CLIP:
        for i in range(n):
            if code[i] != 0:
                if v[i] < lo:
                    v[i] = lo
                elif v[i] > hi:
                    v[i] = hi
    elif method == TREAT_EMA:
        # forward EMA of the clean points; anomalies take the current EMA (leading ones the first clean value)
        ema = np.nan
        pending = 0
        for i in range(n):
            if code[i] != 0:
                if np.isnan(ema):
                    pending += 1
                else:
                    v[i] = ema
            elif not np.isnan(v[i]):
                ema = v[i] if np.isnan(ema) else alpha * v[i] + (1.0 - alpha) * ema
                if pending > 0:
                    for q in range(i):
                        if code[q] != 0:
                            v[q] = v[i]
                    pending = 0
    else:  # interpolate linearly in time between the nearest clean neighbours
        prev = -1
        i = 0
        while i < n:
            if code[i] != 0:
                j = i
                while j < n and (code[j] != 0 or np.isnan(v[j])):  # next clean, finite anchor
                    j += 1
                if prev < 0 and j >= n:
                    for q in range(i, n):
                        if code[q] != 0:
                            v[q] = np.nan
                elif prev < 0:
                    for q in range(i, j):
                        if code[q] != 0:
                            v[q] = v[j]
                elif j >= n:
                    for q in range(i, n):
                        if code[q] != 0:
                            v[q] = v[prev]
                else:
                    span = float(t[j] - t[prev])
                    for q in range(i, j):
                        if code[q] != 0:
                            w = float(t[q] - t[prev]) / span if span > 0 else 0.0
                            v[q] = v[prev] + w * (v[j] - v[prev])
                i = j
            else:
                if not np.isnan(v[i]):
                    prev = i
                i += 1


# ------------------------------------------------------------------------- events vs faults (issue 12)
@njit(cache=True)
def _insort(buf, m, x):
    lo = 0
    hi = m
    while lo < hi:
        mid = (lo + hi) >> 1
        if buf[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    for j in range(m, lo, -1):
        buf[j] = buf[j - 1]
    buf[lo] = x
    return m + 1


@njit(cache=True)
def _remove(buf, m, x):
    lo = 0
    hi = m
    while lo < hi:
        mid = (lo + hi) >> 1
        if buf[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    for j in range(lo, m - 1):
        buf[j] = buf[j + 1]
    return m - 1


@njit(cache=True)
def _quantile_sorted(buf, m, q):
    h = (m - 1) * q
    k = int(h)
    if k + 1 < m:
        return buf[k] + (h - k) * (buf[k + 1] - buf[k])
    return buf[k]


@njit(cache=True)
def rolling_quantiles(x, a, b, qs, out, cnt):
    """``out[i, j]`` = quantile ``qs[j]`` (linear interpolation) of the finite values of ``x[i-a : i+b+1]``
    (clipped at the ends; NaN when there are none), ``cnt[i]`` their number. ``a >= 0``, ``a + b >= 0``.

    One sorted window slides over the series: O(n * window) in the worst case, no allocation per step.
    """
    n = x.size
    buf = np.empty(max(1, a + b + 1))
    m = 0
    for j in range(0, min(n - 1, b) + 1):
        if not np.isnan(x[j]):
            m = _insort(buf, m, x[j])
    for i in range(n):
        cnt[i] = m
        for q in range(qs.size):
            out[i, q] = _quantile_sorted(buf, m, qs[q]) if m > 0 else np.nan
        r = i - a
        if r >= 0 and not np.isnan(x[r]):
            m = _remove(buf, m, x[r])
        j = i + 1 + b
        if 0 <= j < n and not np.isnan(x[j]):
            m = _insort(buf, m, x[j])


@njit(cache=True)
def _rolling_median(x, a, b):
    out = np.empty((x.size, 1))
    cnt = np.empty(x.size, np.int64)
    rolling_quantiles(x, a, b, np.array([0.5]), out, cnt)
    return out[:, 0]


@njit(cache=True)
def _nanmedian(x):
    m = 0
    y = np.empty(x.size)
    for i in range(x.size):
        if not np.isnan(x[i]):
            y[m] = x[i]
            m += 1
    if m == 0:
        return np.nan
    return np.median(y[:m])


@njit(cache=True)
def _window_moments(x, wt, i, half, mom):
    """From scratch: ``mom[k]`` = sum w d^k (k = 0..4), ``mom[5 + k]`` = sum w x d^k (k = 0..2) over the
    window ``[i-half, i+half]`` (clipped), d = j - i."""
    n = x.size
    for k in range(8):
        mom[k] = 0.0
    for j in range(max(0, i - half), min(n, i + half + 1)):
        _add_moment(mom, wt[j], x[j], float(j - i))


@njit(cache=True)
def _add_moment(mom, w, xj, d):
    if w != 0.0:  # a negative weight removes a reading
        d2 = d * d
        mom[0] += w
        mom[1] += w * d
        mom[2] += w * d2
        mom[3] += w * d2 * d
        mom[4] += w * d2 * d2
        mom[5] += w * xj
        mom[6] += w * xj * d
        mom[7] += w * xj * d2


@njit(cache=True)
def _local_quadratic(x, wt, half, fallback, out):
    """``out[i]`` = intercept of the weighted quadratic least-squares fit over ``x[i-half : i+half+1]``
    (``fallback[i]`` where the weights sum to less than 3 or the fit is singular).

    O(n): the window's moments slide (remove the leaving reading, add the entering one, re-centre the offsets
    by the binomial expansion), recomputed from scratch every 256 steps so rounding cannot drift."""
    n = x.size
    mom = np.zeros(8)
    for i in range(n):
        if i % 256 == 0:
            _window_moments(x, wt, i, half, mom)
        else:
            # offsets are relative to i - 1 here: drop j = i-1-half (d = -half), add j = i+half (d = half+1)
            j = i - 1 - half
            if j >= 0:
                _add_moment(mom, -wt[j], x[j], float(-half))
            j = i + half
            if j < n:
                _add_moment(mom, wt[j], x[j], float(half + 1))
            # re-centre on i: d -> d - 1
            m1, m2, m3, m4 = mom[1], mom[2], mom[3], mom[4]
            m0 = mom[0]
            mom[1] = m1 - m0
            mom[2] = m2 - 2.0 * m1 + m0
            mom[3] = m3 - 3.0 * m2 + 3.0 * m1 - m0
            mom[4] = m4 - 4.0 * m3 + 6.0 * m2 - 4.0 * m1 + m0
            y0, y1, y2 = mom[5], mom[6], mom[7]
            mom[6] = y1 - y0
            mom[7] = y2 - 2.0 * y1 + y0
        s0, s1, s2, s3, s4 = mom[0], mom[1], mom[2], mom[3], mom[4]
        y0, y1, y2 = mom[5], mom[6], mom[7]
        # Cramer's rule on the 3x3 normal equations; centred offsets, so the level is the intercept
        det = s0 * (s2 * s4 - s3 * s3) - s1 * (s1 * s4 - s3 * s2) + s2 * (s1 * s3 - s2 * s2)
        if s0 >= 3.0 and abs(det) > 1e-9 * max(1e-300, s0 * s2 * s4):
            out[i] = (y0 * (s2 * s4 - s3 * s3) - s1 * (y1 * s4 - s3 * y2) + s2 * (y1 * s3 - s2 * y2)) / det
        else:
            out[i] = fallback[i]


@njit(cache=True)
def robust_level(x, half):
    """Robust local level over windows of ``2 * half + 1`` samples: a local quadratic fit (LOESS-like) with
    robustness weights. Start: readings within 3 robust sds of the running median (all readings over the
    ends, where a clipped median is biased on a slope); then two passes with bisquare weights of the
    residual of the previous fit (6 robust sds), as in STL's outer loop.

    The running median alone would do for the outliers but not for the shape: on a slope it snaps onto the
    data (its residual, and any scale taken from it, collapses to zero), at a peak it is biased by the
    curvature. Spikes and episodes get weight 0 and cannot bend the fit.
    """
    n = x.size
    med = _rolling_median(x, half, half)
    res = np.full(n, np.nan)
    for i in range(n):
        if not np.isnan(x[i]):
            res[i] = abs(x[i] - med[i])
    sd = 1.4826 * _nanmedian(res)
    wt = np.zeros(n)
    for i in range(n):
        if not np.isnan(res[i]):
            edge = i < half or i >= n - half
            wt[i] = 1.0 if (edge or sd == 0.0 or res[i] <= 3.0 * sd) else 0.0
    out = np.empty(n)
    _local_quadratic(x, wt, half, med, out)
    floor = 1e-2 * _robust_sd(x)  # noise-free data: rounding-sized residuals must not get weight 0
    for _ in range(2):
        for i in range(n):
            res[i] = abs(x[i] - out[i]) if not np.isnan(x[i]) else np.nan
        h = 6.0 * max(_nanmedian(res), floor)
        if not h > 0.0:
            break
        for i in range(n):
            if np.isnan(res[i]):
                wt[i] = 0.0
            else:
                u = res[i] / h
                wt[i] = (1.0 - u * u) ** 2 if u < 1.0 else 0.0
        _local_quadratic(x, wt, half, med, out)
    return out


@njit(cache=True)
def robust_decompose_seasons(x, gidx, seasons, level_window):
    """Outlier-resistant decomposition ``x = trend + seasonal + resid`` with the given season lengths.

    ``x`` NaN = no reading; ``gidx`` the grid index of each row (phase = ``gidx % season``); ``seasons`` in
    samples (none: trend only). Trend: :func:`robust_level` over ``level_window`` samples of the
    deseasonalised values; each season: per-phase median of what the trend and the shorter seasons leave,
    centred on zero. Two passes. Medians throughout, so neither a spike nor an episode bends the season.
    Returns (trend, seasonal).
    """
    n = x.size
    half = max(1, level_window // 2)
    seasonal = np.zeros(n)
    trend = robust_level(x, half)
    ns = 0
    for s in seasons:
        if s >= 2 and 2 * s <= n:
            ns += 1
    if ns == 0:
        return trend, seasonal
    for _ in range(2):
        comp = np.zeros(n)
        for s in sorted(seasons):
            if s < 2 or 2 * s > n:
                continue
            det = x - trend - comp
            # per-phase medians: group the rows by phase with one counting sort
            cnt = np.zeros(s, np.int64)
            for i in range(n):
                if not np.isnan(det[i]):
                    cnt[gidx[i] % s] += 1
            start = np.zeros(s + 1, np.int64)
            for p in range(s):
                start[p + 1] = start[p] + cnt[p]
            buf = np.empty(start[s])
            pos = start[:s].copy()
            for i in range(n):
                if not np.isnan(det[i]):
                    p = gidx[i] % s
                    buf[pos[p]] = det[i]
                    pos[p] += 1
            prof = np.full(s, np.nan)
            for p in range(s):
                if cnt[p] > 0:
                    prof[p] = np.median(buf[start[p]:start[p + 1]])
            c = _nanmedian(prof)
            for p in range(s):
                prof[p] = 0.0 if np.isnan(prof[p]) else prof[p] - c
            for i in range(n):
                comp[i] += prof[gidx[i] % s]
        seasonal = comp
        trend = robust_level(x - seasonal, half)
    return trend, seasonal


@njit(cache=True)
def _robust_sd(r):
    """1.4826 * MAD of the finite values; for degenerate (quantised) data see :func:`_degenerate_spread`."""
    med = _nanmedian(r)
    if np.isnan(med):
        return 0.0
    a = np.abs(r - med)
    sd = 1.4826 * _nanmedian(a)
    if sd == 0.0:
        m = 0
        y = np.empty(r.size)
        for i in range(r.size):
            if not np.isnan(r[i]):
                y[m] = r[i]
                m += 1
        sd = _degenerate_spread(y[:m], med)
    return sd


@njit(cache=True)
def _season_windows(seasons, ap):
    """(level window, shift window, stuck run) in samples: configured, or derived from the seasons."""
    smax = 0
    smin = 0
    for s in seasons:
        if s >= 2:
            smax = max(smax, s)
            smin = s if smin == 0 else min(smin, s)
    lw = int(ap[AP_LEVEL_W])
    if lw <= 0:
        lw = (smax | 1) if smax > 0 else 25
    sw = int(ap[AP_SHIFT_W])
    if sw <= 0:
        sw = 4 * lw
    stuck = int(ap[AP_STUCK])
    if stuck == 0:
        stuck = smin if smin > 0 else 2 * lw
    return lw, sw, stuck


@njit(cache=True)
def _blocked_median(x, block, reach):
    """Local median at block resolution: the median of the finite values in the blocks of ``block`` samples
    from ``reach`` blocks before to ``reach`` after each sample's block (NaN when none). O(n log block)."""
    n = x.size
    nb = (n + block - 1) // block
    out = np.full(n, np.nan)
    buf = np.empty(min(n, (2 * reach + 1) * block))
    for bi in range(nb):
        a = max(0, (bi - reach) * block)
        b = min(n, (bi + reach + 1) * block)
        m = 0
        for j in range(a, b):
            if not np.isnan(x[j]):
                buf[m] = x[j]
                m += 1
        if m > 0:
            v = np.median(buf[:m])
            for j in range(bi * block, min(n, (bi + 1) * block)):
                out[j] = v
    return out


@njit(cache=True)
def _detect_stuck(x, usable, min_run, code):
    """Runs of at least ``min_run`` identical consecutive readings get ANOM_STUCK. Off when most consecutive
    readings are equal anyway (a step-like or coarsely quantised series)."""
    n = x.size
    idx = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if usable[i]:
            idx[m] = i
            m += 1
    if m < 2 or min_run < 2:
        return
    same = 0
    for j in range(1, m):
        if x[idx[j]] == x[idx[j - 1]]:
            same += 1
    if same > 0.5 * (m - 1):
        return
    j = 0
    while j < m:
        k = j + 1
        while k < m and x[idx[k]] == x[idx[j]]:
            k += 1
        if k - j >= min_run:
            for q in range(j, k):
                code[idx[q]] |= ANOM_STUCK
        j = k


@njit(cache=True)
def _window_quartiles(y, a, b, buf):
    """(q1, median, q3, count) of the finite values of y[a:b]."""
    m = 0
    for j in range(max(0, a), min(y.size, b)):
        if not np.isnan(y[j]):
            buf[m] = y[j]
            m += 1
    if m == 0:
        return np.nan, np.nan, np.nan, 0
    z = buf[:m]
    z.sort()
    return _quantile_sorted(z, m, 0.25), _quantile_sorted(z, m, 0.5), _quantile_sorted(z, m, 0.75), m


@njit(cache=True)
def _detect_shifts(y, usable, sw, shift_z, floor, shifts):
    """Level shifts of the deseasonalised series ``y``: at i the median of the next ``sw`` readings differs
    from the median of the previous ``sw`` by more than ``shift_z`` robust sds of either window (at least
    ``floor``), and the new level still holds over the ``sw`` readings after that. Tested every ``sw / 8``
    samples (windows on that stride, so each window's quartiles are computed once); one shift per run of such
    points (the largest change), placed exactly by :func:`_refine_step`. Writes the magnitude at the shift row
    into ``shifts`` (NaN elsewhere); returns the number of shifts."""
    n = y.size
    for i in range(n):
        shifts[i] = np.nan
    if n < 3 * sw or sw < 2:
        return 0
    stride = max(1, sw // 8)
    sw = stride * (sw // stride)
    nw = (n - sw) // stride + 1  # windows y[k*stride : k*stride + sw]
    q1 = np.empty(nw)
    q2 = np.empty(nw)
    q3 = np.empty(nw)
    cnt = np.empty(nw, np.int64)
    buf = np.empty(sw)
    for k in range(nw):
        q1[k], q2[k], q3[k], cnt[k] = _window_quartiles(y, k * stride, k * stride + sw, buf)
    step = sw // stride
    need = sw // 2
    ns = 0
    best = -1
    best_d = 0.0
    best_l = 0.0
    best_r = 0.0
    last = -sw - 1
    for k in range(step, nw + 1):  # candidate i = k * stride: left window k - step, right k, after k + step
        ok = False
        d = 0.0
        if k + step < nw:
            kl = k - step
            if cnt[kl] >= need and cnt[k] >= need and cnt[k + step] >= need:
                d = q2[k] - q2[kl]
                spread = max(max(q3[kl] - q1[kl], q3[k] - q1[k]) / 1.349, floor)
                d2 = q2[k + step] - q2[kl]
                ok = abs(d) > shift_z * spread and d * d2 > 0.0 and abs(d2) > 0.5 * abs(d)
        if ok:
            if best < 0 or abs(d) > abs(best_d):
                best = k
                best_d = d
                best_l = q2[k - step]
                best_r = q2[k]
        elif best >= 0:
            c = _refine_step(y, best * stride, sw, best_l, best_r)
            while c < n and not usable[c]:
                c += 1
            if c < n and c - last > sw:
                shifts[c] = best_d
                ns += 1
                last = c
            best = -1
    return ns


@njit(cache=True)
def _refine_step(y, best, sw, lmed, rmed):
    """Where exactly the level changes near ``best``: the split of ``y[best-sw : best+sw]`` into the two levels
    ``lmed`` | ``rmed`` with the least absolute deviation (the window medians blur the step by a few samples)."""
    n = y.size
    a = max(0, best - sw)
    b = min(n, best + sw)
    h = max(1, sw // 2)
    # cost(c) = sum_{j<c} |y_j - lmed| + sum_{j>=c} |y_j - rmed|, updated incrementally in c
    cost = 0.0
    lo = max(a + 1, best - h)
    for j in range(a, b):
        if not np.isnan(y[j]):
            cost += abs(y[j] - (lmed if j < lo else rmed))
    out = lo
    best_cost = cost if not np.isnan(y[lo]) else np.inf
    for c in range(lo + 1, min(b - 1, best + h) + 1):
        yj = y[c - 1]
        if not np.isnan(yj):
            cost += abs(yj - lmed) - abs(yj - rmed)
        if not np.isnan(y[c]) and cost < best_cost:
            best_cost = cost
            out = c
    return out


@njit(cache=True)
def _diff_scale(x, run, p, nx, hw):
    """Noise sd from the moves between consecutive readings within ``hw`` readings of the run, the run's own
    two jumps left out: 1.048 * median |x[j+1] - x[j]| (= sd for white noise; a trend only makes it larger)."""
    n = x.size
    d = np.empty(4 * hw + 2)
    m = 0
    prev = np.nan
    for j in range(max(0, p - hw), min(n, nx + hw + 1)):
        if j >= p and j <= nx:
            prev = np.nan if j < nx else x[j]
            continue
        if not np.isnan(x[j]):
            if not np.isnan(prev) and m < d.size:
                d[m] = abs(x[j] - prev)
                m += 1
            prev = x[j]
    if m < 4:
        return 0.0
    return 1.048 * np.median(d[:m])


@njit(cache=True)
def _is_spike(x, run, p, nx, code, elev, resid, sig, zn, decomp, hw):
    """Is the short run of flagged readings ``run`` (rows) between the readings ``p`` and ``nx`` (-1: none)
    a spike? It jumps away from its neighbours and back (opposite-sign jumps, each beyond ``zn`` local sds),
    all its points on one side, neighbours that are not faults and close to each other (within half the
    excursion), and either normal or, when they are part of a real excursion themselves, deviating by at most
    a third of the spike's excursion (a spike on top of an episode, not the episode's own peak); the excursion
    also beyond ``zn`` sds of the moves between neighbouring readings around it (:func:`_diff_scale`). One
    neighbour (series end): that neighbour must be normal."""
    a = run[0]
    b = run[-1]
    for q in (p, nx):
        if q >= 0 and code[q] & (ANOM_BOUNDS | ANOM_STUCK):
            return False
    if p >= 0 and nx >= 0:
        base = 0.5 * (x[p] + x[nx])
        sgn = np.sign(x[a] - base)
        exc = np.inf
        for q in run:
            d = x[q] - base
            if np.sign(d) != sgn or sgn == 0.0:
                return False
            exc = min(exc, abs(d))
        jin = x[a] - x[p]
        jout = x[nx] - x[b]
        if jin * jout >= 0.0 or abs(jin) <= zn * sig[a] or abs(jout) <= zn * sig[b]:
            return False
        if decomp:
            for q in run:  # the residual agrees with the jumps
                if not np.isnan(resid[q]) and np.sign(resid[q]) != sgn:
                    return False
        if abs(x[nx] - x[p]) > 0.5 * exc:
            return False
        if exc <= zn * _diff_scale(x, run, p, nx, hw):
            return False  # no larger than the series' own hour-to-hour moves around it (e.g. inside an episode)
        if not elev[p] and not elev[nx]:
            return True
        # elevated neighbours (inside a real episode): the spike must dwarf their own excursion, or it is the
        # episode's peak
        if not decomp or np.isnan(resid[p]) or np.isnan(resid[nx]):
            return False
        return exc >= 3.0 * max(abs(resid[p]), abs(resid[nx]))
    q = p if p >= 0 else nx
    if elev[q]:
        return False
    e = a if p >= 0 else b
    j = x[e] - x[q]
    for r in run:
        if np.sign(x[r] - x[q]) != np.sign(j):
            return False
    return abs(j) > zn * sig[e]


@njit(cache=True)
def detect_events(t, x, usable, seasons, period, methods, ap, code, cls, score):
    """Flag and classify: bounds -> implausible, long identical runs -> stuck, robust-decomposition residuals
    (``|resid| > z`` local robust sds) -> spike / episode / level shift; level shifts also from a step test.

    ``x`` is the grid (NaN = no reading), ``usable`` the real readings. ORs rule bits into ``code``, writes
    the class of every flagged point into ``cls`` and its residual (level shifts: the change of level)
    into ``score``. Points already flagged by other rules (IQR) are classified the same way.
    """
    n = x.size
    for i in range(n):
        cls[i] = CLS_NONE
        score[i] = np.nan
    if n == 0:
        return
    z = ap[AP_Z]
    lw, sw, stuck = _season_windows(seasons, ap)
    if methods & ANOM_BOUNDS:
        for i in range(n):
            if usable[i] and (x[i] < ap[AP_LO] or x[i] > ap[AP_HI]):
                code[i] |= ANOM_BOUNDS
    if methods & ANOM_STUCK and stuck > 0:
        _detect_stuck(x, usable, stuck, code)
    xd = np.full(n, np.nan)
    m = 0
    for i in range(n):
        if usable[i] and not (code[i] & (ANOM_BOUNDS | ANOM_STUCK)):
            xd[i] = x[i]
            m += 1
    sig = np.zeros(n)
    resid = np.full(n, np.nan)
    shifts = np.full(n, np.nan)
    decomp = (methods & ANOM_DECOMP) != 0 and m >= 8
    if decomp:
        gidx = np.empty(n, np.int64)
        for i in range(n):
            gidx[i] = np.int64(np.floor((t[i] - t[0]) / period + 0.5)) if period > 0 else i
        trend, seasonal = robust_decompose_seasons(xd, gidx, seasons, lw)
        resid = xd - trend - seasonal
        # a noise-free series leaves only rounding in the residual: never go below 1% of the values' spread
        sd = max(_robust_sd(resid), 1e-2 * _robust_sd(xd))
        if sd <= 0.0:
            sd = 1e-9 * (abs(_nanmedian(xd)) + 1.0)
        floor = ap[AP_FLOOR] * sd
        med = _nanmedian(resid)
        dev = np.abs(resid - med)
        local = _blocked_median(dev, lw, 2)
        for i in range(n):
            sig[i] = max(1.4826 * local[i], floor) if not np.isnan(local[i]) else sd
            if not np.isnan(resid[i]):
                score[i] = resid[i]
                if abs(resid[i]) > z * sig[i]:
                    code[i] |= ANOM_DECOMP
        if ap[AP_SHIFT_Z] > 0:
            y = xd - seasonal
            if _detect_shifts(y, usable, sw, ap[AP_SHIFT_Z], max(floor, 0.5 * sd), shifts) > 0:
                for i in range(n):
                    if not np.isnan(shifts[i]):
                        code[i] |= ANOM_DECOMP
                        score[i] = shifts[i]
    # points near a level shift belong to it
    near = np.zeros(n, np.bool_)
    hl = lw // 2 + 1
    for i in range(n):
        if not np.isnan(shifts[i]):
            for q in range(max(0, i - hl), min(n, i + hl + 1)):
                near[q] = True
    # classify over the sequence of real readings
    idx = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if usable[i]:
            idx[m] = i
            m += 1
    elev = np.zeros(n, np.bool_)
    nf = ap[AP_NORMAL]
    for i in range(n):
        elev[i] = code[i] != 0 or (decomp and not np.isnan(resid[i]) and abs(resid[i]) > nf * z * sig[i])
    max_len = int(ap[AP_SPIKE_LEN])
    zn = nf * z
    hw = max(4, lw // 2)
    faults = ANOM_BOUNDS | ANOM_STUCK
    for j in range(m):
        i = idx[j]
        if code[i] & ANOM_BOUNDS:
            cls[i] = CLS_IMPLAUSIBLE
        elif code[i] & ANOM_STUCK:
            cls[i] = CLS_STUCK
    # spikes: a jump away and back over 1 .. max_len readings, also inside a run of flagged readings (a spike on
    # top of a real episode); interior readings here, the ends of the series below
    for j in range(1, m - 1):
        i = idx[j]
        if code[i] == 0 or cls[i] != CLS_NONE:
            continue
        for ln in range(1, max_len + 1):
            if j + ln >= m:
                break
            last = idx[j + ln - 1]
            if code[last] == 0 or code[last] & faults or cls[last] != CLS_NONE:
                break
            if _is_spike(x, idx[j:j + ln], idx[j - 1], idx[j + ln], code, elev, resid, sig, zn, decomp, hw):
                for q in range(j, j + ln):
                    cls[idx[q]] = CLS_SPIKE
                break
    # the other flagged readings, by runs: near a level shift -> level_shift, else episode
    j = 0
    while j < m:
        i = idx[j]
        if code[i] == 0 or cls[i] != CLS_NONE:
            j += 1
            continue
        k = j + 1
        while k < m and code[idx[k]] != 0 and cls[idx[k]] == CLS_NONE:
            k += 1
        c = CLS_EPISODE
        shift = False
        for q in range(j, k):
            if near[idx[q]]:
                shift = True
        if shift:
            c = CLS_LEVEL_SHIFT
        elif k - j <= max_len and (j == 0) != (k == m):
            p = idx[j - 1] if j > 0 else -1
            nx = idx[k] if k < m else -1
            if _is_spike(x, idx[j:k], p, nx, code, elev, resid, sig, zn, decomp, hw):
                c = CLS_SPIKE
        for q in range(j, k):
            cls[idx[q]] = c
        j = k


# ------------------------------------------------------------------------------------------------ full chain
@njit(cache=True)
def _finish_one(ot, ov, oraw, omiss, oimp, ocode, ocls, oscore, otreat, impute_method, alpha, anom_methods, k_val,
                k_diff, treatment, fault_method, seasons, ap, st):
    n = ot.size
    nan_read = 0
    for i in range(n):
        if not omiss[i] and np.isnan(ov[i]):
            nan_read += 1
    st[S_N_NANREAD] = nan_read
    # anomalies are detected on the real readings first, so that a spike next to a gap never becomes an
    # anchor of the values imputed into the gap
    usable = np.empty(n, np.bool_)
    for i in range(n):
        usable[i] = not np.isnan(ov[i])
        ocode[i] = 0
    lo, hi = detect_anomalies(ov, usable, anom_methods, k_val, k_diff, ocode)
    detect_events(ot, ov, usable, seasons, st[S_PERIOD], anom_methods, ap, ocode, ocls, oscore)
    # what gets replaced: the fault classes only (TREAT_FAULTS), or every flagged point (the other methods)
    method = treatment
    for i in range(n):
        otreat[i] = ocode[i] != 0
    if treatment == TREAT_FAULTS:
        method = fault_method
        for i in range(n):
            otreat[i] = ocls[i] == CLS_SPIKE or ocls[i] == CLS_IMPLAUSIBLE or ocls[i] == CLS_STUCK
    anchors = ov.copy()
    for i in range(n):
        if otreat[i]:
            anchors[i] = np.nan
    filled = np.empty(n, np.bool_)
    impute(ot, anchors, impute_method, alpha, filled)
    cnt = 0
    for i in range(n):
        oimp[i] = False
        if not usable[i] and filled[i]:
            ov[i] = anchors[i]
            oimp[i] = True
            cnt += 1
    st[S_N_IMPUTED] = cnt
    na = 0
    for c in range(CLS_LEVEL_SHIFT):
        st[S_N_SPIKE + c] = 0
    for i in range(n):
        if ocode[i] != 0:
            na += 1
        if ocls[i] != CLS_NONE:
            st[S_N_SPIKE + ocls[i] - 1] += 1
    st[S_N_ANOM] = na
    st[S_LO] = lo
    st[S_HI] = hi
    tcode = np.empty(n, np.uint8)
    for i in range(n):
        tcode[i] = 1 if otreat[i] else 0
    treat(ot, ov, tcode, method, lo, hi, alpha)
    nt = 0
    for i in range(n):
        if method == TREAT_NONE:
            otreat[i] = False
        if otreat[i]:
            nt += 1
    st[S_N_TREATED] = nt


@njit(cache=True)
def _fill_period(st, min_conf):
    return st[S_PERIOD] if st[S_CONF] >= min_conf else np.nan


@njit(cache=True)
def _prepare_and_period(t_in, v_in, now, policy, period_override, coverage, tol, max_sample, max_fill,
                        min_conf, wt, wv, wconf, wraw, st):
    """Validate/dedup into the scratch arrays, estimate the period and count the output rows (no rows are
    inserted when the period confidence is below ``min_conf``: event-like series have no grid)."""
    k = prepare_series(t_in, v_in, now, policy, wt, wv, wconf, wraw, st)
    t = wt[:k]
    if period_override > 0:
        p = period_override
        pint = np.int64(np.floor(p + 0.5))
        phase = float(t[0] % pint) if k > 0 else 0.0
        conf, expl, jit = 1.0, 1.0, 0.0
    else:
        p, phase, conf, expl, jit = estimate_period_sorted(t, coverage, tol, max_sample)
    st[S_PERIOD] = p
    st[S_PHASE] = phase
    st[S_CONF] = conf
    st[S_EXPL] = expl
    st[S_JITTER] = jit
    no, unf = count_output(t, _fill_period(st, min_conf), max_fill)
    st[S_N_OUT] = no
    st[S_N_MISSING] = no - k
    st[S_N_UNFILLED] = unf
    return k, no


def _clean_many_body(ts, values, offsets, now, policy, period_override, coverage, tol, max_sample,
                     max_fill, min_conf, impute_method, alpha, anom_methods, k_val, k_diff, treatment,
                     fault_method, season_off, season_val, ap):
    """Two parallel passes over the series: (1) validate, dedup, period, output size; (2) the same
    validation/dedup again into per-series scratch (cheaper than page-faulting a data-sized work array), then
    gap filling, imputation, anomaly detection and treatment straight into the output arrays. Series ``s``
    has the season lengths ``season_val[season_off[s]:season_off[s + 1]]``."""
    ns = offsets.size - 1
    stats = np.zeros((ns, N_STATS))
    nout = np.zeros(ns + 1, np.int64)
    for s in prange(ns):
        a = offsets[s]
        b = offsets[s + 1]
        n = b - a
        _, no = _prepare_and_period(ts[a:b], values[a:b], now, policy, period_override, coverage, tol,
                                    max_sample, max_fill, min_conf, np.empty(n, np.int64), np.empty(n),
                                    np.empty(n, np.bool_), np.empty(n), stats[s])
        nout[s + 1] = no
    out_off = np.cumsum(nout)
    m = out_off[-1]
    ot = np.empty(m, np.int64)
    ov = np.empty(m)
    oraw = np.empty(m)
    omiss = np.empty(m, np.bool_)
    oconf = np.empty(m, np.bool_)
    oimp = np.empty(m, np.bool_)
    ocode = np.empty(m, np.uint8)
    ocls = np.empty(m, np.uint8)
    oscore = np.empty(m)
    otreat = np.empty(m, np.bool_)
    for s in prange(ns):
        a = offsets[s]
        b = offsets[s + 1]
        n = b - a
        wt = np.empty(n, np.int64)
        wv = np.empty(n)
        wconf = np.empty(n, np.bool_)
        wraw = np.empty(n)
        k = prepare_series(ts[a:b], values[a:b], now, policy, wt, wv, wconf, wraw, stats[s])
        c = out_off[s]
        d = out_off[s + 1]
        fill_gaps(wt[:k], wv[:k], wraw[:k], wconf[:k], _fill_period(stats[s], min_conf), max_fill,
                  ot[c:d], ov[c:d], oraw[c:d], omiss[c:d], oconf[c:d])
        _finish_one(ot[c:d], ov[c:d], oraw[c:d], omiss[c:d], oimp[c:d], ocode[c:d], ocls[c:d], oscore[c:d],
                    otreat[c:d], impute_method, alpha, anom_methods, k_val, k_diff, treatment, fault_method,
                    season_val[season_off[s]:season_off[s + 1]], ap, stats[s])
    return out_off, ot, ov, oraw, omiss, oconf, oimp, ocode, ocls, oscore, otreat, stats


def _renamed(fn, name: str):
    """A copy of ``fn`` under another name. Numba names its on-disk cache entries after the function, so two
    dispatchers of one function (parallel and serial) would share cache entries of the same signature, and
    one process could load the other's machine code: the parallel kernel then silently runs on one core."""
    f = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    f.__qualname__ = name
    return f


_clean_many_kernel = njit(parallel=True, cache=True)(_renamed(_clean_many_body, "_clean_many_parallel"))
# the same code compiled without threads: one series (clean_series) does not pay the parallel launch
_clean_serial_kernel = njit(cache=True)(_renamed(_clean_many_body, "_clean_many_serial"))
