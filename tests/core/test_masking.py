"""Credentials never shown: URL masking and one-line database errors."""

import sqlite3

import pytest
import sqlalchemy as sa

from tsops.catalog import Catalog
from tsops.masking import db_error_line, find_db_error, mask_secrets, mask_url


@pytest.mark.parametrize("text, masked", [
    ("postgresql+psycopg://user:hunter2@host/db", "postgresql+psycopg://user:***@host/db"),
    ("see mysql+pymysql://root:p%40ss@h:3306/x?charset=utf8 now", "see mysql+pymysql://root:***@h:3306/x?charset=utf8 now"),
    ("kafka://u:pw@h:9092 and https://a:b@example.org/x", "kafka://u:***@h:9092 and https://a:***@example.org/x"),
    ("dsn host=h password=s3cret user=u", "dsn host=h password=*** user=u"),
    ("http://host:8080/path@x", "http://host:8080/path@x"),  # a port is not a password
    ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
])
def test_mask_secrets(text, masked):
    assert mask_secrets(text) == masked


def test_mask_url_uses_sqlalchemy_rendering():
    assert mask_url("postgresql://u:p@h:5432/db?sslmode=require") == "postgresql://u:***@h:5432/db?sslmode=require"
    assert mask_url(sa.engine.make_url("postgresql://u:p@h/db")) == "postgresql://u:***@h/db"
    assert mask_url("https://u:p@mlflow.example/") == "https://u:***@mlflow.example/"


def test_catalog_url_errors_are_masked():
    with pytest.raises(ValueError) as e:
        Catalog("mysql+pymysql://root:hunter2@127.0.0.1/test", create=False)
    assert "hunter2" not in str(e.value) and "root:***@" in str(e.value) and "not supported" in str(e.value)
    with pytest.raises(ValueError) as e:
        Catalog("nosuchdialect://u:hunter2@h/x")
    assert "hunter2" not in str(e.value) and "check catalog.url" in str(e.value)


def test_a_missing_table_is_one_line_naming_the_catalog(tmp_path):
    cat = Catalog(f"sqlite:///{tmp_path}/c.db")
    with sqlite3.connect(tmp_path / "c.db") as db:
        db.execute("DROP TABLE tsops_runs")
    with pytest.raises(sa.exc.OperationalError) as e:
        cat.list_runs()
    line = db_error_line(e.value)
    assert line == f"catalog (sqlite:///{tmp_path}/c.db): no such table: tsops_runs - check catalog.url in tsops.yaml"
    # found behind a `raise ... from` too
    try:
        raise RuntimeError("stage failed") from e.value
    except RuntimeError as wrapped:
        assert find_db_error(wrapped) is e.value and db_error_line(wrapped) == line
    cat.close()
