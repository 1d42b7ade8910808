"""Model registry: name -> class, ``make_model(name, **params)``, each model's capabilities and search space.

Capabilities and search spaces are declared by the model classes (:class:`~tsops.models.base.Forecaster`);
the registry only maps names to them. Search spaces are plain dicts (no Ray/Optuna objects) so the tuner can
translate them, and depend on the series' seasons (from their profiles) and the horizon::

    {"hidden_size": {"type": "choice", "values": [2, 4, 8]},
     "learning_rate": {"type": "loguniform", "low": 1e-3, "high": 0.1},
     "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
     "input_size": {"type": "randint", "low": 48, "high": 337}}       # high exclusive
"""

from __future__ import annotations

from typing import Any

from tsops.models.base import Forecaster
from tsops.models.baselines import Naive, Naive2, SeasonalNaive, StatsForecastModel
from tsops.models.lstm import LSTMForecaster
from tsops.models.nhits import NHiTSForecaster

MODELS: dict[str, type[Forecaster]] = {
    "naive": Naive,
    "seasonal_naive": SeasonalNaive,
    "naive2": Naive2,
    "statsforecast": StatsForecastModel,
    "lstm": LSTMForecaster,
    "nhits": NHiTSForecaster,
}

#: Shortcuts for statsforecast models: name -> fixed constructor arguments.
ALIASES: dict[str, dict[str, Any]] = {
    "auto_ets": {"model": "AutoETS"},
    "auto_theta": {"model": "AutoTheta"},
    "mstl": {"model": "MSTL"},
    "auto_arima": {"model": "AutoARIMA"},
}

def model_names() -> list[str]:
    """Every name ``make_model`` accepts."""
    return sorted([*MODELS, *ALIASES, "ensemble"])


def make_model(name: str, **params: Any) -> Forecaster:
    """Build an unfitted model by registry name. ``ensemble`` takes ``members=[{"name":..., "params":...}]``."""
    if name == "ensemble":
        from tsops.models.ensemble import EnsembleForecaster

        specs = params.pop("members", None)
        if not specs:
            raise ValueError("make_model('ensemble') needs members=[{'name': ..., 'params': {...}}, ...]")
        members = [m if isinstance(m, Forecaster) else make_model(m["name"], **m.get("params", {}))
                   for m in specs]
        return EnsembleForecaster(members, **params)
    if name not in MODELS and name not in ALIASES:
        raise KeyError(f"unknown model {name!r}; choose one of {model_names()}")
    try:
        if name in ALIASES:
            return StatsForecastModel(**{**params, **ALIASES[name]})
        return MODELS[name](**params)
    except TypeError as exc:
        raise TypeError(f"bad parameters for model {name!r}: {exc}") from exc


def model_class(name: str) -> type[Forecaster]:
    """The class behind registry name ``name`` (statsforecast aliases: :class:`StatsForecastModel`)."""
    if name in ALIASES:
        return StatsForecastModel
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {[n for n in model_names() if n != 'ensemble']}")
    return MODELS[name]


def search_space(name: str, seasons: tuple[int, ...] | list[int] = (), horizon: int | None = None,
                 max_input: int | None = None) -> dict[str, dict[str, Any]]:
    """The hyperparameter search space of model ``name`` for series with season lengths ``seasons`` (strongest
    first, from their profiles; () = none), forecast ``horizon`` and windows of at most ``max_input`` points.
    Statsforecast aliases (``auto_ets`` ...) have a fixed model: nothing to search."""
    try:
        cls = model_class(name)
    except KeyError as exc:
        raise KeyError(f"no search space for model {name!r}: {exc.args[0]}") from None
    if name in ALIASES:
        return {}
    return cls.search_space(tuple(int(s) for s in seasons), horizon, max_input)
