"""The DTW engine against a plain reference, subsequence search, NaN handling and top-k queries."""

from __future__ import annotations

import numpy as np
import pytest

from tsops.similarity.dtw import NonFiniteSeriesError, band_halfwidth, dtw_distances, dtw_topk, znormalize
from tsops.similarity.reference import dtw_distances_reference, dtw_reference, znorm_reference


@pytest.fixture(scope="module")
def walks():
    rng = np.random.default_rng(42)
    x = np.cumsum(rng.normal(size=(60, 24)), axis=1)
    x[5] = 3.0  # constant series
    x[6] = 0.1  # constant series whose mean is not exactly 0.1 in floating point
    x[7] = x[8]  # duplicate row: equal distances
    return x, np.cumsum(rng.normal(size=24))


def test_band_halfwidth_follows_ucr_rule():
    assert band_halfwidth(0, 52) == 0
    assert band_halfwidth(0.05, 52) == 2  # floor(2.6)
    assert band_halfwidth(0.25, 52) == 13
    assert band_halfwidth(1, 52) == 51  # whole length, clipped to m - 1
    assert band_halfwidth(3, 52) == 3  # > 1: steps
    assert band_halfwidth(3.7, 52) == 3
    assert band_halfwidth(500, 52) == 51
    with pytest.raises(ValueError, match="stretch"):
        band_halfwidth(-0.1, 52)
    with pytest.raises(ValueError, match="stretch"):
        band_halfwidth(float("nan"), 52)


@pytest.mark.parametrize("stretch", [0, 0.05, 0.1, 0.25, 1, 3, 100])
def test_equals_reference(walks, stretch):
    x, p = walks
    got = dtw_distances(x, p, stretch)
    ref, _ = dtw_distances_reference(x, p, stretch)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_equals_reference_without_normalisation(walks):
    x, p = walks
    got = dtw_distances(x, p, 0.1, normalize=False)
    ref, _ = dtw_distances_reference(x, p, 0.1, normalize=False)
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def test_constant_series_become_zeros_and_single_row(walks):
    x, p = walks
    q = znorm_reference(p)
    expected = dtw_reference(np.zeros(24), q, band_halfwidth(0.1, 24))
    d = dtw_distances(x[5:7], p, 0.1)
    np.testing.assert_allclose(d, [expected, expected], rtol=1e-12)
    np.testing.assert_array_equal(znormalize(np.full(7, 0.1)), np.zeros(7))
    one = dtw_distances(x[0], p, 0.1)  # a 1-d series is one row
    assert one.shape == (1,)
    np.testing.assert_allclose(one, dtw_distances_reference(x[:1], p, 0.1)[0], rtol=1e-9)
    # the pattern against itself (and any positive rescaling of it) is at distance 0
    np.testing.assert_allclose(dtw_distances(np.vstack([p, 3 * p + 7]), p, 0.05), [0.0, 0.0], atol=1e-7)


def test_band_limits_the_warp():
    """A pattern shifted by two steps: zero distance once the band allows two steps, not before."""
    base = np.sin(np.linspace(0, 4 * np.pi, 40)) + np.linspace(0, 1, 40)
    shifted = np.concatenate([base[:1].repeat(2), base[:-2]])
    d = dtw_distances(shifted, base, 0)
    d1 = dtw_distances(shifted, base, 1.5)  # one step
    d2 = dtw_distances(shifted, base, 2.0)  # > 1: absolute steps
    assert d[0] > d1[0] > d2[0]
    np.testing.assert_allclose(d2, dtw_distances_reference(shifted[None], base, 2.0)[0], rtol=1e-9)


