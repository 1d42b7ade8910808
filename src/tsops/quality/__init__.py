"""Data quality: validation, dedup, period estimation, gaps, imputation, anomalies (per series or batched).

Per-series entry point: :func:`clean_series` (one series' long frame -> clean frame + quality document).
Many series of a long frame at once: :func:`clean_frame` (same result, vectorised).
Batched array entry point: :func:`clean_many` (CSR arrays of many series, numba-parallel).
"""

from tsops.quality.anomaly import apply_treatment, iqr_anomalies, residual_anomalies, robust_z
from tsops.quality.chain import (
    OUTPUT_COLUMNS,
    CleanBatch,
    CleaningConfig,
    basic_stats,
    clean_frame,
    clean_many,
    clean_series,
    needs_python_steps,
)
from tsops.quality.compare import compare_treatments, inject_anomalies
from tsops.quality.impute import IMPUTERS, compare_imputers, impute_values
from tsops.quality.period import PeriodEstimate, estimate_period, exact_gcd_period
from tsops.quality.validate import Issue, ValidationResult, validate_frame

__all__ = [
    "IMPUTERS", "OUTPUT_COLUMNS", "CleanBatch", "CleaningConfig", "Issue", "PeriodEstimate", "ValidationResult",
    "apply_treatment", "basic_stats", "clean_frame", "clean_many", "needs_python_steps", "clean_series", "compare_imputers", "compare_treatments",
    "inject_anomalies", "estimate_period",
    "exact_gcd_period", "impute_values", "iqr_anomalies", "residual_anomalies", "robust_z", "validate_frame",
]
