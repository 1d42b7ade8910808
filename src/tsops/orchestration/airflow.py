"""Render an Apache Airflow DAG file for a tsops project.

The DAG calls the ``tsops`` command line (one ``BashOperator`` per stage and dataset) so Airflow can live in a
virtual environment of its own: the rendered file imports Airflow only, never tsops. Each dataset gets a task
group whose stages run in order (``ingest >> process >> ... >> report >> retention``); datasets run side by side, so a failing
source holds back only its own dataset.

Scheduling settings come from the project's ``pipeline:`` section when it has one (``schedule``, ``retries``,
``retry_delay``); explicit arguments win over the project file, and built-in defaults apply last.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tsops.config import Project, parse_duration

#: The stages of ``tsops pipeline run``, in order (``train`` tunes and/or retrains when due; ``retention`` deletes
#: the day partitions older than the dataset's per-zone policy, last, once the report has used them).
DEFAULT_STAGES: tuple[str, ...] = ("ingest", "process", "analyze", "train", "forecast", "report", "retention")
#: The command each task runs. Placeholders (shell-quoted when substituted): tsops, project, stage, dataset.
DEFAULT_COMMAND = "{tsops} -p {project} pipeline run --stage {stage} --dataset {dataset}"
DEFAULT_SCHEDULE = "@daily"
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY = dt.timedelta(minutes=5)
DEFAULT_START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

PRESETS = frozenset({"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly",
                     "@yearly", "@annually", "@midnight"})
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")
_ID = re.compile(r"[^A-Za-z0-9_-]+")
_PLACEHOLDERS = {"tsops", "project", "stage", "dataset"}


def sanitize_id(name: str) -> str:
    """An Airflow-safe id (letters, digits, ``_`` and ``-``) from a project, dataset or stage name."""
    s = _ID.sub("_", name).strip("_")
    if not s:
        raise ValueError(f"{name!r} has no letters or digits to build an Airflow id from")
    return s


def validate_schedule(schedule: str | None) -> str | None:
    """Return ``schedule`` if it is None, an Airflow preset (``@hourly`` ...) or a 5-field cron expression."""
    if schedule is None:
        return None
    s = " ".join(str(schedule).split())
    if s.lower() in ("none", "null", "manual", ""):
        return None
    if s.startswith("@"):
        if s not in PRESETS:
            raise ValueError(f"schedule {schedule!r} is not an Airflow preset (one of {', '.join(sorted(PRESETS))})")
        return s
    fields = s.split(" ")
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            f"schedule {schedule!r} is neither a preset such as @hourly nor a cron expression of 5 fields "
            "(minute hour day-of-month month day-of-week, e.g. '15 * * * *')"
        )
    return s


def _as_delay(value: dt.timedelta | str | int | float) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    try:
        return parse_duration(value)
    except ValueError as err:
        raise ValueError(f"retry_delay: {err}") from None


def _pipeline_settings(project: Project) -> dict[str, Any]:
    """``schedule``/``retries``/``retry_delay`` from the project's optional ``pipeline:`` section."""
    section = getattr(project.config, "pipeline", None)
    if section is None:
        return {}
    data = section.model_dump() if hasattr(section, "model_dump") else dict(section)
    return {k: data[k] for k in ("schedule", "retries", "retry_delay") if data.get(k) is not None}


def _stage_commands(stages: Sequence[str] | Mapping[str, str], command: str) -> list[tuple[str, str]]:
    items = list(stages.items()) if isinstance(stages, Mapping) else [(s, command) for s in stages]
    if not items:
        raise ValueError("stages: give at least one stage")
    seen: set[str] = set()
    for name, template in items:
        sid = sanitize_id(name)
        if sid in seen:
            raise ValueError(f"stages: {name!r} appears twice (task ids must be unique)")
        seen.add(sid)
        unknown = set(re.findall(r"{(\w*)}", template)) - _PLACEHOLDERS
        if unknown:
            raise ValueError(f"command for stage {name!r} uses unknown placeholders {sorted(unknown)} "
                             f"(allowed: {sorted(_PLACEHOLDERS)})")
    return items


def render_dag_source(
    project: Project,
    *,
    tsops_bin: str | os.PathLike[str],
    schedule: str | None = DEFAULT_SCHEDULE,
    retries: int = DEFAULT_RETRIES,
    retry_delay: dt.timedelta | str | int | float = DEFAULT_RETRY_DELAY,
    stages: Sequence[str] | Mapping[str, str] = DEFAULT_STAGES,
    command: str = DEFAULT_COMMAND,
    datasets: Sequence[str] | None = None,
    dag_id: str | None = None,
    start_date: dt.datetime = DEFAULT_START,
    catchup: bool = False,
    env: Mapping[str, str] | None = None,
    execution_timeout: dt.timedelta | str | None = None,
) -> str:
    """The Python source of a self-contained DAG file for ``project`` (see :func:`render_dag`)."""
    schedule = validate_schedule(schedule)
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number >= 0 (got {retries!r})")
    delay = _as_delay(retry_delay)
    timeout = _as_delay(execution_timeout) if execution_timeout is not None else None
    if start_date.tzinfo is None:
        start_date = start_date.replace(tzinfo=dt.UTC)
    names = list(datasets) if datasets is not None else list(project.config.datasets)
    if not names:
        raise ValueError(f"project {project.root} defines no datasets: add one under `datasets:` in tsops.yaml")
    for n in names:
        project.dataset(n)  # raises ConfigError naming the unknown dataset
    items = _stage_commands(stages, command)
    dag_id = sanitize_id(dag_id or f"tsops_{project.config.name}")
    q = shlex.quote
    groups: dict[str, list[tuple[str, str]]] = {}
    for ds_name in names:
        tasks = []
        for stage, template in items:
            cmd = template.format(tsops=q(str(tsops_bin)), project=q(str(project.root)), stage=q(stage),
                                  dataset=q(ds_name))
            if cmd.endswith((".sh", ".bash")):
                cmd += " "  # BashOperator would read a command ending in .sh as a template file name
            tasks.append((sanitize_id(stage), cmd))
        groups[ds_name] = tasks
    group_ids = [sanitize_id(n) for n in names]
    if len(set(group_ids)) != len(group_ids):
        raise ValueError(f"datasets {names} map to clashing Airflow group ids {group_ids}")
    spec = [
        {"group": gid, "dataset": n, "tasks": [{"task_id": t, "command": c} for t, c in groups[n]]}
        for gid, n in zip(group_ids, names, strict=True)
    ]
    return _TEMPLATE.format(
        project=str(project.root),
        generated=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        dag_id=repr(dag_id),
        schedule=repr(schedule),
        start=repr((start_date.year, start_date.month, start_date.day, start_date.hour, start_date.minute)),
        catchup=repr(bool(catchup)),
        retries=repr(retries),
        delay_s=repr(delay.total_seconds()),
        timeout_s=repr(timeout.total_seconds() if timeout else None),
        tags=repr(["tsops", project.config.name]),
        env=repr(dict(env or {})),
        cwd=repr(str(project.root)),
        spec=_pretty(spec),
    )