def test_subsequence_search_finds_planted_pattern():
    rng = np.random.default_rng(3)
    p = np.cumsum(rng.normal(size=20))
    x = np.cumsum(rng.normal(size=(8, 90)), axis=1)
    starts = [0, 13, 37, 70, 55, 2, 41, 64]
    for row, s in enumerate(starts):
        x[row, s : s + 20] = 5.0 * p + 100.0 * row  # scaled and shifted copy: distance 0 after normalising
    d, loc = dtw_distances(x, p, 0.1, return_locations=True)
    np.testing.assert_array_equal(loc, starts)
    np.testing.assert_allclose(d, 0.0, atol=1e-6)
    ref_d, ref_loc = dtw_distances_reference(x[:3], p, 0.1)
    np.testing.assert_allclose(d[:3], ref_d, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(loc[:3], ref_loc)


def test_subsequence_search_equals_reference_on_noise():
    rng = np.random.default_rng(5)
    p = np.cumsum(rng.normal(size=16))
    x = np.cumsum(rng.normal(size=(12, 50)), axis=1)
    for stretch in (0, 0.1, 0.5):
        d, loc = dtw_distances(x, p, stretch, return_locations=True)
        ref_d, ref_loc = dtw_distances_reference(x, p, stretch)
        np.testing.assert_allclose(d, ref_d, rtol=1e-9)
        np.testing.assert_array_equal(loc, ref_loc)


def test_nan_raises_naming_the_series(walks):
    x, p = walks
    bad = x[:10].copy()
    bad[4, 7] = np.nan
    ids = [f"P{i}" for i in range(10)]
    with pytest.raises(NonFiniteSeriesError, match="'P4'"):
        dtw_distances(bad, p, 0.1, ids=ids)
    with pytest.raises(NonFiniteSeriesError, match="rows 4"):
        dtw_topk(bad, p, 0.1, k=3)
    longer = np.hstack([bad, bad])
    with pytest.raises(NonFiniteSeriesError, match="rows 4"):
        dtw_distances(longer, p, 0.1)
    bad[2, 0] = np.inf
    with pytest.raises(NonFiniteSeriesError, match="infinite"):
        dtw_distances(bad, p, 0.1, nan_policy="interpolate")
    with pytest.raises(NonFiniteSeriesError, match="pattern"):
        dtw_distances(x, np.where(np.arange(24) == 3, np.nan, p), 0.1)


def test_nan_interpolate_policy(walks):
    x, p = walks
    holes = x[:6].copy()
    holes[1, 3:6] = np.nan
    holes[2, 0] = np.nan  # edge: takes the nearest value
    filled = holes.copy()
    t = np.arange(24.0)
    for i in (1, 2):
        good = ~np.isnan(holes[i])
        filled[i] = np.interp(t, t[good], holes[i, good])
    np.testing.assert_array_equal(dtw_distances(holes, p, 0.1, nan_policy="interpolate"),
                                  dtw_distances(filled, p, 0.1))
    holes[3] = np.nan
    with pytest.raises(NonFiniteSeriesError, match="only NaN"):
        dtw_distances(holes, p, 0.1, nan_policy="interpolate")
    with pytest.raises(ValueError, match="nan_policy"):
        dtw_distances(x, p, 0.1, nan_policy="drop")


def test_shape_errors(walks):
    x, p = walks
    with pytest.raises(ValueError, match="shorter than the pattern"):
        dtw_distances(x[:, :10], p, 0.1)
    with pytest.raises(ValueError, match="ids has"):
        dtw_distances(x, p, 0.1, ids=["a"])
    with pytest.raises(ValueError, match="k must be"):
        dtw_topk(x, p, 0.1, k=0)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="block must be a positive integer"):
            dtw_distances(x, p, 0.1, block=bad)
        with pytest.raises(ValueError, match="block must be a positive integer"):
            dtw_topk(np.asfortranarray(x), p, 0.1, k=3, block=bad)


@pytest.mark.parametrize("stretch", [0, 0.05, 0.1, 0.14, 0.25, 1.0])  # r = 0, 1, 3, 4 (unrolled), 8, 31
def test_topk_equals_argsort_of_full_vector(stretch):
    """The pruned path (n above the small-n cut-off) on random walks with planted near-copies and ties."""
    rng = np.random.default_rng(11)
    p = np.cumsum(rng.normal(size=32))
    x = np.cumsum(rng.normal(size=(30_000, 32)), axis=1)
    x[100:110] = p + rng.normal(scale=0.3, size=(10, 32))
    x[20_000] = x[105]  # exact tie with a lower-index series
    x[7] = 1.0  # constant
    x[200:300] += 1e7  # mean >> std: the scan's one-pass variance falls back to two passes
    x[104] += 1e7  # ... also for a near-copy of the pattern
    full = dtw_distances(x, p, stretch)
    for k in (1, 10, 25):
        top = dtw_topk(x, p, stretch, k=k)
        expected = np.argsort(full, kind="stable")[:k]
        np.testing.assert_array_equal(top.indices, expected)
        np.testing.assert_array_equal(top.distances, full[expected])


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("stretch", [0.04, 0.06, 0.1])  # r = 2, 3, 5 at m = 52
def test_topk_screened_by_reversed_keogh(stretch, normalize):
    """A rough pattern (noise around a trend) against smooth walks: the reversed LB_Keogh prunes most of the
    scan's survivors; the top-k must still equal the stable argsort of the full vector."""
    rng = np.random.default_rng(5)
    m = 52
    p = np.linspace(0, 3, m) + rng.normal(size=m)
    x = np.cumsum(rng.normal(size=(40_000, m)), axis=1)
    x[500:520] = p + rng.normal(scale=0.5, size=(20, m))
    x[30_000] = x[505]  # tie with a lower index
    x[9] = -2.0  # constant: no bound, straight to the exact DTW
    x[700:720] = x[700:720] * 1e-3 + 5e6  # mean >> std
    full = dtw_distances(x, p, stretch, normalize=normalize)
    for k in (1, 10, 40):
        top = dtw_topk(x, p, stretch, k=k, normalize=normalize)
        expected = np.argsort(full, kind="stable")[:k]
        np.testing.assert_array_equal(top.indices, expected)
        np.testing.assert_array_equal(top.distances, full[expected])


