"""Stretch-factor runs in MLflow: one run per stretch (children of a parent run for a sweep) with metrics,
a histogram, outlier / lowest-decile CSVs, the full distances as Parquet and a pyfunc model."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tsops.analysis.plotting import setup_matplotlib
from tsops.similarity.analysis import choose_stretch, distance_table, lowest_decile, outliers, summarize
from tsops.similarity.dtw import band_halfwidth, dtw_distances
from tsops.tracking import mlflow_utils

log = logging.getLogger(__name__)


@dataclass
class StretchResult:
    """Distances and summary of one stretch factor (and its MLflow run once logged)."""

    stretch: float
    halfwidth: int
    table: pd.DataFrame
    stats: dict[str, float]
    run_id: str | None = None
    model_uri: str | None = None


@dataclass
class SweepResult:
    results: list[StretchResult]
    chosen: float
    parent_run_id: str | None = None
    experiment_id: str | None = None
    registered: dict[str, str] = field(default_factory=dict)

    def result(self, stretch: float) -> StretchResult:
        return next(r for r in self.results if r.stretch == stretch)


def compute_stretch(
    values: np.ndarray, ids: Sequence, pattern: np.ndarray, stretch: float, normalize: bool = True,
    nan_policy: str = "raise",
) -> StretchResult:
    """Pure: distances of every series at one stretch factor, as a table plus summary statistics."""
    dist, loc = dtw_distances(values, pattern, stretch, normalize, nan_policy=nan_policy,
                              return_locations=True, ids=list(ids))
    table = distance_table(ids, dist, loc)
    return StretchResult(stretch, band_halfwidth(stretch, len(pattern)), table, summarize(dist))


def _histogram(result: StretchResult):
    setup_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    d = result.table["distance"].to_numpy()
    ax.hist(d, bins=min(60, max(10, len(d) // 10)), color="#4477aa")
    for name, colour in (("median", "black"), ("p10", "#cc3311")):
        ax.axvline(result.stats[name], color=colour, linestyle="--", label=f"{name} {result.stats[name]:.3g}")
    ax.set_xlabel("DTW distance to the pattern")
    ax.set_ylabel("series")
    ax.set_title(f"stretch {result.stretch:g} (half-width {result.halfwidth} steps), n={len(d)}")
    ax.legend()
    fig.tight_layout()
    return fig


def log_stretch_run(
    result: StretchResult,
    pattern: np.ndarray,
    *,
    normalize: bool,
    nan_policy: str,
    id_column: str | None,
    value_columns: Sequence[str],
    input_example: pd.DataFrame,
    extra_params: dict | None = None,
    nested: bool = False,
) -> StretchResult:
    """Log one stretch factor as an MLflow run (in the active experiment); fills run_id/model_uri."""
    import mlflow

    from tsops.similarity.model import DTWSimilarityModel, input_contract, model_requirements, model_signature

    with mlflow.start_run(run_name=f"stretch={result.stretch:g}", nested=nested) as run:
        mlflow.log_params({
            "stretch_factor": result.stretch,
            "band_halfwidth": result.halfwidth,
            "pattern_length": len(pattern),
            "n_series": len(result.table),
            "normalize": normalize,
            **(extra_params or {}),
        })
        mlflow.log_metrics({
            "median_distance": result.stats["median"],
            "mean_distance": result.stats["mean"],
            "p10_distance": result.stats["p10"],
            "std_distance": result.stats["std"],
            "min_distance": result.stats["min"],
            "p10_median_ratio": result.stats["p10_median_ratio"],
            "n_outliers": float((result.table["zscore"] <= -2).sum()),
        })
        mlflow.log_figure(_histogram(result), "distance_histogram.png")
        mlflow_utils.log_dataframe(outliers(result.table), "zscore_outliers.csv")
        mlflow_utils.log_dataframe(lowest_decile(result.table), "lowest_decile.csv")
        mlflow_utils.log_dataframe(result.table, "distances.parquet")
        model = DTWSimilarityModel(pattern, result.stretch, normalize, id_column, value_columns, nan_policy)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=model,
                signature=model_signature(id_column, value_columns),
                input_example=input_example,
                pip_requirements=model_requirements(),
                metadata={"tsops_input": input_contract(id_column, value_columns)},
            )
        result.run_id = run.info.run_id
        result.model_uri = info.model_uri
        mlflow.set_tag("model_uri", info.model_uri)
    return result


def sweep(
    values: np.ndarray,
    ids: Sequence,
    pattern: np.ndarray,
    stretches: Sequence[float],
    *,
    experiment: str,
    tracking_uri: str | None = None,
    artifact_root: str | None = None,
    id_column: str | None = None,
    value_columns: Sequence[str] | None = None,
    normalize: bool = True,
    nan_policy: str = "raise",
    choose: str = "ratio",
    register: str | None = None,
    extra_params: dict | None = None,
    progress: Callable[[str], None] | None = None,
) -> SweepResult:
    """Compute and log every stretch factor (a parent run when there are several), pick one with
    :func:`choose_stretch` and optionally register its model with alias ``champion``.

    ``tracking_uri``/``artifact_root``: where runs and artifacts go (default ``$MLFLOW_TRACKING_URI`` or
    ``./mlflow.db``, ``./mlartifacts``; ``tsops -p PROJECT similar`` passes the project's)."""
    import mlflow

    if not stretches:
        raise ValueError("give at least one stretch factor")
    value_columns = list(value_columns) if value_columns is not None else [f"t{i}" for i in range(values.shape[1])]
    exp_id = mlflow_utils.get_or_create_experiment(experiment, tracking_uri, artifact_root=artifact_root)
    mlflow.set_experiment(experiment_id=exp_id)
    example = pd.DataFrame(values[: min(5, len(values))], columns=value_columns).astype(np.float64)
    if id_column:
        example.insert(0, id_column, [str(i) for i in list(ids)[: len(example)]])
    results: list[StretchResult] = []
    parent_id = None
    common = dict(normalize=normalize, nan_policy=nan_policy, id_column=id_column,
                  value_columns=value_columns, input_example=example, extra_params=extra_params)

    def one(stretch: float, nested: bool) -> None:
        if progress:
            progress(f"stretch {stretch:g}")
        res = compute_stretch(values, ids, pattern, stretch, normalize, nan_policy)
        results.append(log_stretch_run(res, pattern, nested=nested, **common))

    if len(stretches) == 1:
        one(float(stretches[0]), nested=False)
    else:
        with mlflow.start_run(run_name="stretch-sweep") as parent:
            parent_id = parent.info.run_id
            mlflow.log_params({"stretch_factors": ",".join(f"{s:g}" for s in stretches),
                               "choose_rule": choose, **(extra_params or {})})
            for s in stretches:
                one(float(s), nested=True)
            chosen = choose_stretch({r.stretch: r.stats for r in results}, choose)
            best = next(r for r in results if r.stretch == chosen)
            mlflow.log_params({"chosen_stretch_factor": chosen, "chosen_run_id": best.run_id})
            mlflow.log_metrics({"chosen_p10_median_ratio": best.stats["p10_median_ratio"]})
    chosen = choose_stretch({r.stretch: r.stats for r in results}, choose)
    out = SweepResult(results, chosen, parent_id, exp_id)
    if register:
        best = out.result(chosen)
        version = mlflow_utils.register_model(
            best.model_uri, register, alias="champion",
            tags={"stretch_factor": f"{chosen:g}", "run_id": best.run_id},
        )
        out.registered = {"name": register, "version": str(version.version), "run_id": best.run_id}
    return out
