"""The forecasting HTTP API (FastAPI): the champion of each dataset, reloaded when its alias moves.

* ``POST /forecast``: forecasts with 80/95% intervals for series of the lake (``series_ids``) or for a
  history posted in the body (``history``: rows of ``series_id, ts, value``).
* ``GET /health``: liveness and the loaded model versions (never needs a token).
* ``GET /models``: the champion of each dataset (version, model, parameters, horizons).
* ``GET /openapi.json``, ``/docs``: the OpenAPI spec.

With a token configured, every path but ``/health`` needs it (``Authorization: Bearer <token>``, or the session
cookie of the ``/login`` page for the dashboard): see :mod:`tsops.serving.auth`. Request bodies over ``max_body``
bytes get 413 before they are read. Malformed requests get a 4xx answer whose ``detail`` says what is wrong.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tsops.datamodel import SERIES_ID, TS, VALUE
from tsops.serving.auth import DEFAULT_MAX_BODY, TokenGuard

log = logging.getLogger(__name__)

MAX_SERIES_PER_REQUEST = 1000
MAX_HISTORY_ROWS = 1_000_000


class Observation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    series_id: str = Field(min_length=1, description="series the observation belongs to")
    ts: str | int | float = Field(description="ISO 8601 timestamp (UTC unless it has an offset) or epoch seconds")
    value: float | None = Field(description="observed value; null = missing")


class ForecastRequest(BaseModel):
    """Either ``series_ids`` (their history is read from the lake) or ``history``."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(default=None, description="dataset whose champion forecasts (default: the "
                                "project's only dataset)")
    series_ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_SERIES_PER_REQUEST)
    history: list[Observation] | None = Field(default=None, min_length=1, max_length=MAX_HISTORY_ROWS)
    horizon: int | None = Field(default=None, ge=1, description="steps ahead (default: the trained horizon)")

    @model_validator(mode="after")
    def _one_source(self) -> ForecastRequest:
        if (self.series_ids is None) == (self.history is None):
            raise ValueError("give exactly one of series_ids (read from the lake) or history (in the body)")
        return self


class ForecastRow(BaseModel):
    series_id: str
    step: int
    ts: str | None
    mean: float | None
    lo_80: float | None
    hi_80: float | None
    lo_95: float | None
    hi_95: float | None


class ForecastResponse(BaseModel):
    dataset: str
    model: str
    version: str
    horizon: int
    source: str
    forecasts: list[ForecastRow]


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _rows(fc: pd.DataFrame) -> list[dict[str, Any]]:
    ts = pd.to_datetime(fc[TS])
    iso = [None if pd.isna(t) else t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in ts]
    out = []
    cols = [fc[c].to_numpy() for c in ("mean", "lo_80", "hi_80", "lo_95", "hi_95")]
    for i, (sid, step) in enumerate(zip(fc[SERIES_ID].to_numpy(), fc["step"].to_numpy(), strict=True)):
        out.append({"series_id": str(sid), "step": int(step), "ts": iso[i], "mean": _num(cols[0][i]),
                    "lo_80": _num(cols[1][i]), "hi_80": _num(cols[2][i]), "lo_95": _num(cols[3][i]),
                    "hi_95": _num(cols[4][i])})
    return out


