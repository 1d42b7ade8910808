"""Fast parser for Kafka Connect JSON envelopes (``JsonConverter`` with ``schemas.enable=true``).

A Connect message is ``{"schema": {...}, "payload": {...}}``. In a stream the schema block is byte-identical
from message to message and makes up most of the bytes, so the fast path

1. recognises the schema block by its bytes (the *prefix* up to and including ``"payload":``, cached after one
   strict parse of a whole message),
2. cuts out the payload slices and parses all of them in one vectorised call (NDJSON through
   :func:`pyarrow.json.read_json` with an explicit schema and ``unexpected_field_behavior="error"``),
3. checks what the Arrow reader does not (row count = line count, required fields present and non-null,
   integer ranges of int8/16/32, finite floats (the reader takes ``NaN`` tokens), valid UTF-8, base64 of
   ``bytes``/``Decimal``) and sends every suspect row to the slow path.

When a vectorised read fails, the chunk is re-read with every line tagged by its number, as a stream of small
blocks: the rows before a failing block are kept, the line the error names (or, when it names none, the lines
a bisection of the block isolates) goes through the slow path, and reading resumes after it. The slow path
parses one message strictly with :mod:`json` (UTF-8 only, no NaN/Infinity, no duplicate keys) and names the
field and problem. It is authoritative: the fast path only ever accepts a message the slow path would accept
with the same values (the tests check this on thousands of randomly corrupted messages).

Connect type mapping: int8/int16/int32/int64 -> int64 (range-checked), float/float32/double/float64 -> float64,
boolean -> bool, string -> string, bytes (base64) -> binary, logical ``Timestamp`` -> timestamp[ms, UTC],
``Date`` -> date32, ``Time`` -> time32[ms], ``Decimal`` (base64 two's complement, or a JSON number) -> float64.
``array``/``map``/``struct`` fields are not supported: messages with such a schema are bad records.

Schema changes inside one batch: the output table is the union of the fields (in order of first appearance),
with nulls where a schema lacks a field. If two schemas give one field different Arrow types (no cast between
them is lossless in general), the schema with the most messages in the batch wins and the messages of the
conflicting schema become bad records whose reason names the field and both types, so that one odd message
cannot block a stream; ``EnvelopeParser(on_conflict="raise")`` raises :class:`SchemaConflictError` instead.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

log = logging.getLogger(__name__)

INDEX_COLUMN = "_index"
_PAYLOAD_KEY = b'"payload":'
_LOGICAL_TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
_LOGICAL_DATE = "org.apache.kafka.connect.data.Date"
_LOGICAL_TIME = "org.apache.kafka.connect.data.Time"
_LOGICAL_DECIMAL = "org.apache.kafka.connect.data.Decimal"
_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
_FLOAT_TYPES = {"float", "float32", "double", "float64"}
_MS_PER_DAY = 86_400_000
_ROW_HINT = re.compile(r"in row (\d+)")
_FAST_CHUNK = 16384  # lines per vectorised read (keeps the working set in cache)
_MAX_PREFIXES = 64
_WIDE = decimal.Context(prec=40, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_LINE_KEY = "\x00ln"  # written as "\u0000ln" in JSON: cannot clash with a field that passes the schema


class SchemaConflictError(ValueError):
    """Two Connect schemas in one batch give the same field different types."""


@dataclass
class BadRecord:
    """A message that did not become a row: its position in the input, raw bytes and the reason."""

    index: int
    raw: bytes
    reason: str


@dataclass
class ParsedBatch:
    """The typed rows of the good messages (with ``_index``) and the rejected messages, both in input order."""

    table: pa.Table
    bad: list[BadRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return self.table.num_rows + len(self.bad)


class _Bad(Exception):
    """Internal: the message is a bad record for ``reason``."""


# ---------------------------------------------------------------------------------------------- schemas
@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # int | float | bool | string | bytes | decimal | timestamp | date | time
    type_label: str  # what error messages say was expected, e.g. "float", "int32", "Timestamp (int64)"
    optional: bool
    lo: int | None = None
    hi: int | None = None
    scale: int = 0

    @property
    def read_type(self) -> pa.DataType:
        """The Arrow type the vectorised JSON reader produces for this field."""
        return {
            "int": pa.int64(), "timestamp": pa.int64(), "date": pa.int64(), "time": pa.int64(),
            "float": pa.float64(), "bool": pa.bool_(), "string": pa.string(),
            "bytes": pa.string(), "decimal": pa.string(),
        }[self.kind]

    @property
    def out_type(self) -> pa.DataType:
        return {
            "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "string": pa.string(),
            "bytes": pa.binary(), "decimal": pa.float64(), "timestamp": pa.timestamp("ms", tz="UTC"),
            "date": pa.date32(), "time": pa.time32("ms"),
        }[self.kind]


@dataclass(frozen=True)
class _Schema:
    fields: tuple[_Field, ...]
    name: str | None = None
    error: str | None = None  # set when the schema itself is unusable: every message with it is bad

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})
        object.__setattr__(self, "read_schema", pa.schema([(f.name, f.read_type) for f in self.fields]))
        object.__setattr__(self, "out_schema", pa.schema([(f.name, f.out_type) for f in self.fields]))


def _compile_connect_schema(schema: Any) -> _Schema:
    """Turn a Connect schema JSON object into a :class:`_Schema` (``error`` set when unsupported)."""
    if not isinstance(schema, dict):
        return _Schema((), error=f"schema is not a JSON object (got {_describe(schema)})")
    if schema.get("type") != "struct":
        return _Schema((), error=f"schema type {schema.get('type')!r} is not supported (need 'struct')")
    raw_fields = schema.get("fields")
    if not isinstance(raw_fields, list):
        return _Schema((), error="schema of type 'struct' has no 'fields' list")
    fields: list[_Field] = []
    seen: set[str] = set()
    for i, f in enumerate(raw_fields):
        if not isinstance(f, dict) or not isinstance(f.get("field"), str):
            return _Schema((), error=f"schema field #{i} has no 'field' name")
        name, ctype, logical = f["field"], f.get("type"), f.get("name")
        if name in seen:
            return _Schema((), error=f"schema field '{name}' is declared twice")
        seen.add(name)
        if name == INDEX_COLUMN:
            return _Schema((), error=f"schema field '{name}' clashes with the reserved column {INDEX_COLUMN!r}")
        optional = f.get("optional", False)
        if not isinstance(optional, bool):
            return _Schema((), error=f"schema field '{name}': 'optional' must be true/false, got {optional!r}")
        if logical == _LOGICAL_TIMESTAMP and ctype == "int64":
            fields.append(_Field(name, "timestamp", "Timestamp (int64 epoch ms)", optional, *_INT_RANGES["int64"]))
        elif logical == _LOGICAL_DATE and ctype == "int32":
            fields.append(_Field(name, "date", "Date (int32 days)", optional, *_INT_RANGES["int32"]))
        elif logical == _LOGICAL_TIME and ctype == "int32":
            fields.append(_Field(name, "time", "Time (int32 ms of day)", optional, 0, _MS_PER_DAY - 1))
        elif logical == _LOGICAL_DECIMAL and ctype == "bytes":
            params = f.get("parameters") or {}
            try:
                scale = int(params.get("scale", 0))
            except (TypeError, ValueError):
                return _Schema((), error=f"schema field '{name}': Decimal scale {params.get('scale')!r} is not an int")
            fields.append(_Field(name, "decimal", "Decimal (base64 bytes)", optional, scale=scale))
        elif ctype in _INT_RANGES:
            fields.append(_Field(name, "int", ctype, optional, *_INT_RANGES[ctype]))
        elif ctype in _FLOAT_TYPES:
            fields.append(_Field(name, "float", ctype, optional))
        elif ctype == "boolean":
            fields.append(_Field(name, "bool", "boolean", optional))
        elif ctype == "string":
            fields.append(_Field(name, "string", "string", optional))
        elif ctype == "bytes":
            fields.append(_Field(name, "bytes", "bytes (base64)", optional))
        else:
            what = f"{ctype!r}" + (f" (logical {logical!r})" if logical else "")
            return _Schema((), error=f"schema field '{name}' has unsupported Connect type {what}")
    name = schema.get("name")
    return _Schema(tuple(fields), name=name if isinstance(name, str) else None)


def _compile_arrow_schema(schema: pa.Schema) -> _Schema:
    """A :class:`_Schema` for plain JSON records typed by an Arrow schema (all fields optional if nullable)."""
    fields = []
    for f in schema:
        t, opt = f.type, f.nullable
        if f.name == INDEX_COLUMN:
            raise ValueError(f"schema field {f.name!r} clashes with the reserved column {INDEX_COLUMN!r}")
        if pa.types.is_integer(t):
            bits = t.bit_width if pa.types.is_signed_integer(t) else None
            if bits is None:
                raise ValueError(f"field {f.name!r}: unsigned type {t} is not supported, use int64")
            label = f"int{bits}"
            fields.append(_Field(f.name, "int", label, opt, *_INT_RANGES[label]))
        elif pa.types.is_floating(t):
            fields.append(_Field(f.name, "float", "float", opt))
        elif pa.types.is_boolean(t):
            fields.append(_Field(f.name, "bool", "boolean", opt))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            fields.append(_Field(f.name, "string", "string", opt))
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            fields.append(_Field(f.name, "bytes", "bytes (base64)", opt))
        elif pa.types.is_timestamp(t) and t.unit == "ms":
            fields.append(_Field(f.name, "timestamp", "epoch milliseconds (int64)", opt, *_INT_RANGES["int64"]))
        elif pa.types.is_date32(t):
            fields.append(_Field(f.name, "date", "days since epoch (int32)", opt, *_INT_RANGES["int32"]))
        else:
            raise ValueError(
                f"field {f.name!r}: Arrow type {t} is not supported for JSON records "
                "(use int*, float*, bool, string, binary, timestamp('ms'), date32)"
            )
    return _Schema(tuple(fields))


# ---------------------------------------------------------------------------------------------- values
def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean {'true' if v else 'false'}"
    if isinstance(v, (int, float)):
        return f"number {v!r}"
    if isinstance(v, str):
        s = v if len(v) <= 40 else v[:37] + "..."
        return f"string {s!r}"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    return type(v).__name__


def _b64(s: str) -> bytes:
    return base64.b64decode(s.encode("ascii"), validate=True)


def _decimal_from_b64(s: str, scale: int) -> float:
    """The float64 of a Connect Decimal; OverflowError when it is beyond float64's range."""
    unscaled = int.from_bytes(_b64(s), "big", signed=True)
    if abs(scale) <= 400:
        x = unscaled / 10**scale if scale >= 0 else float(unscaled * 10 ** (-scale))
    else:  # no 10**scale of a huge scale: decimal scales the exponent (0.0 or beyond float64, as it should)
        x = float(decimal.Decimal(unscaled).scaleb(-scale, _WIDE))
    if not math.isfinite(x):
        raise OverflowError("beyond the float64 range")
    return x


