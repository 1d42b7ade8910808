"""Anomalies: events vs faults (issue 12). Faults (spike, implausible, stuck) are replaced by default; real events
(episode, level shift) are flagged, reported and kept."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tsops.quality import CleaningConfig, apply_treatment, clean_frame, clean_many, clean_series
from tsops.quality import kernels as K
from tsops.quality.anomaly import CLASS_NAMES, anomaly_events, class_names, fault_mask

N = 24 * 30


def hourly(v: np.ndarray, sid: str = "s") -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=len(v), freq="h", tz="UTC")
    return pd.DataFrame({"series_id": sid, "ts": ts, "value": v})


def base(seed: int = 0, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = np.arange(n)
    return 50 + 10 * np.sin(2 * np.pi * h / 24) + rng.normal(0, 1.0, n)


def cfg(**kw) -> CleaningConfig:
    return CleaningConfig(season_lengths=(24,), now="2030-01-01", **kw)


def test_new_defaults():
    c = CleaningConfig()
    assert c.treatment == "faults" and c.fault_treatment == "interpolate"
    assert c.anomaly_methods == ("decomposition", "bounds", "stuck") and c.season_lengths == ()
    stats = K.STAT_FIELDS
    assert stats[-6:] == ("n_spike", "n_implausible", "n_stuck", "n_episode", "n_level_shift", "n_treated")


def test_spikes_caught_and_replaced():
    truth = base()
    v = truth.copy()
    spikes = {100: 40.0, 250: -35.0, 251: -35.0, 500: 60.0}
    for i, d in spikes.items():
        v[i] += d
    out, doc = clean_series(hourly(v), cfg())
    idx = sorted(spikes)
    assert (out.loc[idx, "anomaly_class"] == "spike").all(), out.loc[idx, ["raw_value", "anomaly_class"]]
    assert (out.loc[idx, "treatment"] == "interpolate").all()
    np.testing.assert_array_equal(out.loc[idx, "raw_value"], v[idx])
    assert np.abs(out.loc[idx, "value"] - truth[idx]).max() < 5.0
    # nothing else is replaced on this clean seasonal series
    changed = np.flatnonzero(out["value"].to_numpy() != v)
    assert changed.tolist() == idx
    assert doc["anomaly_classes"]["spike"] == 4 and doc["n_treated"] == 4
    assert [e["class"] for e in doc["events"]] == ["spike", "spike", "spike"]
    assert doc["events"][1]["n_points"] == 2 and doc["events"][1]["magnitude"] < -20


def test_six_hour_episode_is_kept():
    truth = base(1)
    v = truth.copy()
    tri = np.array([15.0, 45, 75, 75, 45, 15])
    v[300:306] += tri
    out, doc = clean_series(hourly(v), cfg())
    ep = out.iloc[300:306]
    assert (ep["anomaly_class"] == "episode").all(), ep[["raw_value", "anomaly_class"]]
    np.testing.assert_array_equal(ep["value"], v[300:306])
    np.testing.assert_array_equal(ep["raw_value"], v[300:306])
    assert (ep["treatment"] == "").all() and ep["is_anomaly"].all()
    events = [e for e in doc["events"] if e["class"] == "episode"]
    assert len(events) == 1 and events[0]["n_points"] == 6 and events[0]["n_treated"] == 0
    assert events[0]["start"] == "2024-01-13T12:00:00+00:00" and events[0]["peak"] == pytest.approx(v[302:304].max())
    assert (out["value"].to_numpy() == v).all()  # nothing replaced anywhere


def test_level_shift_is_reported_not_smoothed():
    v = base(2)
    v[400:] += 30.0
    out, doc = clean_series(hourly(v), cfg())
    np.testing.assert_array_equal(out["value"].to_numpy(), v)
    shifts = [e for e in doc["events"] if e["class"] == "level_shift"]
    assert len(shifts) == 1, doc["events"]
    assert shifts[0]["peak_ts"] == "2024-01-17T16:00:00+00:00" and 25 < shifts[0]["magnitude"] < 35
    assert shifts[0]["start"] <= shifts[0]["peak_ts"] <= shifts[0]["end"]
    assert out["anomaly_class"].iloc[400] == "level_shift"
    assert not (out["anomaly_class"] == "spike").any()


def test_implausible_negatives_with_bounds_are_replaced():
    truth = base(3)
    v = truth.copy()
    v[[50, 51, 400]] = [-3.0, -1.0, -7.0]
    out, doc = clean_series(hourly(v), cfg(bounds=(0.0, None)))
    assert (out.loc[[50, 51, 400], "anomaly_class"] == "implausible").all()
    assert (out.loc[[50, 51, 400], "anomaly_method"] == "bounds").all()
    assert (out["value"] >= 0).all() and np.abs(out.loc[[50, 51, 400], "value"] - truth[[50, 51, 400]]).max() < 5
    assert doc["anomaly_classes"]["implausible"] == 3 and doc["bounds"] == [0.0, None]
    # without bounds, a small negative dip inside the normal range is not implausible
    out2, _ = clean_series(hourly(v), cfg())
    assert not (out2["anomaly_class"] == "implausible").any()


def test_stuck_run_flagged_and_replaced():
    truth = base(4)
    v = truth.copy()
    v[200:240] = v[199]
    out, doc = clean_series(hourly(v), cfg())
    assert (out["anomaly_class"].iloc[199:240] == "stuck").all()
    assert (out["anomaly_method"].iloc[199:240] == "stuck").all()
    assert doc["anomaly_classes"]["stuck"] == 41 and (out["treatment"].iloc[199:240] == "interpolate").all()
    # shorter than one season: not stuck
    w = truth.copy()
    w[200:210] = w[199]
    out2, _ = clean_series(hourly(w), cfg())
    assert not (out2["anomaly_class"] == "stuck").any()
    off, _ = clean_series(hourly(v), cfg(stuck_min_run=-1))
    assert not (off["anomaly_class"] == "stuck").any()


def test_old_treatment_still_replaces_everything_flagged():
    v = base(1)
    v[300:306] += np.array([15.0, 45, 75, 75, 45, 15])
    v[100] += 40
    out, doc = clean_series(hourly(v), cfg(treatment="interpolate"))
    assert (out["treatment"].iloc[300:306] == "interpolate").all()
    assert (out["value"].iloc[300:306] < 80).all()  # the episode is flattened, as before
    assert out["anomaly_class"].iloc[300] == "episode" and out["anomaly_class"].iloc[100] == "spike"
    none, _ = clean_series(hourly(v), cfg(treatment="none"))
    np.testing.assert_array_equal(none["value"].to_numpy(), v)
    assert (none["treatment"] == "").all() and none["is_anomaly"].iloc[100]
    old, _ = clean_series(hourly(v), cfg(anomaly_methods=("iqr", "iqr_diff"), treatment="interpolate"))
    assert old["is_anomaly"].iloc[100] and old["anomaly_method"].iloc[100] == "iqr_diff"
    assert old["anomaly_class"].iloc[100] == "spike"


def test_faults_treatment_with_old_rules():
    v = base(5)
    v[100] += 80
    out, _ = clean_series(hourly(v), cfg(anomaly_methods=("iqr", "iqr_diff")))
    assert out["anomaly_class"].iloc[100] == "spike" and out["treatment"].iloc[100] == "interpolate"


def test_batched_path_equals_per_series_path():
    series = {"a": base(10), "b": base(11, n=24 * 20), "c": base(12) * 0.1}
    series["a"][[30, 300]] += [40.0, -50.0]
    series["b"][200:206] += np.array([15.0, 45, 75, 75, 45, 15])
    series["c"][100:150] = series["c"][99]
    series["c"][400:] += 5.0
    seasons = {"a": (24,), "b": (24, 168), "c": ()}
    frames = [hourly(v, sid) for sid, v in series.items()]
    ts = np.concatenate([f["ts"].to_numpy("datetime64[us]").view(np.int64) for f in frames])
    vals = np.concatenate([f["value"].to_numpy() for f in frames])
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in frames])])
    base_cfg = CleaningConfig(now="2030-01-01", bounds=(0.0, None))
    batch = clean_many(ts, vals, offsets, base_cfg, season_lengths=list(seasons.values()))
    many = batch.to_frame(list(series), treatment="interpolate")
    for s, (sid, f) in enumerate(zip(series, frames, strict=True)):
        one, doc = clean_series(f, CleaningConfig(now="2030-01-01", bounds=(0.0, None), season_lengths=seasons[sid]))
        part = many[many["series_id"] == sid].reset_index(drop=True)
        for col in ("value", "is_anomaly", "anomaly_method", "anomaly_class", "treatment"):
            np.testing.assert_array_equal(one[col].to_numpy(), part[col].to_numpy(), err_msg=f"{sid} {col}")
        for name in CLASS_NAMES[1:]:
            assert batch.stats[f"n_{name}"].iloc[s] == doc["anomaly_classes"][name]
    assert set(many["anomaly_class"]) >= {"spike", "episode", "stuck", "level_shift"}
    # clean_frame (the CLI's path) agrees with clean_series too
    df = pd.concat([frames[0], frames[1]], ignore_index=True)
    c = CleaningConfig(now="2030-01-01", season_lengths=(24,))
    out, docs = clean_frame(df, c)
    for sid, f in (("a", frames[0]), ("b", frames[1])):
        one, doc = clean_series(f, c)
        part = out[out["series_id"] == sid].reset_index(drop=True)
        for col in ("value", "anomaly_class", "treatment"):
            np.testing.assert_array_equal(one[col].to_numpy(), part[col].to_numpy())
        assert [d for d in docs if d["series_id"] == sid][0]["events"] == doc["events"]


def test_quality_document_is_json_and_counts_agree():
    v = base(6)
    v[[100, 300]] += [50.0, -60.0]
    v[500:506] += np.array([15.0, 45, 75, 75, 45, 15])
    out, doc = clean_series(hourly(v), cfg())
    again = json.loads(json.dumps(doc))
    assert again["n_events"] == len(again["events"]) == 3
    assert sum(doc["anomaly_classes"].values()) == doc["n_anomalies"] == int(out["is_anomaly"].sum())
    assert doc["n_treated"] == int((out["treatment"] != "").sum()) == 2
    assert doc["season_lengths"] == [24]


def test_beijing_episodes_survive(beijing):
    """Real data: no PM2.5 reading above 300 ug/m3 in a run of >= 3 hours is replaced by the default."""
    out, doc = clean_series(beijing, CleaningConfig(season_lengths=(24,), bounds=(0.0, None)))
    raw = out["raw_value"].to_numpy()
    hi = raw > 300
    run = np.cumsum(np.r_[True, hi[1:] != hi[:-1]])
    length = pd.Series(run).map(pd.Series(run).value_counts()).to_numpy()
    episode = hi & (length >= 3)
    assert episode.sum() > 20
    assert (out["treatment"][episode] == "").all()
    np.testing.assert_array_equal(out["value"][episode], raw[episode])
    assert doc["anomaly_classes"]["episode"] > 0 and doc["n_treated"] < 0.01 * len(out)


def test_config_errors():
    with pytest.raises(ValueError, match="season_lengths"):
        CleaningConfig(season_lengths=(1,))
    with pytest.raises(ValueError, match="season_lengths"):
        CleaningConfig(season_lengths=("daily",))
    with pytest.raises(ValueError, match="bounds"):
        CleaningConfig(bounds=(10.0, 0.0))
    with pytest.raises(ValueError, match="bounds"):
        CleaningConfig(bounds=(0.0,))
    with pytest.raises(ValueError, match="fault_treatment"):
        CleaningConfig(fault_treatment="faults")
    with pytest.raises(ValueError, match="treatment"):
        CleaningConfig(treatment="smooth")
    with pytest.raises(ValueError, match="stuck_min_run"):
        CleaningConfig(stuck_min_run=-2)
    with pytest.raises(ValueError, match="level_window"):
        CleaningConfig(level_window=1)
    with pytest.raises(ValueError, match="season_lengths has 1 entries for 2 series"):
        clean_many(np.zeros(2, np.int64), np.zeros(2), np.array([0, 1, 2]), season_lengths=[(24,)])
    c = CleaningConfig(season_lengths=[24, 168], bounds=[0, 500])
    assert CleaningConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_apply_treatment_faults_and_events_helper():
    t = np.arange(6, dtype=np.int64) * 3_600_000_000
    v = np.array([1.0, 9.0, 1.0, 5.0, 5.0, 1.0])
    cls = np.array([0, K.CLS_SPIKE, 0, K.CLS_EPISODE, K.CLS_EPISODE, 0], np.uint8)
    out = apply_treatment(t, v, cls != 0, "faults", classes=cls)
    np.testing.assert_array_equal(out, [1.0, 1.0, 1.0, 5.0, 5.0, 1.0])
    with pytest.raises(ValueError, match="classes"):
        apply_treatment(t, v, cls != 0, "faults")
    assert class_names(cls).tolist() == ["", "spike", "", "episode", "episode", ""]
    assert fault_mask(cls).tolist() == [False, True, False, False, False, False]
    ev = anomaly_events(t, v, cls, np.array([np.nan, 8.0, np.nan, 4.0, 3.0, np.nan]), fault_mask(cls))
    assert [(e["class"], e["n_points"], e["n_treated"], e["peak"]) for e in ev] == [
        ("spike", 1, 1, 9.0), ("episode", 2, 0, 5.0)]


def test_robust_decomposition_with_given_seasons():
    from tsops.analysis.decompose import robust_decompose_seasons

    rng = np.random.default_rng(7)
    h = np.arange(24 * 7 * 6)
    day = 5 * np.sin(2 * np.pi * h / 24)
    week = 3 * (h % 168 >= 120)
    v = 20 + 0.01 * h + day + week + rng.normal(0, 0.3, h.size)
    v[[100, 500]] += 40.0
    v[300:306] += np.array([5.0, 15, 25, 25, 15, 5])
    dec = robust_decompose_seasons(v, (24, 168))
    clean = np.ones(h.size, bool)
    clean[[100, 500]] = False
    clean[300:306] = False
    fit = (dec["trend"] + dec["seasonal"]).to_numpy()
    assert np.abs(fit - (20 + 0.01 * h + day + week))[clean].max() < 1.5
    one_day = dec["seasonal"].to_numpy()[24 * 8:24 * 9]  # a weekday
    assert 9 < one_day.max() - one_day.min() < 11  # the daily cycle is in the seasonal part
    assert abs(dec["resid"].iloc[100] - 40) < 3 and dec["resid"].iloc[302] > 20  # not absorbed
    assert np.median(np.abs(dec["resid"].to_numpy()[clean])) < 0.4
    with pytest.raises(ValueError, match="season_lengths"):
        robust_decompose_seasons(v, (1,))
