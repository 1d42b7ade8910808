"""Encode Arrow tables as Kafka Connect JSON envelopes (``JsonConverter`` with ``schemas.enable=true``).

The output is byte-for-byte the format a Kafka Connect JDBC source connector produces (see
``tests/data/sensor_envelope_example.json``)::

    {"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ss_id"},...],
     "optional":false,"name":"SENSOR_DATA_VIEW"},"payload":{"ss_id":2,...}}

Type mapping (Arrow -> Connect): int8/16/32/64 -> the same ``intN``; unsigned ints -> the next wider signed
int (uint64 -> int64, range-checked); float32 -> ``float``; float64 (and decimals, which the SQL source
turns into float64) -> ``double``; bool -> ``boolean``; string -> ``string``; binary -> ``bytes`` (base64);
timestamp -> int64 epoch milliseconds with ``name: org.apache.kafka.connect.data.Timestamp`` (naive
timestamps are taken as UTC); date32/date64 -> int32 days with ``org.apache.kafka.connect.data.Date``.
``optional`` is the Arrow field's nullability. The parser for the other direction is
:mod:`tsops.ingest.envelope`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
DATE = "org.apache.kafka.connect.data.Date"

_INTS = {
    pa.int8(): "int8",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.uint8(): "int16",
    pa.uint16(): "int32",
    pa.uint32(): "int64",
    pa.uint64(): "int64",
}


def connect_field(field: pa.Field) -> dict:
    """The Connect schema entry of one Arrow field (key order as Connect's JsonConverter writes it)."""
    t = field.type
    opt = bool(field.nullable)
    if t in _INTS:
        return {"type": _INTS[t], "optional": opt, "field": field.name}
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return {"type": "float", "optional": opt, "field": field.name}
    if pa.types.is_float64(t) or pa.types.is_decimal(t):
        return {"type": "double", "optional": opt, "field": field.name}
    if pa.types.is_boolean(t):
        return {"type": "boolean", "optional": opt, "field": field.name}
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return {"type": "string", "optional": opt, "field": field.name}
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return {"type": "bytes", "optional": opt, "field": field.name}
    if pa.types.is_timestamp(t):
        return {"type": "int64", "optional": opt, "name": TIMESTAMP, "version": 1, "field": field.name}
    if pa.types.is_date(t):
        return {"type": "int32", "optional": opt, "name": DATE, "version": 1, "field": field.name}
    raise TypeError(
        f"column {field.name!r} has Arrow type {t}, which has no Kafka Connect JSON mapping here "
        "(supported: integers, floats, decimals, bool, string, binary, timestamp, date); cast or drop it"
    )


def connect_schema(schema: pa.Schema, name: str) -> dict:
    """The Connect ``struct`` schema block for records of ``schema`` named ``name`` (e.g. the table)."""
    return {
        "type": "struct",
        "fields": [connect_field(f) for f in schema],
        "optional": False,
        "name": name,
    }


def _column_values(col: pa.ChunkedArray | pa.Array, field: pa.Field) -> list:
    """Python values of one column as they appear in a Connect JSON payload."""
    t = field.type
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_timestamp(t):
        ms = pc.cast(pc.cast(col, pa.timestamp(t.unit, tz=t.tz)), pa.int64())
        per_ms = {"s": None, "ms": 1, "us": 1000, "ns": 1_000_000}[t.unit]
        if per_ms is None:
            ms = pc.multiply(ms, 1000)
        elif per_ms > 1:
            ms = pc.floor(pc.divide(pc.cast(ms, pa.float64()), per_ms))  # floor, as Java's Date does
            ms = pc.cast(ms, pa.int64())
        return ms.to_pylist()
    if pa.types.is_date(t):
        return pc.cast(pc.cast(col, pa.date32()), pa.int32()).to_pylist()
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        # the shortest decimal text of the float32 (0.1, not 0.10000000149011612), as Jackson writes it
        f = pc.cast(col, pa.float32()).to_numpy(zero_copy_only=False)
        nulls = pc.is_null(col).to_numpy(zero_copy_only=False)
        out = f.astype(str).astype(np.float64)
        return [None if n or not np.isfinite(v) else float(v) for v, n in zip(out, nulls, strict=True)]
    if pa.types.is_decimal(t):
        return pc.cast(col, pa.float64()).to_pylist()
    if pa.types.is_floating(t):
        return [None if v is None or v != v or v in (float("inf"), float("-inf")) else v for v in col.to_pylist()]
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return [None if v is None else base64.b64encode(v).decode("ascii") for v in col.to_pylist()]
    if t == pa.uint64():
        vals = col.to_pylist()
        for i, v in enumerate(vals):
            if v is not None and v > 2**63 - 1:
                raise OverflowError(f"column {field.name!r} row {i}: {v} does not fit Connect int64")
        return vals
    return col.to_pylist()


class EnvelopeEncoder:
    """Encodes record tables of one schema into Connect envelopes; the schema block is serialised once."""

    def __init__(self, schema: pa.Schema, name: str):
        self.schema = schema
        self.name = name
        self.schema_block = connect_schema(schema, name)
        # separators as Jackson writes them: no spaces; non-ASCII characters kept as UTF-8
        head = json.dumps(self.schema_block, separators=(",", ":"), ensure_ascii=False)
        self._prefix = b'{"schema":' + head.encode("utf-8") + b',"payload":'

    def encode(self, table: pa.Table) -> Iterator[bytes]:
        """One envelope (bytes, no trailing newline) per row of ``table``."""
        if table.schema.names != self.schema.names:
            raise ValueError(
                f"table columns {table.schema.names} differ from the encoder's {self.schema.names}; "
                "build a new EnvelopeEncoder for a new schema"
            )
        names = table.column_names
        cols = [_column_values(table.column(i), self.schema.field(i)) for i in range(len(names))]
        prefix = self._prefix
        for row in zip(*cols, strict=True):
            yield prefix + orjson.dumps(dict(zip(names, row, strict=True))) + b"}"


def encode_envelopes(table: pa.Table, name: str) -> list[bytes]:
    """Every row of ``table`` as a Kafka Connect JSON envelope with a schema named ``name``."""
    return list(EnvelopeEncoder(table.schema, name).encode(table))
