"""Fault injection: ingestion under SIGKILL, broker loss, a full disk and concurrent runs, lake checked against
the input (the scenarios of :mod:`tsops.testing.faults` at small sizes; ``bench/faults.py`` runs them full size)."""

from __future__ import annotations

import pytest

from tsops.testing import faults
from tsops.testing.services import need_kafka_mock, need_mariadb

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def check(res: faults.FaultResult, *, failures: bool = False) -> None:
    print(faults.TABLE_HEAD.splitlines()[0])
    print(res.row())
    assert res.lost == 0 and res.duplicated == 0, res.row()
    assert res.records > 0 and res.quarantined > 0 or "SQL" in res.scenario
    for trouble in ("run failed", "hung", "temporary files", "unexpected", "exit 2 without"):
        assert trouble not in res.note, res.note
    if failures:
        assert res.kills >= 1, f"the fault never hit a running ingestion: {res.row()}"


def test_sigkill_files(tmp_path):
    res = faults.files_sigkill(tmp_path, n=6000, files=3, batch_rows=300, kills=2, seed=11)
    check(res, failures=True)
    # every run either ended cleanly (a run may finish before its kill lands) or was killed; the final run's
    # exit code 0 is checked by check() through the note
    assert set(res.exit_codes) <= {0, "SIGKILL"} and res.exit_codes[0] >= 1, res.exit_codes


@pytest.mark.services
def test_sigkill_kafka(tmp_path):
    need_kafka_mock()
    owner, bootstrap = faults.mock_cluster()
    res = faults.kafka_sigkill(tmp_path, bootstrap, n=4000, batch_size=60, kills=2, seed=12)
    check(res, failures=True)
    del owner


def test_sigkill_sql_sqlite(tmp_path):
    res = faults.sql_sigkill(tmp_path, n=6000, batch_size=200, kills=2, seed=13)
    check(res, failures=True)


@pytest.mark.services
def test_sigkill_sql_mariadb(tmp_path):
    url = need_mariadb()
    res = faults.sql_sigkill(tmp_path, url, n=6000, batch_size=200, kills=2, seed=14)
    check(res, failures=True)


@pytest.mark.services
def test_kafka_broker_killed_mid_run_then_back(tmp_path):
    need_kafka_mock()
    res = faults.kafka_broker_loss(tmp_path, n=6000, batch_size=100, losses=1, seed=15)
    check(res)
    # the run that lost its broker failed with a clear line (or had everything already), the last one succeeded
    assert res.exit_codes[0] >= 1 and set(res.exit_codes) <= {0, 1}, res.exit_codes
    if res.exit_codes[1]:
        assert "cannot reach the brokers" in res.note


@pytest.mark.parametrize("mode", ["wrapper", "tmpfs"])
def test_disk_full_during_a_lake_write(tmp_path, mode):
    if mode == "tmpfs" and not faults.can_mount_tmpfs(tmp_path):
        pytest.skip("mounting a tmpfs needs root")
    res = faults.disk_full(tmp_path, n=5000, files=2, batch_rows=250, seed=16, mode=mode,
                           sizes_kb=(64, 128, 256) if mode == "wrapper" else (48, 0, 0))
    check(res, failures=True)
    assert res.exit_codes[1] == res.kills and res.exit_codes[0] >= 1  # ENOSPC: exit 1, then success


def test_concurrent_ingest_runs(tmp_path):
    res = faults.concurrent(tmp_path, rounds=3, procs=3, per_round=1000, batch_rows=200, seed=17)
    check(res)
    assert set(res.exit_codes) <= {0, 2, "SIGKILL"}, res.exit_codes  # 2: "already in progress"
    assert "still 'running'" not in res.note
    if res.kills:
        assert f"{res.kills} killed run(s) marked failed as stale" in res.note
