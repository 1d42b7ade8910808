"""``tsops hive register``: external partitioned tables over the lake zones in Spark's metastore.

Each (zone, dataset) becomes ``tsops.<zone>_<dataset>``: ``CREATE EXTERNAL TABLE ... PARTITIONED BY (year,
month, day) STORED AS PARQUET LOCATION <zone>/<dataset>`` followed by ``MSCK REPAIR TABLE`` so new day
partitions are visible. Re-registering is idempotent (the table is replaced and repaired). The metastore is
Spark's embedded Derby by default (in ``<project>/.tsops/spark``); point ``spark.sql.catalogImplementation`` /
``hive.metastore.uris`` at a shared Hive metastore in production.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from tsops.lake.store import ZONES, Lake

log = logging.getLogger(__name__)

PARTITIONS = ("year", "month", "day")


@dataclass
class RegisteredTable:
    name: str
    location: str
    partitions: int
    rows: int


def table_name(zone: str, dataset: str) -> str:
    return f"{zone}_{re.sub(r'[^A-Za-z0-9_]', '_', dataset)}".lower()


def _location(lake: Lake, zone: str, dataset: str) -> str:
    path = lake.dataset_path(zone, dataset)
    return f"file://{path}" if lake.local else f"{lake.uri.rstrip('/')}/{zone}/{dataset}"


def register_tables(spark, lake: Lake, datasets: list[str] | None = None, database: str = "tsops",
                    count_rows: bool = True) -> list[RegisteredTable]:
    """Register every zone of ``datasets`` (default: all found in the lake) as external Hive tables."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
    out = []
    for zone in ZONES:
        for ds in lake.datasets(zone):
            if datasets is not None and ds not in datasets:
                continue
            if not lake.files(zone, ds):
                continue
            loc = _location(lake, zone, ds)
            schema = spark.read.parquet(loc).schema
            cols = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in schema.fields
                             if f.name not in PARTITIONS)
            name = f"{database}.{table_name(zone, ds)}"
            spark.sql(f"DROP TABLE IF EXISTS {name}")  # external: drops metadata only, never the files
            spark.sql(f"CREATE EXTERNAL TABLE {name} ({cols}) PARTITIONED BY (year INT, month INT, day INT) "
                      f"STORED AS PARQUET LOCATION '{loc}'")
            spark.sql(f"MSCK REPAIR TABLE {name}")
            parts = spark.sql(f"SHOW PARTITIONS {name}").count()
            rows = spark.sql(f"SELECT count(*) FROM {name}").collect()[0][0] if count_rows else -1
            log.info("registered %s over %s (%d partitions)", name, loc, parts)
            out.append(RegisteredTable(name, loc, parts, rows))
    return out
