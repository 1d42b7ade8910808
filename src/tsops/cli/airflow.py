"""``tsops airflow``: render an Airflow DAG that runs the project's pipeline through the tsops CLI.

Register in the root CLI with ``app.add_typer(airflow_app, name="airflow")``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Run the pipeline under Apache Airflow.", no_args_is_help=True)
console = Console()


@app.callback()
def _group() -> None:
    """Run the pipeline under Apache Airflow (render a DAG that calls the tsops CLI)."""


def running_tsops_bin() -> Path:
    """The absolute path of the ``tsops`` executable running now (for Airflow tasks to call)."""
    candidates = []
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "tsops":
        found = shutil.which(str(argv0)) if argv0.parent == Path(".") else str(argv0)
        if found:
            candidates.append(Path(found))
    candidates.append(Path(sys.executable).parent / "tsops")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c.absolute()
    raise FileNotFoundError(
        "cannot find the `tsops` executable (running as "
        f"{sys.argv[0] if sys.argv else '?'!r}): install tsops (pip install -e .) or pass --tsops-bin PATH"
    )


@app.command()
def render(
    out: Optional[Path] = typer.Option(  # noqa: UP045 - typer reads these annotations
        None, "--out", "-o", help="DAG file to write (default: <project>/dags/<dag_id>.py)"
    ),
    tsops_bin: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--tsops-bin", help="tsops executable the tasks run (default: the one running now)"
    ),
    schedule: Optional[str] = typer.Option(  # noqa: UP045
        None, help="cron expression or preset such as @hourly; 'none' = manual runs only "
                   "(default: pipeline.schedule in tsops.yaml, else @daily)"
    ),
    retries: Optional[int] = typer.Option(None, min=0, help="task retries (default: pipeline.retries, else 2)"),  # noqa: UP045
    retry_delay: Optional[str] = typer.Option(  # noqa: UP045
        None, help="wait between retries, e.g. 5m (default: pipeline.retry_delay, else 5m)"
    ),
    stage: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--stage", help="stages in order (repeat; default: ingest process analyze train forecast report retention)"
    ),
    dataset: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--dataset", "-d", help="datasets to schedule (repeat; default: all)"
    ),
    dag_id: Optional[str] = typer.Option(None, help="DAG id (default: tsops_<project name>)"),  # noqa: UP045
) -> None:
    """Write an Airflow DAG file: one task per stage and dataset, each calling `tsops pipeline run`."""
    from tsops.cli.main import load
    from tsops.orchestration.airflow import DEFAULT_STAGES, render_dag, sanitize_id

    project = load()
    bin_path = tsops_bin.absolute() if tsops_bin is not None else running_tsops_bin()
    if not bin_path.is_file():
        raise FileNotFoundError(f"--tsops-bin {bin_path} does not exist")
    name = sanitize_id(dag_id or f"tsops_{project.config.name}")
    target = out if out is not None else project.root / "dags" / f"{name}.py"
    path = render_dag(
        project,
        target,
        tsops_bin=bin_path,
        schedule=schedule,
        retries=retries,
        retry_delay=retry_delay,
        stages=stage or DEFAULT_STAGES,
        datasets=dataset or None,
        dag_id=name,
    )
    console.print(f"[green]wrote[/green] {path} (DAG id {name})")
    console.print(f"Point Airflow at it: export AIRFLOW__CORE__DAGS_FOLDER={path.parent.absolute()}")
