from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


@pytest.fixture
def project_dir(tmp_path):
    """An empty scratch directory for a tsops project."""
    d = tmp_path / "proj"
    d.mkdir()
    return d
