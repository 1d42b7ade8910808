"""Analysis and transformation: statistics, decomposition, re-sampling, alignment, correlation, scaling,
windowing."""

from tsops.analysis.decompose import (
    acf_season_length,
    decompose,
    downsample,
    infer_season_length,
    robust_decompose,
    upsample,
)
from tsops.analysis.multivariate import align, best_lags, correlation, cross_correlation
from tsops.analysis.stats import acf, describe, kde, profile, stationarity, strength
from tsops.analysis.transform import (
    MinMaxScaler,
    RobustScaler,
    SeriesScaler,
    StandardScaler,
    make_windows,
    make_windows_frame,
)

__all__ = [
    "MinMaxScaler", "RobustScaler", "SeriesScaler", "StandardScaler", "acf", "acf_season_length", "align",
    "best_lags", "correlation", "cross_correlation", "decompose", "describe", "downsample",
    "infer_season_length", "kde", "make_windows", "make_windows_frame", "profile", "robust_decompose",
    "stationarity", "strength", "upsample",
]
