"""Small helpers for tests and benchmarks: build sensor envelopes like the production feed."""

from __future__ import annotations

import json

SENSOR_SCHEMA = {
    "type": "struct",
    "fields": [
        {"type": "int64", "optional": False, "field": "ss_id"},
        {"type": "float", "optional": False, "field": "rstart"},
        *[{"type": "float", "optional": i > 4, "field": f"rlev{i}"} for i in range(1, 9)],
        {"type": "float", "optional": False, "field": "rend"},
        {"type": "int64", "optional": False, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1,
         "field": "event_time"},
        {"type": "float", "optional": True, "field": "input_data"},
        {"type": "string", "optional": False, "field": "position"},
        {"type": "string", "optional": False, "field": "type_name"},
        {"type": "string", "optional": True, "field": "unit"},
    ],
    "optional": False,
    "name": "SENSOR_DATA_VIEW",
}


def sensor_envelope(ss_id: int, event_time_ms: int, value: float | None, position: str = "광 주 A",
                    type_name: str = "C02", unit: str = "ppm") -> bytes:
    """One envelope in the production format (compact JSON, schema block first)."""
    payload = {"ss_id": ss_id, "rstart": 0.0, "rlev1": 700.0, "rlev2": 800.0, "rlev3": 1000.0, "rlev4": 1500.0,
               "rlev5": 0.0, "rlev6": 0.0, "rlev7": 0.0, "rlev8": 0.0, "rend": 20000.0,
               "event_time": event_time_ms, "input_data": value, "position": position, "type_name": type_name,
               "unit": unit}
    return json.dumps({"schema": SENSOR_SCHEMA, "payload": payload}, separators=(",", ":"),
                      ensure_ascii=False).encode()
