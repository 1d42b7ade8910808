"""A small server-rendered web dashboard: datasets, series quality, plots, champion models and pipeline runs.

``router`` carries the pages under ``/dashboard`` (include it with ``app.include_router(router)``); it reads the
project from ``request.app.state.project``. :func:`dashboard_app` builds a standalone FastAPI app around it.

Pages: ``/dashboard/`` (datasets), ``/dashboard/datasets/{name}`` (series with their quality status),
``/dashboard/datasets/{name}/series/{series_id}`` (raw, clean and forecast values with 80/95% bands as an
inline SVG), ``/dashboard/models`` (the MLflow champion of each dataset with its backtest metrics) and
``/dashboard/runs`` (the catalog's run log). Plain HTML and SVG: no JavaScript, no build step. With a token
(``tsops serve --token``) every page needs it: :mod:`tsops.serving.auth` sends browsers to ``/login``.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response

from tsops.analysis.plotting import CSS_FONT_STACK, HANGUL_FONT, font_face_css, web_font
from tsops.masking import mask_secrets, mask_url
from tsops.serving.auth import DEFAULT_MAX_BODY, TokenGuard

log = logging.getLogger(__name__)

router = APIRouter(prefix="/dashboard", tags=["dashboard"])

#: Quality thresholds: (fair above, poor above) for the share of missing rows and of anomalies.
MISSING_LIMITS = (0.05, 0.25)
ANOMALY_LIMITS = (0.01, 0.05)
MAX_SERIES_ROWS = 2000
PLOT_W, PLOT_H = 960, 380
_US = 1_000_000


# ============================================================================ pure helpers (arrays in, text out)
def quality_figure(doc: Mapping[str, Any], *names: str) -> float | None:
    """The first of ``names`` found in a series document, at top level or under ``quality``."""
    nested = doc.get("quality") if isinstance(doc.get("quality"), Mapping) else {}
    for n in names:
        for src in (doc, nested):
            v = src.get(n)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                return float(v)
    return None


def quality_status(missing_ratio: float | None, anomaly_ratio: float | None) -> str:
    """``good``/``fair``/``poor`` from the missing and anomaly ratios; ``unprocessed`` when neither is known."""
    if missing_ratio is None and anomaly_ratio is None:
        return "unprocessed"
    level = 0
    for value, (fair, poor) in ((missing_ratio, MISSING_LIMITS), (anomaly_ratio, ANOMALY_LIMITS)):
        if value is not None:
            level = max(level, 2 if value > poor else 1 if value > fair else 0)
    return ("good", "fair", "poor")[level]


def decimate(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Min/max decimation for drawing: per x bucket keep the first, last, lowest and highest points.

    ``x`` must be sorted. A bucket holding a NaN keeps one NaN so gaps stay visible. Returns copies.
    """
    n = len(x)
    if n <= 4 * buckets or n == 0:
        return x.copy(), y.copy()
    span = float(x[-1] - x[0]) or 1.0
    b = np.minimum(((x - x[0]) / span * buckets).astype(np.int64), buckets - 1)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], n] - 1
    keep = [starts, ends]
    finite = np.isfinite(y)
    if finite.any():
        idx = np.flatnonzero(finite)
        order = idx[np.lexsort((y[idx], b[idx]))]
        bo = b[order]
        first = np.r_[True, bo[1:] != bo[:-1]]
        last = np.r_[bo[1:] != bo[:-1], True]
        keep += [order[first], order[last]]
    if (~finite).any():
        nan_idx = np.flatnonzero(~finite)
        keep.append(nan_idx[np.r_[True, b[nan_idx][1:] != b[nan_idx][:-1]]])
    sel = np.unique(np.concatenate(keep))
    return x[sel], y[sel]


def split_segments(x: np.ndarray, y: np.ndarray, gap: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split a line at NaN values and at x steps larger than ``gap`` (default: 5x the median step)."""
    if len(x) == 0:
        return []
    finite = np.isfinite(y)
    if gap is None and len(x) > 2:
        steps = np.diff(x)
        med = float(np.median(steps[steps > 0])) if (steps > 0).any() else 0.0
        gap = 5 * med if med > 0 else None
    brk = ~finite
    if gap is not None:
        brk[1:] |= np.diff(x) > gap
    out = []
    seg_id = np.cumsum(brk)
    for s in np.unique(seg_id[finite]):
        m = finite & (seg_id == s)
        out.append((x[m], y[m]))
    return out


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """About ``n`` round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


_TIME_STEPS_S = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400,
                 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 182 * 86400, 365 * 86400]


