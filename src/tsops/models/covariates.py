"""Choosing covariate series: other series of the same dataset used as extra input channels."""

from __future__ import annotations

import numpy as np

from tsops.models.base import Panel, fill_gaps, right_align
from tsops.models.season import lag


def select_covariates(panel: Panel, k: int, season_length: int | None, min_overlap: int = 48) -> list[str]:
    """The ``k`` series that co-move most with the others: highest mean absolute correlation of their
    seasonal differences (lag ``season_length``; first differences when it is None: no season) over the
    common, end-aligned span of the panel.

    Uses only the data in ``panel`` (pass the training part). Returns ids, best first.
    """
    if k < 1:
        raise ValueError(f"number of covariates k must be >= 1 (got {k})")
    if len(panel) < 2:
        raise ValueError("covariates are other series of the panel: it needs at least 2 series")
    d = lag(season_length)
    n_common = min(len(v) for v in panel.values)
    if n_common < d + min_overlap:
        raise ValueError(f"series need at least {d + min_overlap} common points to rank "
                         f"covariates (shortest has {n_common})")
    Z = fill_gaps(right_align(panel.values, n_common))
    D = Z[:, d:] - Z[:, :-d]
    D = D - D.mean(axis=1, keepdims=True)
    sd = D.std(axis=1)
    D = D / np.where(sd > 1e-12, sd, 1.0)[:, None]
    C = np.abs(D @ D.T) / D.shape[1]
    np.fill_diagonal(C, 0.0)
    score = C.sum(axis=1) / (len(panel) - 1)
    order = np.argsort(-score, kind="stable")[: min(k, len(panel) - 1)]
    return [panel.ids[i] for i in order]
