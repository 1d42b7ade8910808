"""Numba kernels of the DTW engine (z-normalised, Sakoe-Chiba band, squared point cost).

Two code paths compute bit-identical values:

* ``dtw_full_batched``: the full distance vector for equal-length series. Series are processed in blocks of
  ``block`` series transposed to a (time, series) layout, so the innermost loop of the dynamic programme runs
  over independent series and compiles to SIMD; blocks run in parallel (``prange``).
* ``topk_scan``: exact top-k of equal-length series: a row-wise LB_Kim/LB_Keogh scan (mini-batched) with a threshold that
  tightens as the thread-local top-k improves; survivors are gathered into blocks for the batched DTW.
* ``best_window`` (scalar, with UCR-suite pruning): LB_Kim, LB_Keogh with early abandoning, then DTW with early
  abandoning against a cumulative LB_Keogh bound. Used for subsequence search (full vector and top-k).

Every kernel normalises a window with the same sequence of floating-point operations (sequential sum, mean,
sequential sum of squared deviations, population standard deviation, ``(x - mean) / std``), and evaluates the
same cell recurrence ``D = (z - p)**2 + min(diag, up, left)``; so the pruned and the batched kernels return the
same bits for the same series.
"""

from __future__ import annotations

import math
import os

# numba's OpenMP workers spin-wait after each parallel region: 300,000 spins by default. On shared machines
# that spinning competes with other processes (a call on 811 series measured 10-20 ms instead of 0.12 ms);
# fully passive waiting instead costs a futex wake-up per region (~20 us best, ~55 us median here: a third of
# a small call). A short spin (~ a few microseconds) keeps back-to-back calls (a sweep, a top-k after a
# full vector) on warm threads and gives the cores back almost at once. An explicit user setting of either
# variable wins; it must be set before the OpenMP runtime starts (numba loads it at the first parallel call).
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "10000"

import numba as nb  # noqa: E402
import numpy as np  # noqa: E402

INF = np.inf
# Lower bounds and computed DTW costs differ by rounding only (~m * 1e-16 relative); prune with a margin so
# that a candidate is never lost to rounding.
PRUNE_MARGIN = 1.0 + 1e-9
# The row-wise scan's lower bound uses vectorised reductions and a one-pass variance (only when
# E[x^2] / var < 1e4, so each normalised value is off by < ~1e-9 (1 + |z|)); it prunes only above
# thr * SCAN_MARGIN + SCAN_SLACK, which covers that error for any bound size.
SCAN_MARGIN = 1.0 + 1e-6
SCAN_SLACK = 1e-8


@nb.njit(cache=True, nogil=True)
def window_stats(x, start, m, normalize):
    """(mean, std, ok) of x[start:start+m]; std == 0 marks a constant window; ok is False on NaN/inf."""
    if not normalize:
        s = 0.0
        for i in range(m):
            s += x[start + i]
        return 0.0, 1.0, math.isfinite(s)
    s = 0.0
    lo = x[start]
    hi = x[start]
    for i in range(m):
        v = x[start + i]
        s += v
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    if not math.isfinite(s):
        return 0.0, 0.0, False
    mean = s / m
    ss = 0.0
    for i in range(m):
        d = x[start + i] - mean
        ss += d * d
    std = math.sqrt(ss / m)
    if hi == lo:
        std = 0.0
    return mean, std, True


@nb.njit(cache=True, nogil=True)
def znorm_into(x, start, m, mean, std, out):
    """Write the normalised window into out (zeros for a constant window)."""
    if std == 0.0:
        for i in range(m):
            out[i] = 0.0
    else:
        for i in range(m):
            out[i] = (x[start + i] - mean) / std


@nb.njit(cache=True, nogil=True)
def znormalize_1d(x, normalize):
    """Normalised copy of a whole 1-d array (used for the pattern)."""
    m = x.shape[0]
    out = np.empty(m)
    mean, std, ok = window_stats(x, 0, m, normalize)
    if not ok:
        out[:] = np.nan
        return out
    znorm_into(x, 0, m, mean, std, out)
    return out


