"""The ``tsops`` command line: a thin layer over the Python API."""

from __future__ import annotations

import errno
import json
import logging
import re
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tsops.cli import ui

app = typer.Typer(
    name="tsops",
    help="Automated MLOps for many irregular time series: ingest, clean, forecast, track, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="Browse the metadata catalog.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

console = ui.console
err_console = ui.err_console


class UserError(Exception):
    """An error to report as a message, without a traceback."""


class _State:
    project_dir: Optional[Path] = None  # noqa: UP045 - typer reads these annotations
    verbose: int = 0


state = _State()


class _MaskFilter(logging.Filter):
    """Mask credentials in every log record; keep tracebacks (masked) only with ``-v``."""

    def filter(self, record: logging.LogRecord) -> bool:
        import traceback

        from tsops.masking import mask_secrets

        msg = mask_secrets(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            if state.verbose:
                msg += "\n" + mask_secrets("".join(traceback.format_exception(*record.exc_info))).rstrip()
            else:
                err = record.exc_info[1]
                msg += f": {type(err).__name__}: {mask_secrets(err)} (-v shows the traceback)"
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = msg, ()
        return True


@app.callback()
def _root(
    project: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--project", "-p", envvar="TSOPS_PROJECT", help="project directory (default: search from cwd)"
    ),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="show library logs here (-v info, -vv debug); else they go to a log file"),
) -> None:
    state.project_dir = project
    state.verbose = verbose
    ui.setup_logging(verbose, project)
    for handler in logging.getLogger().handlers:  # credentials never reach a terminal or a log file
        handler.addFilter(_MaskFilter())


def load(path: Path | None = None):
    """The project of ``path``, else of ``-p DIR`` ($TSOPS_PROJECT), else the one at or above the cwd."""
    from tsops.config import PROJECT_FILE, load_project

    p = path if path is not None else state.project_dir
    if p is not None:
        p = Path(p).expanduser()
        if not p.exists():
            raise UserError(f"project directory {p} does not exist: create a project there with "
                            f"`tsops init {p}`, or pass -p with an existing project directory")
        if p.is_dir() and not (p / PROJECT_FILE).is_file():
            raise UserError(f"{p} has no {PROJECT_FILE}: run `tsops init {p}` to create a project there")
    return load_project(p)


def known_datasets(project) -> list[str]:
    """Datasets of tsops.yaml, of the catalog and of the lake's raw zone, sorted."""
    names = set(project.config.datasets)
    cat = project.catalog()
    try:
        names |= {d["name"] for d in cat.list_datasets()}
    finally:
        cat.close()
    names |= set(project.lake().datasets("raw"))
    return sorted(names)


def require_dataset(project, name: str) -> None:
    """A clear error (exit 2) naming an unknown dataset, the close matches and the known ones."""
    import difflib

    known = known_datasets(project)
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UserError(f"dataset {name!r} is not in {project.root / 'tsops.yaml'}, the catalog or the lake.{hint} "
                    f"Known datasets: {', '.join(known) or 'none (add one to tsops.yaml)'}")


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
        t = ui.table("datasets", ("dataset", "series", "observations", "first", "last"),
                     numeric=("series", "observations"))
        for r in rows:
            t.add_row(r["name"], f"{r['series']:,}", f"{r['observations']:,}", us_to_iso(r["first_ts_us"]) or "",
                      us_to_iso(r["last_ts_us"]) or "")
        console.print(t)
        return
    rows = cat.list_series(dataset, like)
    if as_json:
        console.print_json(json.dumps(rows, default=str, ensure_ascii=False))
        return
    t = ui.table(f"series of {dataset}", ("series_id", "count", "first", "last", "unit", "period"),
                 numeric=("count",))
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
            require_dataset(project, name)
            raise UserError(f"dataset {name!r} is in tsops.yaml but not in the catalog yet: run "
                            f"`tsops ingest -d {name}` first")
        doc["totals"] = cat.batch_totals(name)
    else:
        doc = cat.get_series(dataset, name)
        if doc is None:
            import difflib

            ids = [s["series_id"] for s in cat.list_series(dataset)]
            if not ids and cat.get_dataset(dataset) is None:
                require_dataset(project, dataset)
            # ids differ from what a person types mostly by spaces: compare with and without them
            squeeze = {i.replace(" ", ""): i for i in ids}
            close = list(dict.fromkeys(
                difflib.get_close_matches(name, ids, n=3, cutoff=0.6)
                + [squeeze[c] for c in difflib.get_close_matches(name.replace(" ", ""), list(squeeze), n=3,
                                                                  cutoff=0.6)]))[:3]
            hint = ("; did you mean " + ", ".join(f'"{c}"' for c in close) + "?") if close else ""
            raise UserError(f"series {name!r} of dataset {dataset!r} is not in the catalog{hint} "
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
    dataset: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--dataset", "-d", help="dataset(s) to prune (default: every dataset)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="only print what would be removed"),
    wait: bool = typer.Option(False, "--wait", help="wait for a running pipeline on the dataset instead of exiting"),
) -> None:
    """Delete day partitions older than each dataset's per-zone retention policy; update the catalog."""
    from tsops.lake.retention import retain_dataset
    from tsops.orchestration.lock import DatasetLock, LockBusy

    project = load()
    names = dataset or list(project.config.datasets)
    t = Table(title="retention: day partitions" + (" (dry run)" if dry_run else ""))
    for c in ("dataset", "zone", "keep", "cutoff", "removed", "rows", "series", "kept"):
        t.add_column(c, justify="left" if c in ("dataset", "zone", "keep", "cutoff") else "right", overflow="fold",
                     min_width={"zone": 10, "cutoff": 10}.get(c))
    for name in names:
        policy = project.dataset(name).retention
        if not policy.zones():
            t.add_row(name, "every", "forever", "", "0", "0", "", "")
            continue
        try:
            with DatasetLock(project.root, name, wait=wait):  # no pipeline stage reads what is being deleted
                results = retain_dataset(project, name, dry_run=dry_run)
        except LockBusy as err:
            raise UserError(str(err)) from None
        for r in results:
            t.add_row(name, r.zone, r.policy, r.cutoff.isoformat(), str(len(r.removed)), f"{r.rows:,}",
                      "" if r.zone != "raw" or dry_run else str(r.series_updated), str(r.kept))
            for day in r.removed:
                console.print(f"{'would remove' if dry_run else 'removed'} {r.zone}/{name}/{day.isoformat()}")
    console.print(t)


