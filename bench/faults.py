"""Fault injection for ingestion (issue 14): every scenario of :mod:`tsops.testing.faults`, full size.

Usage::

    PYTHONPATH=src python bench/faults.py [--small] [--only files_sigkill kafka_sigkill ...] [--no-mariadb]
                                          [--write-results]

Runs each scenario in a scratch directory (SIGKILL at random points for files, Kafka on librdkafka's mock
cluster, SQL on SQLite and MariaDB; the broker process killed mid-run then a broker with the same log; the
lake's disk filling up during a write (a tmpfs when run as root, else a failing writer); several concurrent
``tsops ingest`` processes, round after round) and prints one Markdown table: records, faults injected, runs,
lost, duplicated and quarantined records (checked record by record against the input), exit codes.
``--write-results`` puts the table into bench/RESULTS.md under "Fault injection (issue 14)".
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

from tsops.testing import faults
from tsops.testing.services import MARIADB_URL, _port_open

SECTION = "## Fault injection (issue 14)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="test sizes")
    ap.add_argument("--only", nargs="*", help="scenario names (files_sigkill kafka_sigkill sql_sigkill "
                                               "kafka_broker_loss disk_full concurrent)")
    ap.add_argument("--no-mariadb", action="store_true", help="skip the MariaDB SIGKILL scenario")
    ap.add_argument("--write-results", action="store_true", help="write the table into bench/RESULTS.md")
    args = ap.parse_args()
    mariadb = None if args.no_mariadb or not _port_open("127.0.0.1", 3306) else MARIADB_URL
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tsops-faults-") as d:
        results = faults.run_all(Path(d), small=args.small, mariadb_url=mariadb, only=args.only)
    table = "\n".join([faults.TABLE_HEAD, *(r.row() for r in results)])
    print(table)
    total = time.perf_counter() - t0
    bad = [r.scenario for r in results if not r.ok]
    print(f"\n{len(results)} scenarios in {total:.0f} s; "
          + ("nothing lost or duplicated" if not bad else f"LOST OR DUPLICATED in: {bad}"))
    if args.write_results:
        write_results(table, total, args.small)
    return 1 if bad else 0


def write_results(table: str, total: float, small: bool) -> None:
    path = Path(__file__).with_name("RESULTS.md")
    text = path.read_text(encoding="utf-8")
    body = (f"{SECTION} (`bench/faults.py`)\n\n"
            f"`PYTHONPATH=src python bench/faults.py{' --small' if small else ''} --write-results` on "
            f"{platform.node() or 'this machine'} (2 cores shared with other jobs), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{total:.0f} s in all. Every record of the input is looked up in the lake (raw and quarantine zones, "
            "by source label and position): **lost** = in neither, **duplicated** = more than once. Kills / "
            "faults counts only faults that hit an unfinished ingestion. Exit codes: 0 success, 1 the run failed "
            "with one line (broker unreachable, no space left), 2 refused because another ingestion of the "
            "dataset holds its lock, SIGKILL killed by the scenario. The same scenarios run at small sizes in "
            "`tests/ingest/test_faults.py` (marker `faults`).\n\n" + table + "\n")
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + body
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