def time_ticks(lo_us: int, hi_us: int, n: int = 7) -> list[tuple[int, str]]:
    """Round UTC tick positions (epoch microseconds) with labels for a time axis over [lo_us, hi_us]."""
    span_s = max((hi_us - lo_us) / _US, 1)
    step = next((s for s in _TIME_STEPS_S if span_s / s <= n), _TIME_STEPS_S[-1])
    first = math.ceil(lo_us / _US / step) * step
    fmt = "%Y-%m-%d" if step >= 86400 else "%m-%d %H:%M" if span_s > 86400 else "%H:%M" if step >= 60 else "%H:%M:%S"
    out = []
    t = first
    while t * _US <= hi_us:
        out.append((int(t * _US), dt.datetime.fromtimestamp(t, dt.UTC).strftime(fmt)))
        t += step
    return out


@dataclass
class PlotData:
    """What a series plot draws; every array pair is (epoch microseconds int64, float64)."""

    raw: tuple[np.ndarray, np.ndarray] | None = None
    clean: tuple[np.ndarray, np.ndarray] | None = None
    anomalies: tuple[np.ndarray, np.ndarray] | None = None
    forecast: dict[str, np.ndarray] | None = None  # ts, mean and optionally lo_80, hi_80, lo_95, hi_95
    layers: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # zones that exist but could not be read
    forecast_info: dict[str, str] = field(default_factory=dict)  # issued_at, model of the forecast shown

    def is_empty(self) -> bool:
        return self.raw is None and self.clean is None and self.forecast is None


_COLORS = {"raw": "#bdc1c6", "raw_alone": "#5f6368", "clean": "#1a73e8", "forecast": "#e8710a", "band80": "#f9ab00", "band95": "#fde293",
           "anomaly": "#d93025"}


