"""Build a series' :class:`~tsops.datamodel.SeriesProfile` from what the cleaning produced (pure).

The quality stage calls :func:`build_profile` once per series per run with: the quality document of the last
window it cleaned (period, phase, confidence, imputation, events), whole-history figures of the clean zone
(row, missing, imputed and anomaly counts, first and last timestamps) and the raw count from the catalog, and
the seasons detected on the recent clean history (:func:`tsops.analysis.seasonality.detect_seasons`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tsops.analysis.seasonality import Season
from tsops.datamodel import SeriesProfile

#: at most this many events are kept in a profile (the most recent ones)
MAX_EVENTS = 50
#: event classes a profile keeps (real events; faults are counted, not listed)
REPORTED_EVENTS = ("episode", "level_shift")


def build_profile(series_id: str, doc: Mapping[str, Any] | None, history: Mapping[str, Any],
                  seasons: Sequence[Season] | None, previous: SeriesProfile | None = None,
                  unit: str | None = None) -> SeriesProfile:
    """One series' profile.

    ``doc``: the last quality document (None keeps the previous profile's grid facts); ``history``: whole-history
    figures with keys ``n_raw, n_rows, n_missing, n_imputed, n_anomalies, first_ts, last_ts`` (missing keys
    count as 0 / None); ``seasons``: the detected cycles, or None to keep the previous profile's seasons (they
    are re-detected only when the history has grown enough, see the quality stage).
    """
    doc = dict(doc or {})
    prev = previous or SeriesProfile(series_id)
    n_rows = int(history.get("n_rows") or 0)
    n_missing = int(history.get("n_missing") or 0)
    n_anom = int(history.get("n_anomalies") or 0)
    n_obs = n_rows - n_missing
    if seasons is None:
        lengths, names, strengths = prev.season_lengths, prev.season_names, prev.season_strengths
    else:
        lengths = tuple(int(s.length) for s in seasons)
        names = tuple(s.name for s in seasons)
        strengths = tuple(float(s.strength) for s in seasons)
    imp = doc.get("imputation")
    events = _merge_events(prev.events, doc.get("events") or [])
    extra = dict(prev.extra)
    if seasons is not None:
        extra["season_checked_rows"] = n_rows
    for k in ("n_future_deferred",):
        if k in history:
            extra[k] = int(history[k])
    return SeriesProfile(
        series_id=series_id,
        period_seconds=doc.get("period_seconds", prev.period_seconds),
        phase_seconds=doc.get("phase_seconds", prev.phase_seconds),
        period_confidence=float(doc.get("period_confidence", prev.period_confidence) or 0.0),
        season_lengths=lengths, season_names=names, season_strengths=strengths,
        unit=unit if unit is not None else prev.unit,
        first_ts=history.get("first_ts") or prev.first_ts,
        last_ts=history.get("last_ts") or prev.last_ts,
        n_raw=int(history.get("n_raw") or 0), n_rows=n_rows, n_missing=n_missing,
        n_imputed=int(history.get("n_imputed") or 0), n_anomalies=n_anom,
        missing_ratio=n_missing / n_rows if n_rows else None,
        anomaly_ratio=n_anom / n_obs if n_obs > 0 else None,
        imputation_method=imp.get("method") if isinstance(imp, dict) else prev.imputation_method,
        events=tuple(events[-MAX_EVENTS:]),
        extra=extra,
    )


def _merge_events(previous, new) -> list[dict]:
    """Episodes and level shifts (the events a user and the drift check care about; fault counts live in the
    quality figures), one per (class, start): a window's context day may report an event again."""
    out = {(e.get("class"), e.get("start")): e for e in previous}
    for e in new:
        if e.get("class") in REPORTED_EVENTS:
            out[(e.get("class"), e.get("start"))] = dict(e)
    return sorted(out.values(), key=lambda e: str(e.get("start")))


def needs_season_check(previous: SeriesProfile | None, n_rows: int, growth: float = 0.2) -> bool:
    """Seasons are re-detected when never detected, or when the history grew by more than ``growth``."""
    if previous is None or "season_checked_rows" not in previous.extra:
        return True
    before = int(previous.extra["season_checked_rows"] or 0)
    return n_rows > before * (1 + growth)


__all__ = ["MAX_EVENTS", "REPORTED_EVENTS", "build_profile", "needs_season_check"]
