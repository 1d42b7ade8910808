"""Per-dataset locks so that two runs of the same kind on the same dataset never interleave.

An exclusive ``fcntl`` lock on ``<project>/.tsops/locks/<dataset>.lock`` (pipeline runs) or
``<dataset>.<kind>.lock`` (e.g. ``ingest``: taken by every ingestion of the dataset, also the pipeline's ingest
stage, which holds the pipeline lock too): released by the kernel when the holder exits, however it exits (a
SIGKILLed run never leaves a stale lock). The file records who holds it, so the second run can say so. Runs on
several hosts sharing one project need a shared file system that honours POSIX locks (NFSv4 does).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import time
from pathlib import Path


class LockBusy(RuntimeError):
    """Another run holds the dataset's lock."""


class DatasetLock:
    def __init__(self, project_root: Path, dataset: str, *, wait: bool = False, timeout_s: float = 3600.0,
                 kind: str = "pipeline"):
        name = f"{dataset}.lock" if kind == "pipeline" else f"{dataset}.{kind}.lock"
        self.path = Path(project_root) / ".tsops" / "locks" / name
        self.dataset = dataset
        self.kind = kind
        self.wait = wait
        self.timeout_s = timeout_s
        self._fh = None

    def holder(self) -> dict | None:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
            return json.loads(text) if text else None
        except (FileNotFoundError, ValueError):
            return None

    def acquire(self) -> DatasetLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the lock's lifetime
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not self.wait or time.monotonic() > deadline:
                    fh.close()
                    h = self.holder() or {}
                    who = f"pid {h.get('pid')} on {h.get('host')} since {h.get('since')}" if h else "another run"
                    raise LockBusy(
                        f"a{'n' if self.kind[:1] in 'aeiou' else ''} {self.kind} run on dataset {self.dataset!r} "
                        f"is already in progress ({who}); wait for it, or pass --wait to queue behind it"
                    ) from None
                time.sleep(0.5)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> DatasetLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
