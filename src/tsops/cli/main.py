"""The ``tsops`` command line: a thin layer over the Python API."""

from __future__ import annotations

import errno
import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="tsops",
    help="Automated MLOps for many irregular time series: ingest, clean, forecast, track, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="Browse the metadata catalog.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

console = Console()
err_console = Console(stderr=True)


class UserError(Exception):
    """An error to report as a message, without a traceback."""


class _State:
    project_dir: Optional[Path] = None  # noqa: UP045 - typer reads these annotations


state = _State()


@app.callback()
def _root(
    project: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--project", "-p", envvar="TSOPS_PROJECT", help="project directory (default: search from cwd)"
    ),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="more logging (-v info, -vv debug)"),
) -> None:
    state.project_dir = project
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    from rich.logging import RichHandler

    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err_console)])


def load():
    from tsops.config import load_project

    return load_project(state.project_dir)


# ---------------------------------------------------------------------------------------------- init
@app.command()
def init(
    directory: Path = typer.Argument(Path("."), help="where to create the project"),
    name: Optional[str] = typer.Option(None, help="project name (default: the directory name)"),  # noqa: UP045
    force: bool = typer.Option(False, "--force", help="overwrite an existing tsops.yaml"),
) -> None:
    """Create a project: a commented tsops.yaml to edit."""
    from tsops.config import init_project

    p = init_project(directory, name=name, overwrite=force)
    console.print(f"[green]wrote[/green] {p}\nEdit its `datasets:` section, then run `tsops ingest`.")


# ---------------------------------------------------------------------------------------------- ingest
@app.command()
def ingest(
    dataset: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--dataset", "-d", help="dataset(s) to ingest (default: every dataset with a source)"
    ),
    follow: bool = typer.Option(False, "--follow", help="keep consuming (Kafka) instead of stopping when caught up"),
    max_batches: Optional[int] = typer.Option(None, help="stop after this many batches"),  # noqa: UP045
    wait: bool = typer.Option(False, "--wait", help="wait for a running ingestion of the dataset instead of exiting"),
) -> None:
    """Ingest new records from each dataset's source into the lake, exactly once.

    One ingestion per dataset at a time: a second one exits with a message naming the running one (exit code
    2), or queues behind it with --wait. A source that cannot be reached, refuses the credentials or has a gap
    (records deleted before they were ingested) fails its dataset with one line; the other datasets still run,
    and the exit code is 1.
    """
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from tsops.ingest.api import ingest as run
    from tsops.ingest.base import GapError, SourceUnavailable
    from tsops.orchestration.lock import LockBusy

    project = load()
    names = dataset or [n for n, d in project.config.datasets.items() if d.source is not None]
    if not names:
        raise UserError("no dataset has a `source:` in tsops.yaml: nothing to ingest")
    reports = []
    failed: list[str] = []
    with Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), console=err_console, transient=False,
    ) as progress:
        for name in names:
            task = progress.add_task(name, total=None, info="")

            def on_batch(r, task=task) -> None:
                progress.update(
                    task,
                    info=f"{r.consumed:,} consumed · {r.accepted:,} accepted · {r.quarantined:,} quarantined"
                    f" · {r.records_per_s:,.0f} rec/s",
                )

            try:
                rep = run(project, name, follow=follow, max_batches=max_batches, on_batch=on_batch, wait=wait)
            except LockBusy as err:
                raise UserError(str(err)) from None
            except (GapError, SourceUnavailable, OSError) as err:
                if isinstance(err, OSError) and not isinstance(err, SourceUnavailable) and \
                        err.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
                    err = f"no space left writing the lake ({err.strerror}): free space, then run " \
                          "`tsops ingest` again (uncommitted files are rolled back, nothing is lost)"
                progress.update(task, total=1, completed=0, info="[red]failed[/red]")
                err_console.print(f"[red]error:[/red] {name}: {err}", soft_wrap=True)
                failed.append(name)
                continue
            progress.update(task, total=1, completed=1)
            reports.append(rep)
    t = Table(title="ingestion")
    for col in ("dataset", "source", "batches", "consumed", "accepted", "quarantined", "observations", "series",
                "rolled back", "rec/s"):
        t.add_column(col, justify="right" if col not in ("dataset", "source") else "left")
    for r in reports:
        t.add_row(r.dataset, r.source, f"{r.batches:,}", f"{r.consumed:,}", f"{r.accepted:,}",
                  f"{r.quarantined:,}", f"{r.observations:,}", f"{r.series:,}", str(r.rolled_back),
                  f"{r.records_per_s:,.0f}")
    console.print(t)
    for r in reports:
        if r.reasons:
            console.print(f"[yellow]{r.dataset}: quarantined by reason[/yellow] " + ", ".join(
                f"{k} ({v})" for k, v in sorted(r.reasons.items(), key=lambda kv: -kv[1])))
        for g in r.gaps:
            console.print(f"[yellow]{r.dataset}: gap skipped (on_gap: skip)[/yellow] {g['part']}: {g['detail']}")
    if failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------- catalog