def svg_plot(data: PlotData, *, width: int = PLOT_W, height: int = PLOT_H, title: str = "") -> str:
    """An inline SVG line chart of ``data`` (time axis in UTC), with a legend of the layers drawn."""
    ml, mr, mt, mb = 64, 16, 28, 40
    pw, ph = width - ml - mr, height - mt - mb
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for pair in (data.raw, data.clean, data.anomalies):
        if pair is not None and len(pair[0]):
            xs.append(pair[0])
            ys.append(pair[1])
    fc = data.forecast
    if fc is not None and len(fc["ts"]):
        xs.append(fc["ts"])
        ys += [fc[k] for k in ("mean", "lo_80", "hi_80", "lo_95", "hi_95") if k in fc]
    head = (f'<svg id="series-plot" class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" font-family="{html.escape(CSS_FONT_STACK)}" role="img" '
            f'aria-label="{html.escape(title)}">'
            f"<title>{html.escape(title)}</title>")
    allx = np.concatenate(xs) if xs else np.array([], dtype=np.int64)
    ally = np.concatenate([np.asarray(y, dtype=float) for y in ys]) if ys else np.array([])
    ally = ally[np.isfinite(ally)]
    if not len(allx) or not len(ally):
        return (head + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="empty">'
                "no values to plot yet</text></svg>")
    x0, x1 = int(allx.min()), int(allx.max())
    if x1 == x0:
        x0, x1 = x0 - 3600 * _US, x1 + 3600 * _US
    y0, y1 = float(ally.min()), float(ally.max())
    pad = (y1 - y0) * 0.06 or max(abs(y0) * 0.1, 1.0)
    y0, y1 = y0 - pad, y1 + pad

    def px(x: np.ndarray) -> np.ndarray:
        return ml + (np.asarray(x, dtype=float) - x0) / (x1 - x0) * pw

    def py(y: np.ndarray) -> np.ndarray:
        return mt + (1 - (np.asarray(y, dtype=float) - y0) / (y1 - y0)) * ph

    def pts(x: np.ndarray, y: np.ndarray) -> str:
        return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(x), py(y), strict=True))

    parts = [head, f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fff" stroke="#dadce0"/>']
    for v in nice_ticks(y0, y1):
        yy = float(py(np.array([v]))[0])
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#f1f3f4"/>'
                     f'<text x="{ml - 6}" y="{yy + 4:.1f}" text-anchor="end" class="tick">{v:g}</text>')
    for t, label in time_ticks(x0, x1):
        xx = float(px(np.array([t]))[0])
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{mt}" y2="{mt + ph}" stroke="#f1f3f4"/>'
                     f'<text x="{xx:.1f}" y="{mt + ph + 16}" text-anchor="middle" class="tick">{label}</text>')
    parts.append(f'<text x="{ml + pw}" y="{height - 6}" text-anchor="end" class="tick">UTC</text>')
    legend: list[tuple[str, str, str]] = []
    if fc is not None and len(fc["ts"]):
        for lvl, color in (("95", _COLORS["band95"]), ("80", _COLORS["band80"])):
            lo, hi = fc.get(f"lo_{lvl}"), fc.get(f"hi_{lvl}")
            if lo is None or hi is None:
                continue
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.sum() < 1:
                continue
            t = fc["ts"][ok]
            poly = pts(np.r_[t, t[::-1]], np.r_[hi[ok], lo[ok][::-1]])
            parts.append(f'<polygon class="band band{lvl}" points="{poly}" fill="{color}" fill-opacity="0.45" '
                         f'stroke="none"/>')
            legend.append((f"{lvl}% interval", color, "band"))
    # with a clean layer, raw is a wide light line under it: gaps and treated values show where they differ
    has_clean = data.clean is not None and len(data.clean[0]) > 0
    colors = {**_COLORS, "raw": _COLORS["raw"] if has_clean else _COLORS["raw_alone"]}
    for name, pair, w in (("raw", data.raw, 3.0 if has_clean else 1.2), ("clean", data.clean, 1.4)):
        if pair is None or not len(pair[0]):
            continue
        for sx, sy in split_segments(*decimate(pair[0], pair[1], pw)):
            if len(sx) == 1:
                parts.append(f'<circle class="{name}" cx="{px(sx)[0]:.1f}" cy="{py(sy)[0]:.1f}" r="1.8" '
                             f'fill="{colors[name]}"/>')
            else:
                parts.append(f'<polyline class="{name}" points="{pts(sx, sy)}" fill="none" '
                             f'stroke="{colors[name]}" stroke-width="{w}"/>')
        legend.append((name, colors[name], "line"))
    if fc is not None and len(fc["ts"]):
        ok = np.isfinite(fc["mean"])
        parts.append(f'<polyline class="forecast" points="{pts(fc["ts"][ok], fc["mean"][ok])}" fill="none" '
                     f'stroke="{_COLORS["forecast"]}" stroke-width="1.8" stroke-dasharray="5 3"/>')
        legend.append(("forecast mean", _COLORS["forecast"], "line"))
    if data.anomalies is not None and len(data.anomalies[0]):
        ax, ay = data.anomalies
        ok = np.isfinite(ay)
        parts += [f'<circle class="anomaly" cx="{a:.1f}" cy="{b:.1f}" r="3" fill="none" '
                  f'stroke="{_COLORS["anomaly"]}" stroke-width="1.5"/>'
                  for a, b in zip(px(ax[ok][:2000]), py(ay[ok][:2000]), strict=True)]
        legend.append(("anomaly", _COLORS["anomaly"], "dot"))
    lx = ml
    for label, color, kind in legend:
        if kind == "band":
            sym = f'<rect x="{lx}" y="8" width="14" height="10" fill="{color}" fill-opacity="0.6"/>'
        elif kind == "dot":
            sym = f'<circle cx="{lx + 7}" cy="13" r="4" fill="none" stroke="{color}" stroke-width="1.5"/>'
        else:
            sym = f'<line x1="{lx}" x2="{lx + 14}" y1="13" y2="13" stroke="{color}" stroke-width="2.5"/>'
        parts.append(f'{sym}<text x="{lx + 18}" y="17" class="legend">{html.escape(label)}</text>')
        lx += 28 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


# ============================================================================ data access (I/O)
def _state(request: Request):
    project = getattr(request.app.state, "project", None)
    if project is None:
        raise RuntimeError("the dashboard needs request.app.state.project (a tsops.config.Project)")
    return project


def _catalog(request: Request):
    cat = getattr(request.app.state, "dashboard_catalog", None)
    if cat is None:
        cat = _state(request).catalog()
        request.app.state.dashboard_catalog = cat
    return cat


def _lake(request: Request):
    lake = getattr(request.app.state, "dashboard_lake", None)
    if lake is None:
        lake = _state(request).lake()
        request.app.state.dashboard_lake = lake
    return lake


def _ts_us(col) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy(zero_copy_only=False)


def _floats(col) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(float)


def _read_zone(lake, zone: str, dataset: str, series_id: str, wanted: Sequence[str], since_us: int | None,
               errors: list[str] | None = None):
    """One series' rows of a zone sorted by time (None when the zone or the series has no data).

    A zone that exists but cannot be read (e.g. clashing column types) is reported in ``errors`` and skipped.
    """
    try:
        dset = lake.dataset(zone, dataset)
        if dset is None:
            return None
        cols = [c for c in wanted if c in dset.schema.names]
        if "ts" not in cols:
            return None
        start = dt.datetime.fromtimestamp(since_us / _US, dt.UTC) if since_us is not None else None
        t = lake.read(zone, dataset, start=start, series=[series_id], columns=cols)
    except (OSError, ValueError, TypeError) as err:  # pyarrow's errors derive from these
        log.warning("lake zone %s of dataset %s: %s", zone, dataset, err)
        if errors is not None:
            errors.append(f"{zone} zone of {dataset}: {type(err).__name__}: {err}")
        return None
    if t.num_rows == 0:
        return None
    return t.sort_by("ts")


