"""Detect the external services some tests need.

On a user's machine a missing service makes its tests skip with a clear reason. CI sets
``TSOPS_REQUIRE_SERVICES=1`` so that a missing service fails the test instead.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

POSTGRES_URL = os.environ.get("TSOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("TSOPS_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def services_required() -> bool:
    return os.environ.get("TSOPS_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def need(service: str, available: bool, how: str) -> None:
    """Skip (or fail under TSOPS_REQUIRE_SERVICES=1) when ``service`` is not available."""
    if available:
        return
    msg = f"{service} is not available: {how}"
    if services_required():
        pytest.fail(f"TSOPS_REQUIRE_SERVICES=1 but {msg}", pytrace=False)
    pytest.skip(msg)


def need_postgres() -> str:
    need("PostgreSQL", _port_open("127.0.0.1", 5432), "start it on 127.0.0.1:5432 or set TSOPS_TEST_POSTGRES_URL")
    return POSTGRES_URL


def need_mariadb() -> str:
    need("MariaDB/MySQL", _port_open("127.0.0.1", 3306), "start it on 127.0.0.1:3306 or set TSOPS_TEST_MARIADB_URL")
    return MARIADB_URL


def need_java() -> None:
    need("Java (for Spark)", shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME")),
         "install a JDK 17 and put java on PATH")


def need_kafka_mock() -> None:
    try:
        import confluent_kafka  # noqa: F401
        ok = True
    except ImportError:
        ok = False
    need("librdkafka mock cluster", ok, "pip install confluent-kafka")
