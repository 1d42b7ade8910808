"""Data quality: validation, dedup, period estimation, gaps, imputation, anomalies (per series or batched).

Per-series entry point: :func:`clean_series` (one series' long frame -> clean frame + quality document).
Batched entry point: :func:`clean_many` (CSR arrays of many series, numba-parallel).
"""

from tsops.quality.anomaly import apply_treatment, iqr_anomalies, residual_anomalies, robust_z
from tsops.quality.chain import (
    OUTPUT_COLUMNS,
    CleanBatch,
    CleaningConfig,
    basic_stats,
    clean_many,
    clean_series,
)
from tsops.quality.impute import IMPUTERS, compare_imputers, impute_values
from tsops.quality.period import PeriodEstimate, estimate_period, exact_gcd_period
from tsops.quality.validate import Issue, ValidationResult, validate_frame

__all__ = [
    "IMPUTERS", "OUTPUT_COLUMNS", "CleanBatch", "CleaningConfig", "Issue", "PeriodEstimate", "ValidationResult",
    "apply_treatment", "basic_stats", "clean_many", "clean_series", "compare_imputers", "estimate_period",
    "exact_gcd_period", "impute_values", "iqr_anomalies", "residual_anomalies", "robust_z", "validate_frame",
]