@catalog_app.command("list")
def catalog_list(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="list this dataset's series"),  # noqa: UP045
    like: Optional[str] = typer.Option(None, help="series id pattern, * as wildcard"),  # noqa: UP045
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Datasets (or, with --dataset, their series) known to the catalog."""
    from tsops.catalog import us_to_iso

    project = load()
    cat = project.catalog()
    if dataset is None:
        rows = cat.list_datasets()
        if as_json:
            console.print_json(json.dumps(rows, default=str))
            return
        t = Table(title="datasets")
        for c in ("dataset", "series", "observations", "first", "last"):
            t.add_column(c)
        for r in rows:
            t.add_row(r["name"], f"{r['series']:,}", f"{r['observations']:,}", us_to_iso(r["first_ts_us"]) or "",
                      us_to_iso(r["last_ts_us"]) or "")
        console.print(t)
        return
    rows = cat.list_series(dataset, like)
    if as_json:
        console.print_json(json.dumps(rows, default=str, ensure_ascii=False))
        return
    t = Table(title=f"series of {dataset}")
    for c in ("series_id", "count", "first", "last", "unit", "period"):
        t.add_column(c)
    for r in rows:
        period = r.get("period_s") or (r.get("quality") or {}).get("period_s")
        t.add_row(r["series_id"], f"{r['count']:,}", r["first_ts"] or "", r["last_ts"] or "",
                  str(r.get("unit") or ""), f"{period:g} s" if period else "")
    console.print(t)


@catalog_app.command("show")
def catalog_show(
    name: str = typer.Argument(..., help="a dataset name, or a series id with --dataset"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d"),  # noqa: UP045
) -> None:
    """The full JSON document of a dataset or of one series."""
    project = load()
    cat = project.catalog()
    if dataset is None:
        doc = cat.get_dataset(name)
        if doc is None:
            raise UserError(f"dataset {name!r} is not in the catalog (see `tsops catalog list`)")
        doc["totals"] = cat.batch_totals(name)
    else:
        doc = cat.get_series(dataset, name)
        if doc is None:
            raise UserError(f"series {name!r} of dataset {dataset!r} is not in the catalog "
                            f"(see `tsops catalog list --dataset {dataset}`)")
    console.print_json(json.dumps(doc, default=str, ensure_ascii=False))


# ---------------------------------------------------------------------------------------------- sql
@app.command()
def sql(
    query: str = typer.Argument(..., help='e.g. "SELECT series_id, count(*) FROM raw_sensors GROUP BY 1"'),
    limit: int = typer.Option(50, help="rows to print"),
    csv: Optional[Path] = typer.Option(None, help="write the full result to this CSV file"),  # noqa: UP045
) -> None:
    """Run DuckDB SQL over the lake: one view per zone and dataset (raw_<dataset>, quarantine_<dataset>, ...)."""
    from tsops.lake.sql import query as run_query

    project = load()
    try:
        df = run_query(project.lake(), query)
    except Exception as err:  # duckdb errors carry the useful message
        if type(err).__module__.startswith("duckdb") or type(err).__module__.startswith("_duckdb"):
            raise UserError(f"SQL error: {err}") from None
        raise
    if csv:
        df.to_csv(csv, index=False)
        console.print(f"wrote {len(df):,} rows to {csv}")
    t = Table(show_lines=False)
    for c in df.columns:
        t.add_column(str(c))
    for row in df.head(limit).itertuples(index=False):
        t.add_row(*[str(v) for v in row])
    console.print(t)
    if len(df) > limit:
        console.print(f"... {len(df) - limit:,} more rows (use --limit or --csv)")


# ---------------------------------------------------------------------------------------------- retention
@app.command()
def retention(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d"),  # noqa: UP045
    dry_run: bool = typer.Option(False, "--dry-run", help="only print what would be removed"),
) -> None:
    """Delete whole day partitions older than each dataset's retention policy."""
    from tsops.lake.retention import apply_retention

    project = load()
    names = [dataset] if dataset else list(project.config.datasets)
    lake, cat = project.lake(), project.catalog()
    t = Table(title="retention" + (" (dry run)" if dry_run else ""))
    for c in ("dataset", "zone", "policy", "cutoff", "partitions removed", "files", "kept"):
        t.add_column(c)
    for name in names:
        d = project.dataset(name)
        for zone, policy in (("raw", d.retention), ("quarantine", d.quarantine_retention or d.retention)):
            if not policy:
                continue
            r = apply_retention(lake, cat, name, policy, zone=zone, dry_run=dry_run)
            t.add_row(name, zone, policy, r.cutoff.isoformat(), str(len(r.removed)), str(r.files), str(r.kept))
            for day in r.removed:
                console.print(f"{'would remove' if dry_run else 'removed'} {zone}/{name}/{day.isoformat()}")
    console.print(t)


