from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tsops.quality import OUTPUT_COLUMNS, CleaningConfig, clean_many, clean_series
from tsops.quality.kernels import NAT


def frame(ts, values, sid="s1", **attrs):
    return pd.DataFrame({"series_id": sid, "ts": pd.to_datetime(ts, utc=True), "value": values, **attrs})


def test_missing_rows_inserted_on_the_series_phase():
    df = frame(["2024-01-01 00:05:49", "2024-01-01 00:15:49", "2024-01-01 00:45:49"], [1.0, 2.0, 5.0])
    out, doc = clean_series(df, CleaningConfig(anomaly_methods=()))
    assert list(out.columns[: len(OUTPUT_COLUMNS)]) == list(OUTPUT_COLUMNS)
    assert out["ts"].dt.strftime("%H:%M:%S").tolist() == ["00:05:49", "00:15:49", "00:25:49", "00:35:49",
                                                          "00:45:49"]
    assert out["is_missing"].tolist() == [False, False, True, True, False]
    assert out["is_imputed"].tolist() == [False, False, True, True, False]
    np.testing.assert_allclose(out["value"], [1, 2, 3, 4, 5])
    assert np.isnan(out["raw_value"].iloc[2]) and out["raw_value"].iloc[4] == 5.0
    assert str(out["ts"].dtype) == "datetime64[us, UTC]"
    assert doc["period_seconds"] == 600 and doc["phase_seconds"] == 349
    assert doc["n_missing_inserted"] == 2 and doc["missing_ratio"] == pytest.approx(0.4)


def test_full_chain_on_known_truth(make_synth):
    n = 1008
    missing = list(range(100, 110)) + [300, 500, 501]
    df = make_synth(n=n, jitter=0.02, missing=missing, seed=4)
    truth = make_synth(n=n, jitter=0.0, seed=4).set_index(np.arange(n))  # same noise only when no rows removed
    spikes = [50, 250, 700]
    pos = {k: i for i, k in enumerate(np.setdiff1d(np.arange(n), missing))}
    df.loc[[pos[k] for k in spikes], "value"] += 40.0
    df.loc[pos[800], "value"] = np.nan  # a NaN reading
    dup_exact = df.iloc[[10, 11]]
    dup_conflict = df.iloc[[20]].assign(value=99.0)
    bad = pd.DataFrame({"series_id": "s1", "ts": [pd.NaT, pd.Timestamp("2100-01-01", tz="UTC")],
                        "value": [1.0, 2.0], "unit": "C"})
    raw = pd.concat([df, dup_exact, dup_conflict, bad], ignore_index=True)
    raw = raw.sample(frac=1.0, random_state=1).reset_index(drop=True)  # out of order
    out, doc = clean_series(raw, CleaningConfig(treatment="interpolate", now="2030-01-01"))
    json.dumps(doc)
    assert len(out) == n
    assert doc["period_seconds"] == 600 and doc["period_confidence"] > 0.8
    assert doc["dropped"] == {"nat": 1, "future": 1}
    assert doc["duplicates"]["exact"] == 2 and doc["duplicates"]["conflicting"] == 1
    assert doc["n_missing_inserted"] == len(missing) and doc["n_nan_readings"] == 1
    assert np.flatnonzero(out["is_missing"]).tolist() == missing
    assert out["is_imputed"].sum() == len(missing) + 1
    assert np.flatnonzero(out["is_anomaly"]).tolist() == spikes
    assert doc["n_anomalies"] == 3
    assert (out.loc[spikes, "raw_value"] > 50).all()
    assert np.abs(out.loc[spikes, "value"].to_numpy() - truth.loc[spikes, "value"].to_numpy()).max() < 2.0
    assert set(out.loc[spikes, "treatment"]) == {"interpolate"}
    assert out["is_dup_conflict"].sum() == 1
    assert (out["unit"] == "C").all()
    assert out["ts"].is_monotonic_increasing
    codes = {i["code"] for i in doc["validation"]}
    assert {"ts_null", "ts_future", "ts_out_of_order"} <= codes


@pytest.mark.parametrize("policy,expected", [("last", 3.0), ("first", 1.0), ("mean", 2.0)])
def test_dedup_policies(policy, expected):
    ts = ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 01:00", "2024-01-01 02:00", "2024-01-01 03:00"]
    out, doc = clean_series(frame(ts, [0.0, 1.0, 3.0, 5.0, 6.0]),
                            CleaningConfig(dedup=policy, anomaly_methods=()))
    assert len(out) == 4 and out["value"].iloc[1] == expected
    assert out["is_dup_conflict"].tolist() == [False, True, False, False]
    assert doc["duplicates"]["conflicting"] == 1


