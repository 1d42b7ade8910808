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