def load_plot_data(lake, dataset: str, series_id: str, since_us: int | None = None) -> PlotData:
    """Raw, clean (with anomaly flags) and the latest forecast of one series from the zones that exist.

    ``since_us`` (epoch microseconds) limits the history read from raw and clean; forecasts are read whole.
    """
    data = PlotData()
    since = since_us
    raw = _read_zone(lake, "raw", dataset, series_id, ["ts", "value"], since, data.errors)
    if raw is not None and "value" in raw.column_names:
        data.raw = (_ts_us(raw["ts"]), _floats(raw["value"]))
        data.layers.append("raw")
    clean = _read_zone(lake, "clean", dataset, series_id, ["ts", "value", "raw_value", "is_anomaly"], since,
                       data.errors)
    if clean is not None and "value" in clean.column_names:
        ts = _ts_us(clean["ts"])
        data.clean = (ts, _floats(clean["value"]))
        data.layers.append("clean")
        if "is_anomaly" in clean.column_names:
            flag = clean["is_anomaly"].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
            yv = _floats(clean["raw_value"]) if "raw_value" in clean.column_names else data.clean[1]
            data.anomalies = (ts[flag], yv[flag])
    fc = _read_zone(lake, "forecasts", dataset, series_id,
                    ["ts", "mean", "lo_80", "hi_80", "lo_95", "hi_95", "issued_at", "created_at", "model_name",
                     "model_version"], None, data.errors)
    if fc is not None and "mean" in fc.column_names:
        data.forecast = latest_forecast({c: fc[c] for c in fc.column_names})
        data.forecast_info = forecast_provenance({c: fc[c] for c in fc.column_names})
        data.layers.append("forecast")
    return data


def latest_forecast(cols: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The newest forecast per timestamp: rows of the latest ``issued_at``/``created_at`` if present, else the
    last row written for each ``ts``."""
    ts = _ts_us(cols["ts"])
    keep = np.ones(len(ts), dtype=bool)
    for key in ("issued_at", "created_at"):
        if key in cols:
            issued = _ts_us(cols[key])
            keep = issued == np.nanmax(issued)
            break
    out = {"ts": ts[keep]}
    for c in ("mean", "lo_80", "hi_80", "lo_95", "hi_95"):
        if c in cols:
            out[c] = _floats(cols[c])[keep]
    # one value per timestamp (the last one written), in time order
    rev = out["ts"][::-1]
    _, first_rev = np.unique(rev, return_index=True)
    idx = (len(rev) - 1 - first_rev)
    return {k: v[idx] for k, v in out.items()}


def forecast_provenance(cols: Mapping[str, Any]) -> dict[str, str]:
    """When and by which model version the newest forecast was issued (from the provenance columns)."""
    out: dict[str, str] = {}
    for key in ("issued_at", "created_at"):
        if key in cols:
            issued = _ts_us(cols[key])
            i = int(np.argmax(issued))
            out["issued_at"] = _us_iso(int(issued[i]))
            for c in ("model_name", "model_version"):
                if c in cols:
                    out[c] = str(cols[c][i].as_py())
            break
    return out


def _tracking_store_exists(uri: str) -> bool:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).is_file()
    if uri.startswith("file:") or "://" not in uri:
        p = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
        return p.exists()
    return True  # a server or database: ask it


def champion_models(tracking_uri: str, datasets: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """``tsops-<dataset>@champion`` per dataset from MLflow: version, run, metrics (None: no champion)."""
    names = list(datasets)
    if not names or not _tracking_store_exists(tracking_uri):
        return {n: None for n in names}
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    out: dict[str, dict[str, Any] | None] = {}
    for ds_name in names:
        model = f"tsops-{ds_name}"
        try:
            mv = client.get_model_version_by_alias(model, "champion")
        except MlflowException as err:
            log.debug("no champion for %s: %s", model, err)
            out[ds_name] = None
            continue
        info: dict[str, Any] = {
            "model": model, "version": mv.version, "run_id": mv.run_id, "created": mv.creation_timestamp,
            "description": mv.description or "", "tags": dict(mv.tags or {}), "metrics": {}, "params": {},
        }
        if mv.run_id:
            try:
                run = client.get_run(mv.run_id)
                info["metrics"] = dict(run.data.metrics)
                info["params"] = dict(run.data.params)
                info["run_name"] = run.info.run_name
            except MlflowException as err:
                info["error"] = f"run {mv.run_id}: {err}"
        if mv.run_id and not any(k.startswith("backtest_") for k in info["metrics"]):
            info.update(_child_backtest(client, mv.run_id, info))
        model_id = getattr(mv, "model_id", None)
        if model_id:
            try:
                lm = client.get_logged_model(model_id)
                for m in lm.metrics or []:
                    info["metrics"].setdefault(m.key, m.value)
                info["params"] = {**dict(lm.params or {}), **info["params"]}
            except MlflowException as err:
                log.debug("logged model %s: %s", model_id, err)
        out[ds_name] = info
    return out


def _child_backtest(client, run_id: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """Backtest metrics logged on the trial (child) runs of a training run: the child whose ``score`` is the
    version's ``tsops.backtest_score`` tag, else the best-scoring child."""
    from mlflow.exceptions import MlflowException

    try:
        exp = client.get_run(run_id).info.experiment_id
        children = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
                                      max_results=1000)
    except MlflowException as err:
        log.debug("child runs of %s: %s", run_id, err)
        return {}
    scored = [c for c in children if any(k.startswith("backtest_") for k in c.data.metrics)]
    if not scored:
        return {}
    try:
        target = float(info.get("tags", {}).get("tsops.backtest_score", "nan"))
    except ValueError:
        target = float("nan")

    def key(c) -> float:
        score = c.data.metrics.get("score", math.inf)
        return abs(score - target) if math.isfinite(target) else score

    best = min(scored, key=key)
    metrics = dict(info.get("metrics", {}))
    for k, v in best.data.metrics.items():
        if k.startswith("backtest_"):
            metrics.setdefault(k, v)
    return {"metrics": metrics, "backtest_run": best.info.run_name or best.info.run_id}


