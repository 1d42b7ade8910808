"""MLflow side of forecasting: experiments, trial runs, registering a winner and moving ``champion``.

The registered model of dataset ``X`` is ``tsops-X``. Each version carries tags with its backtest score, the
metric, and a fingerprint of the data and backtest specification. A new version takes the ``champion`` alias
only when its score beats the current champion's score *on the same backtest*: the stored score when the
fingerprints match, otherwise the champion's configuration is re-scored on the new backtest. The replaced
champion keeps its version and gets the ``previous`` alias; a version that does not win gets ``challenger``.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

log = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS = "previous"
CHALLENGER = "challenger"
TAG_SCORE = "tsops.backtest_score"
TAG_METRIC = "tsops.backtest_metric"
TAG_FINGERPRINT = "tsops.backtest_fingerprint"
TAG_SPEC = "tsops.backtest_spec"
TAG_MODEL = "tsops.model"
TAG_PARAMS = "tsops.params"
TAG_DATASET = "tsops.dataset"
TAG_SEASON = "tsops.season"


def registered_name(dataset: str, name: str | None = None) -> str:
    """The registered model name of a dataset (``tsops-<dataset>`` unless given)."""
    return name or f"tsops-{dataset}"


def setup_tracking(project, dataset: str) -> str:
    """Point MLflow at the project's tracking URI; return the id of experiment ``tsops-<dataset>`` (created
    with an absolute artifact location under the project's artifact root)."""
    from tsops.tracking.mlflow_utils import get_or_create_experiment

    return get_or_create_experiment(f"tsops-{dataset}", tracking_uri=project.tracking_uri,
                                    artifact_root=project.artifacts_uri)


def champion_version(client: MlflowClient, name: str, alias: str = CHAMPION):
    """The model version holding ``alias`` (None if the model or alias does not exist)."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def beats(new_score: float, champion_score: float | None, min_improvement: float = 0.0) -> bool:
    """Does a new score (lower is better) beat the champion's by more than ``min_improvement`` (relative)?"""
    if not math.isfinite(new_score):
        return False
    if champion_score is None or not math.isfinite(champion_score):
        return True
    return new_score < champion_score * (1.0 - min_improvement)


@dataclass
class Promotion:
    """What happened to a newly registered version."""

    name: str
    version: str
    score: float
    champion_before: str | None
    champion_score: float | None
    promoted: bool
    rescored: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def log_table_artifact(client: MlflowClient, run_id: str, df: pd.DataFrame, file_name: str) -> None:
    """Write ``df`` as CSV into the run's artifacts."""
    with tempfile.TemporaryDirectory(prefix="tsops-art-") as tmp:
        p = Path(tmp) / file_name
        df.to_csv(p, index=False)
        client.log_artifact(run_id, str(p))


def log_season(client: MlflowClient, run_id: str, season: dict[str, Any],
               per_series: dict[str, list[int]] | None = None) -> None:
    """Record the season a run used and where it came from ('profile' or 'override') as run params (None is
    logged as 'none'); when series have different seasons, the per-series lengths as ``seasons.json``."""
    for k, v in season.items():
        client.log_param(run_id, k, "none" if v is None else v)
    if per_series:
        client.log_dict(run_id, {k: list(v) for k, v in sorted(per_series.items())}, "seasons.json")


def log_train_logs(client: MlflowClient, run_id: str, train_logs: list[list[list[dict[str, float]]]]) -> int:
    """Per-epoch metrics of the neural fits: ``train_loss``/``val_loss`` of window ``k`` as
    ``window<k>/train_loss`` with the training step as MLflow step; returns how many values were logged."""
    from mlflow.entities import Metric

    batch = []
    ts = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
    for k, fits in enumerate(train_logs):
        for fit in fits:
            for rec in fit:
                for key in ("train_loss", "val_loss"):
                    if key in rec and math.isfinite(rec[key]):
                        batch.append(Metric(f"window{k}/{key}", float(rec[key]), ts, int(rec["step"])))
    for i in range(0, len(batch), 900):
        client.log_batch(run_id, metrics=batch[i: i + 900])
    return len(batch)


def tag_version(client: MlflowClient, name: str, version: str, tags: dict[str, Any]) -> None:
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v if isinstance(v, str) else json.dumps(v, default=str))


def promote_if_better(client: MlflowClient, name: str, version: str, score: float, fingerprint: str,
                      rescore=None, min_improvement: float = 0.0) -> Promotion:
    """Give ``version`` the champion alias if it beats the current champion on the same backtest.

    ``rescore(model_uri) -> float`` re-scores the champion when its backtest fingerprint differs from
    ``fingerprint`` (without it such a champion counts as beaten only on its stored score).
    """
    champ = champion_version(client, name)
    champ_score: float | None = None
    rescored = False
    if champ is not None and str(champ.version) == str(version):
        return Promotion(name, str(version), score, str(version), score, True, False)
    if champ is not None:
        tags = champ.tags or {}
        if tags.get(TAG_FINGERPRINT) == fingerprint and TAG_SCORE in tags:
            champ_score = float(tags[TAG_SCORE])
        elif rescore is not None:
            champ_score = float(rescore(f"models:/{name}/{champ.version}"))
            rescored = True
            log.info("re-scored champion %s v%s on the new backtest: %.4f", name, champ.version, champ_score)
        elif TAG_SCORE in tags:
            champ_score = float(tags[TAG_SCORE])
    promoted = beats(score, champ_score, min_improvement)
    if promoted:
        if champ is not None:
            client.set_registered_model_alias(name, PREVIOUS, champ.version)
        client.set_registered_model_alias(name, CHAMPION, version)
    else:
        client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_model_version_tag(name, version, "tsops.champion_score_same_backtest",
                                 "none" if champ_score is None else repr(champ_score))
    log.info("%s v%s score %.4f vs champion %s (%s): %s", name, version, score,
             None if champ is None else champ.version, champ_score, "promoted" if promoted else "kept champion")
    return Promotion(name, str(version), score, None if champ is None else str(champ.version), champ_score,
                     promoted, rescored)
