"""Summaries of a distance vector: statistics, z-score outliers, lowest decile, and the stretch choice rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

OUTLIER_Z = -2.0


def distance_table(ids: Sequence, distances: np.ndarray, locations: np.ndarray | None = None) -> pd.DataFrame:
    """One row per series: id, distance, z-score of the distance, rank (1 = closest), best window start."""
    d = np.asarray(distances, dtype=float)
    sd = d.std()
    z = (d - d.mean()) / sd if sd > 0 else np.zeros_like(d)
    order = np.argsort(d, kind="stable")
    rank = np.empty(len(d), dtype=np.int64)
    rank[order] = np.arange(1, len(d) + 1)
    table = pd.DataFrame({"id": pd.Series(list(ids)).astype(str), "distance": d, "zscore": z, "rank": rank})
    if locations is not None:
        table["location"] = np.asarray(locations, dtype=np.int64)
    return table


def summarize(distances: np.ndarray) -> dict[str, float]:
    """median, mean, 10th percentile, std, min, max and the p10/median ratio (lower = sharper separation)."""
    d = np.asarray(distances, dtype=float)
    if len(d) == 0:
        raise ValueError("no distances to summarise (did the filters drop every series?)")
    med = float(np.median(d))
    p10 = float(np.percentile(d, 10))
    return {
        "median": med,
        "mean": float(d.mean()),
        "p10": p10,
        "std": float(d.std()),
        "min": float(d.min()),
        "max": float(d.max()),
        "p10_median_ratio": p10 / med if med > 0 else float("nan"),
    }


def outliers(table: pd.DataFrame, z: float = OUTLIER_Z) -> pd.DataFrame:
    """Series whose distance z-score is <= z: they follow the pattern unusually closely."""
    return table[table["zscore"] <= z].sort_values(["distance", "rank"]).reset_index(drop=True)


def lowest_decile(table: pd.DataFrame) -> pd.DataFrame:
    """Series at or below the 10th percentile of the distances, closest first."""
    cut = np.percentile(table["distance"], 10)
    return table[table["distance"] <= cut].sort_values(["distance", "rank"]).reset_index(drop=True)


def choose_stretch(stats: Mapping[float, Mapping[str, float]], rule: str = "ratio") -> float:
    """Pick a stretch factor from per-stretch summaries.

    ``rule="ratio"`` (default): the lowest p10/median ratio, i.e. the stretch under which the closest decile
    stands out most from the bulk; ties go to the smaller stretch. A number: that stretch (must be in stats).
    """
    if not stats:
        raise ValueError("no stretch factors to choose from")
    if rule == "ratio":
        def key(s: float) -> tuple[float, float]:
            v = stats[s]["p10_median_ratio"]
            return (v if np.isfinite(v) else np.inf, s)

        return min(stats, key=key)
    try:
        wanted = float(rule)
    except ValueError:
        raise ValueError(f"--choose must be 'ratio' or one of the swept stretch factors, got {rule!r}") from None
    for s in stats:
        if np.isclose(s, wanted, rtol=0, atol=1e-12):
            return s
    raise ValueError(f"--choose {rule}: not among the swept stretch factors {sorted(stats)}")