# ============================================================================ HTML
#: The bundled Hangul font, served by the dashboard itself (a browser without CJK system fonts renders ids
#: such as "광주 A|C02" with it); see tsops.analysis.plotting.
FONT_ROUTE = f"/static/fonts/{HANGUL_FONT}.woff"

_CSS = f"body{{font-family:{CSS_FONT_STACK};margin:0;color:#202124;background:#f8f9fa}}" + """
header{background:#202124;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:baseline}
header a{color:#e8eaed;text-decoration:none}header a:hover{text-decoration:underline}
header .brand{font-weight:700;font-size:18px;color:#fff}
main{padding:16px 24px;max-width:1200px}
table{border-collapse:collapse;background:#fff;font-size:14px;margin:8px 0 16px}
th,td{border-bottom:1px solid #e8eaed;padding:5px 10px;text-align:left;vertical-align:top}
th{background:#f1f3f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600}
.good,.success{background:#e6f4ea;color:#137333}.fair,.running{background:#fef7e0;color:#b06000}
.poor,.failed,.error{background:#fce8e6;color:#c5221f}.unprocessed{background:#f1f3f4;color:#5f6368}
.muted{color:#5f6368}.tick{font-size:11px;fill:#5f6368}.legend{font-size:12px;fill:#3c4043}
.empty{font-size:14px;fill:#5f6368}svg.plot{background:#fff;border:1px solid #e8eaed;max-width:100%;height:auto}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;font-size:14px}dt{color:#5f6368}
pre{font-size:12px;white-space:pre-wrap;margin:0;max-width:480px}
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _base(request: Request) -> str:
    return urlsplit(str(request.url_for("dashboard_index"))).path.rstrip("/")


def dataset_url(base: str, dataset: str) -> str:
    return f"{base}/datasets/{quote(dataset, safe='')}"


def series_url(base: str, dataset: str, series_id: str) -> str:
    """The series page URL; ``series_id`` is percent-encoded (ids hold ``|``, spaces and non-ASCII)."""
    return f"{dataset_url(base, dataset)}/series/{quote(series_id, safe='')}"


def _page(request: Request, title: str, body: str, status: int = 200) -> HTMLResponse:
    base = _base(request)
    project = _state(request)
    nav = (f'<header><a class="brand" href="{base}/">tsops</a><span class="muted">{_e(project.config.name)}</span>'
           f'<a href="{base}/">datasets</a><a href="{base}/models">models</a><a href="{base}/runs">runs</a></header>')
    font = base + FONT_ROUTE
    doc = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)} · tsops</title>'
           f'<meta name="viewport" content="width=device-width, initial-scale=1">'
           f'<link rel="preload" href="{font}" as="font" type="font/woff" crossorigin>'
           f'<style>{font_face_css(url=font)}{_CSS}</style></head>'
           f"<body>{nav}<main>{body}</main></body></html>")
    return HTMLResponse(doc, status_code=status)


def _not_found(request: Request, message: str) -> HTMLResponse:
    return _page(request, "not found", f'<h1>Not found</h1><p class="error-message">{_e(message)}</p>'
                 f'<p><a href="{_base(request)}/">back to the datasets</a></p>', status=404)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = (), cls: str = "") -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _fmt_ratio(v: float | None) -> str:
    return "" if v is None else f"{v:.1%}" if v >= 0.001 or v == 0 else f"{v:.2e}"


def _fmt_period(v: float | None) -> str:
    if v is None:
        return ""
    for unit, s in (("d", 86400), ("h", 3600), ("min", 60)):
        if v >= s and abs(v / s - round(v / s)) < 1e-6:
            return f"{round(v / s)} {unit}"
    return f"{v:g} s"


def _fmt_num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return _e(v)


def _us_iso(us: int | None) -> str:
    from tsops.catalog import us_to_iso

    return (us_to_iso(us) or "").replace("T", " ").replace("Z", "")[:19]


def _badge(status: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(status)}</span>'


# ============================================================================ pages
@router.get(FONT_ROUTE, include_in_schema=False, name="dashboard_font")
def font_file() -> Response:
    """The bundled NanumGothic (SIL OFL) as WOFF, named by every page's ``@font-face``."""
    return Response(web_font(), media_type="font/woff", headers={"Cache-Control": "public, max-age=604800"})


