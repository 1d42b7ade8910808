"""``tsops report``: one self-contained HTML file a person would rather look at than read.

For a dataset: a quality table (period, missing, anomalies, imputation score per series), the sampling period
per series, the correlation heat map across series, the strongest lagged relations, and for each series its raw
and cleaned values with inserted (imputed) points and anomalies marked, its density and its decomposition.
The decomposition uses the seasons of the series' profile (written by ``tsops process``); a series without
profile, or without a season, shows its trend and a flat seasonal panel, and says why.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsops.analysis.plotting import CSS_FONT_STACK, font_face_css, format_duration, setup_matplotlib
from tsops.config import Project


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if pct:
        return f"{100 * float(x):.1f}%"
    if isinstance(x, float):
        return f"{x:.4g}"
    return html.escape(str(x))


def _period(seconds: float | None) -> str:
    """A sampling period as a person reads it: ``10 min``, ``597.1 s``, ``1 h``."""
    return format_duration(seconds)


#: Tick positions of the sampling-period plot (seconds).
_NICE_PERIODS = (0.001, 0.01, 0.1, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)


def _when(iso: str | None) -> str:
    """An ISO timestamp to the second, in UTC, for a table cell (``2026-12-02 18:00:56``)."""
    if not iso:
        return "–"
    try:
        return pd.Timestamp(iso).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, TypeError):
        return html.escape(str(iso))


def _block_times(frame: pd.DataFrame, n: int, k: int) -> np.ndarray:
    """Time of each decomposed point: the timestamps of ``frame`` (``n`` rows), the first of each block of
    ``k`` when the values were averaged in blocks (aligned to the end, as the values are)."""
    idx = pd.DatetimeIndex(pd.to_datetime(frame["ts"]))
    ts = (idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx).to_numpy()[:n]  # UTC
    if k <= 1:
        return ts
    m = n // k * k
    return ts[n - m:].reshape(-1, k)[:, 0]


def _time_axis(ax) -> None:
    """Concise date labels on a time x axis (no overlapping full timestamps)."""
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.tick_params(axis="x", labelsize=7)


def _series_figure(sid: str, raw: pd.DataFrame, clean: pd.DataFrame, seasons: tuple[int, ...],
                   names: tuple[str, ...] = ()) -> str:
    """The series' figure; ``seasons``: its season lengths in samples (strongest first, from its profile)."""
    import matplotlib.pyplot as plt

    from tsops.analysis.decompose import MAX_STL_SEASON, decompose
    from tsops.analysis.stats import kde

    fig = plt.figure(figsize=(12, 5.2))
    gs = fig.add_gridspec(2, 3, height_ratios=[1.25, 1])
    ax = fig.add_subplot(gs[0, :])
    if len(raw):
        ax.plot(raw["ts"], raw["value"], ".", ms=2, color="#999999", label="raw", zorder=1)
    if len(clean):
        ax.plot(clean["ts"], clean["value"], "-", lw=0.9, color="#1f77b4", label="clean", zorder=2)
        if "is_imputed" in clean:
            imp = clean[clean["is_imputed"].fillna(False).astype(bool)]
            ax.plot(imp["ts"], imp["value"], "o", ms=3, color="#ff7f0e", label=f"imputed ({len(imp)})", zorder=3)
        if "is_anomaly" in clean:
            an = clean[clean["is_anomaly"].fillna(False).astype(bool)]
            y = an["raw_value"] if "raw_value" in an else an["value"]
            ax.plot(an["ts"], y, "x", ms=6, color="#d62728", label=f"anomalies ({len(an)})", zorder=4)
    ax.set_title(sid)
    _time_axis(ax)
    ax.legend(loc="upper left", fontsize=8, ncols=4)
    ax.grid(alpha=0.3)
    values = clean["value"].to_numpy(float) if len(clean) else raw["value"].to_numpy(float)
    ax2 = fig.add_subplot(gs[1, 0])
    finite = values[np.isfinite(values)]
    if finite.size >= 3 and np.ptp(finite) > 0:
        d = kde(finite)
        ax2.fill_between(d.iloc[:, 0], d.iloc[:, 1], alpha=0.4)
        ax2.plot(d.iloc[:, 0], d.iloc[:, 1])
    ax2.set_title("density", fontsize=9)
    if finite.size >= 8:
        k = max(1, math.ceil(len(values) / 2000), math.ceil(max(seasons, default=0) / MAX_STL_SEASON))
        if seasons and seasons[0] % k:  # blocks that divide the main season keep its phase
            k = next((d for d in range(k, 2 * k + 1) if seasons[0] % d == 0), k)
        v = values
        if k > 1:
            m = len(values) // k * k
            v = np.nanmean(values[len(values) - m:].reshape(-1, k), axis=1)
        # seasons on the block grid that are whole and fit twice (MSTL for several)
        use = [(m // k, nm) for m, nm in zip(seasons, list(names) + [""] * len(seasons), strict=False)
               if m % k == 0 and m // k >= 2 and 2 * (m // k) <= len(v)]
        dec = decompose(v, [u for u, _ in use] or None)
        note = (", ".join(f"{nm + ' ' if nm else ''}{u} x {k} steps" for u, nm in use) if use
                else "seasons longer than half the plotted span" if seasons else "no season in the series profile")
        t = _block_times(clean if len(clean) else raw, len(values), k)
        for j, comp in enumerate(("trend", "seasonal")):
            a = fig.add_subplot(gs[1, 1 + j])
            a.plot(t, dec[comp].to_numpy(), lw=0.9)
            a.set_title(comp + (f" ({note})" if comp == "seasonal" else ""), fontsize=9)
            _time_axis(a)
    fig.tight_layout()
    return _png(fig)


def build_report(project: Project, dataset: str, out: Path | None = None, days: float | None = 14,
                 max_series: int = 12) -> Path:
    """Write the HTML report of ``dataset`` (last ``days`` of data) and return its path."""
    setup_matplotlib()
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    from tsops.analysis.dataset import read_recent

    out = Path(out) if out else project.root / "reports" / f"{dataset}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    cat = project.catalog()
    try:
        series = cat.list_series(dataset)
        profiles = cat.get_profiles(dataset)
        ds_doc = (cat.get_dataset(dataset) or {}).get("doc", {})
    finally:
        cat.close()
    if not series:
        raise ValueError(f"dataset {dataset!r} has no series in the catalog yet: run `tsops ingest` first")
    clean = read_recent(project, dataset, "clean", days)
    raw = read_recent(project, dataset, "raw", days)
    by_id = {s["series_id"]: s for s in series}

    parts = [f"<h1>tsops report: {html.escape(dataset)}</h1>",
             f"<p>generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · {len(series)} series · "
             f"{sum(s['count'] for s in series):,} observations ingested · plots show the last "
             f"{days if days else 'all'} days</p>"]
    if clean.empty:
        parts.append("<p class=warn>No clean data yet: run <code>tsops process</code> for cleaned values, "
                     "gaps and anomalies.</p>")

    # quality table
    rows = []
    for s in series:
        q = s.get("quality") or {}
        imp = q.get("imputation") or {}
        rows.append(
            f"<tr><td>{html.escape(s['series_id'])}</td><td>{_fmt(s.get('unit'))}</td><td>{s['count']:,}</td>"
            f"<td>{_period(s.get('period_s'))}</td><td>{_fmt(s.get('period_confidence'))}</td>"
            f"<td>{_fmt(s.get('missing_ratio'), True)}</td><td>{_fmt(s.get('anomaly_ratio'), True)}</td>"
            f"<td>{_fmt((s.get('duplicates') or {}).get('exact'))}</td>"
            f"<td>{_fmt(imp.get('method'))}</td><td>{_fmt(imp.get('rmse'))}</td>"
            f"<td>{_when(s.get('first_ts'))}</td><td>{_when(s.get('last_ts'))}</td></tr>")
    parts.append("<h2>Quality per series</h2><table><tr><th>series</th><th>unit</th><th>observations</th>"
                 "<th>period</th><th>confidence</th><th>missing</th><th>anomalies</th><th>duplicates</th>"
                 "<th>imputation</th><th>imputation RMSE</th><th>first (UTC)</th><th>last (UTC)</th></tr>"
                 + "".join(rows) + "</table>")

    # period per series
    with_period = [(s["series_id"], s["period_s"]) for s in series if s.get("period_s")]
    if with_period:
        fig, ax = plt.subplots(figsize=(10, 0.35 * len(with_period) + 1))
        ax.barh([p[0] for p in with_period], [p[1] for p in with_period], color="#1f77b4")
        ax.set_xscale("log")
        lo, hi = min(p[1] for p in with_period), max(p[1] for p in with_period)
        nice = [t for t in _NICE_PERIODS if lo / 1.6 <= t <= hi * 1.6] or [lo, hi]
        ax.xaxis.set_major_locator(FixedLocator(nice))  # "30 s", "1 min", "10 min": round durations
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: format_duration(x)))
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel("estimated sampling period")
        ax.invert_yaxis()
        parts.append(f"<h2>Sampling period per series</h2><img src='{_png(fig)}'>")

    # correlation
    analysis = ds_doc.get("analysis") or {}
    if analysis.get("pearson"):
        corr = pd.DataFrame(analysis["pearson"]).astype(float)
        n = len(corr)
        fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
        im = ax.imshow(corr.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(n), corr.columns, rotation=70, ha="right", fontsize=8)
        ax.set_yticks(range(n), corr.index, fontsize=8)
        for i in range(n):
            for j in range(n):
                v = corr.iat[i, j]
                if math.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
        fig.colorbar(im, ax=ax, shrink=0.7)
        grid = _period(pd.Timedelta(analysis["grid"]).total_seconds()) if analysis.get("grid") else "common"
        parts.append(f"<h2>Correlation across series (aligned on a {html.escape(grid)} grid)</h2>"
                     f"<img src='{_png(fig)}'>")
        lags = analysis.get("best_lags") or []
        if lags:
            parts.append("<h3>Strongest lagged relations</h3><table><tr><th>leader</th><th>follower</th>"
                         "<th>lag (grid steps)</th><th>correlation</th></tr>" + "".join(
                             f"<tr><td>{html.escape(r['leader'])}</td><td>{html.escape(r['follower'])}</td>"
                             f"<td>{r['lag']}</td><td>{_fmt(r['corr'])}</td></tr>" for r in lags[:15])
                         + "</table>")

    # per series
    parts.append("<h2>Series</h2>")
    for sid in list(by_id)[:max_series]:
        r = raw[raw["series_id"] == sid] if len(raw) else raw
        c = clean[clean["series_id"] == sid].sort_values("ts") if len(clean) else clean
        prof = profiles.get(sid)
        seasons = prof.season_lengths if prof else ()
        names = prof.season_names if prof else ()
        parts.append(f"<h3>{html.escape(sid)}</h3><img src='{_series_figure(sid, r, c, seasons, names)}'>")
    if len(by_id) > max_series:
        parts.append(f"<p>{len(by_id) - max_series} more series not plotted (raise --max-series).</p>")

    body = "".join(parts)
    style = (font_face_css(text=html.unescape(body)) + f"body{{font-family:{CSS_FONT_STACK};margin:2em;color:#222}}"
             "table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%}.warn{color:#b55}")
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>tsops report {html.escape(dataset)}"
                   f"</title><style>{style}</style></head><body>{body}</body></html>", encoding="utf-8")
    return out