def create_app(project, token: str | None = None, check_interval: float = 10.0, alias: str = "champion",
               history_points: int = 2000, routers: Sequence[Any] = (),
               max_body: int | None = DEFAULT_MAX_BODY) -> FastAPI:
    """The API for ``project``. ``token``: required on every route but ``/health``, extra routers included
    (None: open); ``check_interval``: seconds between alias look-ups (0: every request); ``history_points``:
    lake points read per series; ``routers``: extra APIRouters to include (e.g.
    ``tsops.serving.dashboard.router``); ``max_body``: request body limit in bytes (None: no limit)."""
    from tsops.config import ConfigError
    from tsops.serving.champion import ChampionCache, NoChampionError
    from tsops.tracking.forecast_pyfunc import ForecastInputError, forecast_frame, required_covariates

    app = FastAPI(title="tsops forecasting API", version="1",
                  description="Forecasts with conformal 80/95% intervals from each dataset's champion model.")
    app.state.project = project
    cache = ChampionCache(project, alias=alias, check_interval=check_interval)
    app.state.champions = cache
    # the guard checks the token (bearer or login cookie) and the body size before any route runs
    app.add_middleware(TokenGuard, token=token, max_body=max_body)
    # documents the bearer scheme in the OpenAPI spec; the guard enforces it
    authorize = HTTPBearer(auto_error=False)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        msgs = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            msgs.append(f"{loc or 'body'}: {e.get('msg')}")
        return JSONResponse(status_code=422, content={"detail": "; ".join(msgs) or "invalid request"})

    def pick_dataset(name: str | None) -> str:
        names = sorted(project.config.datasets)
        if name is None:
            if len(names) != 1:
                raise HTTPException(422, f"dataset: give one of {names}")
            return names[0]
        if name not in project.config.datasets:
            raise HTTPException(404, f"unknown dataset {name!r}; known: {names}")
        return name

    def champion(dataset: str):
        try:
            return cache.get(dataset)
        except NoChampionError as exc:
            raise HTTPException(503, str(exc)) from None
        except ConfigError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness, with the model versions currently loaded."""
        return {"status": "ok", "loaded": {d: m.version for d, m in cache.loaded().items()},
                "reloads": cache.reloads}

    @app.get("/models", tags=["models"], dependencies=[Depends(authorize)])
    def models() -> dict[str, Any]:
        """The champion of every dataset (``champion: null`` with a reason when there is none)."""
        out = []
        for d in sorted(project.config.datasets):
            try:
                out.append({"dataset": d, "champion": cache.get(d).describe()})
            except NoChampionError as exc:
                out.append({"dataset": d, "champion": None, "reason": str(exc)})
        return {"alias": alias, "models": out}

    @app.post("/forecast", tags=["forecast"], response_model=ForecastResponse,
              dependencies=[Depends(authorize)],
              responses={400: {"description": "history or horizon unusable"}, 401: {"description": "bad token"},
                         404: {"description": "unknown dataset or series"},
                         413: {"description": "request body over the server's limit"},
                         422: {"description": "malformed request"}, 503: {"description": "no champion yet"}})
    def forecast(req: ForecastRequest) -> dict[str, Any]:
        """Forecast the requested series; intervals are conformal 80% and 95% bands."""
        from tsops.tuning.data import load_frame

        dataset = pick_dataset(req.dataset)
        loaded = champion(dataset)
        if req.history is not None:
            hist = pd.DataFrame({SERIES_ID: [o.series_id for o in req.history],
                                 TS: [o.ts for o in req.history],
                                 VALUE: [o.value for o in req.history]})
            kinds = {isinstance(o.ts, str) for o in req.history}
            if len(kinds) > 1:
                raise HTTPException(400, "history timestamps mix epoch numbers and strings: use one kind")
            if pd.api.types.is_numeric_dtype(hist[TS]):
                try:
                    hist[TS] = pd.to_datetime(hist[TS], unit="s", utc=True)
                except (ValueError, OverflowError) as exc:
                    raise HTTPException(400, f"history has an epoch timestamp out of range: {exc}") from None
            source = "body"
        else:
            ids = list(dict.fromkeys(req.series_ids or []))
            # the champion may read other series as covariates: load them with the requested ones
            load_ids = list(dict.fromkeys([*ids, *required_covariates(loaded.model)]))
            try:
                hist, _ = load_frame(project, dataset, series=load_ids)
            except LookupError:
                raise HTTPException(404, f"no observations of series {ids} in dataset {dataset!r}") from None
            unknown = sorted(set(ids) - set(hist[SERIES_ID].astype(str).unique()))
            if unknown:
                raise HTTPException(404, f"unknown series in dataset {dataset!r}: {unknown}")
            hist = hist.sort_values([SERIES_ID, TS]).groupby(SERIES_ID, sort=False).tail(history_points)
            source = "lake"
        try:
            fc = forecast_frame(loaded.model, hist, req.horizon)
            if source == "lake":
                fc = fc[fc[SERIES_ID].astype(str).isin(ids)].reset_index(drop=True)
        except ForecastInputError as exc:
            raise HTTPException(400, str(exc)) from None
        except (ValueError, KeyError) as exc:
            raise HTTPException(422, f"cannot forecast this history: {exc}") from None
        return {"dataset": dataset, "model": loaded.name, "version": loaded.version,
                "horizon": int(fc["step"].max()) if len(fc) else 0, "source": source, "forecasts": _rows(fc)}

    # extra routers, e.g. the dashboard (`tsops serve` passes tsops.serving.dashboard.router)
    for r in routers:
        app.include_router(r)
    return app