def _check_value(f: _Field, v: Any) -> Any:
    """Validate one non-null payload value; return it in the field's *read* representation (see fast path)."""
    k, t = f.kind, type(v)
    if k in ("int", "timestamp", "date", "time"):
        if t is not int:
            raise _Bad(f"field '{f.name}': expected {f.type_label}, got {_describe(v)}")
        if not f.lo <= v <= f.hi:  # type: ignore[operator]
            raise _Bad(f"field '{f.name}': value {v} is out of range for {f.type_label} [{f.lo}, {f.hi}]")
        return v
    if k == "float":
        if t is not int and t is not float:
            raise _Bad(f"field '{f.name}': expected {f.type_label}, got {_describe(v)}")
        try:
            x = float(v)
        except OverflowError:
            x = math.inf
        if not math.isfinite(x):
            raise _Bad(f"field '{f.name}': number {v!r} is not finite")
        return x
    if k == "bool":
        if t is not bool:
            raise _Bad(f"field '{f.name}': expected boolean, got {_describe(v)}")
        return v
    if k == "decimal" and t in (int, float):
        try:
            x = float(v)
        except OverflowError:
            x = math.inf
        if not math.isfinite(x):
            raise _Bad(f"field '{f.name}': number {v!r} is not finite")
        return x
    if t is not str:
        raise _Bad(f"field '{f.name}': expected {f.type_label}, got {_describe(v)}")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad(f"field '{f.name}': string contains an unpaired surrogate escape") from None
    if k == "string":
        return v
    try:
        return _decimal_from_b64(v, f.scale) if k == "decimal" else _b64(v)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise _Bad(f"field '{f.name}': {_describe(v)} is not valid base64 for {f.type_label}") from None
    except OverflowError:
        raise _Bad(f"field '{f.name}': Decimal {_describe(v)} with scale {f.scale} is beyond the float64 "
                   "range") from None


