"""Dataset analysis into the catalog, and the HTML report."""

import re

import numpy as np
import pandas as pd

from tsops.analysis import report as R
from tsops.analysis.dataset import analyze_dataset, analyze_frame
from tsops.analysis.report import build_report
from tsops.datamodel import SeriesProfile
from tsops.quality.process import process_dataset

PERIODS = {"C02": 600.0, "TEMP": 60.0, "HUMI": 30.0}  # the simulator's sampling periods by kind


def write_profiles(project, dataset="sensors"):
    """Daily-season profiles, as the quality stage stores them (this test does not depend on it)."""
    cat = project.catalog()
    docs = []
    for s in cat.list_series(dataset):
        period = PERIODS[s["series_id"].rsplit("|", 1)[-1]]
        prof = SeriesProfile(s["series_id"], period_seconds=period, season_lengths=(int(86400 / period),),
                             season_names=("daily",))
        docs.append({"series_id": s["series_id"], "profile": prof.to_dict()})
    cat.upsert_series(dataset, docs)


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


def test_analyze_frame_uses_the_seasons_it_is_given():
    t = pd.date_range("2026-01-01", periods=24 * 20, freq="h", tz="UTC")
    v = 10 + 3 * np.sin(2 * np.pi * np.arange(len(t)) / 24) + 0.1 * np.random.default_rng(1).standard_normal(len(t))
    df = pd.DataFrame({"series_id": "a", "ts": t, "value": v})
    with_season, _ = analyze_frame(df, seasons={"a": 24})
    without, _ = analyze_frame(df)
    assert with_season["a"]["season"] == 24 and with_season["a"]["seasonal_strength"] > 0.9
    assert without["a"]["season"] is None and without["a"]["seasonal_strength"] == 0.0


def test_analyze_and_report(sensor_project, monkeypatch):
    process_dataset(sensor_project, "sensors")
    write_profiles(sensor_project)
    rep = analyze_dataset(sensor_project, "sensors")
    assert rep.series == 6 and rep.pairs == 15
    doc = sensor_project.catalog().get_dataset("sensors")["doc"]["analysis"]
    assert len(doc["pearson"]) == 6
    series_doc = sensor_project.catalog().get_series("sensors", "광주 A|C02")
    assert series_doc["stats"]["season"] == 144  # the profile's daily season, 10-minute samples
    # the analysis keeps its statistics apart: the series profile is untouched
    assert sensor_project.catalog().get_profile("sensors", "광주 A|C02").season_lengths == (144,)
    seen = {}
    figure = R._series_figure
    monkeypatch.setattr(R, "_series_figure", lambda sid, r, c, seasons, names=(): seen.setdefault(
        sid, seasons) and figure(sid, r, c, seasons, names))
    path = build_report(sensor_project, "sensors", max_series=2)
    assert seen == {"광주 A|C02": (144,), "광주 A|HUMI": (2880,)}
    html = path.read_text()
    assert "Quality per series" in html and "광주 A|C02" in html and "Correlation across series" in html
    assert len(re.findall(r"data:image/png;base64,", html)) >= 4  # periods, heat map, 2 series
    # periods as a person reads them: the temperature sensors' minute, the humidity's 30 s, the CO2's ~600 s
    assert "<td>1 min</td>" in html and "<td>30 s</td>" in html and re.search(r"<td>(599|600)\.\d s</td>", html)
    assert not re.search(r"<td>00:\d\d:\d\d", html) and "0 days" not in html