@router.get("/", response_class=HTMLResponse, name="dashboard_index")
def index(request: Request) -> HTMLResponse:
    """Every dataset of the catalog and the project file, with its size and time range."""
    project = _state(request)
    base = _base(request)
    rows = {r["name"]: r for r in _catalog(request).list_datasets()}
    names = sorted(set(rows) | set(project.config.datasets))
    out = []
    for n in names:
        r = rows.get(n)
        cfg = project.config.datasets.get(n)
        source = cfg.source.kind if cfg is not None and cfg.source is not None else ""
        if r is None:
            out.append([f'<a class="dataset-link" href="{dataset_url(base, n)}">{_e(n)}</a>', _e(source), "0", "0",
                        '<span class="muted">not ingested yet</span>', ""])
            continue
        out.append([f'<a class="dataset-link" href="{dataset_url(base, n)}">{_e(n)}</a>', _e(source),
                    f"{r['series']:,}", f"{r['observations']:,}", _us_iso(r["first_ts_us"]),
                    _us_iso(r["last_ts_us"])])
    body = "<h1>Datasets</h1>" + (
        _table(["dataset", "source", "series", "observations", "first (UTC)", "last (UTC)"], out, numeric=(2, 3),
               cls="datasets")
        if out else '<p class="muted">No datasets yet: add one to tsops.yaml and run <code>tsops ingest</code>.</p>')
    return _page(request, "datasets", body)


@router.get("/datasets/{name}", response_class=HTMLResponse, name="dashboard_dataset")
def dataset_page(request: Request, name: str, q: str | None = Query(None, description="series id filter, * wildcard")
                 ) -> HTMLResponse:
    """The series of one dataset with their quality status (period, missing and anomaly ratios)."""
    project = _state(request)
    cat = _catalog(request)
    known = cat.get_dataset(name) is not None or name in project.config.datasets
    if not known:
        return _not_found(request, f"dataset {name!r} is neither in the catalog nor in tsops.yaml")
    base = _base(request)
    series = cat.list_series(name, f"*{q}*" if q and "*" not in q else q)
    counts = {"good": 0, "fair": 0, "poor": 0, "unprocessed": 0}
    rows = []
    for s in series:
        miss = quality_figure(s, "missing_ratio")
        anom = quality_figure(s, "anomaly_ratio")
        status = quality_status(miss, anom)
        counts[status] += 1
        if len(rows) >= MAX_SERIES_ROWS:
            continue
        rows.append([
            f'<a class="series-link" href="{series_url(base, name, s["series_id"])}">{_e(s["series_id"])}</a>',
            f"{s['count']:,}", _e((s.get("first_ts") or "").replace("T", " ").replace("Z", "")[:19]),
            _e((s.get("last_ts") or "").replace("T", " ").replace("Z", "")[:19]), _e(s.get("unit") or ""),
            _fmt_period(quality_figure(s, "period_s", "period_seconds")), _fmt_ratio(miss), _fmt_ratio(anom),
            _badge(status),
        ])
    summary = " · ".join(f"{_badge(k)} {v:,}" for k, v in counts.items() if v)
    filt = (f'<form method="get"><input name="q" value="{_e(q or "")}" placeholder="filter series ids">'
            f' <button type="submit">filter</button></form>')
    more = (f'<p class="muted">showing the first {MAX_SERIES_ROWS:,} of {len(series):,} series: filter to narrow'
            "</p>" if len(series) > MAX_SERIES_ROWS else "")
    table = _table(["series", "observations", "first (UTC)", "last (UTC)", "unit", "period", "missing",
                    "anomalies", "quality"], rows, numeric=(1, 6, 7), cls="series") if rows else (
        '<p class="muted">No series yet: run <code>tsops ingest</code>.</p>' if not q else
        '<p class="muted">No series match the filter.</p>')
    body = (f'<h1>Dataset {_e(name)}</h1><p>{len(series):,} series {summary}</p>{filt}{more}{table}'
            f'<p><a href="{base}/runs?dataset={quote(name)}">runs of this dataset</a> · '
            f'<a href="{base}/models">champion models</a></p>')
    return _page(request, name, body)