def test_dedup_flag_policy_imputes_the_conflict():
    ts = ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 01:00", "2024-01-01 02:00", "2024-01-01 03:00"]
    out, _ = clean_series(frame(ts, [0.0, 1.0, 3.0, 4.0, 6.0]), CleaningConfig(dedup="flag", anomaly_methods=()))
    assert out["is_imputed"].iloc[1] and out["value"].iloc[1] == 2.0 and out["raw_value"].iloc[1] == 3.0


def test_long_gaps_beyond_max_fill_are_left_open():
    ts = pd.date_range("2024-01-01", periods=50, freq="h", tz="UTC").append(
        pd.date_range("2024-02-01", periods=50, freq="h", tz="UTC"))
    out, doc = clean_series(frame(ts, np.arange(100.0)), CleaningConfig(max_fill=24, anomaly_methods=()))
    assert len(out) == 100 and doc["n_gaps_unfilled"] == 1


@pytest.mark.parametrize("treatment", ["none", "drop", "clip", "ema", "interpolate"])
def test_treatments(treatment):
    v = np.tile([10.0, 11.0, 12.0, 11.0], 25)
    v[41] = 100.0
    ts = pd.date_range("2024-01-01", periods=100, freq="min", tz="UTC")
    out, doc = clean_series(frame(ts, v), CleaningConfig(anomaly_methods=("iqr",), treatment=treatment))
    assert out["is_anomaly"].sum() == 1 and out["anomaly_method"].iloc[41] == "iqr"
    got = out["value"].iloc[41]
    lo, hi = doc["iqr_fences"]
    expected = {"none": 100.0, "clip": hi, "interpolate": 11.0}
    if treatment == "drop":
        assert np.isnan(got)
    elif treatment == "ema":
        assert 10.0 <= got <= 12.0
    else:
        assert got == pytest.approx(expected[treatment])
    assert out["raw_value"].iloc[41] == 100.0


def test_residual_anomaly_inside_the_value_range(make_synth):
    df = make_synth(n=144 * 6, period_s=600, seed=2)
    i = 144 * 3 + 36  # sine peak (~25): set it to the trough level, within the value range
    df.loc[i, "value"] = 15.0
    out, doc = clean_series(df, CleaningConfig(anomaly_methods=("residual",), treatment="interpolate"),
                            season_lengths=(144,))
    assert doc["season_length"] == 144
    assert out["is_anomaly"].iloc[i] and out["anomaly_method"].iloc[i] == "residual"
    assert out["is_anomaly"].sum() <= 3
    assert abs(out["value"].iloc[i] - 25.0) < 1.5
    iqr_only, _ = clean_series(df, CleaningConfig(anomaly_methods=("iqr",)))
    assert not iqr_only["is_anomaly"].iloc[i]


def test_auto_imputation_records_scores(make_synth):
    missing = list(range(200, 260))
    df = make_synth(n=144 * 5, period_s=600, missing=missing, seed=5)
    out, doc = clean_series(df, CleaningConfig(impute="auto", anomaly_methods=()))
    imp = doc["imputation"]
    assert imp["method"] in imp["scores"] and imp["rmse"] == min(s["rmse"] for s in imp["scores"].values())
    assert out["is_imputed"].sum() == len(missing)


def test_clean_many_matches_clean_series(make_synth):
    frames = [make_synth(n=300 + 50 * i, jitter=0.02, missing=[7, 8, 9, 100 + i], seed=i, series_id=f"s{i}")
              for i in range(4)]
    cfg = CleaningConfig()
    ts = np.concatenate([f["ts"].to_numpy("datetime64[us]").view(np.int64) for f in frames])
    vals = np.concatenate([f["value"].to_numpy() for f in frames])
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in frames])])
    batch = clean_many(ts, vals, offsets, cfg)
    many = batch.to_frame([f"s{i}" for i in range(4)])
    for i, f in enumerate(frames):
        one, doc = clean_series(f, cfg)
        part = many[many["series_id"] == f"s{i}"].reset_index(drop=True)
        pd.testing.assert_series_equal(one["ts"], part["ts"])
        np.testing.assert_array_equal(one["value"].to_numpy(), part["value"].to_numpy())
        np.testing.assert_array_equal(one["is_anomaly"].to_numpy(), part["is_anomaly"].to_numpy())
        assert batch.stats["period_us"].iloc[i] == doc["period_seconds"] * 1e6


