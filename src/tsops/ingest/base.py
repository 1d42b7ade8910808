"""The contract between sources and the ingestion runner.

A source yields :class:`SourceBatch` objects. Each carries a *deterministic* key derived from its source
position (topic-partition-offset range, poll watermark range, file and row range), so that replaying the same
input after a crash produces the same lake file names; the records as an Arrow table of typed fields; the
records that could not even be parsed (:class:`BadRecord`, raw bytes and reason); and the position to store
in the catalog once the batch is committed to the lake.

The runner (:mod:`tsops.ingest.runner`) turns records into long format, writes the raw and quarantine files,
commits positions and series statistics in one catalog transaction, and only then calls :meth:`Source.ack`
(e.g. to commit Kafka offsets). On restart the runner rolls back files of uncommitted batches and the source
resumes from the positions stored in the catalog (:meth:`Source.open`).
"""

from __future__ import annotations

import abc
import hashlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)

_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def safe_token(text: str, max_len: int = 60) -> str:
    """``text`` if made only of [A-Za-z0-9._-] (and short), else a readable prefix plus a hash: safe as part
    of a batch key, which becomes a lake file name."""
    if _SAFE.match(text) and len(text) <= max_len and text not in (".", ".."):
        return text
    h = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:40]
    return f"{readable}_{h}" if readable else h


@dataclass
class BadRecord:
    """A record rejected before it became a row: kept with its raw bytes, reason and source position."""

    raw: bytes
    reason: str
    pos: int = -1  # offset / row number in the source, -1 when unknown


@dataclass
class SourceBatch:
    key: str
    records: pa.Table
    bad: list[BadRecord] = field(default_factory=list)
    #: position of every row of ``records`` in the source (Kafka offset, row number); None = row index
    pos: np.ndarray | None = None
    #: positions to store on commit: {partition key: JSON-able position}, e.g. {"sensors/3": {"offset": 1200}}
    positions: dict[str, Any] = field(default_factory=dict)
    #: source label stored in the ``_src`` column (e.g. "kafka:sensors/3", "file:air.csv")
    src: str = ""
    #: opaque state for the source's own ack (e.g. Kafka TopicPartition offsets)
    ack_state: Any = None

    @property
    def consumed(self) -> int:
        return self.records.num_rows + len(self.bad)


class GapError(RuntimeError):
    """Records between the committed position and the first record still available are gone."""


class SourceUnavailable(RuntimeError):
    """The source cannot be reached, or it refused the credentials (the message never contains them)."""


@dataclass
class Gap:
    """Records a source can no longer deliver: between ``committed`` (the catalog position) and ``available``
    (the first position the source still has) of partition ``part``."""

    part: str
    committed: Any
    available: Any
    detail: str
    #: how many records were lost, when the source can tell
    skipped: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"part": self.part, "committed": self.committed, "available": self.available,
                "detail": self.detail, "skipped": self.skipped}


class Source(abc.ABC):
    """A stream of :class:`SourceBatch` es that can resume from stored positions.

    A source that finds a gap (:class:`Gap`: its committed position is no longer available, e.g. deleted by
    retention, a truncated table, a replaced file) calls :meth:`gap`: the runner records it in the audit and
    the run's stats, and unless the source's config says ``on_gap: skip`` the run fails with
    :class:`GapError`.
    """

    #: a stable name for this source within its dataset, used as the catalog position namespace
    name: str = "source"
    #: "fail" (default) or "skip": what a gap does (from the source config's ``on_gap``)
    on_gap: str = "fail"
    #: set by the runner: receives every gap with the action taken ("skipped" or "failed")
    gap_sink: Callable[[Gap, str], None] | None = None

    def gap(self, g: Gap) -> None:
        """Report a gap: recorded by the runner; raises :class:`GapError` unless ``on_gap`` is ``skip``."""
        action = "skipped" if self.on_gap == "skip" else "failed"
        if self.gap_sink is not None:
            self.gap_sink(g, action)
        if action == "failed":
            lost = f" ({g.skipped:,} records)" if g.skipped is not None else ""
            raise GapError(
                f"{self.name} {g.part}: {g.detail}{lost}; nothing after the gap was ingested. Set `on_gap: skip` "
                "in the dataset's source config to skip it (recorded in the audit)"
            )
        log.warning("%s %s: %s: skipped (on_gap: skip)", self.name, g.part, g.detail)

    def open(self, positions: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Receive the committed positions of this source (partition key -> position) before reading."""

    @abc.abstractmethod
    def batches(self) -> Iterator[SourceBatch]:
        """Yield batches from the stored positions on, until caught up (or forever when following)."""

    def ack(self, batch: SourceBatch) -> None:  # noqa: B027 - optional hook
        """Called after the batch is committed in the lake and catalog."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
