"""SQL over the lake with DuckDB: one view per dataset and zone (``raw_sensors``, ``quarantine_sensors`` ...)."""

from __future__ import annotations

import re

from tsops.lake.store import ZONES, Lake


def view_name(zone: str, dataset: str) -> str:
    return f"{zone}_{re.sub(r'[^A-Za-z0-9_]', '_', dataset)}"


def connect(lake: Lake):
    """A DuckDB connection with a view per (zone, dataset) over the lake's Parquet files.

    Local lakes are read by DuckDB's Parquet reader with Hive partitioning (``year``, ``month``, ``day``
    columns) and ``union_by_name``, so files written before a schema change still read. Remote lakes (S3, HDFS)
    are read through pyarrow's filesystem, which needs no DuckDB extension.
    """
    import duckdb

    con = duckdb.connect()
    for zone in ZONES:
        for ds_name in lake.datasets(zone):
            name = view_name(zone, ds_name)
            if lake.local:
                if not lake.files(zone, ds_name):
                    continue
                glob = lake.glob(zone, ds_name).replace("'", "''")
                con.execute(
                    f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet(\'{glob}\', '
                    "hive_partitioning = true, union_by_name = true, "
                    "hive_types = {'year': INTEGER, 'month': INTEGER, 'day': INTEGER})"
                )
            else:
                dset = lake.dataset(zone, ds_name)
                if dset is not None:
                    con.register(name, dset)
    return con


def query(lake: Lake, sql: str):
    """Run ``sql`` against the lake views and return a pandas DataFrame."""
    con = connect(lake)
    try:
        return con.execute(sql).fetch_df()
    finally:
        con.close()
