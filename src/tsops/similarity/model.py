"""MLflow pyfunc wrapper: a pattern + stretch factor that scores new series by DTW distance.

Input contract (checked by the model itself, so the errors name the columns):

- rows are series; the columns are the optional id column and the value columns the model was logged with
  (e.g. ``Product_Code`` + ``W0..W51``). A frame without column names (or a 2-D array) with exactly that
  many value columns is taken positionally.
- value columns may hold integers (raw sales counts) or floats: they are cast to float64 here. MLflow's
  own schema enforcement would refuse int64 for a ``double`` column ("Can not safely convert int64 to
  float64"), so the logged signature declares the *output* only and the input contract is stored in the
  model's metadata (``tsops_input``) next to an input example.
- a column that is neither the id nor a value column is an error naming it (it is never dropped
  silently): score a subset by selecting the columns first. A missing value column is an error too.

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
        """The value columns of ``df`` as float64, after checking them against the logged ones."""
        data = df.drop(columns=[self.id_column]) if self.id_column in df.columns else df
        if self.value_columns is None:
            cols = [c for c in data.columns if pd.api.types.is_numeric_dtype(data[c])]
            if not cols:
                raise ValueError("model input has no numeric time-step columns")
            data = data[cols]
        elif isinstance(data.columns, pd.RangeIndex) and len(data.columns) == len(self.value_columns):
            data = data.set_axis(self.value_columns, axis=1)  # unnamed columns: positional
        else:
            names = [str(c) for c in data.columns]
            missing = [c for c in self.value_columns if c not in names]
            extra = [c for c in names if c not in self.value_columns]
            if missing or extra:
                want = (f"{self.id_column!r} (optional) and " if self.id_column else "") + _span(self.value_columns)
                problems = ([f"missing value column(s) {_span(missing)}"] if missing else []) + (
                    [f"column(s) the model does not use: {', '.join(map(repr, extra))} (select the model's "
                     "columns first)"] if extra else [])
                raise ValueError(f"model input: {'; '.join(problems)}; expected {want}")
            data = data.set_axis(names, axis=1)[self.value_columns]
        out = {}
        for c in data.columns:
            col = data[c]
            if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
                conv = pd.to_numeric(col, errors="coerce")
                bad = conv.isna() & col.notna()
                if bad.any():
                    raise ValueError(f"model input column {c!r} is not numeric: row {int(np.argmax(bad.to_numpy()))} "
                                     f"holds {col[bad].iloc[0]!r}")
                col = conv
            out[c] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.DataFrame(out, index=data.index)

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


def _span(cols: Sequence[str]) -> str:
    cols = [str(c) for c in cols]
    return f"{cols[0]}..{cols[-1]} ({len(cols)} columns)" if len(cols) > 4 else ", ".join(map(repr, cols))


def model_requirements() -> list[str]:
    """Pinned requirements of the model environment, given explicitly so MLflow skips its slow inference.

    The model class lives in ``tsops`` (loading it unpickles :class:`DTWSimilarityModel`), so tsops itself
    is a requirement at the running version.
    """
    import numba

    import tsops

    return [f"tsops=={tsops.__version__}", f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}",
            f"pandas=={pd.__version__}", f"numba=={numba.__version__}"]


def input_contract(id_column: str | None, value_columns: Sequence[str]) -> dict:
    """What :meth:`DTWSimilarityModel.predict` accepts, stored as model metadata ``tsops_input``."""
    return {"id_column": id_column, "value_columns": [str(c) for c in value_columns],
            "value_types": "integer or floating point (cast to float64)",
            "other_columns": "rejected with an error naming them"}


def model_signature(id_column: str | None, value_columns: Sequence[str]) -> ModelSignature:
    """Output only (id, distance, location): the model checks and casts its input itself (see the module
    docstring), which MLflow's input enforcement would do less helpfully (int64 refused, extra columns
    dropped silently)."""
    outputs = [ColSpec("string", id_column, required=False)] if id_column else []
    outputs += [ColSpec("double", "distance"), ColSpec("long", "location")]
    return ModelSignature(inputs=None, outputs=Schema(outputs))