def render_dag(
    project: Project,
    out_path: str | os.PathLike[str],
    *,
    tsops_bin: str | os.PathLike[str],
    schedule: str | None = None,
    retries: int | None = None,
    retry_delay: dt.timedelta | str | int | float | None = None,
    stages: Sequence[str] | Mapping[str, str] = DEFAULT_STAGES,
    command: str = DEFAULT_COMMAND,
    datasets: Sequence[str] | None = None,
    dag_id: str | None = None,
    start_date: dt.datetime = DEFAULT_START,
    catchup: bool = False,
    env: Mapping[str, str] | None = None,
    execution_timeout: dt.timedelta | str | None = None,
) -> Path:
    """Write a DAG file for ``project`` to ``out_path`` (atomically) and return its path.

    One ``BashOperator`` per stage and dataset runs ``command`` (by default
    ``<tsops_bin> -p <project> pipeline run --stage <stage> --dataset <dataset>``); ``stages`` is a list of
    stage names, or a mapping of stage name -> command template to run something else per stage (placeholders
    ``{tsops}``, ``{project}``, ``{stage}``, ``{dataset}``; write a literal brace as ``{{``). ``schedule``,
    ``retries`` and ``retry_delay`` default to the project's ``pipeline:`` section, then to ``@daily``, 2 and
    5 minutes. ``catchup`` is off and at most one run is active at a time.
    """
    settings = _pipeline_settings(project)
    src = render_dag_source(
        project,
        tsops_bin=tsops_bin,
        schedule=schedule if schedule is not None else settings.get("schedule", DEFAULT_SCHEDULE),
        retries=retries if retries is not None else settings.get("retries", DEFAULT_RETRIES),
        retry_delay=retry_delay if retry_delay is not None else settings.get("retry_delay", DEFAULT_RETRY_DELAY),
        stages=stages,
        command=command,
        datasets=datasets,
        dag_id=dag_id,
        start_date=start_date,
        catchup=catchup,
        env=env,
        execution_timeout=execution_timeout,
    )
    compile(src, str(out_path), "exec")  # a rendering bug must not reach Airflow's DAG folder
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(src, encoding="utf-8")
    tmp.replace(out)
    return out


def _pretty(obj: Any, indent: int = 0) -> str:
    """A readable Python literal for lists/dicts of strings (one item per line)."""
    pad = "    " * indent
    if isinstance(obj, list):
        if not obj:
            return "[]"
        inner = ",\n".join(f"{pad}    {_pretty(v, indent + 1)}" for v in obj)
        return f"[\n{inner},\n{pad}]"
    if isinstance(obj, dict):
        inner = ",\n".join(f"{pad}    {k!r}: {_pretty(v, indent + 1)}" for k, v in obj.items())
        return f"{{\n{inner},\n{pad}}}"
    return repr(obj)


_TEMPLATE = '''\
"""tsops pipeline DAG for the project in {project}.

Generated by `tsops airflow render` at {generated}; re-render instead of editing.
Each task calls the tsops command line, so this file needs Airflow only (no tsops import).
"""

import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, TaskGroup, chain

DAG_ID = {dag_id}
SCHEDULE = {schedule}
TASK_ENV = {env}
_TIMEOUT_S = {timeout_s}

# one group per dataset; its tasks run in this order
PIPELINE = {spec}

default_args = {{
    "owner": "tsops",
    "retries": {retries},
    "retry_delay": datetime.timedelta(seconds={delay_s}),
    "execution_timeout": datetime.timedelta(seconds=_TIMEOUT_S) if _TIMEOUT_S else None,
}}

with DAG(
    dag_id=DAG_ID,
    schedule=SCHEDULE,
    start_date=datetime.datetime(*{start}, tzinfo=datetime.timezone.utc),
    catchup={catchup},
    max_active_runs=1,
    default_args=default_args,
    tags={tags},
    doc_md=__doc__,
) as dag:
    for _group in PIPELINE:
        with TaskGroup(group_id=_group["group"], tooltip="dataset " + _group["dataset"]):
            chain(*[
                BashOperator(
                    task_id=_t["task_id"],
                    bash_command=_t["command"],
                    env=TASK_ENV or None,
                    append_env=True,
                    cwd={cwd},
                )
                for _t in _group["tasks"]
            ])
'''
