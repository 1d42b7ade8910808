"""Reusable MLflow helpers: tracking URI resolution, experiments with absolute artifact locations,
DataFrame artifacts, registration with an alias.

``import mlflow`` costs seconds, so every function imports it lazily; importing this module is cheap.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"


def resolve_tracking_uri(explicit: str | None = None, cwd: str | os.PathLike | None = None) -> str:
    """``explicit`` if given, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<abs cwd>/mlflow.db``."""
    if explicit:
        return explicit
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    base = Path(cwd) if cwd is not None else Path.cwd()
    return f"sqlite:///{(base / DEFAULT_DB).resolve()}"


def default_artifact_root(cwd: str | os.PathLike | None = None) -> str:
    """``file://<abs cwd>/mlartifacts`` (absolute, so runs do not depend on the working directory)."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    return (base / DEFAULT_ARTIFACT_DIR).resolve().as_uri()


def _artifact_location(root: str, experiment: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("_") or "experiment"
    if "://" in root:
        return root.rstrip("/") + "/" + slug
    return (Path(root) / slug).resolve().as_uri()


def get_or_create_experiment(
    name: str,
    tracking_uri: str | None = None,
    artifact_root: str | None = None,
    cwd: str | os.PathLike | None = None,
) -> str:
    """Experiment id of ``name``, created with an absolute artifact location if missing.

    New experiments store artifacts under ``<artifact_root>/<name>`` (default root: ``<cwd>/mlartifacts``).
    A deleted experiment of that name is restored. Also makes ``tracking_uri`` the active one.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri, cwd)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = _artifact_location(artifact_root or default_artifact_root(cwd), name)
        exp_id = client.create_experiment(name, artifact_location=location)
        log.info("created MLflow experiment %r (id %s) with artifacts in %s", name, exp_id, location)
        return exp_id
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
        log.info("restored deleted MLflow experiment %r", name)
    return exp.experiment_id


def log_dataframe(
    df: pd.DataFrame,
    artifact_file: str,
    fmt: Literal["csv", "parquet"] | None = None,
    run_id: str | None = None,
    index: bool = False,
) -> str:
    """Log ``df`` as an artifact file (``dir/name.csv`` or ``.parquet``) of the active run or ``run_id``.

    The format follows ``fmt`` or the file suffix. Returns the artifact path.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    path = Path(artifact_file)
    fmt = fmt or ("parquet" if path.suffix == ".parquet" else "csv")
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / path.name
        if fmt == "csv":
            df.to_csv(local, index=index)
        else:
            df.to_parquet(local, index=index)
        parent = str(path.parent) if str(path.parent) not in ("", ".") else None
        if run_id is None:
            mlflow.log_artifact(str(local), artifact_path=parent)
        else:
            MlflowClient().log_artifact(run_id, str(local), artifact_path=parent)
    return str(path)


def log_figure_file(fig: Any, artifact_file: str) -> str:
    """Log a matplotlib figure as an image artifact of the active run (PNG by suffix)."""
    import mlflow

    mlflow.log_figure(fig, artifact_file)
    return artifact_file


def register_model(
    model_uri: str,
    name: str,
    alias: str | None = "champion",
    tags: dict[str, str] | None = None,
    tracking_uri: str | None = None,
) -> Any:
    """Register ``model_uri`` (``runs:/...`` or ``models:/m-...``) as a new version of ``name`` and point
    ``alias`` at it. Returns the ModelVersion; load it with ``models:/<name>@<alias>``."""
    import mlflow
    from mlflow.tracking import MlflowClient

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    version = mlflow.register_model(model_uri, name, tags=tags)
    if alias:
        MlflowClient().set_registered_model_alias(name, alias, version.version)
        log.info("registered %s as %s version %s, alias %s", model_uri, name, version.version, alias)
    return version