def test_clean_many_rejects_bad_offsets():
    with pytest.raises(ValueError, match="offsets"):
        clean_many(np.zeros(3, np.int64), np.zeros(3), np.array([0, 2]))
    empty = clean_many(np.array([NAT], np.int64), np.array([1.0]), np.array([0, 1]))
    assert empty.stats["n_nat"].iloc[0] == 1 and empty.offsets[-1] == 0


def test_real_series_beijing(beijing):
    out, doc = clean_series(beijing, CleaningConfig())
    assert doc["period_seconds"] == 3600 and doc["phase_seconds"] == 0
    assert doc["period_confidence"] > 0.95 and len(out) == len(beijing)
    # remove 10% of rows and jitter the rest by up to 2 min: the grid is recovered
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(len(beijing), int(0.9 * len(beijing)), replace=False))
    keep = np.union1d(keep, [0, len(beijing) - 1])
    holey = beijing.iloc[keep].copy()
    holey["ts"] = holey["ts"] + pd.to_timedelta(rng.integers(-120, 120, len(holey)), unit="s")
    out2, doc2 = clean_series(holey, CleaningConfig())
    assert doc2["period_seconds"] == 3600 and len(out2) == len(beijing)
    assert np.flatnonzero(out2["is_missing"]).tolist() == np.setdiff1d(np.arange(len(beijing)), keep).tolist()
    assert doc2["stats"]["count"] == len(beijing)


def test_config_round_trip_and_errors():
    cfg = CleaningConfig(impute="seasonal", anomaly_methods=("iqr", "residual"), period="10min")
    again = CleaningConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="dedup"):
        CleaningConfig(dedup="newest")
    with pytest.raises(ValueError, match="unknown CleaningConfig field"):
        CleaningConfig.from_dict({"impute": "linear", "colour": 1})
    with pytest.raises(ValueError, match="one series"):
        clean_series(pd.concat([frame(["2024-01-01"], [1.0]), frame(["2024-01-01"], [1.0], sid="b")]))


def test_forced_period():
    ts = pd.date_range("2024-01-01", periods=10, freq="20min", tz="UTC")
    out, doc = clean_series(frame(ts, np.arange(10.0)), CleaningConfig(period="10min", anomaly_methods=()))
    assert len(out) == 19 and doc["period_seconds"] == 600


def test_event_like_series_get_no_inserted_rows():
    rng = np.random.default_rng(0)
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.cumsum(rng.exponential(600, 500)), unit="s")
    out, doc = clean_series(frame(ts, rng.normal(size=500)), CleaningConfig())
    assert doc["period_confidence"] < 0.2 and doc["n_missing_inserted"] == 0 and len(out) == 500


@pytest.mark.parametrize("cfg", [CleaningConfig(now="2030-01-01"),
                                 CleaningConfig(now="2030-01-01", impute="seasonal", anomaly_methods=("residual",))])
def test_clean_frame_matches_clean_series(make_synth, cfg):
    a = make_synth(n=300, jitter=0.02, missing=[5, 6, 200], seed=1, series_id="b")
    b = make_synth(n=200, period_s=60, seed=2, series_id="a").assign(unit=["C"] * 199 + ["F"])
    c = pd.DataFrame({"series_id": "c", "ts": pd.to_datetime([None, None], utc=True).as_unit("us"),
                      "value": [1.0, 2.0], "unit": "C"})
    df = pd.concat([a, b, c], ignore_index=True).sample(frac=1.0, random_state=0)
    from tsops.quality import clean_frame

    out, docs = clean_frame(df, cfg)
    assert [d["series_id"] for d in docs] == ["a", "b", "c"]
    parts = [clean_series(df[df["series_id"] == s], cfg) for s in ("a", "b", "c")]
    expected = pd.concat([p[0] for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(out.reset_index(drop=True), expected)
    assert docs == [p[1] for p in parts]
    assert docs[2]["n_out"] == 0 and docs[2]["dropped"]["nat"] == 2
    assert any(i["code"] == "unit_inconsistent" for i in docs[0]["validation"])
