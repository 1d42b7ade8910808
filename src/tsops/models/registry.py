"""Model registry: name -> class, ``make_model(name, **params)`` and each model's default search space.

Search spaces are plain dicts (no Ray/Optuna objects) so the tuner can translate them::

    {"hidden_size": {"type": "choice", "values": [2, 4, 8]},
     "learning_rate": {"type": "loguniform", "low": 1e-3, "high": 0.1},
     "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
     "input_size": {"type": "randint", "low": 48, "high": 337}}       # high exclusive
"""

from __future__ import annotations

import copy
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

SEARCH_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "lstm": {
        "hidden_size": {"type": "choice", "values": [2, 4, 8, 16, 32, 64]},
        "learning_rate": {"type": "loguniform", "low": 1e-3, "high": 0.1},
        "num_layers": {"type": "choice", "values": [1, 2, 3, 4, 5]},
        "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
        "input_size": {"type": "choice", "values": [24, 48, 96, 168]},
    },
    "nhits": {
        "input_size": {"type": "choice", "values": [96, 168, 336, 504]},
        "hidden_size": {"type": "choice", "values": [128, 256, 512]},
        "n_layers": {"type": "choice", "values": [1, 2, 3]},
        "learning_rate": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
        "loss": {"type": "choice", "values": ["mae", "mase", "smape"]},
        "dropout": {"type": "uniform", "low": 0.0, "high": 0.2},
    },
    "seasonal_naive": {"season_length": {"type": "choice", "values": [24, 168]}},
    "naive2": {},
    "naive": {},
    "statsforecast": {"model": {"type": "choice", "values": ["AutoETS", "AutoTheta", "MSTL"]}},
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
    if name in ALIASES:
        return StatsForecastModel(**{**params, **ALIASES[name]})
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {model_names()}")
    try:
        return MODELS[name](**params)
    except TypeError as exc:
        raise TypeError(f"bad parameters for model {name!r}: {exc}") from exc


def search_space(name: str) -> dict[str, dict[str, Any]]:
    """A copy of the default hyperparameter search space of model ``name``."""
    key = "statsforecast" if name in ALIASES else name
    if key not in SEARCH_SPACES:
        raise KeyError(f"no search space for model {name!r}; known: {sorted(SEARCH_SPACES)}")
    return copy.deepcopy(SEARCH_SPACES[key])
