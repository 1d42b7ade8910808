import numpy as np
import pyarrow as pa
import pytest

from tsops.datamodel import SeriesSpec, check_series_id, series_id_of, to_long

NOW_US = 1_800_000_000_000_000  # 2027-01-15


def spec(**kw):
    base = dict(timestamp="event_time", keys=["position", "type_name"], values=["input_data"])
    base.update(kw)
    return SeriesSpec(**base)


def records(**cols):
    return pa.table(cols)


def test_envelope_like_records_become_one_series_per_entity():
    t = records(
        event_time=pa.array([1669102545000, 1669102546000, 1669102545000], pa.int64()),
        position=["광 주 A", "광 주 A", "B"],
        type_name=["C02", "C02", "T"],
        input_data=[460.0, None, 21.5],
        unit=["ppm", "ppm", "C"],
    )
    res = to_long(t, spec(), src="kafka:s/0", pos=np.array([10, 11, 12]), now_us=NOW_US)
    assert len(res.rejected) == 0
    out = res.table.to_pydict()
    assert out["series_id"] == ["광 주 A|C02", "광 주 A|C02", "B|T"]
    assert out["value"] == [460.0, None, 21.5]  # null stays a missing reading, not a rejection
    assert out["unit"] == ["ppm", "ppm", "C"]
    assert out["_pos"] == [10, 11, 12]
    assert res.table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert out["ts"][0].isoformat() == "2022-11-22T07:35:45+00:00"


def test_wide_records_make_one_series_per_entity_and_measure():
    t = records(ts=["2013-03-01 00:00", "2013-03-01 01:00"], station=["Aoti", "Aoti"], PM10=[4.0, 8.0],
                NO2=["NA", "7"], wd=["N", "NNE"])
    s = SeriesSpec(timestamp="ts", keys=["station"], values=["PM10", "NO2"], missing_values=["NA"],
                   timezone="Asia/Shanghai")
    res = to_long(t, s, now_us=NOW_US)
    d = res.table.to_pydict()
    assert d["series_id"] == ["Aoti|PM10", "Aoti|PM10", "Aoti|NO2", "Aoti|NO2"]
    assert d["value"] == [4.0, 8.0, None, 7.0]
    assert d["wd"] == ["N", "NNE", "N", "NNE"]
    assert d["ts"][0].isoformat() == "2013-02-28T16:00:00+00:00"  # Beijing is UTC+8


@pytest.mark.parametrize(
    "col,value,reason",
    [
        ("event_time", -86_400_000, "before 1970"),
        ("event_time", NOW_US // 1000 + 2 * 86_400_000, "more than a day in the future"),
        ("event_time", None, "missing or unparseable timestamp"),
        ("input_data", float("inf"), "non-finite number"),
        ("input_data", float("nan"), "non-finite number"),
        ("position", "../etc", "escape its partition"),
        ("position", 'x"y', "escape its partition"),
        ("position", None, "missing key"),
    ],
)
def test_bad_records_are_rejected_with_a_reason_naming_the_field(col, value, reason):
    good = dict(event_time=1669102545000, position="A", type_name="C02", input_data=1.0)
    bad = dict(good, **{col: value})
    t = pa.Table.from_pylist([good, bad, good], schema=pa.schema([
        ("event_time", pa.int64()), ("position", pa.string()), ("type_name", pa.string()),
        ("input_data", pa.float64())]))
    res = to_long(t, spec(), now_us=NOW_US)
    assert res.rejected.rows.tolist() == [1]
    assert reason in res.rejected.reasons[0]
    field = "fields ['position'" if col == "position" and "escape" in reason else repr(col)
    assert field in res.rejected.reasons[0]
    assert res.table.num_rows == 2
    assert res.table.column("_pos").to_pylist() == [0, 2]


def test_string_numbers_with_decimal_comma_and_garbage():
    t = records(ts=["2004-03-10 18:00:00"] * 7, site=["x"] * 7,
                co=["2,6", "-200", "abc", " 1e3 ", "", "NaN", "-0,5"])
    s = SeriesSpec(timestamp="ts", keys=["site"], values=["co"], missing_values=["-200"])
    res = to_long(t, s, now_us=NOW_US)
    assert res.table.column("value").to_pylist() == [2.6, None, 1000.0, None, -0.5]
    assert res.rejected.rows.tolist() == [2, 5]
    assert "not a number 'abc'" in res.rejected.reasons[0]
    assert "non-finite number" in res.rejected.reasons[1]


def test_series_id_helpers():
    assert series_id_of(["A", "C02"]) == "A|C02"
    assert check_series_id("광 주 A|C02") is None
    assert check_series_id("a/b") is not None
    assert check_series_id("") is not None


def test_spec_validation_names_the_problem():
    with pytest.raises(ValueError, match="both keys and values"):
        SeriesSpec(timestamp="t", keys=["a"], values=["a"])
    with pytest.raises(ValueError, match="timestamp_unit"):
        SeriesSpec(timestamp="t", keys=["a"], values=["b"], timestamp_unit="days")


def test_missing_columns_raise_clear_error():
    with pytest.raises(KeyError, match="lacks column"):
        to_long(records(x=[1]), spec(), now_us=NOW_US)


def test_partition_column_names_are_not_attributes():
    t = records(ts=["2013-03-01 00:00"], station=["A"], PM10=[4.0], year=[2013], month=[3], day=[1], wd=["N"])
    res = to_long(t, SeriesSpec(timestamp="ts", keys=["station"], values=["PM10"]), now_us=NOW_US)
    assert res.table.column_names == ["series_id", "ts", "value", "station", "wd", "_src", "_pos"]
    with pytest.raises(ValueError, match="partition columns"):
        SeriesSpec(timestamp="ts", keys=["station"], values=["PM10"], attributes=["year"])
