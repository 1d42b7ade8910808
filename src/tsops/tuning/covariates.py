"""Covariates for training: other series of the dataset, chosen from the analysis stage's lagged correlations.

:func:`covariates_from_analysis` is the pure rule (series that *lead* others most strongly);
:func:`resolve_covariates` turns the ``covariates`` option of ``tsops train`` / ``tsops tune`` (None, a count
``k`` or explicit ids) into a list of series ids of the panel, reading the analysis from the catalog.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

TAG_COVARIATES = "tsops.covariates"
DEFAULT_MIN_ABS_CORR = 0.5


def covariates_from_analysis(analysis: dict[str, Any], series_ids: list[str], k: int,
                             min_abs_corr: float = DEFAULT_MIN_ABS_CORR) -> list[str]:
    """The ``k`` series of ``series_ids`` that lead others most strongly, best first.

    Uses ``analysis["best_lags"]`` (records ``leader, follower, lag, corr``; one per pair, at its best lag).
    Only pairs whose leader and follower are both in ``series_ids`` and with ``|corr| >= min_abs_corr``
    count. A series scores the largest ``|corr|`` of the pairs it leads with ``lag >= 1``; series that lead
    nothing at a positive lag come after them, scored by their lag-0 pairs (where either side counts).
    Ties go to the series leading more pairs, then to the smaller id. Empty when no pair passes.
    """
    if k < 0:
        raise ValueError(f"number of covariates k must be >= 0 (got {k})")
    if not min_abs_corr >= 0:
        raise ValueError(f"min_abs_corr must be >= 0 (got {min_abs_corr})")
    if k == 0:
        return []
    allowed = {str(s) for s in series_ids}
    lagged: dict[str, list[float]] = {}
    simultaneous: dict[str, list[float]] = {}
    for i, row in enumerate(analysis.get("best_lags") or []):
        try:
            lead, follow = str(row["leader"]), str(row["follower"])
            lag, corr = int(row["lag"]), float(row["corr"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"analysis best_lags[{i}] is not a leader/follower/lag/corr record "
                             f"({row!r}): re-run `tsops pipeline run --stage analyze`") from exc
        if lead == follow or lead not in allowed or follow not in allowed:
            continue
        if not math.isfinite(corr) or abs(corr) < min_abs_corr:
            continue
        if lag >= 1:
            lagged.setdefault(lead, []).append(abs(corr))
        elif lag == 0:
            simultaneous.setdefault(lead, []).append(abs(corr))
            simultaneous.setdefault(follow, []).append(abs(corr))

    def ranked(scores: dict[str, list[float]]) -> list[str]:
        return sorted(scores, key=lambda s: (-max(scores[s]), -len(scores[s]), s))

    first = ranked(lagged)
    rest = [s for s in ranked(simultaneous) if s not in lagged]
    return (first + rest)[:k]


def parse_covariates(value: str | None) -> int | list[str] | None:
    """The ``--covariates`` CLI value: ``"3"`` -> 3, ``"s1,s2"`` -> ``["s1", "s2"]``, empty/None -> None."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    ids = [s.strip() for s in text.split(",") if s.strip()]
    if not ids:
        raise ValueError(f"--covariates must be a count K or comma-separated series ids (got {value!r})")
    return ids


def resolve_covariates(project, dataset: str, covariates: int | Sequence[str] | None,
                       series_ids: list[str], min_abs_corr: float = DEFAULT_MIN_ABS_CORR) -> list[str] | None:
    """The covariate series ids for a run: None when ``covariates`` is None; for a count ``k`` the choice of
    :func:`covariates_from_analysis` on the catalog's analysis of ``dataset``; for ids, those ids checked
    against the panel's ``series_ids``."""
    if covariates is None:
        return None
    if isinstance(covariates, bool):
        raise TypeError(f"covariates must be a count or a list of series ids (got {covariates!r})")
    if isinstance(covariates, int):
        if covariates < 0:
            raise ValueError(f"covariates: the number of covariate series must be >= 0 (got {covariates})")
        if covariates == 0:
            return []
        catalog = project.catalog()
        try:
            ds = catalog.get_dataset(dataset)
        finally:
            catalog.close()
        analysis = ((ds or {}).get("doc") or {}).get("analysis") or {}
        if not analysis.get("best_lags"):
            raise LookupError(f"dataset {dataset!r} has no lagged correlations in the catalog to choose "
                              f"{covariates} covariate(s) from: run `tsops pipeline run --stage analyze` first "
                              "(or pass the series ids with --covariates id1,id2)")
        chosen = covariates_from_analysis(analysis, series_ids, covariates, min_abs_corr)
        if not chosen:
            log.warning("no series of %s leads another with |corr| >= %.2f: training without covariates",
                        dataset, min_abs_corr)
        else:
            log.info("covariates of %s from the analysis: %s", dataset, ", ".join(chosen))
        return chosen
    if isinstance(covariates, str):
        raise TypeError(f"covariates must be a count or a list of series ids, not the string {covariates!r} "
                        "(use parse_covariates for CLI text)")
    ids = list(dict.fromkeys(str(c) for c in covariates))
    missing = [c for c in ids if c not in set(series_ids)]
    if missing:
        raise ValueError(f"covariate series {missing} are not in dataset {dataset!r} "
                         f"(it has {len(series_ids)} series, e.g. {series_ids[:5]})")
    return ids


def with_covariates(family: str, params: dict[str, Any], covariates: list[str] | None) -> dict[str, Any]:
    """``params`` of ``family`` with the run's covariates: families that declare ``supports_covariates`` (other
    series as input channels) get ``covariates``; other families ignore them and get ``params`` unchanged."""
    from tsops.models.registry import model_class

    if not covariates or not model_class(family).supports_covariates:
        return dict(params)
    if params.get("covariates") not in (None, [], list(covariates)):
        raise ValueError(f"covariates given twice for {family}: as the covariates option {covariates} and as "
                         f"the parameter covariates={params['covariates']!r}; keep one")
    return {**params, "covariates": list(covariates)}


def model_covariates(model) -> list[str]:
    """The covariate series a fitted forecaster reads (empty for models without covariates)."""
    return [str(c) for c in (model.describe() or {}).get("covariates", []) or []]


def covariates_param(covariates: list[str] | None) -> str:
    """The MLflow parameter value: a comma list, ``none`` when there are none."""
    return ",".join(covariates) if covariates else "none"
