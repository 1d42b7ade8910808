"""Local engine: a process pool over chunks of series."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

import pandas as pd

log = logging.getLogger(__name__)

SeriesFn = Callable[[pd.DataFrame], pd.DataFrame]


def _run_chunk(fn: SeriesFn, frames: list[pd.DataFrame]) -> pd.DataFrame:
    outs = [fn(f.reset_index(drop=True)) for f in frames]
    outs = [o for o in outs if o is not None and len(o.columns)]
    return pd.concat(outs, ignore_index=True) if outs else pd.DataFrame()


def split_series(df: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """One frame per series_id (sorted by series_id; row order within a series kept)."""
    if "series_id" not in df.columns:
        raise ValueError(f"the data has no 'series_id' column; columns: {list(df.columns)}")
    for _, g in df.groupby("series_id", sort=True, observed=True):
        yield g


def series_from_tables(tables: Iterable) -> Iterator[pd.DataFrame]:
    """Series frames from an iterator of pyarrow tables (or pandas frames) sorted by series_id.

    A series may straddle consecutive tables (it is stitched back together); a series that reappears after
    another series has started raises ValueError, since the input is then not grouped by series.
    """
    done: set[str] = set()
    carry: pd.DataFrame | None = None
    for tab in tables:
        df = tab if isinstance(tab, pd.DataFrame) else tab.to_pandas()
        if df.empty:
            continue
        if carry is not None:
            df = pd.concat([carry, df], ignore_index=True)
            carry = None
        sids = df["series_id"].astype(str)
        order = list(dict.fromkeys(sids))  # first-appearance order
        for sid in order[:-1]:
            yield _take(df, sids, sid, done)
        last = order[-1]
        carry = df[sids == last]
        if not (sids.iloc[-len(carry):] == last).all():
            raise ValueError(f"series {last!r} is not contiguous within a table: sort the input by series_id")
    if carry is not None:
        yield _take(carry, carry["series_id"].astype(str), str(carry["series_id"].iloc[0]), done)


def _take(df: pd.DataFrame, sids: pd.Series, sid: str, done: set[str]) -> pd.DataFrame:
    if sid in done:
        raise ValueError(f"series {sid!r} appears again after other series: sort the input tables by series_id")
    done.add(sid)
    return df[sids == sid]


def _chunks(series: Iterable[pd.DataFrame], size: int) -> Iterator[list[pd.DataFrame]]:
    buf: list[pd.DataFrame] = []
    for s in series:
        buf.append(s)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def map_local(data, fn: SeriesFn, n_workers: int | None = None, chunk_series: int = 64,
              progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Apply ``fn`` to every series of ``data`` (a long DataFrame or an iterator of pyarrow tables sorted by
    series_id) in a process pool (``spawn`` start method; ``n_workers=0`` runs in-process) and concatenate.
    ``progress(n)`` is called with the number of series finished."""
    series = split_series(data) if isinstance(data, pd.DataFrame) else series_from_tables(data)
    n_workers = (os.cpu_count() or 1) if n_workers is None else n_workers
    results: list[pd.DataFrame] = []
    if n_workers <= 0:
        for chunk in _chunks(series, chunk_series):
            results.append(_run_chunk(fn, chunk))
            if progress:
                progress(len(chunk))
    else:
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context("spawn")) as pool:
            pending: dict[Future, tuple[int, int]] = {}
            ordered: dict[int, pd.DataFrame] = {}
            for i, chunk in enumerate(_chunks(series, chunk_series)):
                pending[pool.submit(_run_chunk, fn, chunk)] = (i, len(chunk))
                if len(pending) >= 2 * n_workers:  # bounded in-flight work for streamed input
                    _collect(pending, ordered, progress, FIRST_COMPLETED)
            _collect(pending, ordered, progress, None)
            results = [ordered[i] for i in sorted(ordered)]
    results = [r for r in results if len(r.columns)]
    return pd.concat(results, ignore_index=True) if results else pd.DataFrame()


def _collect(pending: dict, ordered: dict, progress, mode) -> None:
    done, _ = wait(list(pending), return_when=mode or ALL_COMPLETED)
    for f in done:
        i, size = pending.pop(f)
        ordered[i] = f.result()
        if progress:
            progress(size)
