"""The rendered Airflow DAG: its content, and a real run in Airflow's own venv (`airflow dags test`)."""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tsops.config import ConfigError, load_project
from tsops.orchestration.airflow import (
    DEFAULT_STAGES,
    render_dag,
    render_dag_source,
    sanitize_id,
    validate_schedule,
)
from tsops.testing.services import need

REPO = Path(__file__).resolve().parents[2]
PROJECT_YAML = """\
name: tiny demo
datasets:
  sensors:
    series: {timestamp: ts, keys: [site], values: [v]}
    source: {kind: files, format: csv, paths: ["incoming/*.csv"]}
  other.set:
    series: {timestamp: ts, keys: [site], values: [v]}
"""
# stage commands that exist today (the test must not depend on `tsops pipeline run`)
TEST_STAGES = {"ingest": "{tsops} -p {project} ingest -d {dataset}", "catalog": "{tsops} -p {project} catalog list",
               "retention": "{tsops} -p {project} retention -d {dataset}"}


@pytest.fixture
def project(tmp_path):
    d = tmp_path / "my project"  # a space: commands must be shell-quoted
    (d / "incoming").mkdir(parents=True)
    (d / "tsops.yaml").write_text(PROJECT_YAML, encoding="utf-8")
    (d / "incoming" / "a.csv").write_text(
        "ts,site,v\n2026-01-01T00:00:00Z,a,1.5\n2026-01-01T01:00:00Z,a,2.5\n2026-01-01T02:00:00Z,b,3\n"
    )
    return load_project(d)


def _dag_literal(src: str, name: str):
    """The value of a top-level literal assignment in the rendered DAG file."""
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in the DAG file")


def test_render_default_pipeline(project, tmp_path):
    out = render_dag(project, tmp_path / "dags" / "d.py", tsops_bin="/opt/tsops env/bin/tsops")
    src = out.read_text()
    tree = ast.parse(src)
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m.split(".")[0] == "tsops" for m in imported), imported
    assert "airflow.sdk" in imported and "airflow.providers.standard.operators.bash" in imported
    assert _dag_literal(src, "DAG_ID") == "tsops_tiny_demo"
    assert _dag_literal(src, "SCHEDULE") == "@daily"
    pipeline = _dag_literal(src, "PIPELINE")
    assert [g["dataset"] for g in pipeline] == ["sensors", "other.set"]
    assert [g["group"] for g in pipeline] == ["sensors", "other_set"]
    assert [t["task_id"] for t in pipeline[0]["tasks"]] == list(DEFAULT_STAGES)
    cmd = pipeline[1]["tasks"][3]["command"]
    assert cmd == (f"'/opt/tsops env/bin/tsops' -p '{project.root}' pipeline run --stage train --dataset other.set")
    assert "catchup=False" in src and "max_active_runs=1" in src
    assert '"retries": 2' in src and "datetime.timedelta(seconds=300.0)" in src


def test_render_options_and_project_settings(project, tmp_path):
    src = render_dag_source(project, tsops_bin="tsops", schedule="15 */2 * * *", retries=0, retry_delay="90s",
                            stages=["ingest", "forecast"], datasets=["sensors"], dag_id="x y",
                            env={"TSOPS_LOG": "info"}, execution_timeout="2h")
    assert _dag_literal(src, "SCHEDULE") == "15 */2 * * *"
    assert _dag_literal(src, "DAG_ID") == "x_y"
    assert _dag_literal(src, "TASK_ENV") == {"TSOPS_LOG": "info"}
    assert _dag_literal(src, "_TIMEOUT_S") == 7200.0
    assert [t["task_id"] for t in _dag_literal(src, "PIPELINE")[0]["tasks"]] == ["ingest", "forecast"]
    assert '"retries": 0' in src and "seconds=90.0" in src
    assert validate_schedule("none") is None and validate_schedule(" @hourly ") == "@hourly"

    # a `pipeline:` section (added to tsops.yaml by the lead) supplies the defaults; arguments still win
    class Pipeline:
        def model_dump(self):
            return {"schedule": "@hourly", "retries": 5, "retry_delay": "1m", "retrain_every": "7d"}

    object.__setattr__(project.config, "pipeline", Pipeline())
    src = render_dag(project, tmp_path / "p.py", tsops_bin="tsops").read_text()
    assert _dag_literal(src, "SCHEDULE") == "@hourly" and '"retries": 5' in src and "seconds=60.0" in src
    src = render_dag(project, tmp_path / "p.py", tsops_bin="tsops", schedule="@weekly", retries=1).read_text()
    assert _dag_literal(src, "SCHEDULE") == "@weekly" and '"retries": 1' in src


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": "@fortnightly"}, "not an Airflow preset"),
        ({"schedule": "* * *"}, "cron expression of 5 fields"),
        ({"retries": -1}, "retries must be"),
        ({"retry_delay": "soon"}, "retry_delay"),
        ({"stages": []}, "at least one stage"),
        ({"stages": ["ingest", "ingest"]}, "appears twice"),
        ({"stages": {"x": "{tsops} {stagee}"}}, "unknown placeholders"),
        ({"datasets": ["nope"]}, "'nope' is not defined"),
    ],
)
def test_render_rejects_bad_arguments(project, kwargs, message):
    with pytest.raises((ValueError, ConfigError), match=message):
        render_dag_source(project, tsops_bin="tsops", **kwargs)


