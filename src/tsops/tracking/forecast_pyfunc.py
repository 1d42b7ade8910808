"""A tsops forecaster as an MLflow pyfunc model: history in, forecasts with intervals out.

Input: a DataFrame ``series_id, ts, value`` (any number of series; ``ts`` naive UTC datetimes, or ISO 8601
strings without an offset through ``mlflow models serve``, whose schema check rejects offsets; irregular
timestamps are put on the model's grid) and optionally a ``horizon`` column (its first value) or a
``horizon`` param. Output: one row per series and step with
``series_id, step, ts, mean, lo_80, hi_80, lo_95, hi_95`` (timestamps naive UTC).

:func:`forecast_frame` is the pure function behind it; the HTTP API calls it directly.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from tsops.datamodel import SERIES_ID, TS, VALUE
from tsops.models.base import Forecaster, Panel, as_panel, load_model
from tsops.tuning.data import regularize

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = [SERIES_ID, "step", TS, "mean", "lo_80", "hi_80", "lo_95", "hi_95"]
ARTIFACT_KEY = "forecaster"
MAX_HORIZON_FACTOR = 20
MAX_GRID_POINTS = 100_000  # per series: a history spanning more grid slots is refused


class ForecastInputError(ValueError):
    """The request cannot be forecast (bad history, horizon, series): the message says why."""


def max_horizon(model: Forecaster) -> int:
    """The longest horizon served: ``MAX_HORIZON_FACTOR`` times the trained one (at least 1000 for local
    models without a trained horizon)."""
    h = model.params.get("horizon")
    return int(h) * MAX_HORIZON_FACTOR if h else 1000


def default_horizon(model: Forecaster) -> int:
    return int(model.params.get("horizon") or getattr(model, "default_horizon_", 0) or 24)


def check_horizon(model: Forecaster, horizon: Any) -> int:
    try:
        h = int(horizon)
    except (TypeError, ValueError):
        raise ForecastInputError(f"horizon must be an integer (got {horizon!r})") from None
    if isinstance(horizon, float) and not float(horizon).is_integer():
        raise ForecastInputError(f"horizon must be an integer (got {horizon!r})")
    hi = max_horizon(model)
    if not 1 <= h <= hi:
        raise ForecastInputError(f"horizon must be between 1 and {hi} for this model (got {h})")
    return h


def parse_timestamps(col: pd.Series) -> pd.Series:
    """Timestamps as UTC: datetimes as they are (naive = UTC), strings as ISO 8601 (fast path) or any format
    pandas recognises; raises :class:`ForecastInputError` naming the first unparseable value."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return pd.to_datetime(col, utc=True)
    try:
        return pd.to_datetime(col, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        pass
    try:
        return pd.to_datetime(col, utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError) as exc:
        raise ForecastInputError(f"history has a timestamp that cannot be parsed: {exc}") from None


def clean_history(history: pd.DataFrame) -> pd.DataFrame:
    """Validate a posted history: required columns, parseable timestamps, numeric values, >= 2 points."""
    if not isinstance(history, pd.DataFrame):
        raise ForecastInputError(f"history must be a table of series_id, ts, value (got {type(history).__name__})")
    missing = [c for c in (SERIES_ID, TS, VALUE) if c not in history.columns]
    if missing:
        raise ForecastInputError(f"history lacks column(s) {missing}; it has {list(history.columns)}")
    if history.empty:
        raise ForecastInputError("history is empty: give at least two observations per series")
    vals = pd.to_numeric(history[VALUE], errors="coerce")
    bad = vals.isna() & history[VALUE].notna()
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise ForecastInputError(f"history row {i}: value {history[VALUE].iloc[i]!r} of series "
                                 f"{history[SERIES_ID].iloc[i]!r} is not a number")
    ts = parse_timestamps(history[TS])
    out = pd.DataFrame({SERIES_ID: history[SERIES_ID].astype(str), TS: ts, VALUE: vals.astype(float)})
    counts = out.dropna(subset=[VALUE]).groupby(SERIES_ID).size().reindex(out[SERIES_ID].unique(), fill_value=0)
    short = counts[counts < 2]
    if len(short):
        raise ForecastInputError(f"series {short.index[0]!r} has {int(short.iloc[0])} observed value(s) in the "
                                 "history: at least 2 are needed")
    return out


def on_grid_panel(clean: pd.DataFrame, freq: pd.Timedelta | None) -> Panel | None:
    """A Panel straight from a validated history whose series are each one sorted block exactly on the
    ``freq`` grid, starting and ending with an observed value (the common case of a served request);
    None when anything needs :func:`~tsops.tuning.data.regularize`. Same result, without the pandas cost."""
    if freq is None or clean.empty:
        return None
    sid = clean[SERIES_ID].to_numpy()
    t = clean[TS].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view("i8")
    v = clean[VALUE].to_numpy(dtype=float)
    cut = np.flatnonzero(sid[1:] != sid[:-1]) + 1
    starts, ends = np.r_[0, cut], np.r_[cut, len(sid)]
    if len(set(sid[starts])) != len(starts) or not (np.isfinite(v[starts]) & np.isfinite(v[ends - 1])).all():
        return None
    step = pd.Timedelta(freq).value
    d = np.diff(t)
    d[cut - 1] = step  # block boundaries are not steps
    if len(d) and not np.all(d == step):
        return None
    order = np.argsort(sid[starts].astype(str), kind="stable")
    ids = [str(sid[starts[i]]) for i in order]
    values = [v[starts[i]:ends[i]].copy() for i in order]
    last = [pd.Timestamp(int(t[ends[i] - 1])) for i in order]
    return Panel(ids, values, last, pd.Timedelta(freq))


def required_covariates(model: Forecaster) -> list[str]:
    """The other series a model reads as inputs (its covariates): a history must contain them."""
    return [str(c) for c in (model.describe() or {}).get("covariates", []) or []]


def check_covariates(model: Forecaster, history_ids: list[str]) -> None:
    """Raise :class:`ForecastInputError` naming the covariate series missing from a history."""
    need = required_covariates(model)
    have = set(history_ids)
    missing = [c for c in need if c not in have]
    if missing:
        raise ForecastInputError(f"this model reads covariate series {need} as inputs, but the history lacks "
                                 f"{missing}: send their recent values too (they are forecast as well)")


def forecast_frame(model: Forecaster, history: pd.DataFrame | None, horizon: int | None = None) -> pd.DataFrame:
    """Forecast ``horizon`` steps after each series of ``history`` (default: the model's training data)."""
    h = check_horizon(model, default_horizon(model) if horizon is None else horizon)
    freq = model.history_.freq if model.history_ is not None else None
    if history is None:
        panel = None
    else:
        clean = clean_history(history)
        panel = on_grid_panel(clean, freq)
        if panel is None:
            try:
                panel = as_panel(regularize(clean, freq=freq, max_slots=MAX_GRID_POINTS))
            except ValueError as exc:
                raise ForecastInputError(str(exc)) from None
    if panel is not None:
        check_covariates(model, panel.ids)
    try:
        df = model.predict(h, panel)
    except KeyError as exc:
        raise ForecastInputError(str(exc.args[0]) if exc.args else str(exc)) from None
    if TS not in df.columns:
        df[TS] = pd.NaT
    for c in OUTPUT_COLUMNS:
        if c not in df.columns:
            log.warning("model %s has no %s interval: calibrate it on a backtest", model.name, c)
            df[c] = np.nan
    out = df[OUTPUT_COLUMNS].copy()
    out["step"] = out["step"].astype("int64")
    out[TS] = pd.to_datetime(out[TS])
    if getattr(out[TS].dt, "tz", None) is not None:
        out[TS] = out[TS].dt.tz_convert("UTC").dt.tz_localize(None)
    for c in OUTPUT_COLUMNS[3:]:
        out[c] = out[c].astype("float64")
    return out.reset_index(drop=True)


class TsopsForecastModel(mlflow.pyfunc.PythonModel):
    """MLflow wrapper around a saved tsops :class:`Forecaster` (artifact ``forecaster``)."""

    def load_context(self, context) -> None:
        self.model = load_model(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        horizon = (params or {}).get("horizon")
        if "horizon" in model_input.columns:
            hs = model_input["horizon"].dropna()
            if len(hs):
                horizon = hs.iloc[0]
            model_input = model_input.drop(columns=["horizon"])
        return forecast_frame(self.model, model_input, horizon)


def example_history(model: Forecaster, n_points: int | None = None) -> pd.DataFrame:
    """The tail of the first training series (and of the model's covariates): the input example logged
    with the model."""
    if model.history_ is None:
        raise RuntimeError("the model is not fitted: fit it before logging")
    ids = list(dict.fromkeys([model.history_.ids[0], *required_covariates(model)]))
    p = model.history_.subset(ids)
    n = n_points or int(model.params.get("input_size") or 48)
    df = p.to_frame().groupby(SERIES_ID, sort=False).tail(n).reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(df[TS]) and getattr(df[TS].dt, "tz", None) is not None:
        df[TS] = df[TS].dt.tz_convert("UTC").dt.tz_localize(None)
    df[VALUE] = df.groupby(SERIES_ID, sort=False)[VALUE].transform(lambda v: v.ffill().bfill())
    return df


def signature_for(model: Forecaster):
    """Input ``series_id, ts, value`` (+ optional ``horizon``), param ``horizon``, output the forecast frame."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("string", SERIES_ID), ColSpec("datetime", TS), ColSpec("double", VALUE),
                     ColSpec("long", "horizon", required=False)])
    outputs = Schema([ColSpec("string", SERIES_ID), ColSpec("long", "step"), ColSpec("datetime", TS),
                      *[ColSpec("double", c) for c in OUTPUT_COLUMNS[3:]]])
    params = ParamSchema([ParamSpec("horizon", "long", default_horizon(model))])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def pip_requirements() -> list[str]:
    import torch

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}", "pandas<3",
            "numpy>=2", "tsops"]


def log_forecaster(model: Forecaster, registered_model_name: str | None = None, name: str = "model"):
    """Log ``model`` in the active MLflow run as a pyfunc (signature + input example); returns ModelInfo."""
    with tempfile.TemporaryDirectory(prefix="tsops-model-") as tmp:
        path = model.save(Path(tmp) / "forecaster")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("forecast_pyfunc_model.py")),
            artifacts={ARTIFACT_KEY: str(path)},
            signature=signature_for(model),
            input_example=example_history(model),
            pip_requirements=pip_requirements(),
            registered_model_name=registered_model_name,
        )


def forecaster_from_pyfunc(pyfunc_model) -> Forecaster:
    """The tsops Forecaster inside a loaded pyfunc model (for fast in-process serving)."""
    inner = pyfunc_model.unwrap_python_model()
    model = getattr(inner, "model", None)
    if not isinstance(model, Forecaster):
        raise TypeError(f"the MLflow model is not a tsops forecaster (found {type(inner).__name__})")
    return model