@nb.njit(cache=True, nogil=True)
def dtw_sq_early_abandon(z, p, r, cb, cut, prev, cur):
    """Squared banded DTW of z against p (same length); INF once a row bound exceeds ``cut``.

    ``cb[t]`` is a lower bound of the cost of rows t..m-1 (cb[m] == 0); prev/cur are scratch of length 2r+3.
    """
    m = z.shape[0]
    w = 2 * r + 1
    for k in range(w + 2):
        prev[k] = INF
        cur[k] = INF
    prev[r + 1] = 0.0
    for i in range(m):
        zi = z[i]
        klo = max(0, r - i)
        khi = min(w - 1, m - 1 - i + r)
        for k in range(0, klo):
            cur[k + 1] = INF
        for k in range(khi + 1, w):
            cur[k + 1] = INF
        rowmin = INF
        for k in range(klo, khi + 1):
            d = zi - p[i + k - r]
            a = prev[k + 1]
            u = prev[k + 2]
            lf = cur[k]
            if u < a:
                a = u
            if lf < a:
                a = lf
            v = d * d + a
            cur[k + 1] = v
            if v < rowmin:
                rowmin = v
        if rowmin + cb[i + 1] > cut:
            return INF
        tmp = prev
        prev = cur
        cur = tmp
    return prev[r + 1]


@nb.njit(cache=True, nogil=True)
def best_window(x, p, upper, lower, r, m, normalize, thr, z, lb, cb, prev, cur):
    """Best (squared DTW, start) over the windows of x; (INF, -1) if none beats ``thr``; start -2 on NaN/inf.

    Pruning cascade per window: LB_Kim (first/last, then second/second-last), LB_Keogh against the pattern's
    envelope with early abandoning, then DTW with early abandoning on the cumulative LB_Keogh bound.
    """
    n_win = x.shape[0] - m + 1
    best = INF
    loc = -1
    for s in range(n_win):
        mean, std, ok = window_stats(x, s, m, normalize)
        if not ok:
            return INF, -2
        bound = best if best < thr else thr
        cut = bound * PRUNE_MARGIN
        # LB_Kim: the path contains (0, 0) and (m-1, m-1)
        if std == 0.0:
            z0 = 0.0
            zl = 0.0
        else:
            z0 = (x[s] - mean) / std
            zl = (x[s + m - 1] - mean) / std
        d = z0 - p[0]
        kim = d * d
        if m > 1:
            d = zl - p[m - 1]
            kim += d * d
        if kim > cut:
            continue
        if m >= 4:
            if std == 0.0:
                z1 = 0.0
                zl1 = 0.0
            else:
                z1 = (x[s + 1] - mean) / std
                zl1 = (x[s + m - 2] - mean) / std
            a = (z1 - p[0]) * (z1 - p[0])
            b = (z0 - p[1]) * (z0 - p[1])
            c = (z1 - p[1]) * (z1 - p[1])
            if b < a:
                a = b
            if c < a:
                a = c
            kim += a
            a = (zl1 - p[m - 1]) * (zl1 - p[m - 1])
            b = (zl - p[m - 2]) * (zl - p[m - 2])
            c = (zl1 - p[m - 2]) * (zl1 - p[m - 2])
            if b < a:
                a = b
            if c < a:
                a = c
            kim += a
            if kim > cut:
                continue
        # LB_Keogh with early abandoning (normalising on the fly)
        acc = 0.0
        pruned = False
        for t in range(m):
            v = 0.0 if std == 0.0 else (x[s + t] - mean) / std
            z[t] = v
            if v > upper[t]:
                e = v - upper[t]
                e = e * e
            elif v < lower[t]:
                e = v - lower[t]
                e = e * e
            else:
                e = 0.0
            lb[t] = e
            acc += e
            if acc > cut:
                pruned = True
                break
        if pruned:
            continue
        cb[m] = 0.0
        for t in range(m - 1, -1, -1):
            cb[t] = cb[t + 1] + lb[t]
        dist = dtw_sq_early_abandon(z, p, r, cb, cut, prev, cur)
        if dist < best:
            best = dist
            loc = s
    if best < thr:
        return best, loc
    return INF, -1


