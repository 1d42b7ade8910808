"""Dataset analysis into the catalog, and the HTML report."""

import re

import numpy as np
import pandas as pd

from tsops.analysis.dataset import analyze_dataset, analyze_frame
from tsops.analysis.report import build_report
from tsops.quality.process import process_dataset


def test_analyze_frame_finds_the_leader():
    t = pd.date_range("2026-01-01", periods=600, freq="10min", tz="UTC")
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(600) / 20) + 0.05 * rng.standard_normal(600)
    y = np.roll(x, 3)  # y follows x by 3 steps
    df = pd.concat([pd.DataFrame({"series_id": "x", "ts": t, "value": x}),
                    pd.DataFrame({"series_id": "y", "ts": t + pd.Timedelta("2min"), "value": y})])
    profiles, cross = analyze_frame(df, {"x": 600.0, "y": 600.0})
    assert set(profiles) == {"x", "y"} and profiles["x"]["describe"]["count"] == 600
    top = cross["best_lags"][0]
    assert (top["leader"], top["follower"], top["lag"]) == ("x", "y", 3) and top["corr"] > 0.95
    assert cross["pearson"]["x"]["x"] == 1.0


def test_analyze_and_report(sensor_project):
    process_dataset(sensor_project, "sensors")
    rep = analyze_dataset(sensor_project, "sensors")
    assert rep.series == 6 and rep.pairs == 15
    doc = sensor_project.catalog().get_dataset("sensors")["doc"]["analysis"]
    assert len(doc["pearson"]) == 6
    assert "profile" in sensor_project.catalog().get_series("sensors", "광주 A|C02")
    path = build_report(sensor_project, "sensors", max_series=2)
    html = path.read_text()
    assert "Quality per series" in html and "광주 A|C02" in html and "Correlation across series" in html
    assert len(re.findall(r"data:image/png;base64,", html)) >= 4  # periods, heat map, 2 series
    # periods as a person reads them: the temperature sensors' minute, the humidity's 30 s, the CO2's ~600 s
    assert "<td>1 min</td>" in html and "<td>30 s</td>" in html and re.search(r"<td>(599|600)\.\d s</td>", html)
    assert not re.search(r"<td>00:\d\d:\d\d", html) and "0 days" not in html
