"""The bundled Hangul font in matplotlib and in the report, human durations, and the report's Hangul in
headless Chromium on a font configuration without CJK fonts (nothing installed by the test)."""

from __future__ import annotations

import base64
import re
import warnings
from pathlib import Path

import pytest

from tsops.analysis.plotting import (
    HANGUL_FONT,
    _subset_font,
    font_face_css,
    format_duration,
    hangul_font_path,
    setup_matplotlib,
)
from tsops.testing.services import need

KOREAN = "광주 A|C02"


def test_format_duration_reads_like_a_person_writes():
    assert format_duration(600) == "10 min" and format_duration(597.1) == "597.1 s"
    assert format_duration(3600) == "1 h" and format_duration(86400 * 2) == "2 d" and format_duration(30) == "30 s"
    assert format_duration(5400) == "90 min" and format_duration(0.25) == "250 ms"
    assert format_duration(None) == "–" and format_duration(float("nan")) == "–" and format_duration(0) == "–"
    assert format_duration(4000) == "1.11 h"


def test_matplotlib_draws_hangul_with_the_bundled_font(tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    path = setup_matplotlib()
    assert Path(path) == hangul_font_path() and path.endswith("NanumGothic.ttf")
    fig, ax = plt.subplots()
    title = ax.set_title(KOREAN)
    ax.plot([-1, 1])  # a negative tick label: U+2212 comes from the DejaVu fallback, no warning either
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" would raise here
        fig.savefig(tmp_path / "t.png")
        fig.savefig(tmp_path / "t.svg")
    assert font_manager.findfont(title.get_fontproperties()) == path
    plt.close(fig)


def test_inlined_report_font_is_a_small_subset_with_the_text():
    from io import BytesIO

    from fontTools.ttLib import TTFont

    css = font_face_css(text=KOREAN + " 서울 1층")
    assert css.startswith(f"@font-face{{font-family:'{HANGUL_FONT}';src:url(data:font/ttf;base64,")
    data = base64.b64decode(re.search(r"base64,([^)]+)\)", css).group(1))
    cmap = TTFont(BytesIO(data)).getBestCmap()
    assert all(ord(c) in cmap for c in "광주서울층A|C0") and ord("한") not in cmap
    assert len(data) < 100_000 < hangul_font_path().stat().st_size
    assert ord("광") not in TTFont(BytesIO(_subset_font(frozenset()))).getBestCmap()


@pytest.mark.services
def test_report_renders_hangul_in_chromium_without_system_cjk_fonts(sensor_project, tmp_path):
    """The report of the demo-like sensors (ids "광주 A|C02" ...): its HTML text in Chromium seeing no CJK
    font, against the same page with the inlined font cut to ASCII (Hangul missing) and without any
    @font-face (all in the fallback font); its plots are PNGs drawn by matplotlib with NanumGothic."""
    from tsops.analysis.report import build_report
    from tsops.quality.process import process_dataset
    from tsops.testing import browser

    need("Chromium", browser.chromium_available(), f"no {browser.CHROMIUM}: run scripts/install-chromium.sh "
         "(or set TSOPS_CHROMIUM)")
    process_dataset(sensor_project, "sensors")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Glyph .* missing")
        path = build_report(sensor_project, "sensors", tmp_path / "report.html", max_series=2)
    page = path.read_text(encoding="utf-8")
    rule = re.search(r"@font-face\{[^}]*\}", page).group(0)
    variants = {"A": page, "B": page.replace(rule, font_face_css(text="")), "C": page.replace(rule, "")}
    conf = browser.isolated_fontconfig(tmp_path / "fc")
    assert browser.hangul_system_fonts(conf) == []
    shots = {}
    for name, html in variants.items():
        f = tmp_path / f"report-{name}.html"
        f.write_text(html, encoding="utf-8")
        shots[name] = browser.screenshot(f.as_uri(), tmp_path / f"report-{name}.png", conf,
                                         tmp_path / f"profile-{name}", size=(1200, 1400))
    a_b = browser.ink_difference(shots["A"], shots["B"])
    a_c = browser.ink_difference(shots["A"], shots["C"])
    assert a_b > 300, f"the report's Hangul looks like the rendering without it ({a_b} pixels differ)"
    assert a_c > 300, a_c


def test_report_decomposition_is_drawn_against_time():
    import numpy as np
    import pandas as pd

    from tsops.analysis.report import _block_times, _series_figure, _when

    ts = pd.date_range("2026-01-01", periods=500, freq="10min", tz="UTC")
    frame = pd.DataFrame({"ts": ts, "value": np.sin(np.arange(500) / 20)})
    t = _block_times(frame, 500, 1)
    assert t[0] == np.datetime64(ts[0].tz_localize(None)) and len(t) == 500
    blocks = _block_times(frame, 500, 3)  # averaged in blocks of 3, aligned to the end
    assert len(blocks) == 166 and blocks[-1] == np.datetime64(ts[-3].tz_localize(None))
    png = _series_figure(KOREAN, frame.iloc[:0], frame.assign(series_id=KOREAN), (144,), ("daily",))
    assert png.startswith("data:image/png;base64,")
    assert _when("2026-12-02T18:00:56.047000Z") == "2026-12-02 18:00:56" and _when(None) == "–"
