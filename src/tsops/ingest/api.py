"""Ingestion as users call it: build the configured source of a dataset and run it into the lake."""

from __future__ import annotations

from collections.abc import Callable

from tsops.config import ConfigError, FileSourceConfig, KafkaSourceConfig, Project, SqlSourceConfig
from tsops.ingest.base import Source
from tsops.ingest.runner import IngestReport, run_ingest


def make_source(project: Project, dataset: str, *, follow: bool = False) -> Source:
    """The source configured for ``dataset`` in the project file."""
    cfg = project.dataset(dataset).source
    if cfg is None:
        raise ConfigError(f"dataset {dataset!r} has no `source:` in {project.root / 'tsops.yaml'}")
    if isinstance(cfg, KafkaSourceConfig):
        from tsops.ingest.kafka import KafkaSource

        return KafkaSource(cfg, follow=follow)
    if isinstance(cfg, SqlSourceConfig):
        from tsops.ingest.sql import SqlPollingSource

        return SqlPollingSource(cfg, name=f"sql:{cfg.table}")
    if isinstance(cfg, FileSourceConfig):
        from tsops.ingest.files import FileSource

        return FileSource(cfg, project.root, name="files")
    raise ConfigError(f"dataset {dataset!r}: unsupported source {cfg!r}")


def ingest(
    project: Project,
    dataset: str,
    *,
    source: Source | None = None,
    follow: bool = False,
    max_batches: int | None = None,
    on_batch: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Ingest new records of ``dataset`` from its source (or ``source``) into the lake, exactly once."""
    spec = project.dataset(dataset).series
    src = source or make_source(project, dataset, follow=follow)
    catalog = project.catalog()
    try:
        return run_ingest(
            dataset, spec, src, project.lake(), catalog, max_batches=max_batches, on_batch=on_batch
        )
    finally:
        catalog.close()
