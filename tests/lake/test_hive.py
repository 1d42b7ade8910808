"""`tsops hive register`: Spark SQL over the lake zones through external partitioned tables."""

import pytest

from tsops.lake.hive import register_tables

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_register_and_query_with_spark_sql(sensor_project, spark):
    lake = sensor_project.lake()
    tables = {t.name: t for t in register_tables(spark, lake, ["sensors"], database="t_hive")}
    raw = tables["t_hive.raw_sensors"]
    assert raw.partitions == len(lake.days("raw", "sensors")) and raw.rows == lake.read("raw", "sensors").num_rows
    assert "t_hive.quarantine_sensors" in tables
    df = spark.sql("SELECT series_id, count(*) AS n FROM t_hive.raw_sensors WHERE series_id LIKE '%C02' "
                   "GROUP BY series_id ORDER BY series_id").toPandas()
    assert list(df.series_id) == ["광주 A|C02", "광주 B|C02"]
    # idempotent, and new partitions appear after re-registering
    again = {t.name: t for t in register_tables(spark, lake, ["sensors"], database="t_hive")}
    assert again["t_hive.raw_sensors"].rows == raw.rows