def _check_payload(schema: _Schema, payload: Any) -> dict[str, Any]:
    """Validate a decoded payload against ``schema``; return {field: value in read representation}."""
    if payload is None:
        raise _Bad("payload is null (no record; a tombstone-like envelope)")
    if not isinstance(payload, dict):
        raise _Bad(f"payload is not a JSON object (got {_describe(payload)})")
    for key in payload:
        if key not in schema.by_name:  # type: ignore[attr-defined]
            raise _Bad(f"payload field '{key}' not in schema")
    row = {}
    for f in schema.fields:
        v = payload.get(f.name, _MISSING)
        if v is _MISSING or v is None:
            if not f.optional:
                raise _Bad(f"missing required field '{f.name}'" if v is _MISSING
                           else f"field '{f.name}': null in required (non-optional) field")
            row[f.name] = None
        else:
            row[f.name] = _check_value(f, v)
    return row


_MISSING = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON token {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key '{dup}'")
    return d


def _loads(raw: bytes) -> Any:
    """Strict JSON: UTF-8 only, no NaN/Infinity tokens, no duplicate keys. Raises _Bad('malformed JSON: ...')."""
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _Bad(f"malformed JSON: {e}") from None


def _finalize(f: _Field, arr: pa.Array) -> pa.Array:
    """Read representation -> output type (shared by the fast and slow paths)."""
    if f.kind == "timestamp":
        return pc.cast(arr, pa.timestamp("ms", tz="UTC"))
    if f.kind == "date":
        return pc.cast(pc.cast(arr, pa.int32()), pa.date32())
    if f.kind == "time":
        return pc.cast(pc.cast(arr, pa.int32()), pa.time32("ms"))
    return arr


def _rows_to_table(schema: _Schema, rows: list[dict[str, Any]], index: list[int]) -> pa.Table:
    cols = []
    for f in schema.fields:
        vals = [r[f.name] for r in rows]
        typ = f.out_type if f.kind in ("bytes", "decimal") else f.read_type
        cols.append(_finalize(f, pa.array(vals, type=typ)))
    cols.append(pa.array(index, type=pa.int64()))
    return pa.Table.from_arrays(cols, schema=schema.out_schema.append(pa.field(INDEX_COLUMN, pa.int64())))


# ---------------------------------------------------------------------------------------------- parser
class EnvelopeParser:
    """Parses batches of Connect envelopes; keeps the schema-prefix cache between batches.

    ``fast=False`` sends every message through the strict per-message path (the reference the fast path is
    tested against). One parser per consumer thread: the cache is not locked. ``on_conflict`` decides what
    happens when schemas in one batch give a field different types (see :func:`_assemble`).
    """

    def __init__(self, fast: bool = True, use_threads: bool = False, on_conflict: str = "quarantine"):
        if on_conflict not in ("quarantine", "raise"):
            raise ValueError(f"on_conflict must be 'quarantine' or 'raise', got {on_conflict!r}")
        self.fast = fast
        self.on_conflict = on_conflict
        self.use_threads = use_threads
        self._prefixes: dict[bytes, _Schema] = {}  # schema block bytes incl. '"payload":' -> schema
        self._schemas: dict[str, _Schema] = {}  # canonical schema JSON -> compiled schema
        self._dirty = False  # the last chunk had read errors
        self._tags: list[bytes] = []  # line-number tags for recovery reads

    # ------------------------------------------------------------ public
    def parse(self, messages: Sequence[bytes | None]) -> ParsedBatch:
        msgs = list(messages)
        n = len(msgs)
        tables: list[tuple[_Schema, pa.Table]] = []
        bad: list[BadRecord] = []
        slow: list[int] = []
        groups: dict[bytes, list[int]] = {}
        if self.fast and n:
            self._route(msgs, groups, slow)
            for prefix, idxs in groups.items():
                schema = self._prefixes[prefix]
                if schema.error is not None:
                    bad.extend(BadRecord(i, msgs[i], schema.error) for i in idxs)  # type: ignore[arg-type]
                    continue
                plen = len(prefix)
                src = msgs if len(idxs) == n else [msgs[i] for i in idxs]
                lines = list(map(itemgetter(slice(plen, -1)), src))  # type: ignore[arg-type]
                if bytes(map(itemgetter(-1), src)) != b"}" * len(src):  # type: ignore[arg-type]
                    keep = []
                    for j, m in enumerate(src):  # whitespace after the envelope's closing brace, or no brace
                        if m[-1] != 125:  # type: ignore[index]
                            y = m[plen:].rstrip(b" \t\r\n")  # type: ignore[index]
                            lines[j] = y[:-1] if y.endswith(b"}") else b""
                        keep.append(bool(lines[j]))
                    if not all(keep):
                        slow.extend(i for i, k in zip(idxs, keep, strict=True) if not k)
                        lines = [x for x, k in zip(lines, keep, strict=True) if k]
                        idxs = [i for i, k in zip(idxs, keep, strict=True) if k]
                self._fast_lines(schema, lines, idxs, tables, slow)
        else:
            slow = list(range(n))
        self._slow(msgs, sorted(slow), tables, bad)
        table = _assemble(tables, self.on_conflict, msgs, bad)
        if table.num_rows + len(bad) != n:  # an internal invariant, never expected
            raise AssertionError(f"envelope parser lost messages: {table.num_rows} rows + {len(bad)} bad != {n}")
        return ParsedBatch(table, bad)

    def parse_plain(self, messages: Sequence[bytes | None], schema: pa.Schema | None) -> ParsedBatch:
        msgs = list(messages)
        compiled = _infer_schema(msgs) if schema is None else _compile_arrow_schema(schema)
        tables: list[tuple[_Schema, pa.Table]] = []
        bad: list[BadRecord] = []
        slow: list[int] = []
        idxs: list[int] = []
        lines: list[bytes] = []
        for i, m in enumerate(msgs):
            if self.fast and m and m[:1] == b"{" and m[-1:] == b"}" and b"\n" not in m and b"\r" not in m:
                idxs.append(i)
                lines.append(m)
            else:
                slow.append(i)
        if idxs:
            self._fast_lines(compiled, lines, idxs, tables, slow)
        for i in sorted(slow):
            raw = msgs[i]
            try:
                if not raw:
                    raise _Bad("empty message (null value)")
                row = _check_payload(compiled, _loads(raw))
            except _Bad as e:
                bad.append(BadRecord(i, raw or b"", str(e)))
                continue
            tables.append((compiled, _rows_to_table(compiled, [row], [i])))
        bad.sort(key=lambda b: b.index)
        if not tables:
            tables.append((compiled, _rows_to_table(compiled, [], [])))
        return ParsedBatch(_assemble(tables), bad)

    # ------------------------------------------------------------ routing by schema prefix
    def _match(self, m: bytes) -> bytes | None:
        for p in self._prefixes:
            if m.startswith(p):
                return p
        return None

    def _route(self, msgs: list[bytes | None], groups: dict[bytes, list[int]], slow: list[int]) -> None:
        """Group messages by known schema prefix; the rest goes to the slow path (learning new prefixes)."""
        n = len(msgs)
        if self._prefixes:
            p = next(reversed(self._prefixes))
            try:  # the common case: one compact stream, checked in C
                if all(map(bytes.startswith, msgs, repeat(p))):  # type: ignore[arg-type]
                    groups[p] = list(range(n))
                    return
            except TypeError:  # a None (tombstone) or a non-bytes value
                pass
        vals = [m if type(m) is bytes else b"" for m in msgs]
        rest = np.arange(n)
        for p in reversed(list(self._prefixes)[-4:]):  # nearly the whole batch has one of the latest schemas
            sub = vals if len(rest) == n else [vals[i] for i in rest]
            hit = np.fromiter(map(bytes.startswith, sub, repeat(p)), dtype=bool, count=len(sub))
            if hit.any():
                groups[p] = rest[hit].tolist()
                rest = rest[~hit]
            if not len(rest):
                break
        for i in rest.tolist():
            m = vals[i]
            p = self._match(m) if m else None
            if p is None and m and self._learn(m):
                p = self._match(m)
            if p is not None:
                groups.setdefault(p, []).append(i)
            else:
                slow.append(i)

    def _learn(self, raw: bytes) -> bool:
        """Strictly parse one message; if its schema block is a clean prefix, cache it. True if cached."""
        k = raw.find(_PAYLOAD_KEY)
        if k <= 0:
            return False
        prefix = raw[: k + len(_PAYLOAD_KEY)]
        if prefix in self._prefixes:
            self._prefixes[prefix] = self._prefixes.pop(prefix)  # most recently seen last
            return True
        try:
            doc = _loads(prefix + b"null}")
        except _Bad:
            return False
        if not isinstance(doc, dict) or list(doc) != ["schema", "payload"]:
            return False
        schema = self._schema_for(doc["schema"])
        if len(self._prefixes) >= _MAX_PREFIXES:
            self._prefixes.pop(next(iter(self._prefixes)))
        self._prefixes[prefix] = schema
        return True

    def _schema_for(self, schema_json: Any) -> _Schema:
        key = json.dumps(schema_json, sort_keys=True, separators=(",", ":"))
        s = self._schemas.get(key)
        if s is None:
            if len(self._schemas) >= 4 * _MAX_PREFIXES:  # a stream of ever-new schemas: do not grow forever
                self._schemas.clear()
            s = self._schemas[key] = _compile_connect_schema(schema_json)
        return s

    # ------------------------------------------------------------ fast path
    def _read(self, read_schema: pa.Schema, buf: pa.Buffer, rows: int) -> pa.Table:
        t = pj.read_json(
            pa.BufferReader(buf),
            read_options=pj.ReadOptions(use_threads=self.use_threads, block_size=max(buf.size + 1, 1 << 16)),
            parse_options=pj.ParseOptions(explicit_schema=read_schema, unexpected_field_behavior="error"),
        )
        if t.num_rows != rows:
            raise ValueError(f"{t.num_rows} rows from {rows} lines")
        return t

    def _fast_lines(self, schema: _Schema, lines: list[bytes], idxs: list[int],
                    tables: list[tuple[_Schema, pa.Table]], slow: list[int]) -> None:
        """Vectorised parse of payload lines; failed or suspect lines go to ``slow`` (by input index).

        Each line must start a JSON object: a 'null' or '5' line would read as a row. A raw newline inside a
        line cannot go unnoticed: the parts either fail to parse or add rows, and the row count is checked.
        """
        for c0 in range(0, len(lines), _FAST_CHUNK):
            part, pidx = lines[c0:c0 + _FAST_CHUNK], idxs[c0:c0 + _FAST_CHUNK]
            try:
                firsts = bytes(map(itemgetter(0), part))
            except IndexError:  # an empty line
                firsts = b""
            if firsts == b"{" * len(part):
                self._fast_chunk(schema, part, pidx, b"\n".join(part), tables, slow)
                continue
            keep, kidx = [], []
            for x, i in zip(part, pidx, strict=True):
                y = x.strip(b" \t\r\n")  # '"payload": {' with a space
                if y[:1] == b"{" and b"\n" not in y and b"\r" not in y:
                    keep.append(y)
                    kidx.append(i)
                else:
                    slow.append(i)
            if keep:
                self._fast_chunk(schema, keep, kidx, b"\n".join(keep), tables, slow)

    def _fast_chunk(self, schema: _Schema, part: list[bytes], pidx: list[int], raw: bytes,
                    tables: list[tuple[_Schema, pa.Table]], slow: list[int]) -> None:
        """Read one newline-joined chunk (``raw``, the lines ``part``) in one call; if that fails, recover."""
        if not self._dirty:
            try:
                t = self._read(schema.read_schema, pa.py_buffer(raw), len(pidx))  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - any reader failure means: isolate the bad lines
                pass
            else:
                self._accept(schema, t, pidx, tables, slow)
                return
        # the read failed, or the previous chunk needed recovery (errors are frequent): go straight there
        self._dirty = self._recover(schema, part, pidx, tables, slow)

    def _recover(self, schema: _Schema, part: list[bytes], pidx: list[int],
                 tables: list[tuple[_Schema, pa.Table]], slow: list[int]) -> bool:
        """Isolate the bad lines of a chunk whose vectorised read failed, keeping the rest vectorised.

        Every line is tagged with its number (an extra ``"\\u0000ln"`` key), so each row read says which line
        it came from. The chunk is read as a stream of small blocks: the batches before a failing block are
        kept, the line the error names goes to the slow path and reading resumes after it. Errors that name
        no row are bisected within the failing block. Lines not covered by a verified row go to the slow path.
        Returns whether any read failed.
        """
        n = len(part)
        if len(self._tags) < n:
            self._tags = [b'{"\\u0000ln":%d,' % i for i in range(max(n, _FAST_CHUNK))]
        tagged = list(map(bytes.__add__, self._tags[:n], map(itemgetter(slice(1, None)), part)))
        raw = b"\n".join(tagged)
        buf = pa.py_buffer(raw)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, tagged), dtype=np.int64, count=n) + 1, out=offsets[1:])
        rschema = schema.read_schema.append(pa.field(_LINE_KEY, pa.int64()))  # type: ignore[attr-defined]
        popts = pj.ParseOptions(explicit_schema=rschema, unexpected_field_behavior="error")
        block = 1 << 18
        pieces: list[pa.RecordBatch] = []
        bad: set[int] = set()
        pos = 0
        failed = False
        errors = 0
        later: list[tuple[int, int]] = []
        while pos < n:
            start = pos  # first line of the block being read
            if errors:  # a failed block is read twice: keep blocks to ~1/4 of the bytes between errors
                block = int(min(1 << 18, max(1 << 14, offsets[pos] // (4 * errors))))
            try:
                view = buf.slice(int(offsets[pos]), len(raw) - int(offsets[pos]))
                reader = pj.open_json(pa.BufferReader(view), parse_options=popts,
                                      read_options=pj.ReadOptions(use_threads=self.use_threads, block_size=block))
                for batch in reader:
                    if batch.num_rows:
                        pieces.append(batch)
                        last = batch.column(-1)[-1].as_py()  # line numbers rise within a stream
                        top = last if last is not None else pc.max(batch.column(-1)).as_py()
                        if top is not None:
                            start = max(start, top + 1)
                break
            except Exception as e:  # noqa: BLE001
                m = _ROW_HINT.search(str(e))
                r = int(m.group(1)) if m else -1
            failed = True
            errors += 1
            if r >= 0 and start + r < n:
                bad.add(start + r)
                if r:  # the failing block's lines before the named one: read them all together at the end
                    later.append((start, start + r))
                pos = start + r + 1
            else:  # no row named: bisect the failing block (up to two blocks of bytes from its start)
                end = int(np.searchsorted(offsets, offsets[start] + 2 * block, side="right"))
                end = min(max(end, start + 1), n)
                self._bisect_into(rschema, buf, offsets, start, end, pieces, bad)
                pos = end
        if later:
            lines = [i for a, b in later for i in range(a, b)]
            try:
                t = self._read(rschema, pa.py_buffer(b"\n".join([tagged[i] for i in lines])), len(lines))
                pieces.extend(t.to_batches())
            except Exception:  # noqa: BLE001 - a misleading row hint: isolate range by range
                for a, b in later:
                    self._bisect_into(rschema, buf, offsets, a, b, pieces, bad)
        t = pa.Table.from_batches(pieces, schema=rschema)
        ln = t.column(-1).to_numpy(zero_copy_only=False)
        seen = np.zeros(n, dtype=np.int64)
        valid = ~np.isnan(ln) if ln.dtype.kind == "f" else np.ones(len(ln), dtype=bool)
        lnv = ln[valid].astype(np.int64)
        np.add.at(seen, lnv, 1)
        ok_line = seen == 1
        for j in np.flatnonzero(~valid).tolist():  # an untagged row: a 2nd object on the line before it
            prev = np.flatnonzero(valid[:j])
            if len(prev):
                ok_line[int(ln[prev[-1]])] = False
            else:
                ok_line[:] = False
        ok_row = valid & ok_line[np.where(valid, ln, 0).astype(np.int64)]
        for line in np.flatnonzero(~ok_line).tolist():
            if line not in bad:
                bad.add(line)
        slow.extend(pidx[i] for i in sorted(bad))
        if ok_row.any():
            t = t.filter(pa.array(ok_row)).drop_columns([_LINE_KEY])
            rows = np.asarray(pidx, dtype=np.int64)[ln[ok_row].astype(np.int64)]
            self._accept(schema, t, rows.tolist(), tables, slow)
        return failed or bool(bad)

    def _bisect_into(self, read_schema: pa.Schema, buf: pa.Buffer, offsets: np.ndarray, lo: int, hi: int,
                     pieces: list[pa.RecordBatch], bad: set[int]) -> None:
        found: list[tuple[int, int, pa.Table]] = []
        lost: list[int] = []
        self._bisect(read_schema, buf, offsets, list(range(len(offsets) - 1)), lo, hi, found, lost)
        pieces.extend(b for _, _, t in found for b in t.to_batches())
        bad.update(lost)

    def _bisect(self, read_schema: pa.Schema, buf: pa.Buffer, offsets: np.ndarray, pidx: list[int], lo0: int,
                hi0: int, pieces: list[tuple[int, int, pa.Table]], slow: list[int]) -> None:
        """Isolate bad rows of [lo0, hi0) by splitting at error rows or halves, reading zero-copy slices."""
        stack = [(lo0, hi0)]
        while stack:
            lo, hi = stack.pop()
            if hi - lo <= 0:
                continue
            if hi - lo <= 2:
                slow.extend(pidx[lo:hi])
                continue
            view = buf.slice(int(offsets[lo]), int(offsets[hi]) - 1 - int(offsets[lo]))
            try:
                pieces.append((lo, hi, self._read(read_schema, view, hi - lo)))
                continue
            except Exception as e:  # noqa: BLE001
                m = _ROW_HINT.search(str(e))
                r = int(m.group(1)) if m else -1
            if 0 <= r < hi - lo:
                slow.append(pidx[lo + r])
                stack.extend([(lo + r + 1, hi), (lo, lo + r)])
            else:
                mid = (lo + hi) // 2
                stack.extend([(mid, hi), (lo, mid)])

    def _accept(self, schema: _Schema, t: pa.Table, idxs: list[int],
                tables: list[tuple[_Schema, pa.Table]], slow: list[int]) -> None:
        suspect = np.zeros(t.num_rows, dtype=bool)
        cols: list[pa.Array] = []
        decode: dict[int, list[Any]] = {}
        for j, f in enumerate(schema.fields):
            col = t.column(j).combine_chunks() if t.column(j).num_chunks != 1 else t.column(j).chunk(0)
            if not f.optional and col.null_count:
                suspect |= col.is_null().to_numpy(zero_copy_only=False)
            if f.kind == "float":
                if col.null_count < len(col):
                    finite = pc.fill_null(pc.is_finite(col), True)
                    if not pc.all(finite).as_py():
                        suspect |= ~finite.to_numpy(zero_copy_only=False)
            elif f.kind in ("int", "date", "time") and f.type_label != "int64" and col.null_count < len(col):
                mm = pc.min_max(col)
                if mm["min"].as_py() < f.lo or mm["max"].as_py() > f.hi:
                    out = pc.or_(pc.less(col, f.lo), pc.greater(col, f.hi))
                    suspect |= pc.fill_null(out, False).to_numpy(zero_copy_only=False)
            elif f.kind == "string" and col.null_count < len(col):
                try:  # the JSON reader does not check UTF-8
                    col.validate(full=True)
                except pa.ArrowInvalid:
                    for r, v in enumerate(col.cast(pa.binary()).to_pylist()):
                        if v is not None:
                            try:
                                v.decode("utf-8")
                            except UnicodeDecodeError:
                                suspect[r] = True
            elif f.kind in ("bytes", "decimal"):
                vals = col.to_pylist()
                dec = []
                for r, v in enumerate(vals):
                    if v is None:
                        dec.append(None)
                        continue
                    try:
                        dec.append(_decimal_from_b64(v, f.scale) if f.kind == "decimal" else _b64(v))
                    except (binascii.Error, ValueError, UnicodeEncodeError, OverflowError):
                        dec.append(None)
                        suspect[r] = True
                decode[j] = dec
            cols.append(col)
        for j, dec in decode.items():
            cols[j] = pa.array(dec, type=schema.fields[j].out_type)
        index = pa.array(idxs, type=pa.int64())
        if suspect.any():  # before the casts of _finalize, which out-of-range suspects would fail
            slow.extend(np.asarray(idxs)[suspect].tolist())
            keep = pa.array(~suspect)
            cols = [c.filter(keep) for c in cols]
            index = index.filter(keep)
        cols = [_finalize(f, c) for f, c in zip(schema.fields, cols, strict=True)]
        out = pa.Table.from_arrays(
            [*cols, index], schema=schema.out_schema.append(pa.field(INDEX_COLUMN, pa.int64())))  # type: ignore[attr-defined]
        tables.append((schema, out))

    # ------------------------------------------------------------ slow path
    def _slow(self, msgs: list[bytes | None], idxs: list[int],
              tables: list[tuple[_Schema, pa.Table]], bad: list[BadRecord]) -> None:
        rows: dict[int, tuple[_Schema, list[dict[str, Any]], list[int]]] = {}
        for i in idxs:
            raw = msgs[i]
            try:
                schema, row = self._parse_one(raw)
            except _Bad as e:
                bad.append(BadRecord(i, bytes(raw) if raw is not None else b"", str(e)))
                continue
            entry = rows.setdefault(id(schema), (schema, [], []))
            entry[1].append(row)
            entry[2].append(i)
        for schema, rs, ix in rows.values():
            tables.append((schema, _rows_to_table(schema, rs, ix)))

    def _parse_one(self, raw: bytes | None) -> tuple[_Schema, dict[str, Any]]:
        if raw is None or not raw.strip():
            raise _Bad("tombstone: empty message value (null)")
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise _Bad(f"message value is {type(raw).__name__}, expected bytes")
        doc = _loads(bytes(raw))
        if not isinstance(doc, dict):
            raise _Bad(f"envelope is not a JSON object (got {_describe(doc)})")
        keys = set(doc)
        if keys != {"schema", "payload"}:
            missing = sorted({"schema", "payload"} - keys)
            extra = sorted(keys - {"schema", "payload"})
            what = (f"missing {', '.join(repr(k) for k in missing)}" if missing else "") + (
                "; " if missing and extra else "") + (f"unexpected {', '.join(repr(k) for k in extra)}" if extra else "")
            raise _Bad(f"not a Connect envelope with exactly 'schema' and 'payload': {what}")
        schema = self._schema_for(doc["schema"])
        if schema.error is not None:
            raise _Bad(schema.error)
        if self.fast:
            self._learn(bytes(raw))
        return schema, _check_payload(schema, doc["payload"])


def _assemble(tables: list[tuple[_Schema, pa.Table]], on_conflict: str = "quarantine",
              msgs: Sequence[bytes | None] = (), bad: list[BadRecord] | None = None) -> pa.Table:
    """Union the pieces' columns (first-appearance order), fill absent ones with nulls, order by _index.

    Schemas are merged in order of their row count (most rows first, ties by first message). A schema that
    gives a field another type than the merged ones is a conflict: its messages become bad records
    (``on_conflict="quarantine"``) or :class:`SchemaConflictError` is raised (``"raise"``).
    """
    if not tables:
        return pa.table({INDEX_COLUMN: pa.array([], type=pa.int64())})
    per: dict[int, list[pa.Table]] = {}
    info: dict[int, tuple[_Schema, int, int]] = {}  # id -> (schema, rows, first index)
    for schema, t in tables:
        if not t.num_rows:
            per.setdefault(id(schema), [])
            info.setdefault(id(schema), (schema, 0, 1 << 62))
            continue
        per.setdefault(id(schema), []).append(t)
        s0, rows, first = info.get(id(schema), (schema, 0, 1 << 62))
        info[id(schema)] = (s0, rows + t.num_rows, min(first, int(pc.min(t.column(INDEX_COLUMN)).as_py())))
    fields: dict[str, tuple[pa.Field, int]] = {}
    parts: list[pa.Table] = []
    for key, (schema, _rows, first) in sorted(info.items(), key=lambda kv: (-kv[1][1], kv[1][2])):
        clash = next(((f, fields[f.name]) for f in schema.out_schema  # type: ignore[attr-defined]
                      if f.name in fields and fields[f.name][0].type != f.type), None)
        if clash is not None:
            f, (have, where) = clash
            msg = (f"schema conflict: field '{f.name}' is {f.type} in this message's schema but {have.type} in "
                   f"the batch's schema (message {where})")
            if on_conflict == "raise" or bad is None:
                raise SchemaConflictError(
                    f"{msg} and message {first}: split the batch at the schema change or migrate the field")
            for t in per[key]:
                bad.extend(BadRecord(i, msgs[i] or b"", msg) for i in t.column(INDEX_COLUMN).to_pylist())
            continue
        for f in schema.out_schema:  # type: ignore[attr-defined]
            fields.setdefault(f.name, (f, first))
        parts.extend(per[key])
    order = sorted(fields.values(), key=itemgetter(1))  # columns in order of first appearance
    target = pa.schema([*(f for f, _ in order), pa.field(INDEX_COLUMN, pa.int64())])
    if bad is not None:
        bad.sort(key=lambda b: b.index)
    if not parts:
        return target.empty_table()
    if len(parts) == 1 and parts[0].schema.equals(target):
        out = parts[0]
    else:
        aligned = []
        for t in parts:
            cols = [t.column(f.name) if f.name in t.column_names else pa.nulls(t.num_rows, f.type) for f in target]
            aligned.append(pa.Table.from_arrays(cols, schema=target))
        out = pa.concat_tables(aligned)
    idx = out.column(INDEX_COLUMN).to_numpy()
    if len(idx) > 1 and not (np.diff(idx) > 0).all():
        out = out.take(pa.array(np.argsort(idx, kind="stable")))
    return out.combine_chunks() if out.column(INDEX_COLUMN).num_chunks > 1 else out


def _infer_schema(msgs: list[bytes | None]) -> _Schema:
    """Infer a flat schema for plain JSON objects: first non-null type per field, int promoted to float."""
    kinds: dict[str, str] = {}
    for raw in msgs:
        if not raw:
            continue
        try:
            doc = _loads(raw)
        except _Bad:
            continue
        if not isinstance(doc, dict):
            continue
        for k, v in doc.items():
            if v is None or isinstance(v, (dict, list)):
                kinds.setdefault(k, "")
                continue
            kind = "bool" if isinstance(v, bool) else "int" if isinstance(v, int) else \
                "float" if isinstance(v, float) else "string"
            have = kinds.get(k)
            if not have:
                kinds[k] = kind
            elif have == "int" and kind == "float":
                kinds[k] = "float"
    fields = []
    for k, kind in kinds.items():
        if k in (INDEX_COLUMN, _LINE_KEY):  # reserved: records with them are bad ("not in schema")
            continue
        kind = kind or "string"
        label = {"int": "int64", "float": "float", "bool": "boolean", "string": "string"}[kind]
        lohi = _INT_RANGES["int64"] if kind == "int" else (None, None)
        fields.append(_Field(k, kind, label, True, *lohi))
    return _Schema(tuple(fields))


_DEFAULT = EnvelopeParser()


def parse_envelopes(messages: Sequence[bytes | None], parser: EnvelopeParser | None = None) -> ParsedBatch:
    """Parse Kafka Connect JSON envelopes into one typed Arrow table plus the bad records (see module doc).

    ``parser`` keeps the schema cache; by default a module-level parser (single-threaded use) is used.
    """
    return (parser or _DEFAULT).parse(messages)


def parse_json_records(messages: Sequence[bytes | None], schema: pa.Schema | None = None,
                       parser: EnvelopeParser | None = None) -> ParsedBatch:
    """Parse plain JSON objects (no envelope), one per message.

    With ``schema``, fields are typed and validated by it (integers range-checked, ``timestamp('ms')`` from
    epoch milliseconds, ``date32`` from days, ``binary`` from base64; non-nullable fields are required;
    fields not in the schema make a record bad). Without it, the schema is inferred: per field the type of
    the first non-null value (int promoted to float when a float appears; nested values read as strings
    fail), and records that disagree are bad records.
    """
    return (parser or _DEFAULT).parse_plain(messages, schema)


def parse_isolating(parse: Any, messages: Sequence[bytes | None]) -> ParsedBatch:
    """``parse(messages)``, but a message that makes the parser itself raise becomes a bad record.

    The parsers turn every problem they know into a bad record; this is the guard for the ones they do not
    (a bug, a limit of Arrow): when ``parse`` raises on the batch, each message is parsed alone, the ones
    that raise are bad records named by the error, and the others are parsed together again. So one
    message can never fail its batch.
    """
    msgs = list(messages)
    try:
        return parse(msgs)
    except SchemaConflictError:  # the caller's choice (on_conflict="raise"): not a parser failure
        raise
    except Exception as err:  # noqa: BLE001 - isolate the message(s) behind it
        log.warning("parser raised on a batch of %d messages (%s: %s); isolating the message(s) behind it",
                    len(msgs), type(err).__name__, err)
    crashed: dict[int, str] = {}
    for i, m in enumerate(msgs):
        try:
            parse([m])
        except Exception as err:  # noqa: BLE001
            crashed[i] = f"parser error: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    keep = [i for i in range(len(msgs)) if i not in crashed]
    try:
        sub = parse([msgs[i] for i in keep])
    except Exception as err:  # noqa: BLE001 - messages that only fail together: keep each alone
        log.warning("parser still raises without the isolated messages (%s); parsing one by one", err)
        return _one_by_one(parse, msgs, crashed)
    index = np.asarray(keep, dtype=np.int64)
    table = sub.table
    if table.num_rows:
        idx = index[table.column(INDEX_COLUMN).to_numpy()]
        table = table.set_column(table.column_names.index(INDEX_COLUMN), INDEX_COLUMN, pa.array(idx, pa.int64()))
    bad = [BadRecord(int(index[b.index]), b.raw, b.reason) for b in sub.bad]
    bad += [BadRecord(i, bytes(msgs[i] or b""), why) for i, why in crashed.items()]
    bad.sort(key=lambda b: b.index)
    return ParsedBatch(table, bad)


def _one_by_one(parse: Any, msgs: list[bytes | None], crashed: dict[int, str]) -> ParsedBatch:
    tables: list[pa.Table] = []
    bad = [BadRecord(i, bytes(msgs[i] or b""), why) for i, why in crashed.items()]
    for i, m in enumerate(msgs):
        if i in crashed:
            continue
        p = parse([m])
        bad.extend(BadRecord(i, b.raw, b.reason) for b in p.bad)
        if p.table.num_rows:
            t = p.table
            tables.append(t.set_column(t.column_names.index(INDEX_COLUMN), INDEX_COLUMN,
                                       pa.array([i] * t.num_rows, pa.int64())))
    acc: pa.Table | None = None
    for t in tables:  # the first messages' types win; a message whose types do not unify is bad
        try:
            acc = t if acc is None else pa.concat_tables([acc, t], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
            i = int(t.column(INDEX_COLUMN)[0].as_py())
            bad.append(BadRecord(i, bytes(msgs[i] or b""), f"schema conflict with the batch: {err}"))
    table = acc if acc is not None else pa.table({INDEX_COLUMN: pa.array([], pa.int64())})
    if INDEX_COLUMN in table.column_names and table.column_names[-1] != INDEX_COLUMN:
        table = table.select([*(c for c in table.column_names if c != INDEX_COLUMN), INDEX_COLUMN])
    bad.sort(key=lambda b: b.index)
    return ParsedBatch(table, bad)
