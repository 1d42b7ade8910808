"""Spark engine: the shared SparkSession builder and ``groupBy("series_id").applyInPandas``.

pyspark is imported inside the functions so that importing tsops stays light.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


def get_spark(app_name: str = "tsops", master: str = "local[2]", scratch_dir: str | Path | None = None,
              hive: bool = False, conf: dict[str, str] | None = None):
    """Build (or reuse) a SparkSession that stays on loopback and keeps its files in ``scratch_dir``.

    Sets PYSPARK_PYTHON to this interpreter (workers need pandas/pyarrow), SPARK_LOCAL_IP and the driver
    host/bind address to 127.0.0.1, the Derby home and warehouse under ``scratch_dir`` (a temp dir by
    default), UTC session time zone and Arrow for pandas conversion. ``hive=True`` enables the embedded
    Derby metastore (for ``CREATE EXTERNAL TABLE`` / ``MSCK REPAIR TABLE``).
    """
    from pyspark.sql import SparkSession

    scratch = Path(scratch_dir) if scratch_dir else Path(tempfile.mkdtemp(prefix="tsops-spark-"))
    scratch.mkdir(parents=True, exist_ok=True)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    b = (SparkSession.builder.master(master).appName(app_name)
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.session.timeZone", "UTC")
         .config("spark.sql.shuffle.partitions", "4")
         .config("spark.sql.execution.arrow.pyspark.enabled", "true")
         .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
         .config("spark.local.dir", str(scratch / "local"))
         .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={scratch / 'derby'}"))
    for k, v in (conf or {}).items():
        b = b.config(k, v)
    if hive:
        b = b.enableHiveSupport()
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _to_utc(df: pd.DataFrame) -> pd.DataFrame:
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c]):
            s = df[c]
            s = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
            df[c] = s.dt.as_unit("us")
    return df


class _Wrapped:
    """Picklable wrapper: UTC-normalise the timestamps Spark hands over, run fn, keep the schema's columns."""

    def __init__(self, fn: Callable[[pd.DataFrame], pd.DataFrame], columns: list[str]):
        self.fn = fn
        self.columns = columns

    def __call__(self, pdf: pd.DataFrame) -> pd.DataFrame:
        out = self.fn(_to_utc(pdf).sort_index().reset_index(drop=True))
        return out[self.columns]


def spark_schema_for(sample: pd.DataFrame):
    """Spark StructType of a pandas frame (via Arrow); all-null columns become strings."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = pa.Schema.from_pandas(sample, preserve_index=False)
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in schema]
    return from_arrow_schema(pa.schema(fields))


def map_spark(data, fn: Callable[[pd.DataFrame], pd.DataFrame], spark=None, schema=None) -> pd.DataFrame:
    """Apply ``fn`` per series with ``groupBy("series_id").applyInPandas`` and collect a pandas frame.

    ``data`` is a pandas long frame or a Spark DataFrame. Without ``schema`` the output schema is taken from
    running ``fn`` on the first series on the driver.
    """
    spark = spark or get_spark()
    if isinstance(data, pd.DataFrame):
        if data.empty:
            return pd.DataFrame()
        first_sid = sorted(data["series_id"].unique())[0]
        sample_in = data[data["series_id"] == first_sid]
        sdf = spark.createDataFrame(data)
    else:
        sdf = data
        first_sid = sdf.select("series_id").orderBy("series_id").first()[0]
        sample_in = _to_utc(sdf.filter(sdf.series_id == first_sid).toPandas())
    if schema is None:
        sample = fn(sample_in.reset_index(drop=True))
        schema = spark_schema_for(sample)
    columns = [f.name for f in schema.fields]
    wrapped = _Wrapped(fn, columns)

    def apply(pdf: pd.DataFrame) -> pd.DataFrame:  # a plain function: Spark inspects its signature
        return wrapped(pdf)

    out = sdf.groupBy("series_id").applyInPandas(apply, schema=schema)
    return _to_utc(out.toPandas())
