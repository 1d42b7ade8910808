"""The web dashboard: every page through TestClient, then a click-through in headless Chromium."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from tsops.config import load_project
from tsops.serving.dashboard import (
    PlotData,
    dashboard_app,
    decimate,
    latest_forecast,
    nice_ticks,
    quality_figure,
    quality_status,
    series_url,
    split_segments,
    svg_plot,
    time_ticks,
)
from tsops.testing.services import need

KOREAN = "광 주 A|C02"
PLAIN = "site-b|TEMP"
CHROMIUM = os.environ.get("TSOPS_CHROMIUM", "/usr/bin/chromium")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOURS = 24 * 6


def _ts(hours: np.ndarray) -> pa.Array:
    us = (T0.timestamp() * 1e6 + hours * 3600e6).astype("int64")
    return pa.array(us, pa.timestamp("us", tz="UTC"))


@pytest.fixture
def project(project_dir):
    (project_dir / "tsops.yaml").write_text(
        "name: dash\n"
        "datasets:\n"
        "  sensors:\n"
        "    series: {timestamp: event_time, keys: [position, type_name], values: [input_data]}\n"
        "  configured_only:\n"
        "    series: {timestamp: ts, keys: [k], values: [v]}\n",
        encoding="utf-8",
    )
    p = load_project(project_dir)
    lake, cat = p.lake(), p.catalog()
    rng = np.random.default_rng(3)
    h = np.arange(HOURS, dtype=float)
    y = 10 + 3 * np.sin(2 * np.pi * h / 24) + rng.normal(0, 0.3, HOURS)
    y[50] = 40.0  # an anomaly, flagged by the clean zone
    keep = np.ones(HOURS, dtype=bool)
    keep[70:76] = False  # a gap in the raw readings, imputed in the clean zone
    raw = pa.table({"series_id": [KOREAN] * int(keep.sum()), "ts": _ts(h[keep]), "value": y[keep]})
    lake.write_table("raw", "sensors", raw, "batch-0001")
    lake.write_table("raw", "sensors", pa.table(
        {"series_id": [PLAIN] * 10, "ts": _ts(np.arange(10.0)), "value": np.arange(10.0)}), "batch-0002")
    clean_v = y.copy()
    clean_v[50] = (y[49] + y[51]) / 2
    clean_v[70:76] = np.interp(h[70:76], [69, 76], [y[69], y[76]])
    lake.write_table("clean", "sensors", pa.table({
        "series_id": [KOREAN] * HOURS, "ts": _ts(h), "value": clean_v, "raw_value": np.where(keep, y, np.nan),
        "is_missing": ~keep, "is_imputed": ~keep, "is_anomaly": h == 50,
    }), "clean-0001")
    fh = np.arange(HOURS, HOURS + 24, dtype=float)
    mean = 10 + 3 * np.sin(2 * np.pi * fh / 24)
    width = np.linspace(0.5, 1.5, 24)
    for stem, issued_h, shift, version in (("fc-old", HOURS - 30, 5.0, "2"), ("fc-new", HOURS, 0.0, "3")):
        m = mean + shift  # an older issue for the same hours: only the newest is drawn
        lake.write_table("forecasts", "sensors", pa.table({
            "series_id": [KOREAN] * 24, "ts": _ts(fh), "step": np.arange(1, 25, dtype=np.int32), "mean": m,
            "lo_80": m - width, "hi_80": m + width, "lo_95": m - 1.6 * width, "hi_95": m + 1.6 * width,
            "issued_at": _ts(np.full(24, float(issued_h))), "model_name": ["tsops-sensors"] * 24,
            "model_version": [version] * 24,
        }), stem)
    cat.upsert_dataset("sensors", {"keys": ["position", "type_name"]})
    cat.upsert_series("sensors", [
        {"series_id": KOREAN, "count": int(keep.sum()), "first_ts_us": int(T0.timestamp() * 1e6),
         "last_ts_us": int((T0.timestamp() + (HOURS - 1) * 3600) * 1e6), "unit": "ppm",
         "period_s": 3600.0, "missing_ratio": 6 / HOURS, "anomaly_ratio": 1 / HOURS},
        {"series_id": PLAIN, "count": 10, "first_ts_us": int(T0.timestamp() * 1e6),
         "last_ts_us": int((T0.timestamp() + 9 * 3600) * 1e6), "unit": "C"},
    ])
    run = cat.start_run("process", "sensors")
    cat.finish_run(run, "success", stats={"series": 2, "rows": HOURS})
    run = cat.start_run("forecast", "sensors")
    cat.finish_run(run, "failed", error="model tsops-sensors has no champion yet")
    cat.close()
    return p


@pytest.fixture
def client(project):
    with TestClient(dashboard_app(project)) as c:
        yield c


# ---------------------------------------------------------------------------------------------- pure helpers
def test_quality_status_and_figures():
    assert quality_status(None, None) == "unprocessed"
    assert quality_status(0.01, 0.001) == "good"
    assert quality_status(0.10, None) == "fair"
    assert quality_status(0.01, 0.2) == "poor"
    assert quality_figure({"quality": {"period_seconds": 60}}, "period_s", "period_seconds") == 60.0
    assert quality_figure({"period_s": float("nan"), "quality": {"period_s": 5}}, "period_s") == 5.0
    assert quality_figure({"missing_ratio": True}, "missing_ratio") is None


def test_decimate_keeps_extremes_and_gaps():
    x = np.arange(100_000, dtype=np.int64)
    y = np.sin(x / 500.0)
    y[12_345] = 9.0
    y[50_000:50_010] = np.nan
    dx, dy = decimate(x, y, 200)
    assert len(dx) <= 4 * 200 + 10 and np.all(np.diff(dx) > 0)
    assert np.nanmax(dy) == 9.0 and np.nanmin(dy) == pytest.approx(y[np.isfinite(y)].min())
    assert np.isnan(dy).any()  # the gap survives
    assert len(split_segments(dx, dy)) == 2
    small = decimate(x[:10], y[:10], 200)
    assert np.array_equal(small[0], x[:10])


def test_split_segments_breaks_long_gaps():
    x = np.array([0, 1, 2, 3, 50, 51, 52], dtype=float)
    segs = split_segments(x, np.ones(7))
    assert [len(s[0]) for s in segs] == [4, 3]


def test_ticks():
    assert nice_ticks(0.3, 9.7) == [2.0, 4.0, 6.0, 8.0]
    t = nice_ticks(-3.2, 41.0)
    assert all(-3.2 <= v <= 41.0 for v in t) and 4 <= len(t) <= 10
    lo = int(T0.timestamp() * 1e6)
    ticks = time_ticks(lo, lo + 6 * 86400 * 1_000_000)
    assert ticks[0] == (lo, "2026-01-01") and 4 <= len(ticks) <= 7


def test_latest_forecast_prefers_newest_issue():
    ts = _ts(np.array([0.0, 1.0, 0.0, 1.0]))
    issued = _ts(np.array([-5.0, -5.0, -1.0, -1.0]))
    f = latest_forecast({"ts": ts, "mean": pa.array([1.0, 2.0, 3.0, 4.0]), "issued_at": issued})
    assert f["mean"].tolist() == [3.0, 4.0]
    f = latest_forecast({"ts": _ts(np.array([1.0, 0.0, 1.0])), "mean": pa.array([1.0, 2.0, 3.0])})
    assert f["mean"].tolist() == [2.0, 3.0]


def test_svg_plot_layers():
    x = np.arange(5, dtype=np.int64) * 3_600_000_000
    svg = svg_plot(PlotData(raw=(x, np.arange(5.0))), title="a<b")
    assert svg.startswith('<svg id="series-plot"') and "a&lt;b" in svg and 'class="raw"' in svg
    assert 'class="forecast"' not in svg and "band" not in svg
    assert "no values to plot yet" in svg_plot(PlotData(), title="x")


# ---------------------------------------------------------------------------------------------- pages
def test_index_lists_datasets(client):
    r = client.get("/dashboard/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'href="/dashboard/datasets/sensors"' in r.text and "configured_only" in r.text
    assert "not ingested yet" in r.text
    assert client.get("/", follow_redirects=False).headers["location"].endswith("/dashboard/")


def test_dataset_page_shows_quality(client):
    r = client.get("/dashboard/datasets/sensors")
    assert r.status_code == 200
    assert f'href="/dashboard/datasets/sensors/series/{quote(KOREAN, safe="")}"' in r.text
    assert "%EA%B4%91%20%EC%A3%BC%20A%7CC02" in r.text  # percent-encoded UTF-8 and |
    assert KOREAN in r.text and "1 h" in r.text and "4.2%" in r.text and "0.7%" in r.text
    assert 'class="badge good"' in r.text and 'class="badge unprocessed"' in r.text
    r = client.get("/dashboard/datasets/sensors", params={"q": "site"})
    assert PLAIN in r.text and KOREAN not in r.text
    r = client.get("/dashboard/datasets/configured_only")
    assert r.status_code == 200 and "No series yet" in r.text


def test_series_page_plots_every_zone(client):
    r = client.get(series_url("/dashboard", "sensors", KOREAN))
    assert r.status_code == 200
    html = r.text
    assert '<svg id="series-plot"' in html and KOREAN in html
    for cls in ('class="raw"', 'class="clean"', 'class="forecast"', 'class="band band80"', 'class="band band95"',
                'class="anomaly"'):
        assert cls in html, cls
    assert "zones plotted</dt><dd>raw, clean, forecast" in html
    assert html.count("<tr>") >= 25  # the forecast table: header + 24 steps
    assert "issued 2026-01-07 00:00:00 UTC by tsops-sensors v3" in html
    assert "<td>2026-01-07 00:00:00</td><td class=\"num\">10</td>" in html  # the newest issue (old: 15)
    # a series with only raw data: the missing zones are simply not drawn
    r = client.get(series_url("/dashboard", "sensors", PLAIN))
    assert r.status_code == 200 and 'class="raw"' in r.text
    assert 'class="clean"' not in r.text and 'class="forecast"' not in r.text
    # a window of the last 2 days reads less history
    assert _raw_points(html) == HOURS - 6
    r = client.get(series_url("/dashboard", "sensors", KOREAN), params={"days": 2})
    assert r.status_code == 200 and _raw_points(r.text) == 49  # hours 95..143


def _raw_points(html: str) -> int:
    return sum(len(p.split()) for p in re.findall(r'<polyline class="raw" points="([^"]*)"', html))


def test_unknown_dataset_and_series_are_404(client):
    r = client.get("/dashboard/datasets/nope")
    assert r.status_code == 404 and "dataset &#x27;nope&#x27; is neither in the catalog" in r.text
    r = client.get(series_url("/dashboard", "sensors", "no|such"))
    assert r.status_code == 404 and "series &#x27;no|such&#x27; is not in dataset &#x27;sensors&#x27;" in r.text
    r = client.get(series_url("/dashboard", "nope", KOREAN))
    assert r.status_code == 404 and "dataset &#x27;nope&#x27;" in r.text


def test_runs_page(client):
    r = client.get("/dashboard/runs")
    assert r.status_code == 200
    assert 'class="badge success"' in r.text and 'class="badge failed"' in r.text
    assert "has no champion yet" in r.text and "&quot;series&quot;: 2" in r.text
    r = client.get("/dashboard/runs", params={"dataset": "other"})
    assert "No runs recorded yet" in r.text


def test_token_guards_every_dashboard_page_and_login_opens_them(project):
    from fastapi.routing import iter_route_contexts

    from tsops.serving.auth import COOKIE, session_value

    app = dashboard_app(project, token="tok-123")
    with TestClient(app) as c:
        paths = [re.sub(r"{[^}]+}", "sensors", r.path) for r in iter_route_contexts(app.router.routes)]
        assert {"/", "/dashboard/", "/dashboard/models", "/dashboard/runs", "/dashboard/datasets/sensors",
                "/dashboard/datasets/sensors/series/sensors"} <= set(paths)
        for path in paths:
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 401 and KOREAN not in r.text and "sensors" not in r.json()["detail"], path
            r = c.get(path, headers={"Accept": "text/html,application/xhtml+xml"}, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
        series = series_url("/dashboard", "sensors", KOREAN)
        r = c.get(series, headers={"Accept": "text/html"}, follow_redirects=False)
        login = c.get(r.headers["location"])
        assert login.status_code == 200 and "광" not in unquote(login.text.split('name="next"')[0])
        r = c.post("/login", data={"token": "tok-123", "next": unquote(r.headers["location"].split("next=")[1])},
                   follow_redirects=False)
        assert r.status_code == 303 and unquote(r.headers["location"]) == unquote(series)
        assert f"{COOKIE}={session_value('tok-123')}" in r.headers["set-cookie"]
        assert "HttpOnly" in r.headers["set-cookie"]
        page = c.get(r.headers["location"])  # the client keeps the cookie
        assert page.status_code == 200 and "<svg" in page.text
        assert c.get("/dashboard/runs", headers={"Authorization": "Bearer tok-123"}, cookies={}).status_code == 200


def test_models_page_without_tracking_store(client):
    r = client.get("/dashboard/models")
    assert r.status_code == 200 and r.text.count("no champion yet") == 2


def test_models_page_shows_champion(project, client):
    from mlflow.tracking import MlflowClient

    uri = project.tracking_uri
    mc = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = mc.create_experiment("tsops-sensors", artifact_location=(project.root / "mlartifacts").as_uri())
    run = mc.create_run(exp, run_name="train-sensors")
    mc.log_metric(run.info.run_id, "best_score", 0.82)
    mc.log_param(run.info.run_id, "model", "auto_ets")
    # the backtest metrics live on the trial (child) runs; the champion's is the one with the tagged score
    for name, score in (("trial-0", 0.95), ("trial-1", 0.82)):
        child = mc.create_run(exp, run_name=name, tags={"mlflow.parentRunId": run.info.run_id})
        for k, v in {"score": score, "backtest_mase": score, "backtest_smape": 12.5 + score}.items():
            mc.log_metric(child.info.run_id, k, v)
        mc.set_terminated(child.info.run_id)
    mc.set_terminated(run.info.run_id)
    mc.create_registered_model("tsops-sensors")
    mv = mc.create_model_version("tsops-sensors", source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                 tags={"tsops.backtest_score": "0.82"})
    mc.set_registered_model_alias("tsops-sensors", "champion", mv.version)
    r = client.get("/dashboard/models")
    assert r.status_code == 200
    assert "tsops-sensors" in r.text and "train-sensors" in r.text and "backtest_mase" in r.text and "<th>metric</th>" in r.text
    assert "trial-1" in r.text and "13.32" in r.text and "auto_ets" in r.text and "trial-0" not in r.text
    assert r.text.count("no champion yet") == 1  # configured_only still has none


# ---------------------------------------------------------------------------------------------- browser
class _Links(HTMLParser):
    def __init__(self, cls: str):
        super().__init__()
        self.cls, self.hrefs = cls, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and self.cls in (a.get("class") or "").split():
            self.hrefs.append(a["href"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.services
def test_click_through_in_chromium(project, tmp_path):
    need("Chromium", Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is not None,
         f"no {CHROMIUM}: run scripts/install-chromium.sh (or set TSOPS_CHROMIUM)")
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(dashboard_app(project), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        r = _chromium(tmp_path, "--dump-dom", f"{base}/dashboard/datasets/sensors")
        assert r.returncode == 0, r.stderr[-2000:]
        parser = _Links("series-link")
        parser.feed(r.stdout)
        hrefs = [h for h in parser.hrefs if unquote(h).endswith(KOREAN)]
        assert len(hrefs) == 1, parser.hrefs
        r = _chromium(tmp_path, "--dump-dom", base + hrefs[0])
        assert r.returncode == 0, r.stderr[-2000:]
        dom = r.stdout
        assert '<svg id="series-plot"' in dom and f"<h1>{KOREAN}</h1>" in dom
        assert '<polyline class="clean"' in dom and '<polygon class="band band95"' in dom
        shot = tmp_path / "series.png"
        r = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,900", "--hide-scrollbars",
                      base + hrefs[0])
        assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
        keep = os.environ.get("TSOPS_DASHBOARD_SCREENSHOT")
        if keep:  # for a human look at the rendering
            shutil.copy(shot, keep)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_font_route_and_css_name_the_bundled_hangul_font(client):
    from fontTools.ttLib import TTFont

    from tsops.analysis.plotting import HANGUL_FONT
    from tsops.serving.dashboard import FONT_ROUTE

    page = client.get("/dashboard/datasets/sensors").text
    assert f"@font-face{{font-family:'{HANGUL_FONT}';src:url('/dashboard{FONT_ROUTE}')" in page
    assert f"font-family:'{HANGUL_FONT}'" in page.split("</style>")[0].split("}", 1)[1]  # body names it
    r = client.get(f"/dashboard{FONT_ROUTE}")
    assert r.status_code == 200 and r.headers["content-type"] == "font/woff"
    font = TTFont(__import__("io").BytesIO(r.content))
    assert font.flavor == "woff" and ord("광") in font.getBestCmap() and "TSI3" not in font
    svg = svg_plot(PlotData(raw=(np.array([0, 3_600_000_000]), np.array([1.0, 2.0]))), title=KOREAN)
    assert f"font-family=\"&#x27;{HANGUL_FONT}&#x27;" in svg


class _Server:
    """The dashboard of ``project`` on a free port in a thread (uvicorn)."""

    def __init__(self, project):
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(dashboard_app(project), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.mark.services
def test_hangul_renders_in_chromium_without_system_cjk_fonts(project, tmp_path, monkeypatch):
    """Three renderings of the series page of "광 주 A|C02", by Chromium seeing no system CJK font:
    A as served; B with the served font cut to ASCII (the same Latin glyphs, Hangul missing); C with the
    font route failing (everything in the fallback font, Hangul missing). A differs from B only where
    Hangul is drawn from the bundled font, and from C only if the font loaded at all."""
    from tsops.analysis import plotting
    from tsops.serving import dashboard
    from tsops.testing import browser

    need("Chromium", browser.chromium_available(), f"no {browser.CHROMIUM}: run scripts/install-chromium.sh "
         "(or set TSOPS_CHROMIUM)")
    conf = browser.isolated_fontconfig(tmp_path / "fc")
    assert browser.hangul_system_fonts(conf) == []  # the browser can only get Hangul from the page
    ascii_font = plotting._subset_font(frozenset())
    shots = {}
    with _Server(project) as base:
        url = base + series_url("/dashboard", "sensors", KOREAN)
        for name, font in (("A", plotting.web_font()), ("B", ascii_font), ("C", b"not a font")):
            monkeypatch.setattr(dashboard, "web_font", lambda font=font: font)
            shots[name] = browser.screenshot(url, tmp_path / f"{name}.png", conf, tmp_path / f"profile-{name}")
    a_b = browser.ink_difference(shots["A"], shots["B"])
    a_c = browser.ink_difference(shots["A"], shots["C"])
    b_c = browser.ink_difference(shots["B"], shots["C"])
    assert a_b > 150, f"Hangul drawn like boxes ({a_b} pixels differ from the box rendering)"
    assert a_c > 150 and b_c > 150, (a_c, b_c)  # the served font was used at all
    keep = os.environ.get("TSOPS_DASHBOARD_SCREENSHOT")
    if keep:
        shutil.copy(shots["A"], keep)
