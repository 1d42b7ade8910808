"""The series profile: one owner of period, phase and seasons, with whole-history figures."""

from tsops.analysis.seasonality import Season
from tsops.datamodel import SeriesProfile
from tsops.quality.profile import build_profile, needs_season_check


def test_build_profile_from_doc_history_and_seasons():
    doc = {"period_seconds": 600.0, "phase_seconds": 82.0, "period_confidence": 0.97,
           "imputation": {"method": "linear"}, "events": [{"class": "episode", "start": "a"}, {"class": "spike"}]}
    hist = {"n_raw": 980, "n_rows": 1000, "n_missing": 40, "n_imputed": 40, "n_anomalies": 12,
            "first_ts": "2024-01-01T00:00:00+00:00", "last_ts": "2024-01-07T22:30:00+00:00"}
    p = build_profile("s", doc, hist, [Season("daily", 144, 0.9)], unit="ppm")
    assert p.season_length == 144 and p.season_names == ("daily",) and p.period_seconds == 600.0
    assert p.missing_ratio == 0.04 and p.anomaly_ratio == 12 / 960 and p.unit == "ppm"
    assert p.imputation_method == "linear" and p.extra["season_checked_rows"] == 1000
    back = SeriesProfile.from_dict(p.to_dict())
    assert back == p
    # seasons not re-checked: kept; events accumulate without repeats
    assert p.events == ({"class": "episode", "start": "a"},)  # faults are counted, not listed
    q = build_profile("s", {**doc, "events": [{"class": "episode", "start": "a"},
                                              {"class": "level_shift", "start": "b"}]},
                      {**hist, "n_rows": 1100}, None, previous=p)
    assert q.season_lengths == (144,) and len(q.events) == 2 and q.unit == "ppm"


def test_no_season_means_none_not_a_default():
    p = build_profile("s", {"period_seconds": 604800.0}, {"n_rows": 52}, [])
    assert p.season_length is None and p.season_or(1) == 1


def test_seasons_are_rechecked_when_history_grows():
    assert needs_season_check(None, 10)
    p = build_profile("s", {}, {"n_rows": 1000}, [])
    assert not needs_season_check(p, 1100) and needs_season_check(p, 1300)


def test_profile_from_dict_keeps_unknown_keys_in_extra():
    p = SeriesProfile.from_dict({"series_id": "x", "season_lengths": [24, 168], "future_field": 1})
    assert p.season_lengths == (24, 168) and p.extra["future_field"] == 1