# ---------------------------------------------------------------------------------------------- process
@app.command()
def process(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    engine: Optional[str] = typer.Option(None, help="local or spark (default: the project's engine)"),  # noqa: UP045
    full: bool = typer.Option(False, "--full", help="reprocess every day, not only new or changed ones"),
) -> None:
    """Clean the raw zone into the clean zone (new or changed day partitions only); quality docs to the catalog."""
    from tsops.quality.process import process_dataset

    project = load()
    if engine not in (None, "local", "spark"):
        raise UserError(f"--engine must be local or spark, not {engine!r}")
    with console.status(f"processing {dataset} ..."):
        r = process_dataset(project, dataset, engine=engine, full=full)
    if not r.days_processed:
        console.print(f"{dataset}: nothing new to process ({r.days_total} day partitions already clean)")
        return
    console.print(
        f"{dataset}: {len(r.days_processed)} day partition(s) processed on {r.engine} in {r.seconds:.1f} s: "
        f"{r.series} series, {r.rows_in:,} raw rows -> {r.rows_out:,} clean rows "
        f"({r.missing_inserted:,} missing rows inserted, {r.anomalies:,} anomalies treated)")
    t = Table(title="quality per series")
    for c in ("series_id", "period", "missing", "anomalies", "imputation"):
        t.add_column(c)
    for s in project.catalog().list_series(dataset):
        if s.get("period_s") is None and s.get("missing_ratio") is None:
            continue
        t.add_row(s["series_id"], f"{s['period_s']:g} s" if s.get("period_s") else "–",
                  f"{100 * s.get('missing_ratio', 0):.1f}%", f"{100 * s.get('anomaly_ratio', 0):.2f}%",
                  str((s.get("quality") or {}).get("imputation", {}).get("method", "")))
    console.print(t)


@app.command()
def report(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    out: Optional[Path] = typer.Option(None, help="HTML file (default: <project>/reports/<dataset>.html)"),  # noqa: UP045
    days: float = typer.Option(14, help="plot the last DAYS days"),
    max_series: int = typer.Option(12, help="plot at most this many series"),
) -> None:
    """Write one HTML report with plots: quality, periods, correlations, each series cleaned and decomposed."""
    from tsops.analysis.report import build_report

    project = load()
    with console.status("rendering report ..."):
        path = build_report(project, dataset, out, days=days, max_series=max_series)
    console.print(f"[green]wrote[/green] {path}")


hive_app = typer.Typer(help="Spark/Hive metastore tables over the lake.", no_args_is_help=True)
app.add_typer(hive_app, name="hive")


@hive_app.command("register")
def hive_register(
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", "-d"),  # noqa: UP045
) -> None:
    """Register external partitioned tables (tsops.<zone>_<dataset>) over the lake in Spark's metastore."""
    from tsops.engine.spark import get_spark
    from tsops.lake.hive import register_tables

    project = load()
    with console.status("starting Spark ..."):
        spark = get_spark(hive=True, scratch_dir=project.root / ".tsops" / "spark",
                          conf={"spark.ui.showConsoleProgress": "false"})
    tables = register_tables(spark, project.lake(), dataset)
    t = Table(title="registered tables")
    for c in ("table", "partitions", "rows", "location"):
        t.add_column(c)
    for r in tables:
        t.add_row(r.name, str(r.partitions), f"{r.rows:,}", r.location)
    console.print(t)
    console.print(f"query them with Spark SQL, e.g. spark.sql('SELECT * FROM {tables[0].name if tables else 'tsops.raw_x'}')"
                  f" (metastore in {project.root / '.tsops' / 'spark'})")


