from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local[2] SparkSession for the whole test session (skips without Java)."""
    from tsops.testing.services import need_java

    need_java()
    from tsops.engine.spark import get_spark

    session = get_spark("tsops-tests", "local[2]", scratch_dir=tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()
