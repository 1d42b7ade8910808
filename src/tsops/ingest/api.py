"""Ingestion as users call it: build the configured source of a dataset and run it into the lake."""

from __future__ import annotations

from collections.abc import Callable

from tsops.config import ConfigError, FileSourceConfig, KafkaSourceConfig, Project, SqlSourceConfig
from tsops.ingest.base import Source
from tsops.ingest.runner import IngestReport, run_ingest
from tsops.orchestration.lock import DatasetLock


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

        return SqlPollingSource(cfg, name=f"sql:{cfg.table}", timezone=cfg.timezone, epoch_unit=cfg.epoch_unit,
                                follow=follow, poll_interval_s=cfg.poll_interval_s)
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
    wait: bool = False,
) -> IngestReport:
    """Ingest new records of ``dataset`` from its source (or ``source``) into the lake, exactly once.

    Holds the dataset's ingest lock (:class:`~tsops.orchestration.lock.DatasetLock`, kind ``ingest``) for the
    whole run: a second ingestion of the same dataset in the project raises
    :class:`~tsops.orchestration.lock.LockBusy` naming the holder, or with ``wait`` queues behind it. (Runs
    interleaving would roll back each other's uncommitted files.) Runs left "running" by a killed process on
    this host are marked failed first. A SQL source configured with ``to: kafka`` publishes to its Kafka
    topic instead (see :func:`publish_sql`).
    """
    cfg = project.dataset(dataset).source
    with DatasetLock(project.root, dataset, wait=wait, kind="ingest"):
        if source is None and isinstance(cfg, SqlSourceConfig) and cfg.to == "kafka":
            return _publish_sql(project, dataset, follow=follow)
        spec = project.dataset(dataset).series
        src = source or make_source(project, dataset, follow=follow)
        catalog = project.catalog()
        try:
            catalog.fail_stale_runs(dataset=dataset)
            return run_ingest(
                dataset, spec, src, project.lake(), catalog, max_batches=max_batches, on_batch=on_batch
            )
        finally:
            catalog.close()


def publish_sql(project: Project, dataset: str, *, follow: bool = False, wait: bool = False) -> IngestReport:
    """:func:`_publish_sql` under the dataset's ingest lock."""
    with DatasetLock(project.root, dataset, wait=wait, kind="ingest"):
        return _publish_sql(project, dataset, follow=follow)


def _publish_sql(project: Project, dataset: str, *, follow: bool = False) -> IngestReport:
    """Poll the dataset's SQL table and publish new rows to Kafka as Connect envelopes (at-least-once).

    The poll watermark is stored in the catalog after every flushed batch, under the source name
    ``sql->kafka:<table>``; a Kafka source on the topic then ingests the envelopes into the lake.
    """
    import time

    from tsops.ingest.sql import SqlPollingSource, SqlToKafka

    cfg = project.dataset(dataset).source
    assert isinstance(cfg, SqlSourceConfig)
    name = f"sql->kafka:{cfg.table}"
    catalog = project.catalog()
    report = IngestReport(dataset=dataset, source=name)
    t0 = time.perf_counter()
    run_id = catalog.start_run("publish", dataset, {"source": name, "topic": cfg.kafka_topic})
    source = SqlPollingSource(cfg, name=name, timezone=cfg.timezone, epoch_unit=cfg.epoch_unit, follow=follow,
                              poll_interval_s=cfg.poll_interval_s)
    bridge = SqlToKafka(cfg, source=source, key_columns=cfg.kafka_key_columns)
    gaps: list[dict] = []

    def on_gap(g, action: str) -> None:
        entry = {"source": name, "action": action, "run": run_id, **g.as_dict()}
        gaps.append(entry)
        catalog.add_audit("ingest_gap", dataset, entry)

    source.gap_sink = on_gap
    try:
        bridge.run(catalog.get_positions(dataset, name),
                   on_commit=lambda pos: catalog.set_positions(dataset, name, pos))
        report.consumed = report.accepted = bridge.published
        report.gaps = gaps
        report.seconds = time.perf_counter() - t0
        catalog.finish_run(run_id, "success", report.as_dict())
    except BaseException as err:
        report.gaps = gaps
        catalog.finish_run(run_id, "failed", report.as_dict(), error=f"{type(err).__name__}: {err}")
        raise
    finally:
        catalog.close()
    return report
