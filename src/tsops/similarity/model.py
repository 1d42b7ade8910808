"""MLflow pyfunc wrapper: a pattern + stretch factor that scores new series by DTW distance.

Importing this module imports mlflow (seconds); the CLI imports it only when logging.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from tsops.similarity.dtw import dtw_distances


class DTWSimilarityModel(mlflow.pyfunc.PythonModel):
    """``predict(df)``: rows = series, columns = time steps (plus an optional id column) -> a frame with the
    id (if given), ``distance`` (DTW to the stored pattern at the stored stretch) and ``location`` (start of
    the best window; 0 when the series is as long as the pattern)."""

    def __init__(
        self,
        pattern: Sequence[float],
        stretch: float,
        normalize: bool = True,
        id_column: str | None = None,
        value_columns: Sequence[str] | None = None,
        nan_policy: str = "raise",
    ) -> None:
        self.pattern = [float(v) for v in pattern]
        self.stretch = float(stretch)
        self.normalize = bool(normalize)
        self.id_column = id_column
        self.value_columns = list(value_columns) if value_columns is not None else None
        self.nan_policy = nan_policy

    def _values(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.value_columns is not None and all(c in df.columns for c in self.value_columns):
            return df[self.value_columns]
        cols = [c for c in df.columns if c != self.id_column and pd.api.types.is_numeric_dtype(df[c])]
        if not cols:
            raise ValueError("model input has no numeric time-step columns")
        return df[cols]

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(np.atleast_2d(model_input))
        has_id = self.id_column is not None and self.id_column in df.columns
        ids = df[self.id_column].astype(str).tolist() if has_id else None
        values = self._values(df).to_numpy(dtype=np.float64)
        dist, loc = dtw_distances(
            values, np.asarray(self.pattern), self.stretch, self.normalize,
            nan_policy=self.nan_policy, return_locations=True, ids=ids,
        )
        out = pd.DataFrame({"distance": dist, "location": loc.astype(np.int64)})
        if has_id:
            out.insert(0, self.id_column, ids)
        return out


def model_requirements() -> list[str]:
    """Pinned requirements of the model environment, given explicitly so MLflow skips its slow inference.

    The model also imports ``tsops``: serve it with ``--env-manager local`` from an environment where tsops
    is installed.
    """
    import numba

    return [f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}", f"pandas=={pd.__version__}",
            f"numba=={numba.__version__}"]


def model_signature(id_column: str | None, value_columns: Sequence[str]) -> ModelSignature:
    """Input: optional string id column + one double per time step; output: id, distance, location."""
    inputs = [ColSpec("string", id_column, required=False)] if id_column else []
    inputs += [ColSpec("double", str(c)) for c in value_columns]
    outputs = [ColSpec("string", id_column, required=False)] if id_column else []
    outputs += [ColSpec("double", "distance"), ColSpec("long", "location")]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))
