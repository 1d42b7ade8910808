"""Forecasting models of tsops: one interface (fit many series, predict a horizon, save, load).

Heavy dependencies (torch, statsforecast) are imported lazily inside the models that need them.
"""

from tsops.models.backtest import BacktestResult, backtest
from tsops.models.base import Forecaster, Panel, as_panel, load_model
from tsops.models.registry import make_model, model_names, search_space

__all__ = [
    "BacktestResult",
    "Forecaster",
    "Panel",
    "as_panel",
    "backtest",
    "load_model",
    "make_model",
    "model_names",
    "search_space",
]