@app.command()
def audit(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="only this dataset's entries"),  # noqa: UP045
    action: Optional[str] = typer.Option(  # noqa: UP045
        None, "--action", "-a", help="only this action (e.g. retention)"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="show the most recent N entries"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """The audit log: what was deleted or skipped, when, and why (retention, source gaps ...)."""
    from rich.markup import escape

    from tsops.catalog import us_to_iso

    project = load()
    cat = project.catalog()
    try:
        rows = cat.list_audit(action=action, dataset=dataset, limit=limit)
    finally:
        cat.close()
    if as_json:
        console.print_json(json.dumps([{**r, "at": us_to_iso(r["at"])} for r in rows], default=str,
                                      ensure_ascii=False))
        return
    t = Table(title="audit log" + (f" of {dataset}" if dataset else "") + (f" ({action})" if action else ""))
    for c in ("id", "at (UTC)", "action", "dataset", "detail"):
        t.add_column(c, justify="right" if c == "id" else "left", overflow="fold")
    for r in rows:
        at = (us_to_iso(r["at"]) or "")[:19].replace("T", " ")
        t.add_row(str(r["id"]), at, escape(r["action"]), escape(r["dataset"] or ""), escape(_audit_detail(r["detail"])))
    console.print(t)
    if not rows:
        console.print("no audit entries" + (" match" if dataset or action else " yet"))


def _audit_detail(detail: object) -> str:
    """A compact one-line summary of an audit entry's detail (long lists shortened to their ends and length)."""
    from tsops.masking import mask_secrets

    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            return mask_secrets(detail)
    if not isinstance(detail, dict):
        return mask_secrets(json.dumps(detail, default=str, ensure_ascii=False))
    parts = []
    for k, v in detail.items():
        if isinstance(v, list) and len(v) > 3:
            v = f"{len(v)} [{v[0]} .. {v[-1]}]"
        elif isinstance(v, list | dict):
            v = json.dumps(v, default=str, ensure_ascii=False)
        parts.append(f"{k}={v}")
    text = ", ".join(parts)  # day partitions read as dates
    text = re.sub(r"year=(\d{4})/month=(\d{2})/day=(\d{2})", r"\1-\2-\3", text)
    return mask_secrets(text)


# ---------------------------------------------------------------------------------------------- process
@app.command()
def process(
    dataset: str = typer.Option(..., "--dataset", "-d"),
    engine: Optional[str] = typer.Option(None, help="local or spark (default: the project's engine)"),  # noqa: UP045
    full: bool = typer.Option(False, "--full", help="reprocess every day, not only new or changed ones"),
) -> None:
    """Clean the raw zone into the clean zone (new or changed day partitions only); quality docs to the catalog."""
    from tsops.quality.process import process_dataset, processed_days

    project = load()
    if engine not in (None, "local", "spark"):
        raise UserError(f"--engine must be local or spark, not {engine!r}")
    require_dataset(project, dataset)
    lake = project.lake()
    n_days = len(lake.days("raw", dataset))
    if not n_days:
        raise UserError(f"dataset {dataset!r} has no raw data in the lake: run `tsops ingest -d {dataset}` first")
    todo = n_days if full else max(1, n_days - len(processed_days(project, dataset)))
    if (engine or project.config.engine) == "spark":
        start_spark(project)
    with ui.step(f"cleaning {dataset}", total=todo, info="day partitions") as (bar, task):
        def on_window(rep) -> None:
            done = len(rep.days_processed)
            bar.update(task, completed=done, total=max(todo, done), info=f"days up to {rep.days_processed[-1]}")

        r = process_dataset(project, dataset, engine=engine, full=full, on_window=on_window)
    if not r.days_processed:
        console.print(f"{dataset}: nothing new to process ({r.days_total} day partitions already clean)")
        return
    console.print(
        f"{dataset}: {len(r.days_processed)} day partition(s) processed on {r.engine} in {r.seconds:.1f} s: "
        f"{r.series} series, {r.rows_in:,} raw rows -> {r.rows_out:,} clean rows")
    console.print(
        f"  {r.observed_out:,} observed + {r.missing_inserted:,} missing rows inserted; "
        f"{r.duplicates_merged:,} duplicate rows merged; {r.deferred_future:,} future rows wait in raw"
        + (f" (days {', '.join(r.deferred_days)})" if r.deferred_days else "")
        + f"; {r.anomalies:,} anomalies flagged, {r.values_changed:,} values changed (originals in raw_value)"
        + ("" if r.reconciled else "  [red]NOT reconciled[/red]"))
    from tsops.analysis.plotting import format_duration

    t = ui.table("series profiles (whole history)",
                 ("series_id", "period", "season", "rows", "missing", "anomalies", "imputation"),
                 numeric=("rows", "missing", "anomalies"))
    for sid, p in project.catalog().get_profiles(dataset).items():
        season = ", ".join(f"{n} {k}" for n, k in zip(p.season_names, p.season_lengths, strict=False)) or "none"
        t.add_row(sid, format_duration(p.period_seconds), season, f"{p.n_rows:,}",
                  f"{100 * (p.missing_ratio or 0):.1f}%", f"{100 * (p.anomaly_ratio or 0):.2f}%",
                  p.imputation_method or "")
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
    require_dataset(project, dataset)
    with ui.step(f"rendering the report of {dataset}"):
        path = build_report(project, dataset, out, days=days, max_series=max_series)
    console.print(f"[green]wrote[/green] {path}")


hive_app = typer.Typer(help="Spark/Hive metastore tables over the lake.", no_args_is_help=True)
app.add_typer(hive_app, name="hive")


@hive_app.command("register")
def hive_register(
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", "-d"),  # noqa: UP045
) -> None:
    """Register external partitioned tables (tsops.<zone>_<dataset>) over the lake in Spark's metastore."""
    from tsops.lake.hive import ZONES, register_tables

    project = load()
    for d in dataset or []:
        require_dataset(project, d)
    spark = start_spark(project, hive=True)
    lake = project.lake()
    n = sum(1 for z in ZONES for ds in lake.datasets(z) if (dataset is None or ds in dataset) and lake.files(z, ds))
    with ui.step("registering tables", total=n, info="") as (bar, task), ui.LogTap(
            "tsops.lake.hive", r"registered (\S+)", lambda rec, m: bar.update(task, advance=1, info=m.group(1)),
            level=logging.INFO):
        tables = register_tables(spark, lake, dataset)
    t = Table(title="registered tables")
    for c in ("table", "partitions", "rows", "location"):
        t.add_column(c)
    for r in tables:
        t.add_row(r.name, str(r.partitions), f"{r.rows:,}", r.location)
    console.print(t)
    console.print(f"query them with Spark SQL, e.g. spark.sql('SELECT * FROM {tables[0].name if tables else 'tsops.raw_x'}')"
                  f" (metastore in {project.root / '.tsops' / 'spark'})")


def start_spark(project, hive: bool = False):
    """Start (or reuse) the SparkSession with a progress line; the JVM's log4j output goes to the log file."""
    from tsops.engine.spark import get_spark

    with ui.jvm_output_to_log(), ui.step("starting Spark (JVM, local[2])", info=""):
        return get_spark(hive=hive, scratch_dir=project.root / ".tsops" / "spark",
                         conf={"spark.ui.showConsoleProgress": "false"})


# ---------------------------------------------------------------------------------------------- resample
@app.command()
def resample(
    dataset: str = typer.Option(..., "--dataset", "-d", help="source dataset (its clean zone, else raw)"),
    every: str = typer.Option(..., "--every", help="grid step: 30m, 1h, 1d ..."),
    agg: str = typer.Option("mean", "--agg", help="mean, sum, min, max, median, first or last per bin"),
    to: Optional[str] = typer.Option(None, "--to", help="name of the new dataset (default: <dataset>_<every>)"),  # noqa: UP045
    force: bool = typer.Option(False, "--force", help="replace the derived dataset if it exists"),
) -> None:
    """Aggregate every series of a dataset onto a regular grid into a new dataset (raw zone, with lineage)."""
    from tsops.analysis.derive import resample_dataset

    project = load()
    require_dataset(project, dataset)
    try:
        with ui.step(f"resampling {dataset} to {every} ({agg})"):
            r = resample_dataset(project, dataset, every, agg, to=to, force=force)
    except ValueError as err:
        raise UserError(str(err)) from None
    console.print(f"{r.dataset}: {r.series} series, {r.rows_in:,} {r.zone} rows of {r.source} -> {r.rows_out:,} "
                  f"rows on a {r.every} grid ({r.agg}); {r.empty_bins:,} empty bins left out (gaps for "
                  f"`tsops process`). Next: `tsops process -d {r.dataset}`")


# ---------------------------------------------------------------------------------------------- pipeline
pipeline_app = typer.Typer(help="The automated pipeline.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")
runs_app = typer.Typer(help="Pipeline and stage runs recorded in the catalog.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@pipeline_app.command("run")
def pipeline_run(
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", "-d", help="default: every dataset"),  # noqa: UP045
    stage: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--stage", "-s", help="run only these stages (ingest process analyze train forecast report retention)"),
    wait: bool = typer.Option(False, "--wait", help="wait for a running pipeline on the dataset instead of exiting"),
    retrain: bool = typer.Option(False, "--retrain", help="train even when the champion is not due"),
    model: Optional[list[str]] = typer.Option(None, "--model", help="model families to search when training"),  # noqa: UP045
) -> None:
    """Ingest -> process -> analyze -> train (when due) -> forecast -> report -> retention, incrementally."""
    from tsops.masking import mask_secrets
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
            t.add_row(s, res.get("status", "ran"), f"{res.get('seconds', 0):.1f}", mask_secrets(detail)[:90])
            err_console.print(f"[dim]{name}: {s} {res.get('status', 'ran')} ({res.get('seconds', 0):.1f} s)[/dim]")

        try:
            run = run_pipeline(project, name, stage, wait=wait, force_train=retrain, families=model,
                               on_stage=on_stage)
        except LockBusy as err:
            raise UserError(str(err)) from None
        console.print(t)
        console.print(f"run {run.run_id}: {run.status} in {run.seconds:.1f} s"
                      + (f" ({mask_secrets(run.error)})" if run.error else ""), markup=False)
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

    directory.mkdir(parents=True, exist_ok=True)
    ui.log_to(directory.resolve() / ui.LOG_FILE)  # the demo's own project keeps its library logs
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
    """Run the CLI. Errors are one line (credentials masked) with exit code 2 for usage and configuration
    errors, 1 for database and unexpected errors; ``-v`` adds the (masked) traceback."""
    from pydantic import ValidationError
    from rich.markup import escape

    from tsops.config import ConfigError
    from tsops.masking import db_error_line, is_db_error, mask_secrets

    try:
        app()
    except (UserError, ConfigError, FileNotFoundError, KeyError, ValueError, ValidationError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        _traceback(err)
        err_console.print(f"[red]error:[/red] {escape(mask_secrets(msg))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as err:
        if not is_db_error(err):
            if not state.verbose:  # an unexpected error is a bug: its traceback (masked) always shows
                state.verbose = 1
            _traceback(err)
            err_console.print(f"[red]error:[/red] {type(err).__name__}: {escape(mask_secrets(err))}",
                              highlight=False, soft_wrap=True)
            sys.exit(1)
        _traceback(err)
        err_console.print(f"[red]error:[/red] {escape(db_error_line(err))}"
                          + ("" if state.verbose else " (-v shows the traceback)"), highlight=False, soft_wrap=True)
        sys.exit(1)


def _traceback(err: BaseException) -> None:
    """With ``-v``: the error's traceback, credentials masked."""
    import traceback

    from tsops.masking import mask_secrets

    if state.verbose:
        sys.stderr.write(mask_secrets("".join(traceback.format_exception(err))))
        sys.stderr.flush()


if __name__ == "__main__":
    main()
