"""The backtest settings and seasons of ``tsops train``/``tune``: flags, ``tsops.yaml``, series profiles.

Settings resolve in this order: an explicit argument (a command-line flag) > the dataset's ``forecast:``
section > the ``pipeline:`` section (horizon) > the built-in default. Seasons are facts of each series, owned by
its profile (:class:`tsops.datamodel.SeriesProfile`, written by ``tsops process``); an explicit season (``--season
N`` or ``forecast: {season: N}``) overrides them for every series. A series without a profile cannot be trained
on without an override: the error says to run ``tsops process`` first.

Profile seasons count samples of the series' own sampling period; training panels are put on one grid per
dataset (:func:`tsops.tuning.data.median_interval`), so seasons are converted to samples of that grid.
"""

from __future__ import annotations

import dataclasses
import logging

from tsops.datamodel import SeriesProfile
from tsops.models.base import Panel
from tsops.models.season import most_common
from tsops.tuning.evaluate import BacktestSpec

log = logging.getLogger(__name__)


class MissingProfileError(LookupError):
    """A series has no profile yet (it was never processed) and no season was given."""


def backtest_spec(project, dataset: str, horizon: int | None = None, windows: int | None = None,
                  metric: str | None = None, season: int | None = None, step: int | None = None) -> BacktestSpec:
    """The backtest specification of a train/tune run: each setting from the argument, else the dataset's
    ``forecast:`` config, else ``pipeline.horizon`` / the built-in default. Seasons stay unresolved (from the
    profiles, see :func:`resolve_spec`) unless a season is given here or in the config."""
    fc = project.dataset(dataset).forecast
    return BacktestSpec(
        horizon=int(horizon or fc.horizon or project.config.pipeline.horizon),
        n_windows=int(windows or fc.windows),
        step=step,
        season_length=season if season is not None else fc.season,
        metric=metric or fc.metric,
    )


def grid_seasons(profile: SeriesProfile, grid_seconds: float | None) -> tuple[int, ...]:
    """The profile's season lengths in samples of a grid of ``grid_seconds`` (the profile's own samples when
    the grid is the series' period or unknown). A season that is not a whole number of grid steps (within 1%)
    or shorter than two steps is left out, with a log line."""
    seasons = tuple(int(m) for m in profile.season_lengths if int(m) > 1)
    period = profile.period_seconds
    if not seasons or not grid_seconds or not period or abs(period - grid_seconds) <= 1e-3 * grid_seconds:
        return seasons
    out = []
    for m in seasons:
        k = m * period / grid_seconds
        r = round(k)
        if r >= 2 and abs(k - r) <= 0.01 * k:
            out.append(r)
        else:
            log.warning("series %s: season of %d samples of %.6g s is %.3f steps of the %.6g s training grid: "
                        "left out", profile.series_id, m, period, k, grid_seconds)
    return tuple(dict.fromkeys(out))


def missing_profile_message(dataset: str, missing: list[str]) -> str:
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return (f"no profile for series {missing[0]}{more} of dataset {dataset}: run `tsops process -d {dataset}` "
            "first (or pass --season N)")


def resolve_spec(spec: BacktestSpec, catalog, dataset: str, panel: Panel) -> BacktestSpec:
    """``spec`` with the seasons of every series of ``panel``: an override (``spec.season_source ==
    'override'``) is kept; otherwise each series' profile seasons on the panel's grid, and the most common
    main season as ``season_length``. Raises :class:`MissingProfileError` naming a series without profile."""
    if spec.season_source == "override":
        return spec
    profiles = catalog.get_profiles(dataset)
    missing = [sid for sid in panel.ids if sid not in profiles]
    if missing:
        raise MissingProfileError(missing_profile_message(dataset, missing))
    grid = panel.freq.total_seconds() if panel.freq is not None else None
    per = {sid: grid_seasons(profiles[sid], grid) for sid in panel.ids}
    main = most_common(s[0] if s else None for s in per.values())
    return dataclasses.replace(spec, season_length=main, series_seasons=per, season_source="profile")
