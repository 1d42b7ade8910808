from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


@pytest.fixture
def project_dir(tmp_path):
    """An empty scratch directory for a tsops project."""
    d = tmp_path / "proj"
    d.mkdir()
    return d


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path):
    """A catalog URL: a SQLite file, and a fresh schema on the local PostgreSQL (skips/fails without it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/catalog.db"
        return
    import sqlalchemy as sa

    from tsops.testing.services import need_postgres

    url = need_postgres()
    schema = f"t_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql(f"CREATE SCHEMA {schema}")
    yield url + f"?options=-csearch_path%3D{schema}"
    with eng.begin() as c:
        c.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    eng.dispose()


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local[2] SparkSession (with an embedded Hive metastore) for the whole test session."""
    from tsops.testing.services import need_java

    need_java()
    from tsops.engine.spark import get_spark

    session = get_spark("tsops-tests", "local[2]", scratch_dir=tmp_path_factory.mktemp("spark"), hive=True,
                        conf={"spark.ui.showConsoleProgress": "false"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sensor_project_template(tmp_path_factory):
    """A small ingested sensor project (simulated files, 2 days, 6 sensors), built once; copy it per test."""
    import datetime as dt
    import shutil  # noqa: F401 - used by callers through copy_project

    import yaml

    from tsops.config import load_project
    from tsops.ingest.api import ingest
    from tsops.ingest.simulator import config_for, to_files

    root = tmp_path_factory.mktemp("sensor-template")
    (root / "tsops.yaml").write_text(yaml.safe_dump({
        "name": "t",
        "datasets": {"sensors": {
            "series": {"timestamp": "event_time", "keys": ["position", "type_name"], "values": ["input_data"]},
            "source": {"kind": "files", "format": "jsonl", "paths": ["incoming/*.jsonl"]},
        }},
        "pipeline": {"horizon": 6, "tune_trials": 2},
    }, allow_unicode=True))
    import dataclasses

    start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=2)
    cfg = dataclasses.replace(config_for(days=2, sensors=6, seed=3, malformed_rate=0.002), start=start)
    to_files(cfg, root / "incoming")
    ingest(load_project(root), "sensors")
    return root


@pytest.fixture
def sensor_project(sensor_project_template, tmp_path):
    import shutil

    from tsops.config import load_project

    dst = tmp_path / "proj"
    shutil.copytree(sensor_project_template, dst)
    return load_project(dst)


@pytest.fixture(autouse=True)
def _fresh_cli_state():
    """The CLI keeps `-p` in a module-level state for its sub-commands: reset it between tests."""
    yield
    import sys

    main = sys.modules.get("tsops.cli.main")
    if main is not None:
        main.state.project_dir = None