@nb.njit(parallel=True, cache=True)
def dtw_windows_all(X, p, upper, lower, r, normalize, out, loc):
    """Full vector for series at least as long as the pattern: best window per series (prange over series)."""
    n = X.shape[0]
    m = p.shape[0]
    w = 2 * r + 1
    for i in nb.prange(n):
        z = np.empty(m)
        lb = np.empty(m)
        cb = np.empty(m + 1)
        prev = np.empty(w + 2)
        cur = np.empty(w + 2)
        best, at = best_window(X[i], p, upper, lower, r, m, normalize, INF, z, lb, cb, prev, cur)
        if at == -2:
            out[i] = np.nan
            loc[i] = -1
        else:
            out[i] = math.sqrt(best)
            loc[i] = at


@nb.njit(parallel=True, cache=True)
def dtw_topk_chunks(X, p, upper, lower, r, normalize, k, nchunks, out_d, out_i, out_loc, bad):
    """Per chunk of series (one per thread), the k smallest squared distances, ties broken by index.

    Each chunk scans its series in index order with its own best-so-far threshold (the k-th best); results are
    sorted ascending in out_d[c], out_i[c] (index -1 / INF where a chunk holds fewer than k series).
    """
    n = X.shape[0]
    m = p.shape[0]
    w = 2 * r + 1
    per = (n + nchunks - 1) // nchunks
    for c in nb.prange(nchunks):
        lo = c * per
        hi = min(n, lo + per)
        hd = np.full(k, INF)
        hi_ = np.full(k, -1, dtype=np.int64)
        hl = np.full(k, -1, dtype=np.int64)
        z = np.empty(m)
        lb = np.empty(m)
        cb = np.empty(m + 1)
        prev = np.empty(w + 2)
        cur = np.empty(w + 2)
        filled = 0
        for s in range(lo, hi):
            thr = hd[k - 1] if filled == k else INF
            best, at = best_window(X[s], p, upper, lower, r, m, normalize, thr, z, lb, cb, prev, cur)
            if at == -2:
                bad[s] = True
                continue
            if at < 0:
                continue
            # insert after every entry with distance <= best (indices grow within a chunk)
            pos = filled if filled < k else k - 1
            while pos > 0 and hd[pos - 1] > best:
                if pos < k:
                    hd[pos] = hd[pos - 1]
                    hi_[pos] = hi_[pos - 1]
                    hl[pos] = hl[pos - 1]
                pos -= 1
            hd[pos] = best
            hi_[pos] = s
            hl[pos] = at
            if filled < k:
                filled += 1
        for j in range(k):
            out_d[c, j] = hd[j]
            out_i[c, j] = hi_[j]
            out_loc[c, j] = hl[j]


@nb.njit(cache=True, nogil=True)
def block_normalize(zt, nb_, normalize, ok, ssum, first, diff, mean, ss, std):
    """Normalise columns 0..nb_ of zt in place (lanes past nb_ are zeroed). ok[b] is False for a column
    with NaN/inf (its values are zeroed).

    Same arithmetic as ``window_stats``/``znorm_into`` (sequential sum, mean, sequential sum of squared
    deviations, population std, ``(x - mean) / std``), vectorised across the block; a column whose values
    all equal its first value is constant (zeros). Row views keep every index provably in range, so LLVM
    emits SIMD code for each pass.
    """
    m, block = zt.shape
    for i in range(m):
        zi = zt[i]
        for b in range(nb_, block):
            zi[b] = 0.0
    for b in range(block):
        ok[b] = True
    z0 = zt[0]
    for b in range(block):
        ssum[b] = 0.0
        ss[b] = 0.0
        first[b] = z0[b]
        diff[b] = 0.0
    for i in range(m):
        zi = zt[i]
        for b in range(block):
            v = zi[b]
            ssum[b] += v
            diff[b] += 0.0 if v == first[b] else 1.0
    if not normalize:
        for b in range(block):
            if not math.isfinite(ssum[b]):
                ok[b] = False
                for i in range(m):
                    zt[i, b] = 0.0
        return
    for b in range(block):
        mean[b] = ssum[b] / m
    for i in range(m):
        zi = zt[i]
        for b in range(block):
            d = zi[b] - mean[b]
            ss[b] += d * d
    for b in range(block):
        s = math.sqrt(ss[b] / m)
        fin = math.isfinite(ssum[b])
        ok[b] = fin
        std[b] = s if (fin and diff[b] > 0.0) else 0.0
    for i in range(m):
        zi = zt[i]
        for b in range(block):
            sd = std[b]
            zi[b] = 0.0 if sd == 0.0 else (zi[b] - mean[b]) / sd