def test_reversed_keogh_is_a_lower_bound():
    from tsops.similarity._banded import rev_batch
    from tsops.similarity.reference import dtw_distances_reference

    rng = np.random.default_rng(2)
    p = znormalize(rng.normal(size=30))
    for m in (30, 7):  # 7: the clipped end windows overlap the interior for the wider bands
        x = np.cumsum(rng.normal(size=(16, m)), axis=1) * 3.0 + 50.0
        mean, inv = x.mean(axis=1), 1.0 / x.std(axis=1)
        q = znormalize(p[:m])
        z = (x - mean[:, None]) * inv[:, None]
        for r in range(0, 6):
            out = np.zeros(16)
            done = rev_batch(x, 0, np.arange(16), 16, mean, inv, q, r, out)
            assert done == (r <= 4 and m >= 2 * r + 1)
            if not done:
                continue
            kim = (z[:, 0] - q[0]) ** 2 + (z[:, -1] - q[-1]) ** 2
            # brute force: each middle pattern point against the range of its clipped window
            brute = np.zeros(16)
            for t in range(1, m - 1):
                w = z[:, max(0, t - r):min(m, t + r + 1)]
                brute += (np.maximum(q[t] - w.max(axis=1), 0) + np.maximum(w.min(axis=1) - q[t], 0)) ** 2
            np.testing.assert_allclose(out, brute, rtol=1e-9, atol=1e-12)
            d, _ = dtw_distances_reference(x, q, r / m + 1e-12)
            assert np.all(kim + out <= d**2 * (1 + 1e-9)), (m, r)
            if r == 2 and m == 30:
                assert np.mean((kim + out) / d**2) > 0.3  # and not a trivial one


@pytest.mark.parametrize("stretch", [0, 0.05, 0.1, 0.3])
def test_topk_float32_screen_is_exact(stretch):
    """Column-major input (as from a DataFrame) takes the float32 screen: the top-k must equal the stable
    argsort of the exact float64 vector, with exact ties straddling the k-th place, constant series and
    near-duplicates whose float32 distances collide."""
    rng = np.random.default_rng(21)
    m = 52
    p = np.cumsum(rng.normal(size=m))
    x = np.cumsum(rng.normal(size=(3000, m)), axis=1)
    x[50:60] = p + rng.normal(scale=0.4, size=(10, m))
    x[2000:2012] = x[55]  # 13 exact ties with row 55: they straddle k = 10 and 20
    x[100] = 3.0  # constant
    x[101] = x[52] * (1 + 1e-12)  # a float32 collision with row 52 whose float64 distance differs
    f = np.asfortranarray(x)
    full = dtw_distances(f, p, stretch)
    for k in (1, 5, 10, 20, 40):
        top = dtw_topk(f, p, stretch, k=k)
        expected = np.argsort(full, kind="stable")[:k]
        np.testing.assert_array_equal(top.indices, expected)
        np.testing.assert_array_equal(top.distances, full[expected])
    f[7, 3] = np.inf
    with pytest.raises(NonFiniteSeriesError, match="rows 7"):
        dtw_topk(f, p, stretch, k=5)


def test_float32_error_model_bounds_the_float32_dtw():
    from tsops.similarity._kernels import _full_f32_t, f32_error_model

    rng = np.random.default_rng(4)
    for m, r in ((52, 2), (52, 13), (200, 20)):
        p = znormalize(rng.normal(size=m))
        x = np.asfortranarray(np.vstack([np.cumsum(rng.normal(size=(500, m)), axis=1), rng.normal(size=(500, m))]))
        x[:40] = x[:40] * 1e-3 + 1e5  # mean >> std: those blocks take the two-pass statistics
        x[45] = 7.0  # constant
        exact = dtw_distances(x, p, r) ** 2
        out = np.empty(len(x), dtype=np.float32)
        kbest = np.empty((2, 5))
        assert _full_f32_t(x.T, p.astype(np.float32), r, 64, 2, out, kbest) == 0
        np.testing.assert_array_equal(np.sort(kbest.ravel())[:5], np.sort(out)[:5])
        a, b, c = f32_error_model(p)
        bound = a * np.sqrt(exact) + b * exact + c
        err = np.abs(out.astype(float) - exact)
        assert np.all(err <= bound / 10), (m, r, float(np.max(err / bound)))  # the 10x safety factor holds