# ---------------------------------------------------------------------------------------------- pipeline
pipeline_app = typer.Typer(help="The automated pipeline.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")
runs_app = typer.Typer(help="Pipeline and stage runs recorded in the catalog.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@pipeline_app.command("run")
def pipeline_run(
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", "-d", help="default: every dataset"),  # noqa: UP045
    stage: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--stage", "-s", help="run only these stages (ingest process analyze train forecast report)"),
    wait: bool = typer.Option(False, "--wait", help="wait for a running pipeline on the dataset instead of exiting"),
    retrain: bool = typer.Option(False, "--retrain", help="train even when the champion is not due"),
    model: Optional[list[str]] = typer.Option(None, "--model", help="model families to search when training"),  # noqa: UP045
) -> None:
    """Ingest -> process -> analyze -> train (when due) -> forecast -> report, incrementally."""
    from tsops.orchestration.lock import LockBusy
    from tsops.orchestration.pipeline import run_pipeline

    project = load()
    names = dataset or list(project.config.datasets)
    failed = []
    for name in names:
        t = Table(title=f"pipeline: {name}")
        for c in ("stage", "status", "seconds", "detail"):
            t.add_column(c)

        def on_stage(s, res, t=t, name=name) -> None:
            detail = res.get("why") or res.get("error") or ", ".join(
                f"{k}={v}" for k, v in res.items()
                if k not in ("status", "seconds", "changed", "outputs", "monitoring", "quality", "top_pairs")
                and not isinstance(v, dict | list))
            t.add_row(s, res.get("status", "ran"), f"{res.get('seconds', 0):.1f}", str(detail)[:90])
            err_console.print(f"[dim]{name}: {s} {res.get('status', 'ran')} ({res.get('seconds', 0):.1f} s)[/dim]")

        try:
            run = run_pipeline(project, name, stage, wait=wait, force_train=retrain, families=model,
                               on_stage=on_stage)
        except LockBusy as err:
            raise UserError(str(err)) from None
        console.print(t)
        console.print(f"run {run.run_id}: {run.status} in {run.seconds:.1f} s" + (f" ({run.error})" if run.error else ""))
        if run.status != "success":
            failed.append(name)
    if failed:
        raise typer.Exit(1)


@runs_app.command("list")
def runs_list(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d"),  # noqa: UP045
    kind: Optional[str] = typer.Option(None, help="pipeline, ingest, process, train, tune, forecast ..."),  # noqa: UP045
    limit: int = typer.Option(20),
) -> None:
    """The most recent runs."""
    from tsops.catalog import us_to_iso

    project = load()
    cat = project.catalog()
    cat.fail_stale_runs()  # "running" runs whose process on this host is gone
    t = Table(title="runs")
    for c in ("id", "kind", "dataset", "status", "started", "seconds", "error"):
        t.add_column(c)
    for r in cat.list_runs(dataset, kind, limit):
        secs = (r["finished_at"] - r["started_at"]) / 1e6 if r["finished_at"] else None
        t.add_row(str(r["id"]), r["kind"], r["dataset"] or "", r["status"], us_to_iso(r["started_at"]) or "",
                  f"{secs:.1f}" if secs is not None else "", (r["error"] or "")[:60])
    console.print(t)


@runs_app.command("show")
def runs_show(run_id: int = typer.Argument(...)) -> None:
    """One run with its stages and lineage (inputs, quality, model version, outputs)."""
    project = load()
    r = project.catalog().get_run(run_id)
    if r is None:
        raise UserError(f"no run {run_id} (see `tsops runs list`)")
    console.print_json(json.dumps(r, default=str, ensure_ascii=False))


# ---------------------------------------------------------------------------------------------- demo
@app.command()
def demo(
    directory: Path = typer.Option(Path("demo"), "--dir", help="project directory for the demo"),
    days: float = typer.Option(2.0, help="days of simulated sensor traffic"),
    seed: int = typer.Option(7),
    kafka: bool = typer.Option(True, help="go through librdkafka's mock Kafka cluster (else files)"),
    pipeline: bool = typer.Option(True, help="run the pipeline (clean, train, forecast, report, serve)"),
) -> None:
    """Simulated sensors -> Kafka -> lake -> clean -> Ray Tune -> champion -> forecasts -> report -> HTTP answer."""
    from tsops.orchestration.demo import run_demo

    run_demo(directory, days=days, seed=seed, use_kafka=kafka, pipeline=pipeline, console=console)


def _register_commands() -> None:
    """Commands that live in their own modules (each keeps its heavy imports inside the command)."""
    from tsops.cli.airflow import app as airflow_app
    from tsops.cli.forecasting import forecast, serve, train, tune
    from tsops.cli.produce import produce
    from tsops.cli.quality import app as quality_app
    from tsops.cli.similar import similar

    app.command("produce")(produce)
    app.command("similar")(similar)
    app.command("train")(train)
    app.command("tune")(tune)
    app.command("forecast")(forecast)
    app.command("serve")(serve)
    app.add_typer(airflow_app, name="airflow")
    app.add_typer(quality_app, name="quality")


_register_commands()


def main() -> None:
    from pydantic import ValidationError

    from tsops.config import ConfigError

    try:
        app()
    except (UserError, ConfigError, FileNotFoundError, KeyError, ValueError, ValidationError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        err_console.print(f"[red]error:[/red] {msg}")
        sys.exit(2)


if __name__ == "__main__":
    main()
