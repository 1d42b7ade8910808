"""The CLI end to end on a files project, as a user runs it (each command in-process via typer's runner)."""

import json

import yaml
from typer.testing import CliRunner

from tsops.cli.main import app
from tsops.testing.envelopes import sensor_envelope

runner = CliRunner()
T0 = 1_767_225_600_000  # 2026-01-01 UTC


def invoke(*args):
    res = runner.invoke(app, list(args), catch_exceptions=False)
    return res


def test_init_ingest_catalog_sql_retention(tmp_path):
    proj = tmp_path / "p"
    res = invoke("init", str(proj))
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load((proj / "tsops.yaml").read_text())
    cfg["datasets"]["sensors"]["retention"] = "1d"
    (proj / "tsops.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    inc = proj / "incoming" / "sensors"
    inc.mkdir(parents=True)
    lines = [sensor_envelope(i % 3, T0 + i * 600_000, 400.0 + i, position=f"P{i % 3}") for i in range(300)]
    lines[5] = b'{"schema": broken'
    (inc / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    res = invoke("-p", str(proj), "ingest")
    assert res.exit_code == 0, res.output
    assert "299" in res.output and "quarantined" in res.output

    res = invoke("-p", str(proj), "catalog", "list", "--dataset", "sensors", "--json")
    series = json.loads(res.output)
    assert sorted(s["series_id"] for s in series) == ["P0|C02", "P1|C02", "P2|C02"]
    assert sum(s["count"] for s in series) == 299

    res = invoke("-p", str(proj), "catalog", "show", "P1|C02", "--dataset", "sensors")
    doc = json.loads(res.output)
    assert doc["unit"] == "ppm" and doc["keys"] == {"position": "P1", "type_name": "C02"}

    res = invoke("-p", str(proj), "sql", "SELECT count(*) AS n FROM quarantine_sensors")
    assert res.exit_code == 0 and "1" in res.output

    # a second ingest finds nothing new
    res = invoke("-p", str(proj), "ingest")
    assert res.exit_code == 0
    res = invoke("-p", str(proj), "catalog", "list", "--json")
    assert json.loads(res.output)[0]["observations"] == 299

    res = invoke("-p", str(proj), "retention", "--dry-run")
    assert res.exit_code == 0 and "would remove raw/sensors/2026-01-01" in res.output
    res = invoke("-p", str(proj), "retention")
    assert "removed raw/sensors/2026-01-01" in res.output
    assert not list((proj / "lake" / "raw" / "sensors").rglob("*.parquet"))


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "tsops", "-p", str(tmp_path), "catalog", "list"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "tsops init" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "tsops.yaml").write_text("lake: {rot: x}\n")
    r = subprocess.run([sys.executable, "-m", "tsops", "-p", str(tmp_path), "ingest"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "lake.rot: unknown key" in r.stderr


def test_demo_without_pipeline_reconciles(tmp_path):
    res = invoke("demo", "--dir", str(tmp_path / "demo"), "--days", "1", "--no-kafka", "--no-pipeline")
    assert res.exit_code == 0, res.output
    assert "reconciled" in res.output and "0 new records" in res.output


def test_quality_compare_on_a_lake_dataset(sensor_project):
    res = invoke("-p", str(sensor_project.root), "quality", "compare", "--dataset", "sensors",
                 "--series-id", "광주 A|TEMP", "--horizon", "30", "--model", "seasonal_naive",
                 "--season-length", "1440")
    assert res.exit_code == 0, res.output
    for treatment in ("none", "drop", "minmax", "ema"):
        assert treatment in res.output
    bad = runner.invoke(app, ["-p", str(sensor_project.root), "quality", "compare", "--dataset", "sensors",
                              "--series-id", "nope", "--season-length", "1440"])
    assert bad.exit_code != 0 and "nope" in bad.output


# ---------------------------------------------------------------------------------------------- retention and audit
def test_retention_every_zone_updates_catalog_and_audit_command(tmp_path):
    proj = tmp_path / "p"
    invoke("init", str(proj))
    cfg = yaml.safe_load((proj / "tsops.yaml").read_text())
    cfg["datasets"]["sensors"]["retention"] = {"raw": "2d", "quarantine": "30d", "clean": "1d"}
    (proj / "tsops.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    inc = proj / "incoming" / "sensors"
    inc.mkdir(parents=True)
    day = 86_400_000
    import time

    today = int(time.time() * 1000) // day * day
    # three days: 10 days ago (goes), 5 days ago (goes), today (stays); one sensor only in the old days
    times = [today - 10 * day, today - 5 * day, today]
    lines = [sensor_envelope(i % 2, t + i * 60_000, 1.0 + i, position=f"P{i % 2}")
             for t in times for i in range(4)]
    lines += [sensor_envelope(5, today - 10 * day + 1000, 1.0, position="OLD")]
    (inc / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    assert invoke("-p", str(proj), "ingest").exit_code == 0
    assert invoke("-p", str(proj), "process", "-d", "sensors").exit_code == 0
    clean_days = sorted((proj / "lake" / "clean" / "sensors").rglob("*.parquet"))
    assert len(clean_days) >= 3

    res = invoke("-p", str(proj), "retention")
    assert res.exit_code == 0, res.output
    assert res.output.count("removed raw/sensors/") == 2 and "removed clean/sensors/" in res.output
    assert "quarantine" in res.output and "30d" in res.output
    series = {s["series_id"]: s for s in json.loads(
        invoke("-p", str(proj), "catalog", "list", "--dataset", "sensors", "--json").output)}
    assert series["P0|C02"]["count"] == 2 and series["P1|C02"]["count"] == 2
    assert series["OLD|C02"]["count"] == 0 and series["OLD|C02"]["first_ts"] is None
    assert json.loads(invoke("-p", str(proj), "catalog", "list", "--json").output)[0]["observations"] == 4
    # process has nothing to chase: the deleted raw days left the processed fingerprints
    res = invoke("-p", str(proj), "process", "-d", "sensors")
    assert "nothing new to process" in res.output, res.output

    res = invoke("-p", str(proj), "audit")
    assert res.exit_code == 0 and "retention" in res.output and "zone=raw" in res.output
    assert "zone=clean" in res.output
    rows = json.loads(invoke("-p", str(proj), "audit", "--action", "retention", "--json").output)
    assert [r["detail"]["zone"] for r in rows] == ["raw", "clean"] and rows[0]["detail"]["rows"] == 9
    assert rows[0]["at"].endswith("Z")
    rows = json.loads(invoke("-p", str(proj), "audit", "--limit", "1", "--json").output)
    assert len(rows) == 1 and rows[0]["detail"]["zone"] == "clean"  # the most recent
    res = invoke("-p", str(proj), "audit", "--dataset", "other")
    assert res.exit_code == 0 and "no audit entries match" in res.output


# ---------------------------------------------------------------------------------------------- credentials, DB errors
def _tsops(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "tsops", *args], capture_output=True, text=True, timeout=120)


def _with_catalog(tmp_path, url):
    invoke("init", str(tmp_path / "p"))
    cfg = yaml.safe_load((tmp_path / "p" / "tsops.yaml").read_text())
    cfg["catalog"]["url"] = url
    (tmp_path / "p" / "tsops.yaml").write_text(yaml.safe_dump(cfg))
    return str(tmp_path / "p")


def test_unsupported_catalog_dialect_masks_the_password(tmp_path):
    proj = _with_catalog(tmp_path, "mysql+pymysql://root:hunter2@127.0.0.1/test")
    r = _tsops("-p", proj, "catalog", "list")
    assert r.returncode == 2 and "hunter2" not in r.stdout + r.stderr
    assert "mysql+pymysql://root:***@127.0.0.1/test" in r.stderr and "not supported" in r.stderr
    r = _tsops("-p", proj, "-v", "catalog", "list")
    assert "hunter2" not in r.stdout + r.stderr


def test_database_errors_are_one_line_and_traceback_only_with_v(tmp_path):
    from tsops.testing.services import need_postgres

    need_postgres()
    proj = _with_catalog(tmp_path, "postgresql+psycopg://no_such_role:hunter2@127.0.0.1/test")
    r = _tsops("-p", proj, "catalog", "list")
    err = r.stderr.strip()
    assert r.returncode == 1 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: catalog: cannot connect to postgresql+psycopg://no_such_role:***@127.0.0.1/test")
    assert "no_such_role" in err and "check catalog.url in tsops.yaml" in err and "hunter2" not in err
    r = _tsops("-v", "-p", proj, "catalog", "list")
    assert r.returncode == 1 and "Traceback" in r.stderr and "hunter2" not in r.stderr + r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("error: catalog: cannot connect")
    # a schema the role cannot create tables in: one line naming the catalog, not a 100-line traceback
    proj = _with_catalog(tmp_path / "q", "postgresql+psycopg://postgres:pw@127.0.0.1/test"
                         "?options=-csearch_path%3Dno_such_schema")
    r = _tsops("-p", proj, "runs", "list")
    err = r.stderr.strip()
    assert r.returncode == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "catalog (postgresql+psycopg://postgres:***@127.0.0.1/test" in err and ":pw@" not in err


def test_log_records_and_pipeline_errors_are_masked(tmp_path, caplog):
    import logging

    from tsops.cli.main import _MaskFilter, state

    rec = logging.LogRecord("x", logging.WARNING, __file__, 1, "cannot reach %s", ("kafka://u:pw1@h:9092",), None)
    assert _MaskFilter().filter(rec) and rec.getMessage() == "cannot reach kafka://u:***@h:9092"
    try:
        raise RuntimeError("postgresql://a:pw2@h/db is down")
    except RuntimeError:
        import sys

        exc = sys.exc_info()
    state.verbose = 0
    rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "stage failed", (), exc)
    _MaskFilter().filter(rec)
    assert rec.exc_info is None and "pw2" not in rec.getMessage() and "a:***@h" in rec.getMessage()
    assert "Traceback" not in rec.getMessage()
    state.verbose = 1
    rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "stage failed", (), exc)
    _MaskFilter().filter(rec)
    assert "Traceback" in rec.getMessage() and "pw2" not in rec.getMessage()
    state.verbose = 0


# ---------------------------------------------------------------------------------------------- newcomer
def run_main(monkeypatch, capsys, *args):
    """Run the installed entry point in-process: (exit code, stdout, stderr)."""
    import sys

    import pytest

    from tsops.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tsops", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    code = exc.value.code if isinstance(exc.value.code, int) else (0 if exc.value.code is None else 1)
    return code, out.out, out.err


def test_unknown_dataset_is_an_error_naming_the_known_ones(sensor_project, monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "-p", str(sensor_project.root), "process", "-d", "sensorz")
    assert code == 2, (out, err)
    assert "'sensorz'" in err and "Did you mean 'sensors'" in err and "Known datasets: sensors" in err
    assert "nothing new to process" not in out + err
    code, _, err = run_main(monkeypatch, capsys, "-p", str(sensor_project.root), "report", "-d", "nosuch")
    assert code == 2 and "'nosuch'" in err and "Known datasets: sensors" in err


def test_missing_project_directory_names_it(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nonexistent"
    code, _, err = run_main(monkeypatch, capsys, "-p", str(missing), "catalog", "list")
    assert code == 2
    flat = " ".join(err.split())
    assert "does not exist" in flat and f"tsops init {missing}" in flat and "tsops init /`" not in flat
    code, _, err = run_main(monkeypatch, capsys, "-p", str(tmp_path), "process", "-d", "x")
    flat = " ".join(err.split())
    assert code == 2 and "has no tsops.yaml" in flat and f"tsops init {tmp_path}" in flat
    # the forecasting commands resolve -p the same way
    code, _, err = run_main(monkeypatch, capsys, "-p", str(missing), "forecast", "-d", "x")
    assert code != 0 and "does not exist" in " ".join(err.split())


def test_catalog_show_suggests_close_series_ids(sensor_project, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "-p", str(sensor_project.root), "catalog", "show",
                            "광 주 A|C02", "--dataset", "sensors")
    assert code == 2 and 'did you mean "광주 A|C02"' in " ".join(err.split())
    code, out, _ = run_main(monkeypatch, capsys, "-p", str(sensor_project.root), "catalog", "show",
                            "광주 A|C02", "--dataset", "sensors")
    assert code == 0 and json.loads(out)["series_id"] == "광주 A|C02"


def test_tables_never_cut_ids_when_piped(sensor_project, monkeypatch):
    long_id = "광주 A|C02"
    monkeypatch.delenv("COLUMNS", raising=False)
    res = runner.invoke(app, ["-p", str(sensor_project.root), "catalog", "list", "--dataset", "sensors"])
    assert res.exit_code == 0, res.output
    assert long_id in res.output and "…" not in res.output
    from tsops.cli import ui

    narrow = ui.table("t", ("series_id", "count"), numeric=("count",))
    narrow.add_row("x" * 150 + "|END", "1")
    from rich.console import Console

    c = Console(width=60, record=True, file=__import__("io").StringIO())
    c.print(narrow)
    text = c.export_text()
    assert "…" not in text and "|END" in text  # folded onto several lines, not truncated


def test_third_party_logs_go_to_the_log_file_unless_verbose(tmp_path, capsys):
    import logging

    from tsops.cli import ui

    (tmp_path / "tsops.yaml").write_text("name: x\n")
    path = ui.setup_logging(0, tmp_path)
    assert path == tmp_path / ".tsops" / "logs" / "tsops.log"
    logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
    logging.getLogger("tsops.something").info("an info line of tsops")
    logging.getLogger("tsops.something").warning("a tsops warning")
    err = capsys.readouterr().err
    assert "Creating initial MLflow" not in err and "an info line" not in err and "a tsops warning" in err
    assert f"library logs: {path}" in " ".join(err.split())
    logged = path.read_text()
    assert "Creating initial MLflow database tables" in logged and "an info line of tsops" in logged
    logging.getLogger("optuna").info("second line")
    assert "library logs" not in capsys.readouterr().err  # the path is printed once
    ui.setup_logging(1, tmp_path)
    logging.getLogger("mlflow.store.db.utils").info("now on the terminal")
    assert "now on the terminal" in capsys.readouterr().err
    import os

    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    ui.setup_logging(0, tmp_path)


def test_progress_helper_counts_log_records(monkeypatch):
    import io
    import logging

    from rich.console import Console

    from tsops.cli import ui

    buf = io.StringIO()
    monkeypatch.setattr(ui, "err_console", Console(file=buf, width=150, force_terminal=False))
    log = logging.getLogger("tsops.models._window")
    with ui.step("training lstm on sensors", total=3 * 10, info="backtest") as (bar, task):
        with ui.LogTap("tsops.models._window", r"step (\d+) \{",
                       lambda rec, m: bar.update(task, completed=int(m.group(1)), info=f"step {m.group(1)}")):
            for s in (5, 10, 20, 30):
                log.debug("%s step %d %s", "lstm", s, {"step": s})
            assert bar.tasks[0].completed == 30
        log.debug("%s step %d %s", "lstm", 1, {"step": 1})  # the tap is gone
        assert bar.tasks[0].completed == 30
    text = buf.getvalue()
    assert "training lstm on sensors" in text and "30/30" in text and "eta" in text
    assert log.level == logging.NOTSET  # restored


def test_resample_writes_a_derived_dataset(sensor_project, monkeypatch, capsys):
    import pandas as pd

    from tsops.config import load_project

    root = str(sensor_project.root)
    code, out, err = run_main(monkeypatch, capsys, "-p", root, "resample", "-d", "sensors", "--every", "1h",
                              "--agg", "mean")
    assert code == 0, err
    assert "sensors_1h" in out and "tsops process -d sensors_1h" in " ".join(out.split())
    project = load_project(root)
    assert "sensors_1h" in project.config.datasets  # tsops.yaml knows it (train needs that)
    assert "# derived by `tsops resample` from sensors" in (sensor_project.root / "tsops.yaml").read_text()
    lake, cat = project.lake(), project.catalog()
    got = lake.read("raw", "sensors_1h").to_pandas()
    src = lake.read("raw", "sensors", columns=["series_id", "ts", "value"]).to_pandas()
    sid = "광주 A|TEMP"
    one = src[src["series_id"] == sid].dropna(subset=["value"]).set_index("ts")["value"]
    want = one.resample("1h").agg(["mean", "count"])
    want = want[want["count"] > 0]
    mine = got[got["series_id"] == sid].set_index("ts")
    assert list(mine.index) == list(want.index)
    assert (mine["value"] - want["mean"]).abs().max() < 1e-9 and (mine["n_source"] == want["count"]).all()
    doc = cat.get_dataset("sensors_1h")["doc"]
    assert doc["derived_from"]["dataset"] == "sensors" and doc["derived_from"]["agg"] == "mean"
    assert cat.get_series("sensors_1h", sid)["derived_from"]["dataset"] == "sensors"
    assert len(cat.list_series("sensors_1h")) == len(cat.list_series("sensors"))
    # a second run refuses to overwrite silently, --force replaces
    code, _, err = run_main(monkeypatch, capsys, "-p", root, "resample", "-d", "sensors", "--every", "1h")
    assert code == 2 and "already exists" in err and "--force" in err
    code, _, err = run_main(monkeypatch, capsys, "-p", root, "resample", "-d", "sensors", "--every", "1h",
                            "--force")
    assert code == 0, err
    assert (sensor_project.root / "tsops.yaml").read_text().count("sensors_1h:") == 1
    # and the derived dataset is an ordinary one: process cleans it
    code, out, err = run_main(monkeypatch, capsys, "-p", root, "process", "-d", "sensors_1h")
    assert code == 0, err
    assert "processed" in out and "clean rows" in out
    assert pd.Timedelta(seconds=cat.get_series("sensors_1h", sid)["period_s"]) == pd.Timedelta("1h")
    code, _, err = run_main(monkeypatch, capsys, "-p", root, "resample", "-d", "sensors", "--every", "1h",
                            "--agg", "mode", "--to", "other")
    assert code == 2 and "'mode'" in err