def test_generated_banded_module_is_up_to_date():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "gen_banded.py"
    assert subprocess.run([sys.executable, str(script), "--check"]).returncode == 0, (
        "src/tsops/similarity/_banded.py differs from what scripts/gen_banded.py generates: rerun it")


def test_topk_small_n_and_subsequence(walks):
    x, p = walks
    full = dtw_distances(x, p, 0.1)
    top = dtw_topk(x, p, 0.1, k=100)  # k > n: every series
    np.testing.assert_array_equal(top.indices, np.argsort(full, kind="stable"))
    rng = np.random.default_rng(8)
    longer = np.cumsum(rng.normal(size=(300, 40)), axis=1)
    d, loc = dtw_distances(longer, p, 0.1, return_locations=True)
    top = dtw_topk(longer, p, 0.1, k=7)
    expected = np.argsort(d, kind="stable")[:7]
    np.testing.assert_array_equal(top.indices, expected)
    np.testing.assert_array_equal(top.distances, d[expected])
    np.testing.assert_array_equal(top.locations, loc[expected])


@pytest.mark.parametrize("normalize", [True, False])
def test_column_major_input_gives_the_same_bits(walks, normalize):
    """A Fortran-ordered array (what DataFrame.to_numpy() returns) takes the time-major kernel: same bits,
    NaN rows still named, non-contiguous views accepted."""
    x, p = walks
    big = np.vstack([x] * 3)  # several blocks of 64 plus a partial one
    f = np.asfortranarray(big)
    for stretch in (0, 0.1, 0.5):
        np.testing.assert_array_equal(dtw_distances(f, p, stretch, normalize=normalize),
                                      dtw_distances(big, p, stretch, normalize=normalize))
        top_f, top_c = dtw_topk(f, p, stretch, 7, normalize=normalize), dtw_topk(big, p, stretch, 7, normalize=normalize)
        np.testing.assert_array_equal(top_f.indices, top_c.indices)
        np.testing.assert_array_equal(top_f.distances, top_c.distances)
    np.testing.assert_array_equal(dtw_distances(big[::2], p, 0.1), dtw_distances(np.ascontiguousarray(big[::2]), p, 0.1))
    f[100, 3] = np.nan
    with pytest.raises(NonFiniteSeriesError, match="rows 100"):
        dtw_distances(f, p, 0.1)


def test_smallest_k_breaks_ties_by_index_and_flags_nan():
    from tsops.similarity._kernels import smallest_k

    rng = np.random.default_rng(3)
    for _ in range(300):
        d = rng.integers(0, 6, rng.integers(1, 80)).astype(float)
        k = int(rng.integers(1, 90))
        idx, has_nan = smallest_k(d, k)
        np.testing.assert_array_equal(idx, np.argsort(d, kind="stable")[:k])
        assert not has_nan
    assert smallest_k(np.array([1.0, np.nan, 0.5]), 2)[1]


def test_small_queries_run_on_one_thread_large_ones_on_all(monkeypatch):
    import numba

    from tsops.similarity import dtw as D

    avail = numba.get_num_threads()
    assert D._on_threads(1000, lambda th: (th, numba.get_num_threads())) == (1, 1)
    assert numba.get_num_threads() == avail  # restored
    assert D._on_threads(D.PARALLEL_MIN_CELLS, lambda th: th) == avail
    with pytest.raises(ZeroDivisionError):
        D._on_threads(10, lambda th: 1 / 0)
    assert numba.get_num_threads() == avail  # restored after an error too
    # same bits whichever way a query runs
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(3000, 52)), axis=1)
    p = np.cumsum(rng.normal(size=52))
    serial = (D.dtw_distances(x, p, 0.05), D.dtw_topk(x, p, 0.05, 7), D.dtw_topk(np.asfortranarray(x), p, 0.05, 7))
    monkeypatch.setattr(D, "PARALLEL_MIN_CELLS", 0)
    parallel = (D.dtw_distances(x, p, 0.05), D.dtw_topk(x, p, 0.05, 7), D.dtw_topk(np.asfortranarray(x), p, 0.05, 7))
    np.testing.assert_array_equal(serial[0], parallel[0])
    for a, b in zip(serial[1:], parallel[1:], strict=True):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.distances, b.distances)
