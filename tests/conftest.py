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