@nb.njit(cache=True, nogil=True)
def block_load(X, rows, use_rows, s0, nb_, normalize, zt, ok, ssum, first, diff, mean, ss, std):
    """Transpose series s0..s0+nb_ of X (n, m) (or X[rows[s0..]]) into zt (m, block), then normalise."""
    m = zt.shape[0]
    for b in range(nb_):
        row = X[rows[s0 + b]] if use_rows else X[s0 + b]
        for i in range(m):
            zt[i, b] = row[i]
    block_normalize(zt, nb_, normalize, ok, ssum, first, diff, mean, ss, std)


@nb.njit(cache=True, nogil=True)
def block_load_t(XT, s0, nb_, normalize, zt, ok, ssum, first, diff, mean, ss, std):
    """Copy columns s0..s0+nb_ of a time-major XT (m, n) (a Fortran-ordered (n, m) input seen transposed:
    no transposition needed) into zt (m, block), then normalise."""
    m = zt.shape[0]
    for i in range(m):
        src = XT[i, s0:s0 + nb_]
        dst = zt[i]
        for b in range(nb_):
            dst[b] = src[b]
    block_normalize(zt, nb_, normalize, ok, ssum, first, diff, mean, ss, std)


@nb.njit(cache=True, nogil=True)
def _dp_init(r, prev, cur):
    w = 2 * r + 1
    block = prev.shape[1]
    for k in range(w + 2):
        for b in range(block):
            prev[k, b] = INF
            cur[k, b] = INF
    for b in range(block):
        prev[r + 1, b] = 0.0


@nb.njit(cache=True, nogil=True)
def _dp_row(zi, i, m, p, r, prev, cur):
    """One row of the banded DP for every lane: cur[k + 1] = cell (i, i + k - r) from prev (row i - 1)."""
    w = 2 * r + 1
    block = zi.shape[0]
    klo = max(0, r - i)
    khi = min(w - 1, m - 1 - i + r)
    for k in range(0, klo):
        cur[k + 1, :] = INF
    for k in range(khi + 1, w):
        cur[k + 1, :] = INF
    for k in range(klo, khi + 1):
        pj = p[i + k - r]
        dg = prev[k + 1]
        up = prev[k + 2]
        lf = cur[k]
        dst = cur[k + 1]
        for b in range(block):
            d = zi[b] - pj
            a = dg[b]
            u = up[b]
            l_ = lf[b]
            if u < a:
                a = u
            if l_ < a:
                a = l_
            dst[b] = d * d + a


@nb.njit(cache=True, nogil=True)
def block_dtw_sq(zt, p, r, prev, cur, out):
    """Squared banded DTW of every column of zt against p into out; the DP's inner loop runs across columns
    (SIMD). prev/cur: scratch (2r+3, block)."""
    m = zt.shape[0]
    _dp_init(r, prev, cur)
    for i in range(m):
        _dp_row(zt[i], i, m, p, r, prev, cur)
        tmp = prev
        prev = cur
        cur = tmp
    res = prev[r + 1]
    for b in range(out.shape[0]):
        out[b] = res[b]


