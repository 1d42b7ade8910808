"""Season arguments of the models and metrics: one season for every series, none, or one per series.

The season is never guessed here: it is a fact of each series, owned by its profile
(:class:`tsops.datamodel.SeriesProfile`, computed by the quality stage), and the caller that reads the catalog
passes it in. Every pure function and model of :mod:`tsops.models` takes it as an argument:

* an ``int`` ``m >= 2``: every series has a season of ``m`` samples;
* ``None`` (or ``1``): no season. MASE and conformal scales then use lag 1 (the in-sample error of the naive
  forecast), seasonal naive and Naive2 forecast like naive, AutoETS/AutoTheta fit non-seasonal models and MSTL
  forecasts with its trend model alone;
* a mapping ``series_id -> int | None``: one season per series (a series missing from the mapping is an
  error, not a silent default).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

SeasonArg = int | Mapping[str, int | None] | None


def check_season(m: int | None, what: str = "season_length") -> int | None:
    """``m`` as an int >= 1 (None stays None); raises a ValueError naming ``what`` otherwise."""
    if m is None:
        return None
    try:
        v = int(m)
    except (TypeError, ValueError):
        v = None
    if isinstance(m, bool) or v is None or v != m or v < 1:
        raise ValueError(f"{what} must be >= 1 (an integer, or None for no season; got {m!r})")
    return v


def season_for(season: SeasonArg, series_id: str) -> int | None:
    """The season of ``series_id`` under ``season`` (see the module docstring); None = no season."""
    if isinstance(season, Mapping):
        if series_id not in season:
            raise KeyError(f"no season given for series {series_id!r} (the mapping has {len(season)} series)")
        m = season[series_id]
    else:
        m = season
    m = check_season(m, f"season of series {series_id!r}")
    return m if m and m > 1 else None


def lag(m: int | None) -> int:
    """The lag of a seasonal difference for season ``m``: ``m``, or 1 without a season."""
    return int(m) if m and m > 1 else 1


def most_common(seasons: Iterable[int | None]) -> int | None:
    """The most frequent season (ties: the shorter one; None counts as 'no season')."""
    c = Counter(seasons)
    if not c:
        return None
    return min(c.items(), key=lambda kv: (-kv[1], kv[0] or 0))[0]


def usable(seasons: Sequence[int] | int | None, n: int, cycles: int = 2) -> list[int]:
    """The season lengths (> 1) that fit at least ``cycles`` times into ``n`` points, in the given order."""
    if seasons is None:
        return []
    if isinstance(seasons, int):
        seasons = [seasons]
    return [int(s) for s in seasons if s and int(s) > 1 and cycles * int(s) <= n]