@router.get("/datasets/{name}/series/{series_id}", response_class=HTMLResponse, name="dashboard_series")
def series_page(request: Request, name: str, series_id: str,
                days: float | None = Query(None, gt=0, description="show only the last N days of history")
                ) -> HTMLResponse:
    """One series: its catalog figures and a plot of raw, clean and forecast values with 80/95% bands."""
    cat = _catalog(request)
    doc = cat.get_series(name, series_id)
    if doc is None:
        if cat.get_dataset(name) is None and name not in _state(request).config.datasets:
            return _not_found(request, f"dataset {name!r} is neither in the catalog nor in tsops.yaml")
        return _not_found(request, f"series {series_id!r} is not in dataset {name!r}")
    base = _base(request)
    since = None
    if days is not None and doc.get("last_ts"):
        last = dt.datetime.fromisoformat(doc["last_ts"].replace("Z", "+00:00"))
        since = int((last - dt.timedelta(days=days)).timestamp() * _US)
    data = load_plot_data(_lake(request), name, series_id, since)
    svg = svg_plot(data, title=f"{series_id} ({name})")
    miss, anom = quality_figure(doc, "missing_ratio"), quality_figure(doc, "anomaly_ratio")
    facts = [
        ("observations", f"{doc['count']:,}"),
        ("first / last (UTC)", f"{_e(doc.get('first_ts'))} / {_e(doc.get('last_ts'))}"),
        ("unit", _e(doc.get("unit") or "")),
        ("period", _fmt_period(quality_figure(doc, "period_s", "period_seconds")) or "not estimated yet"),
        ("missing ratio", _fmt_ratio(miss)), ("anomaly ratio", _fmt_ratio(anom)),
        ("quality", _badge(quality_status(miss, anom))),
        ("zones plotted", ", ".join(data.layers) or "none"),
    ]
    dl = "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    errors = "".join(f'<p class="error">could not read the {_e(e)}</p>' for e in data.errors)
    here = series_url(base, name, series_id)
    windows = " · ".join(f'<a href="{here}?days={d}">last {d} d</a>' for d in (2, 7, 30)) + f' · <a href="{here}">all</a>'
    fc_table = ""
    if data.forecast is not None and len(data.forecast["ts"]):
        f = data.forecast
        cols = [c for c in ("mean", "lo_95", "lo_80", "hi_80", "hi_95") if c in f]
        rows = [[_e(_us_iso(int(f["ts"][i])))] + [f"{f[c][i]:.4g}" for c in cols] for i in range(min(len(f["ts"]), 48))]
        info = data.forecast_info
        by = " ".join(x for x in (info.get("model_name"), f"v{info['model_version']}" if info.get("model_version")
                                  else None) if x)
        prov = (f'<p class="muted forecast-info">issued {_e(info["issued_at"])} UTC{" by " + _e(by) if by else ""}'
                "</p>" if info.get("issued_at") else "")
        fc_table = "<h2>Forecast</h2>" + prov + _table(["ts (UTC)", *cols], rows, numeric=range(1, len(cols) + 1),
                                                cls="forecast")
    body = (f'<p><a href="{dataset_url(base, name)}">← {_e(name)}</a></p><h1>{_e(series_id)}</h1>'
            f'<p class="muted">{windows}</p>{errors}<figure>{svg}</figure>{dl}{fc_table}')
    return _page(request, f"{series_id} · {name}", body)