def test_sanitize_id():
    assert sanitize_id("광 주 A|C02") == "A_C02"
    with pytest.raises(ValueError, match="no letters or digits"):
        sanitize_id("광주")


def test_cli_render(project, tmp_path, monkeypatch):
    from tsops.cli.airflow import app, running_tsops_bin

    fake = tmp_path / "bin" / "tsops"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("TSOPS_PROJECT", str(project.root))
    monkeypatch.setattr(sys, "argv", [str(fake), "airflow", "render"])
    assert running_tsops_bin() == fake
    res = CliRunner().invoke(app, ["render", "--schedule", "@hourly", "--stage", "ingest", "--stage", "report",
                                   "-d", "sensors"])
    assert res.exit_code == 0, res.output
    out = project.root / "dags" / "tsops_tiny_demo.py"
    src = out.read_text()
    assert _dag_literal(src, "SCHEDULE") == "@hourly"
    cmds = [t["command"] for t in _dag_literal(src, "PIPELINE")[0]["tasks"]]
    assert cmds == [f"{fake} -p '{project.root}' pipeline run --stage {s} --dataset sensors" for s in
                    ("ingest", "report")]
    res = CliRunner().invoke(app, ["render", "--tsops-bin", str(tmp_path / "missing"), "--out", str(out)])
    assert res.exit_code != 0 and "does not exist" in str(res.exception)


def _tsops_wrapper(tmp_path: Path) -> Path:
    """tsops through a wrapper script (tsops is not installed in Airflow's venv)."""
    wrapper = tmp_path / "tsops-wrapper"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={REPO / 'src'}${{PYTHONPATH:+:$PYTHONPATH}} "
                       f"exec {sys.executable} -m tsops \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def test_retention_task_is_last_and_its_command_prunes_the_lake(project, tmp_path):
    """The default DAG ends each dataset's chain with a retention task; running its command (as the
    BashOperator would) applies the dataset's policy. (The real Airflow run is the test below.)"""
    text = (project.root / "tsops.yaml").read_text().replace(
        'paths: ["incoming/*.csv"]}', 'paths: ["incoming/*.csv"]}\n    retention: {raw: 30d}')
    (project.root / "tsops.yaml").write_text(text)
    project = load_project(project.root)
    wrapper = _tsops_wrapper(tmp_path)
    src = render_dag(project, tmp_path / "dags" / "d.py", tsops_bin=wrapper).read_text()
    tasks = _dag_literal(src, "PIPELINE")[0]["tasks"]
    assert [t["task_id"] for t in tasks][-2:] == ["report", "retention"]  # chain(*tasks): report >> retention
    cmd = tasks[-1]["command"]
    assert cmd == f"{wrapper} -p '{project.root}' pipeline run --stage retention --dataset sensors"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(["bash", "-c", tasks[0]["command"]], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert project.lake().days("raw", "sensors")  # ingested 2026-01-01
    r = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "retention" in r.stdout and project.lake().days("raw", "sensors") == []
    assert {s["series_id"]: s["count"] for s in project.catalog().list_series("sensors")} == {"a": 0, "b": 0}


# ---------------------------------------------------------------------------------------------- real Airflow
def _airflow_venv() -> Path:
    venv = Path(os.environ.get("TSOPS_AIRFLOW_VENV") or REPO / ".venv-airflow")
    need("Airflow venv", (venv / "bin" / "airflow").is_file(),
         f"no {venv}/bin/airflow: run `airflow/install.sh {venv}` (or set TSOPS_AIRFLOW_VENV)")
    return venv


@pytest.mark.services
@pytest.mark.slow  # ~35 s: db migrate, import check and a real `airflow dags test`
def test_dag_runs_green_in_airflow(project, tmp_path):
    venv = _airflow_venv()
    # the tasks call tsops through a wrapper: tsops is not installed in Airflow's venv
    wrapper = _tsops_wrapper(tmp_path)
    dags = tmp_path / "dags"
    render_dag(project, dags / "tsops_tiny.py", tsops_bin=wrapper, stages=TEST_STAGES, datasets=["sensors"],
               retries=0, dag_id="tsops_tiny")
    home = tmp_path / "airflow_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(dags), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__UNIT_TEST_MODE="False", PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    env.pop("PYTHONPATH", None)

    def airflow(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "airflow"), *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=timeout)

    r = airflow("db", "migrate")
    assert r.returncode == 0, r.stderr[-3000:]
    r = airflow("dags", "list-import-errors", "--local", "-o", "json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "tsops_tiny" not in r.stdout + r.stderr  # no import error mentions our file
    r = airflow("dags", "test", "tsops_tiny", "2026-01-01")
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-5000:]
    m = re.search(r"DagRun Finished: dag_id=tsops_tiny, .*?run_id=(\S+?), .*?state=(\w+)", log)
    assert m and m.group(2) == "success", log[-5000:]
    with contextlib.closing(sqlite3.connect(home / "airflow.db")) as db:  # Airflow's own metadata database
        rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                          ("tsops_tiny", m.group(1))).fetchall()
    assert dict(rows) == {"sensors.ingest": "success", "sensors.catalog": "success",
                          "sensors.retention": "success"}, rows
    # the ingest task really ran against the project
    series = project.catalog().list_series("sensors")
    assert sorted(s["series_id"] for s in series) == ["a", "b"]
    assert {s["series_id"]: s["count"] for s in series} == {"a": 2, "b": 1}
    assert dt.datetime.fromisoformat(series[0]["first_ts"].replace("Z", "+00:00")).year == 2026
