"""Study: how much does each anomaly treatment help a forecaster? (``tsops quality compare``)"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from tsops.quality.anomaly import apply_treatment, iqr_anomalies
from tsops.quality.chain import CleaningConfig, clean_series

log = logging.getLogger(__name__)

TREATMENT_STUDY = ("clean", "none", "drop", "minmax", "ema", "interpolate")
MODELS = ("auto_ets", "seasonal_naive")


def forecast(y: np.ndarray, horizon: int, season_length: int | None, model: str = "auto_ets") -> np.ndarray:
    """Point forecast of ``horizon`` steps with statsforecast AutoETS or seasonal naive (``season_length``
    None or 1: no season, i.e. naive / non-seasonal ETS)."""
    y = np.asarray(y, float)
    if model == "seasonal_naive":
        m = max(1, season_length or 1)
        last = y[-m:]
        return np.resize(last, horizon) if m > 1 else np.full(horizon, y[-1])
    if model == "auto_ets":
        from statsforecast.models import AutoETS

        m = season_length if season_length and 2 * season_length <= y.size else 1
        return np.asarray(AutoETS(season_length=m).forecast(y=y, h=horizon)["mean"], float)
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def _metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    err = pred - truth
    nz = np.abs(truth) > 1e-9
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
            "mape": float(np.mean(np.abs(err[nz] / truth[nz])) * 100) if nz.any() else float("nan")}


def inject_anomalies(y: np.ndarray, rate: float, rng: np.random.Generator,
                     magnitude: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Add spikes of +-``magnitude`` standard deviations at a share ``rate`` of positions; return (y, mask)."""
    y = np.asarray(y, float).copy()
    mask = rng.random(y.size) < rate
    scale = np.nanstd(y) or 1.0
    y[mask] += rng.choice([-1.0, 1.0], int(mask.sum())) * magnitude * scale
    return y, mask


def _one_trial(train, test, t, m, model, rng, inject_rate, magnitude, iqr_k, horizon) -> pd.DataFrame:
    dirty, injected = inject_anomalies(train, inject_rate, rng, magnitude)
    code, lo, hi = iqr_anomalies(dirty, k=iqr_k, k_diff=iqr_k)
    flagged = code != 0
    tp = int((flagged & injected).sum())
    rows = []
    for name in TREATMENT_STUDY:
        if name == "clean":
            series = train
        elif name == "drop":
            series = dirty[~flagged]
        else:
            series = apply_treatment(t, dirty, flagged, "clip" if name == "minmax" else name, lo, hi)
        pred = forecast(series, horizon, m, model)
        log.info("forecast of treatment %s done", name)  # `tsops quality compare` counts these for its progress
        rows.append({"treatment": name, **_metrics(test, pred),
                     "n_flagged": int(flagged.sum()) if name != "clean" else 0})
    out = pd.DataFrame(rows).set_index("treatment")
    out["n_injected"] = int(injected.sum())
    out["precision"] = tp / flagged.sum() if flagged.sum() else float("nan")
    out["recall"] = tp / injected.sum() if injected.sum() else float("nan")
    out.loc["clean", ["precision", "recall"]] = float("nan")
    return out


def compare_treatments(series_df: pd.DataFrame, inject_rate: float = 0.02, seed: int = 0, horizon: int = 48,
                       model: str = "auto_ets", *, season_length: int | None, iqr_k: float = 1.5,
                       magnitude: float = 5.0, repeats: int = 1) -> pd.DataFrame:
    """Inject anomalies into one real series, treat them each way, forecast, and score against the truth.

    The series is first put on its regular grid (gaps imputed linearly, no anomaly treatment). The last
    ``horizon`` points are the untouched test set; spikes are injected into the rest, detected with the
    IQR rule (values and differences) and treated: none, drop (rows removed), minmax (clipped to the IQR
    fences), ema, interpolate; 'clean' forecasts from the series before injection (a reference).
    With ``repeats`` > 1 the injection is redone with seeds ``seed .. seed + repeats - 1`` and the metrics
    averaged. Returns a frame indexed by treatment with rmse, mae, mape, n_flagged, n_injected and the
    precision / recall of the detection. ``season_length`` (required: the series' season from its profile, in
    samples of its grid; None or 1: no season) drives the forecasters.
    """
    if not 0 <= inject_rate < 1:
        raise ValueError(f"inject_rate must be in [0, 1), got {inject_rate}")
    grid, doc = clean_series(series_df, CleaningConfig(anomaly_methods=(), treatment="none"))
    y = grid["value"].to_numpy(float)
    if y.size < horizon + 10:
        raise ValueError(f"series {doc['series_id']!r} has {y.size} points: need more than horizon + 10 "
                         f"= {horizon + 10}")
    m = season_length if season_length and season_length > 1 else 1
    train, test = y[:-horizon], y[-horizon:]
    t = grid["ts"].to_numpy("datetime64[us]").view(np.int64)[:-horizon]
    frames = []
    for r in range(max(1, repeats)):
        frames.append(_one_trial(train, test, t, m, model, np.random.default_rng(seed + r), inject_rate,
                                 magnitude, iqr_k, horizon))
    out = sum(frames[1:], frames[0]) / len(frames) if len(frames) > 1 else frames[0]
    out.attrs.update(series_id=doc["series_id"], model=model, season_length=m, horizon=horizon)
    return out
