"""Loading the champion model of a dataset from the MLflow registry, and keeping it current.

:class:`ChampionCache` holds one loaded model per dataset and looks the alias up again at most every
``check_interval`` seconds (0: on every request); when the alias points to another version, that version is
loaded and replaces the old one (requests in flight keep the model they started with).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tsops.models.base import Forecaster

log = logging.getLogger(__name__)


class NoChampionError(LookupError):
    """The registered model or its alias does not exist yet."""


@dataclass
class LoadedModel:
    dataset: str
    name: str
    version: str
    alias: str
    run_id: str | None
    model: Forecaster
    loaded_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        from tsops.tracking.forecast_pyfunc import default_horizon, max_horizon

        m = self.model
        return {"dataset": self.dataset, "name": self.name, "version": self.version, "alias": self.alias,
                "run_id": self.run_id, "model": m.name, "params": m.params,
                "n_series": 0 if m.history_ is None else len(m.history_),
                "freq": None if m.history_ is None or m.history_.freq is None else str(m.history_.freq),
                "default_horizon": default_horizon(m), "max_horizon": max_horizon(m),
                "intervals": None if m.conformal_ is None else [int(x) for x in m.conformal_.levels],
                "season_length": m.params.get("season_length"),
                "series_seasons": len(m.params.get("series_seasons") or {}) or None,
                "loaded_at": self.loaded_at}


def alias_version(client, name: str, alias: str):
    """The ModelVersion behind ``name@alias`` or raise :class:`NoChampionError`."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise NoChampionError(f"registered model {name!r} has no {alias!r} alias yet: run `tsops train` or "
                              f"`tsops tune` for this dataset first ({exc.message if hasattr(exc, 'message') else exc})"
                              ) from None


def load_version(dataset: str, name: str, version: str, alias: str, run_id: str | None) -> LoadedModel:
    import mlflow.pyfunc

    from tsops.tracking.forecast_pyfunc import forecaster_from_pyfunc

    pm = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    log.info("loaded %s version %s (%s)", name, version, alias)
    return LoadedModel(dataset, name, str(version), alias, run_id, forecaster_from_pyfunc(pm))


def load_champion(project, dataset: str, alias: str = "champion", name: str | None = None) -> LoadedModel:
    """Load ``tsops-<dataset>@<alias>`` (the version is resolved once, then loaded by number)."""
    import mlflow
    from mlflow import MlflowClient

    from tsops.tracking.forecast_registry import registered_name

    project.dataset(dataset)
    mlflow.set_tracking_uri(project.tracking_uri)
    name = registered_name(dataset, name)
    mv = alias_version(MlflowClient(project.tracking_uri), name, alias)
    return load_version(dataset, name, str(mv.version), alias, mv.run_id)


class ChampionCache:
    """The champion of each dataset, reloaded when its alias moves."""

    def __init__(self, project, alias: str = "champion", check_interval: float = 10.0) -> None:
        if check_interval < 0:
            raise ValueError(f"check_interval must be >= 0 seconds (got {check_interval})")
        self.project, self.alias, self.check_interval = project, alias, check_interval
        self._models: dict[str, LoadedModel] = {}
        self._checked: dict[str, float] = {}
        self._lock = threading.Lock()
        self._client = None
        self.reloads = 0

    def client(self):
        if self._client is None:
            import mlflow
            from mlflow import MlflowClient

            mlflow.set_tracking_uri(self.project.tracking_uri)
            self._client = MlflowClient(self.project.tracking_uri)
        return self._client

    def get(self, dataset: str) -> LoadedModel:
        """The current champion of ``dataset`` (raises NoChampionError / ConfigError)."""
        from tsops.tracking.forecast_registry import registered_name

        now = time.monotonic()
        cur = self._models.get(dataset)
        if cur is not None and now - self._checked.get(dataset, 0.0) < self.check_interval:
            return cur
        with self._lock:
            cur = self._models.get(dataset)
            if cur is not None and now - self._checked.get(dataset, 0.0) < self.check_interval:
                return cur
            self.project.dataset(dataset)
            name = registered_name(dataset)
            mv = alias_version(self.client(), name, self.alias)
            if cur is None or cur.version != str(mv.version):
                if cur is not None:
                    log.info("%s@%s moved from version %s to %s: reloading", name, self.alias, cur.version,
                             mv.version)
                    self.reloads += 1
                cur = load_version(dataset, name, str(mv.version), self.alias, mv.run_id)
                self._models[dataset] = cur
            self._checked[dataset] = time.monotonic()
            return cur

    def loaded(self) -> dict[str, LoadedModel]:
        return dict(self._models)