@nb.njit(cache=True, nogil=True)
def block_dtw_sq_t(XT, s0, nb_, normalize, p, r, ok, ssum, first, diff, mean, ss, std, zr, prev, cur, out):
    """``block_load_t`` + ``block_dtw_sq`` fused for a time-major XT (m, n): column statistics read XT in
    place and each row is normalised into ``zr`` just before its DP step, so the block is never copied.
    Same arithmetic, same bits."""
    m = XT.shape[0]
    block = zr.shape[0]
    for b in range(block):
        ssum[b] = 0.0
        ss[b] = 0.0
        diff[b] = 0.0
        mean[b] = 0.0
        std[b] = 0.0
        zr[b] = 0.0
        ok[b] = b < nb_
    x0 = XT[0, s0:s0 + nb_]
    for b in range(nb_):
        first[b] = x0[b]
    for i in range(m):
        xi = XT[i, s0:s0 + nb_]
        for b in range(nb_):
            v = xi[b]
            ssum[b] += v
            diff[b] += 0.0 if v == first[b] else 1.0
    for b in range(nb_):
        ok[b] = math.isfinite(ssum[b])
    if normalize:
        for b in range(nb_):
            mean[b] = ssum[b] / m
        for i in range(m):
            xi = XT[i, s0:s0 + nb_]
            for b in range(nb_):
                d = xi[b] - mean[b]
                ss[b] += d * d
        for b in range(nb_):
            s = math.sqrt(ss[b] / m)
            std[b] = s if (ok[b] and diff[b] > 0.0) else 0.0
    _dp_init(r, prev, cur)
    for i in range(m):
        xi = XT[i, s0:s0 + nb_]
        if normalize:
            for b in range(nb_):
                sd = std[b]
                zr[b] = 0.0 if sd == 0.0 else (xi[b] - mean[b]) / sd
        else:
            for b in range(nb_):
                zr[b] = xi[b] if ok[b] else 0.0
        _dp_row(zr, i, m, p, r, prev, cur)
        tmp = prev
        prev = cur
        cur = tmp
    res = prev[r + 1]
    for b in range(out.shape[0]):
        out[b] = res[b]


@nb.njit(cache=True, nogil=True)
def _scratch(m, r, block):
    zt = np.zeros((m, block))
    ok = np.ones(block, dtype=np.bool_)
    vecs = np.empty((6, block))
    prev = np.empty((2 * r + 3, block))
    cur = np.empty((2 * r + 3, block))
    return zt, ok, vecs, prev, cur