@router.get("/models", response_class=HTMLResponse, name="dashboard_models")
def models_page(request: Request) -> HTMLResponse:
    """The champion model of each dataset (MLflow alias ``champion`` of ``tsops-<dataset>``) and its metrics."""
    project = _state(request)
    names = sorted({r["name"] for r in _catalog(request).list_datasets()} | set(project.config.datasets))
    try:
        champs = champion_models(project.tracking_uri, names)
        problem = ""
    except Exception as err:  # an unreachable tracking server must not take the dashboard down
        uri = mask_url(project.tracking_uri)
        log.warning("MLflow at %s: %s", uri, mask_secrets(err))
        champs, problem = {n: None for n in names}, f"MLflow tracking store {uri}: {mask_secrets(err)}"
    parts = ["<h1>Champion models</h1>"]
    if problem:
        parts.append(f'<p class="error">{_e(problem)}</p>')
    if not names:
        parts.append('<p class="muted">No datasets yet.</p>')
    for n in names:
        c = champs.get(n)
        parts.append(f'<h2><a href="{dataset_url(_base(request), n)}">{_e(n)}</a></h2>')
        if c is None:
            parts.append(f'<p class="no-champion muted">no champion yet (registered model tsops-{_e(n)} has no '
                         "<code>champion</code> alias)</p>")
            continue
        created = _us_iso(int(c["created"]) * 1000) if c.get("created") else ""
        facts = [("model", _e(c["model"])), ("version", _e(c["version"])), ("registered (UTC)", created),
                 ("run", _e(c.get("run_name") or c.get("run_id") or ""))]
        if c.get("backtest_run"):
            facts.append(("backtest run", _e(c["backtest_run"])))
        if c.get("description"):
            facts.append(("description", _e(c["description"])))
        for k, v in sorted(c.get("tags", {}).items()):
            facts.append((f"tag {k}", _e(v)))
        if c.get("error"):
            facts.append(("error", _e(c["error"])))
        parts.append('<dl class="champion">' + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>")
        metrics = sorted(c.get("metrics", {}).items(), key=lambda kv: (not kv[0].startswith("backtest"), kv[0]))
        if metrics:
            parts.append(_table(["metric", "value"], [[_e(k), _fmt_num(v)] for k, v in metrics],
                                numeric=(1,), cls="metrics"))
        if c.get("params"):
            parts.append(_table(["parameter", "value"], [[_e(k), _e(v)] for k, v in sorted(c["params"].items())],
                                cls="params"))
    return _page(request, "models", "".join(parts))


@router.get("/runs", response_class=HTMLResponse, name="dashboard_runs")
def runs_page(request: Request, dataset: str | None = Query(None), limit: int = Query(200, gt=0, le=5000)
              ) -> HTMLResponse:
    """The pipeline run log of the catalog, newest first."""
    runs = _catalog(request).list_runs(dataset=dataset, limit=limit)
    rows = []
    for r in runs:
        dur = ""
        if r.get("finished_at") and r.get("started_at"):
            dur = f"{(r['finished_at'] - r['started_at']) / _US:,.1f} s"
        stats = r.get("stats") or {}
        if isinstance(stats, str):
            stats = json.loads(stats)
        stats_txt = json.dumps(stats, ensure_ascii=False, default=str)
        rows.append([str(r["id"]), _e(r["kind"]), _e(r.get("dataset") or ""), _badge(str(r["status"])),
                     _us_iso(r["started_at"]), dur, f"<pre>{_e(stats_txt[:600])}</pre>",
                     f"<pre>{_e((r.get('error') or '')[:600])}</pre>"])
    title = f"Runs of {dataset}" if dataset else "Pipeline runs"
    body = f"<h1>{_e(title)}</h1>" + (
        _table(["id", "kind", "dataset", "status", "started (UTC)", "duration", "stats", "error"], rows,
               numeric=(0, 5), cls="runs") if rows else '<p class="muted">No runs recorded yet.</p>')
    return _page(request, "runs", body)


def dashboard_app(project, token: str | None = None, max_body: int | None = DEFAULT_MAX_BODY) -> FastAPI:
    """A standalone FastAPI app serving only the dashboard for ``project`` (``/`` redirects to it).

    With ``token`` every page needs it (log in at ``/login``, or send ``Authorization: Bearer``)."""
    from fastapi.responses import RedirectResponse

    app = FastAPI(title=f"tsops dashboard · {project.config.name}", docs_url=None, redoc_url=None)
    app.add_middleware(TokenGuard, token=token, max_body=max_body)
    app.state.project = project
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    def _root(request: Request) -> RedirectResponse:
        return RedirectResponse(str(request.url_for("dashboard_index")))

    return app
