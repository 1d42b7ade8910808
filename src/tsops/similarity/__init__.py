"""Trend similarity: exact DTW of many series to one pattern (UCR-suite semantics), top-k queries,
stretch-factor sweeps tracked in MLflow (``tsops similar``).

Public API: :func:`dtw_distances`, :func:`dtw_topk`, :func:`band_halfwidth`, :func:`znormalize`,
:class:`TopK`, :class:`NonFiniteSeriesError` (numba kernels in ``_kernels``; plain reference in ``reference``;
table helpers in ``frames``; MLflow logging in ``tracking``; the pyfunc model in ``model``).
"""

from tsops.similarity.dtw import (
    NonFiniteSeriesError,
    TopK,
    band_halfwidth,
    dtw_distances,
    dtw_topk,
    znormalize,
)

__all__ = ["NonFiniteSeriesError", "TopK", "band_halfwidth", "dtw_distances", "dtw_topk", "znormalize"]