@nb.njit(parallel=True, cache=True)
def dtw_full_batched(X, rows, use_rows, transposed, p, r, normalize, block, nchunks, out):
    """Distances of equal-length series (all rows, or X[rows]) to p: SIMD across a block of series, prange
    across ``nchunks`` contiguous runs of blocks (scratch allocated once per run).

    ``transposed``: X is time-major (m, n), e.g. the transpose of a Fortran-ordered (n, m) array such as
    ``DataFrame.to_numpy()`` returns; blocks are then copied without transposing (``rows`` unsupported).
    Rows with NaN/inf get NaN in ``out`` (the caller turns that into an error or a repair).
    """
    if transposed:
        n = X.shape[1]
        m = X.shape[0]
    else:
        n = rows.shape[0] if use_rows else X.shape[0]
        m = X.shape[1]
    nblocks = (n + block - 1) // block
    for c in nb.prange(nchunks):
        zt, ok, vecs, prev, cur = _scratch(m, r, block)
        d = np.empty(block)
        # balanced split: chunk sizes differ by at most one block (13 blocks on 2 threads: 7 + 6, not 8 + 5)
        for bi in range(c * nblocks // nchunks, (c + 1) * nblocks // nchunks):
            s0 = bi * block
            nb_ = min(block, n - s0)
            if transposed:
                block_dtw_sq_t(X, s0, nb_, normalize, p, r, ok, vecs[0], vecs[1], vecs[2], vecs[3], vecs[4],
                               vecs[5], zt[0], prev, cur, d)
            else:
                block_load(X, rows, use_rows, s0, nb_, normalize, zt, ok,
                           vecs[0], vecs[1], vecs[2], vecs[3], vecs[4], vecs[5])
                block_dtw_sq(zt, p, r, prev, cur, d)
            for b in range(nb_):
                out[s0 + b] = math.sqrt(d[b]) if ok[b] else np.nan


@nb.njit(cache=True, nogil=True)
def _flush_pending(pend, pend_idx, npend, p, r, k, hd, hidx, filled, prev, cur, d):
    """Exact DTW of the pending columns, merged into the sorted thread-local top-k; returns the new fill."""
    block_dtw_sq(pend, p, r, prev, cur, d)
    for b in range(npend):
        v = d[b]
        if filled == k and not v < hd[k - 1]:
            continue
        pos = filled if filled < k else k - 1
        while pos > 0 and hd[pos - 1] > v:
            if pos < k:
                hd[pos] = hd[pos - 1]
                hidx[pos] = hidx[pos - 1]
            pos -= 1
        hd[pos] = v
        hidx[pos] = pend_idx[b]
        if filled < k:
            filled += 1
    return filled


_FAST = {"reassoc", "nsz", "arcp", "contract"}  # vectorised reductions; NaN/inf semantics kept


@nb.njit(cache=True, nogil=True, fastmath=_FAST)
def row_kim(X, s, p, normalize):
    """(LB_Kim ends, mean, 1/std, status) of row s; status 0 ok, 1 NaN/inf, 2 (near-)constant: the bound is
    then 0 so that the exact path decides. Vectorised reductions, one-pass variance when well conditioned:
    equal to an exact evaluation up to rounding (see SCAN_MARGIN). Indexes X[s, t] directly: slicing X[s]
    inside prange would contend on X's reference count."""
    m = X.shape[1]
    sm = 0.0
    sq = 0.0
    for t in range(m):
        v = X[s, t]
        sm += v
        sq += v * v
    if not math.isfinite(sm + sq):
        if math.isfinite(sm):  # the squares overflowed: not a NaN/inf series, let the exact path decide
            return 0.0, 0.0, 1.0, 2
        return 0.0, 0.0, 1.0, 1
    mean = 0.0
    inv = 1.0
    if normalize:
        mean = sm / m
        var = sq / m - mean * mean
        # one-pass variance is accurate to ~m * eps * E[x^2] / var relative; two passes when that ratio is
        # large, and (near-)constant series are handed to the exact path
        if not var > (sq / m) * 1e-4:
            ss = 0.0
            for t in range(m):
                d = X[s, t] - mean
                ss += d * d
            if ss <= (abs(mean) * 1e-10) ** 2 * m + 1e-280:
                return 0.0, mean, 1.0, 2
            var = ss / m
        inv = 1.0 / math.sqrt(var)
    d0 = (X[s, 0] - mean) * inv - p[0]
    acc = d0 * d0
    if m > 1:
        dl = (X[s, m - 1] - mean) * inv - p[m - 1]
        acc += dl * dl
    return acc, mean, inv, 0


@nb.njit(cache=True, nogil=True, fastmath=_FAST)
def row_keogh_middle(X, s, mean, inv, upper, lower):
    """LB_Keogh terms of rows 1..m-2 of the normalised row s."""
    m = X.shape[1]
    acc = 0.0
    for t in range(1, m - 1):
        v = (X[s, t] - mean) * inv
        a = v - upper[t]
        b = lower[t] - v
        a = a if a > 0.0 else 0.0
        b = b if b > 0.0 else 0.0
        e = a + b
        acc += e * e
    return acc


@nb.njit(parallel=True, cache=True)
def topk_scan(X, p, upper, lower, r, normalize, block, k, tau0, nchunks, out_d, out_i, bad):
    """Top-k of equal-length series: a row-wise lower-bound scan (no transposition, no normalised copy), and
    exact batched DTW (``block_load`` + ``block_dtw_sq``, bit-identical to the full vector) for each full
    block of survivors. Threshold: min(tau0, thread-local k-th best) with a rounding margin."""
    n, m = X.shape
    per = (n + nchunks - 1) // nchunks
    for c in nb.prange(nchunks):
        lo = c * per
        hi = min(n, lo + per)
        hd = np.full(k, INF)
        hidx = np.full(k, -1, dtype=np.int64)
        filled = 0
        zt, ok, vecs, prev, cur = _scratch(m, r, block)
        dd = np.empty(block)
        cand = np.empty(block, dtype=np.int64)
        ncand = 0
        thr = tau0 * SCAN_MARGIN + SCAN_SLACK
        mb = 16
        kim = np.empty(mb)
        mean = np.empty(mb)
        inv = np.empty(mb)
        status = np.empty(mb, dtype=np.int64)
        for base in range(lo, hi, mb):
            cnt = min(mb, hi - base)
            # stats + LB_Kim of a mini-batch first: no data-dependent branch between rows, so the rows'
            # latency chains overlap; the unpredictable pruning branches come after
            for j in range(cnt):
                kim[j], mean[j], inv[j], status[j] = row_kim(X, base + j, p, normalize)
            for j in range(cnt):
                st = status[j]
                if st == 1:
                    bad[base + j] = True
                    continue
                if st == 0:
                    if kim[j] > thr:
                        continue
                    if kim[j] + row_keogh_middle(X, base + j, mean[j], inv[j], upper, lower) > thr:
                        continue
                cand[ncand] = base + j
                ncand += 1
                if ncand == block:
                    block_load(X, cand, True, 0, ncand, normalize, zt, ok,
                               vecs[0], vecs[1], vecs[2], vecs[3], vecs[4], vecs[5])
                    filled = _flush_pending(zt, cand, ncand, p, r, k, hd, hidx, filled, prev, cur, dd)
                    ncand = 0
                    t = tau0
                    if filled == k and hd[k - 1] < t:
                        t = hd[k - 1]
                    thr = t * SCAN_MARGIN + SCAN_SLACK
        if ncand > 0:
            block_load(X, cand, True, 0, ncand, normalize, zt, ok,
                       vecs[0], vecs[1], vecs[2], vecs[3], vecs[4], vecs[5])
            filled = _flush_pending(zt, cand, ncand, p, r, k, hd, hidx, filled, prev, cur, dd)
        for j in range(k):
            out_d[c, j] = hd[j]
            out_i[c, j] = hidx[j]


@nb.njit(cache=True, nogil=True)
def smallest_k(d, k):
    """Indices of the k smallest values of d, ascending, ties by lower index (``argsort(kind="stable")[:k]``)
    in one pass with an insertion-sorted buffer (a few microseconds where numpy's partition + lexsort take
    ~10), and whether d holds a NaN (then the indices are meaningless: the caller raises)."""
    n = d.shape[0]
    k = min(k, n)
    hd = np.empty(k)
    hi = np.empty(k, dtype=np.int64)
    filled = 0
    has_nan = False
    for i in range(n):
        v = d[i]
        if v != v:
            has_nan = True
            continue
        if filled == k and not v < hd[k - 1]:
            continue
        j = filled if filled < k else k - 1
        while j > 0 and hd[j - 1] > v:
            if j < k:
                hd[j] = hd[j - 1]
                hi[j] = hi[j - 1]
            j -= 1
        hd[j] = v
        hi[j] = i
        if filled < k:
            filled += 1
    return hi[:filled], has_nan


@nb.njit(cache=True)
def dtw_topk_full(X, transposed, p, r, normalize, block, nchunks, k, out):
    """``dtw_full_batched`` into ``out`` then ``smallest_k``: a small top-k query in one call (the fixed cost
    of a call, not the DP, is what dominates below a few thousand series)."""
    dtw_full_batched(X, np.empty(0, dtype=np.int64), False, transposed, p, r, normalize, block, nchunks, out)
    return smallest_k(out, k)
