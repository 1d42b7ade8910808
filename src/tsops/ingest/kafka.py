"""Kafka source: consumer groups, Kafka Connect JSON envelopes or plain JSON, exactly-once into the lake.

The catalog, not Kafka, is the authority on what was ingested: the next offset of every partition is stored in
the same catalog transaction that commits the batch's lake files. When the consumer group assigns a partition,
uncommitted batches of that partition are rolled back and the consumer is positioned at the catalog's offset
(falling back to the group's committed offset; a partition with neither starts at ``auto.offset.reset`` of the
consumer settings, earliest by default). Kafka offsets are committed (asynchronously) after the catalog commit,
so tools that watch consumer lag see progress, but a lost Kafka commit changes nothing.

Gaps: a committed offset below the partition's log start (the broker deleted messages not yet ingested,
retention) or beyond its end (the topic was deleted and recreated) is a gap, checked against the watermarks
when the partition is assigned and, with librdkafka's ``auto.offset.reset=error``, whenever a fetch position
is out of range. It fails the run (:class:`~tsops.ingest.base.GapError`, audited) unless the source says
``on_gap: skip``; then reading goes on at the log start (a recreated topic's batches get a new generation in
their keys, ``-g1``, so they are not mistaken for the old log's). Brokers that cannot be reached (reported by
librdkafka's error callback and confirmed by a metadata request before giving up) and refused credentials
fail the run with :class:`~tsops.ingest.base.SourceUnavailable`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tsops.config import ConfigError, KafkaSourceConfig
from tsops.ingest.base import BadRecord, Gap, Source, SourceBatch, SourceUnavailable, safe_token

log = logging.getLogger(__name__)


def _auth_codes() -> frozenset[int]:
    try:
        from confluent_kafka import KafkaError
    except ImportError:  # pragma: no cover - confluent-kafka is a dependency
        return frozenset()
    names = ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL", "TOPIC_AUTHORIZATION_FAILED",
             "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED", "ILLEGAL_SASL_STATE",
             "UNSUPPORTED_SASL_MECHANISM")
    return frozenset(getattr(KafkaError, n) for n in names if hasattr(KafkaError, n))


_AUTH_CODES = _auth_codes()


def part_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def parse_messages(
    values: Sequence[bytes | None], fmt: str, parser: Any = None
) -> tuple[Any, list[tuple[int, bytes, str]]]:
    """Parse raw message values: returns (arrow table with ``_index``, [(index, raw, reason)])."""
    from tsops.ingest.envelope import EnvelopeParser, parse_isolating

    parser = parser or EnvelopeParser()
    parse = parser.parse if fmt == "envelope" else (lambda vs: parser.parse_plain(vs, None))
    parsed = parse_isolating(parse, values)
    bad = [(int(b.index), b.raw if b.raw is not None else b"", b.reason) for b in parsed.bad]
    return parsed.table, bad


class KafkaSource(Source):
    """Consume one topic in a consumer group; one :class:`SourceBatch` per partition per poll."""

    def __init__(
        self,
        cfg: KafkaSourceConfig,
        *,
        follow: bool = False,
        max_messages: int | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] | None = None,
    ):
        self.cfg = cfg
        self.name = f"kafka:{cfg.topic}"
        self.follow = follow
        self.max_messages = max_messages
        self._consumer_factory = consumer_factory
        self._consumer = None
        self._recover: Callable[[Sequence[str] | None], dict[str, Any]] | None = None
        self._positions: dict[str, Any] = {}
        self._assigned: set[int] = set()
        self._eof: set[int] = set()
        self._parser = None  # one parser per source: it caches the schema blocks it has seen
        self._last_assign: float | None = None
        self._n_partitions: int | None = None
        self.on_gap = cfg.on_gap
        self.close_timeout_s = 10.0
        self._error: BaseException | None = None  # raised by batches() after the callback that found it
        self._conn_errors: list[str] = []  # connectivity errors since the last message
        self._next: dict[int, int] = {}  # partition -> next offset to read (negative: a logical start)
        self._gen: dict[int, int] = {}  # partition -> generation (bumped when a recreated topic is skipped)

    # ------------------------------------------------------------------ runner hooks
    def bind(self, recover: Callable[[Sequence[str] | None], dict[str, Any]]) -> None:
        """The runner's recovery hook: roll back a partition's pending batches and return positions."""
        self._recover = recover

    def open(self, positions: Mapping[str, Any]) -> None:
        self._positions = dict(positions)

    def _conf(self) -> dict[str, Any]:
        conf = {
            "bootstrap.servers": self.cfg.bootstrap_servers,
            "group.id": self.cfg.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # a committed offset the broker no longer has is a gap: reported, never silently reset
            "auto.offset.reset": "error",
            "enable.partition.eof": True,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "error_cb": self._on_error,
        }
        conf.update(self.cfg.consumer)
        return conf

    def _start_offset(self) -> int:
        """Where a partition with no stored position starts (``auto.offset.reset`` of the config, else earliest)."""
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

        reset = str(self.cfg.consumer.get("auto.offset.reset", "earliest")).lower()
        return OFFSET_END if reset in ("latest", "largest", "end") else OFFSET_BEGINNING

    def _on_error(self, err) -> None:
        """librdkafka's error callback: connection and authentication problems arrive here."""
        from confluent_kafka import KafkaError

        code = err.code()
        if code in _AUTH_CODES:
            self._error = self._error or SourceUnavailable(
                f"kafka: the brokers at {self.cfg.bootstrap_servers} refused the connection's credentials or "
                f"permissions ({err.str()}); check security.protocol / sasl.* in the source's consumer settings")
        elif code in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE,
                      KafkaError._TIMED_OUT):
            if err.str() not in self._conn_errors[-8:]:
                log.warning("kafka: %s", err.str())
            self._conn_errors.append(err.str())
            del self._conn_errors[:-16]
        elif err.fatal():
            self._error = self._error or SourceUnavailable(f"kafka: fatal client error: {err.str()}")
        else:
            log.warning("kafka: %s", err.str())

    def _unreachable(self, why: str) -> SourceUnavailable:
        self.close_timeout_s = min(self.close_timeout_s, 1.0)  # no broker to say goodbye to
        last = self._conn_errors[-1] if self._conn_errors else "no error reported"
        return SourceUnavailable(
            f"kafka: {why}: cannot reach the brokers at {self.cfg.bootstrap_servers} ({last}); "
            "check bootstrap_servers and that Kafka is up")

    def _check_gap(self, consumer, topic: str, partition: int, offset: int, gen: int) -> tuple[int, int]:
        """The offset to read from (and the generation) given the committed ``offset``: gaps are reported."""
        from confluent_kafka import TopicPartition

        lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
        key = part_key(topic, partition)
        if offset < lo:
            self.gap(Gap(key, offset, lo, f"offsets {offset}..{lo - 1} were deleted by the broker (retention) "
                                          "before they were ingested", skipped=lo - offset))
            return lo, gen
        if offset > hi:
            self.gap(Gap(key, offset, hi, f"the committed offset {offset} is beyond the partition's end {hi}: the "
                                          "topic was deleted and recreated (or truncated)", skipped=None))
            return lo, gen + 1  # new batch keys: the recreated partition reuses the old offsets
        return offset, gen

    def _on_assign(self, consumer, partitions) -> None:
        from confluent_kafka import OFFSET_INVALID

        keys = [part_key(p.topic, p.partition) for p in partitions]
        positions = self._recover(keys) if self._recover else self._positions
        self._positions.update(positions)
        committed = {}
        try:
            committed = {
                tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10) if tp.offset >= 0
            }
        except Exception as err:  # noqa: BLE001 - committed offsets are only a fallback
            log.warning("could not read committed offsets (%s); using the catalog and auto.offset.reset", err)
        for p in partitions:
            pos = positions.get(part_key(p.topic, p.partition))
            gen = int(pos.get("gen", 0)) if pos is not None else 0
            if pos is not None:
                p.offset = int(pos["next_offset"])
            elif p.partition in committed:
                p.offset = committed[p.partition]
            else:
                p.offset = OFFSET_INVALID
            if p.offset >= 0 and self._error is None:
                try:
                    p.offset, gen = self._check_gap(consumer, p.topic, p.partition, p.offset, gen)
                except Exception as err:  # noqa: BLE001 - raised from batches(), not inside librdkafka's callback
                    self._error = err
            if p.offset < 0:
                p.offset = self._start_offset()
            self._gen[p.partition] = gen
            self._next[p.partition] = p.offset
            self._assigned.add(p.partition)
            self._eof.discard(p.partition)
        self._last_assign = time.monotonic()
        log.info("assigned %s", ", ".join(f"{k}@{p.offset}" for k, p in zip(keys, partitions, strict=True)))
        consumer.assign(partitions)

    def _on_revoke(self, consumer, partitions) -> None:
        for p in partitions:
            self._assigned.discard(p.partition)
            self._eof.discard(p.partition)
        consumer.unassign()

    # ------------------------------------------------------------------ reading
    def batches(self) -> Iterator[SourceBatch]:
        from confluent_kafka import Consumer, KafkaError, KafkaException

        factory = self._consumer_factory or Consumer
        try:
            consumer = factory(self._conf())
        except KafkaException as err:
            raise ConfigError(f"kafka source of topic {self.cfg.topic!r}: the consumer settings are invalid "
                              f"({err.args[0].str() if err.args else err})") from None
        self._consumer = consumer
        consumer.subscribe([self.cfg.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        topic = self.cfg.topic
        last_activity = time.monotonic()
        total = 0
        while True:
            msgs = consumer.consume(num_messages=self.cfg.batch_size, timeout=self.cfg.poll_timeout_s)
            if self._error is not None:
                raise self._error
            by_part: dict[int, list] = defaultdict(list)
            for m in msgs:
                err = m.error()
                if err is not None:
                    code = err.code()
                    if code == KafkaError._PARTITION_EOF:
                        self._eof.add(m.partition())
                        continue
                    if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                        self._out_of_range(consumer, topic, m.partition())  # raises unless on_gap: skip
                        by_part.pop(m.partition(), None)
                        break
                    if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                        raise SourceUnavailable(f"kafka: topic {topic!r} does not exist at "
                                                f"{self.cfg.bootstrap_servers} ({err.str()})")
                    if code in _AUTH_CODES:
                        raise SourceUnavailable(f"kafka: not allowed to read topic {topic!r} ({err.str()})")
                    if err.retriable() or not err.fatal():
                        log.warning("kafka: %s", err)
                        continue
                    raise KafkaException(err)
                by_part[m.partition()].append(m)
                self._eof.discard(m.partition())
            if by_part:
                last_activity = time.monotonic()
            for partition in sorted(by_part):
                batch = self._make_batch(topic, partition, by_part[partition])
                total += batch.consumed
                yield batch
            if self.max_messages is not None and total >= self.max_messages:
                return
            if not self.follow:
                now = time.monotonic()
                if self._last_assign is None:  # still joining the group
                    if self._conn_errors and now - last_activity > self.cfg.idle_timeout_s \
                            and not self._reachable(consumer, topic):
                        raise self._unreachable("no partition assigned")
                    if now - last_activity > max(30.0, self.cfg.idle_timeout_s):
                        log.warning("kafka: no partition of %s assigned after 30 s; stopping", topic)
                        return
                    continue
                # Caught up on every partition of the topic: done. Holding only some partitions (other members,
                # or dead ones whose session has not expired yet): wait for a rebalance until idle.
                caught_up = bool(self._assigned) and self._assigned <= self._eof
                if caught_up and not by_part and self._assigned >= self._all_partitions(consumer, topic):
                    return
                if now - max(last_activity, self._last_assign) > self.cfg.idle_timeout_s:
                    # not caught up: stopping is fine if the brokers are there (other members hold the
                    # rest), not if they went away (messages still queued locally can hide their errors)
                    if self._conn_errors and not self._reachable(consumer, topic):
                        raise self._unreachable(f"nothing received for {self.cfg.idle_timeout_s:g} s")
                    return

    def _reachable(self, consumer, topic: str) -> bool:
        """Whether a broker answers a metadata request for ``topic`` now (clears past connection errors)."""
        from confluent_kafka import KafkaException

        try:
            consumer.list_topics(topic, timeout=5)
        except KafkaException as err:
            self._conn_errors.append(str(err.args[0].str() if err.args else err))
            return False
        self._conn_errors.clear()
        return True

    def _out_of_range(self, consumer, topic: str, partition: int) -> None:
        """A fetch position the broker no longer has (``auto.offset.reset=error``): a gap, then seek past it."""
        from confluent_kafka import TopicPartition

        start = self._next.get(partition, -1)
        if start < 0:
            start = consumer.position([TopicPartition(topic, partition)])[0].offset
        offset, gen = self._check_gap(consumer, topic, partition, max(start, 0), self._gen.get(partition, 0))
        self._gen[partition] = gen
        consumer.seek(TopicPartition(topic, partition, offset))

    def _all_partitions(self, consumer, topic: str) -> set[int]:
        if self._n_partitions is None:
            md = consumer.list_topics(topic, timeout=10)
            self._n_partitions = len(md.topics[topic].partitions)
        return set(range(self._n_partitions))

    def _make_batch(self, topic: str, partition: int, msgs: list) -> SourceBatch:
        offsets = np.fromiter((m.offset() for m in msgs), dtype=np.int64, count=len(msgs))
        values = [m.value() for m in msgs]
        if self._parser is None:
            from tsops.ingest.envelope import EnvelopeParser

            self._parser = EnvelopeParser()
        table, bad = parse_messages(values, self.cfg.format, self._parser)
        first, last = int(offsets[0]), int(offsets[-1])
        pos = offsets[table.column("_index").to_numpy()] if table.num_rows else np.empty(0, np.int64)
        gen = self._gen.get(partition, 0)
        self._next[partition] = last + 1
        position: dict[str, Any] = {"next_offset": last + 1}
        if gen:
            position["gen"] = gen
        return SourceBatch(
            key=f"kafka-{safe_token(topic)}-p{partition}-o{first}-{last}" + (f"-g{gen}" if gen else ""),
            records=table,
            bad=[BadRecord(raw=raw, reason=reason, pos=int(offsets[i])) for i, raw, reason in bad],
            pos=pos,
            positions={part_key(topic, partition): position},
            src=f"kafka:{topic}/{partition}",
            ack_state=(topic, partition, last + 1),
        )

    def ack(self, batch: SourceBatch) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        topic, partition, next_offset = batch.ack_state
        try:  # asynchronous: a synchronous commit blocks for ever when the coordinator is gone
            self._consumer.commit(offsets=[TopicPartition(topic, partition, next_offset)], asynchronous=True)
        except KafkaException as err:  # the catalog holds the truth; a lost Kafka commit is only lag
            log.warning("kafka offset commit for %s/%s failed (%s); the catalog position stands", topic, partition, err)

    def close(self) -> None:
        """Close the consumer (leave the group); given up after ``close_timeout_s`` when the brokers are gone
        (librdkafka's close then waits for them for ever)."""
        if self._consumer is None:
            return
        consumer, self._consumer = self._consumer, None
        t = threading.Thread(target=_close_quietly, args=(consumer,), name="kafka-close", daemon=True)
        t.start()
        t.join(self.close_timeout_s)
        if t.is_alive():
            log.warning("kafka: the consumer did not close within %g s (brokers unreachable); left behind",
                        self.close_timeout_s)
            _ABANDONED.append(consumer)  # never destroyed: its destructor would block too


_ABANDONED: list[Any] = []


def _close_quietly(consumer: Any) -> None:
    try:
        consumer.close()
    except Exception as err:  # noqa: BLE001 - closing is best effort
        log.warning("kafka: closing the consumer failed (%s)", err)

