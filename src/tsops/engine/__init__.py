"""Map a per-series function over a data set, locally (process pool) or on Spark (applyInPandas).

``map_series(data, fn, engine=...)`` is the one interface; ``clean_dataset`` applies
:func:`tsops.quality.clean_series` and splits the clean rows from the per-series quality documents. Both
engines return the same frame for the same input (sorted by series_id, ts; ts as datetime64[us, UTC]).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd

from tsops.engine.local import map_local, series_from_tables, split_series

ENGINES = ("local", "spark")
DOC_COLUMN = "quality_doc"


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by series_id, ts (stable) and reset the index; ts as datetime64[us, UTC]."""
    if df.empty:
        return df.reset_index(drop=True)
    out = df.copy()
    if "ts" in out.columns:
        ts = out["ts"]
        ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
        out["ts"] = ts.dt.as_unit("us")
    keys = [c for c in ("series_id", "ts") if c in out.columns]
    return out.sort_values(keys, kind="mergesort").reset_index(drop=True)


def map_series(data, fn: Callable[[pd.DataFrame], pd.DataFrame], engine: str = "local", *,
               n_workers: int | None = None, chunk_series: int = 64, spark=None, schema=None,
               progress: Callable[[int], None] | bool | None = None) -> pd.DataFrame:
    """Apply ``fn`` (one series' long frame -> frame; must be picklable, e.g. a module-level function or
    a ``functools.partial`` of one) to every series of ``data``.

    local: ``data`` is a pandas long frame or an iterator of pyarrow tables sorted by series_id; chunks of
    ``chunk_series`` series per task on ``n_workers`` processes. spark: ``data`` is a pandas or Spark
    DataFrame; ``spark`` a session (default :func:`tsops.engine.spark.get_spark`). ``progress=True`` shows a
    rich progress bar of series done (local engine); a callable receives the number of series finished.
    """
    if engine == "local":
        if progress is True:
            from rich.progress import Progress

            total = int(data["series_id"].nunique()) if isinstance(data, pd.DataFrame) else None
            with Progress(transient=True) as bar:
                task = bar.add_task("series", total=total)
                out = map_local(data, fn, n_workers=n_workers, chunk_series=chunk_series,
                                progress=lambda n: bar.advance(task, n))
        else:
            out = map_local(data, fn, n_workers=n_workers, chunk_series=chunk_series, progress=progress or None)
    elif engine == "spark":
        from tsops.engine.spark import map_spark

        out = map_spark(data, fn, spark=spark, schema=schema)
    else:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return normalize(out)


class CleanWithDoc:
    """Picklable per-series function: clean_series, with the quality document (JSON) in ``quality_doc`` on
    the first row of each series (None elsewhere), so a row-only engine (Spark) can carry it. ``seasons``:
    each series' seasons in samples (from its profile) by series id."""

    def __init__(self, config=None, seasons: dict[str, tuple[int, ...]] | None = None):
        from tsops.quality import CleaningConfig

        self.config = config or CleaningConfig()
        self.seasons = dict(seasons or {})

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        from tsops.quality import clean_series

        sid = str(df["series_id"].iloc[0]) if len(df) else ""
        out, doc = clean_series(df, self.config, self.seasons.get(sid))
        out[DOC_COLUMN] = None
        if len(out):
            out.loc[0, DOC_COLUMN] = json.dumps(doc, sort_keys=True)
        else:  # keep the document even when every row was dropped
            out = pd.concat([out, pd.DataFrame({"series_id": [doc["series_id"]], DOC_COLUMN: [json.dumps(doc)]})],
                            ignore_index=True)
        return out


def clean_dataset(data, config=None, engine: str = "local", *, vectorized: bool = True,
                  chunk_rows: int = 5_000_000, seasons: dict[str, tuple[int, ...]] | None = None,
                  **kwargs) -> tuple[pd.DataFrame, list[dict]]:
    """Run :func:`tsops.quality.clean_series` over every series; return (clean frame, quality documents).

    With ``engine='local'`` and ``vectorized=True`` (and a config without Python-only steps) the series go
    through :func:`tsops.quality.clean_frame` in blocks of about ``chunk_rows`` rows: the numba kernels use
    all cores, no process pool needed, same result. Otherwise ``clean_series`` is mapped per series.
    """
    from tsops.quality import CleaningConfig, clean_frame, needs_python_steps

    cfg = config or CleaningConfig()
    if engine == "local" and vectorized and not needs_python_steps(cfg):
        outs, docs = [], []
        if isinstance(data, pd.DataFrame):
            for block in _series_blocks(data, chunk_rows):
                o, d = clean_frame(block, cfg, seasons)  # sorted by series_id, ts: no re-sort needed
                outs.append(o)
                docs.extend(d)
            out = pd.concat(outs, ignore_index=True) if len(outs) > 1 else (outs[0] if outs else pd.DataFrame())
            return out, docs
        block, rows = [], 0  # a stream of tables grouped by series: stitch series, clean in blocks
        for g in series_from_tables(data):
            block.append(g)
            rows += len(g)
            if rows >= chunk_rows:
                o, d = clean_frame(pd.concat(block, ignore_index=True), cfg, seasons)
                outs.append(o)
                docs.extend(d)
                block, rows = [], 0
        if block:
            o, d = clean_frame(pd.concat(block, ignore_index=True), cfg, seasons)
            outs.append(o)
            docs.extend(d)
        return normalize(pd.concat(outs, ignore_index=True) if outs else pd.DataFrame()), docs
    out = map_series(data, CleanWithDoc(cfg, seasons), engine=engine, **kwargs)
    if out.empty:
        return out, []
    has_doc = out[DOC_COLUMN].notna()
    docs = [json.loads(d) for d in out.loc[has_doc, DOC_COLUMN]]
    rows = out[out["ts"].notna()] if "ts" in out.columns else out
    return rows.drop(columns=[DOC_COLUMN]).reset_index(drop=True), docs


def _series_blocks(df: pd.DataFrame, chunk_rows: int):
    """Row blocks of about ``chunk_rows`` rows that never split a series, in series_id order (no per-series
    frames: one factorize, one stable sort of the codes)."""
    if df.empty:
        return
    if "series_id" not in df.columns:
        raise ValueError(f"the data has no 'series_id' column; columns: {list(df.columns)}")
    if len(df) <= chunk_rows:
        yield df
        return
    codes, _ = pd.factorize(df["series_id"], sort=True)
    order = np.argsort(codes, kind="stable")
    ends = np.cumsum(np.bincount(codes))
    start = 0
    while start < len(order):
        stop = _block_end(ends, start, chunk_rows)
        yield df.iloc[order[start:stop]]
        start = stop


def _block_end(ends: np.ndarray, start: int, chunk_rows: int) -> int:
    """The end row of a block starting at ``start``: the last series end within ``chunk_rows`` (at least one
    series)."""
    i = int(np.searchsorted(ends, start + chunk_rows, side="right")) - 1
    first = int(np.searchsorted(ends, start, side="right"))
    return int(ends[max(i, first)])


__all__ = ["DOC_COLUMN", "ENGINES", "CleanWithDoc", "clean_dataset", "map_series", "normalize",
           "series_from_tables", "split_series"]
