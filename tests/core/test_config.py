import pytest
import yaml

from tsops.config import ConfigError, init_project, load_project, parse_config, parse_duration


def test_init_writes_a_valid_commented_project(tmp_path):
    p = init_project(tmp_path / "p", name="x")
    text = p.read_text()
    assert text.startswith("# tsops project file")
    proj = load_project(tmp_path / "p")
    assert proj.config.name == "x"
    assert proj.catalog_url == f"sqlite:///{(tmp_path / 'p' / 'catalog.db').resolve()}"
    assert proj.lake_root == str((tmp_path / "p" / "lake").resolve())
    assert proj.dataset("sensors").series.keys == ["position", "type_name"]
    with pytest.raises(ConfigError, match="already exists"):
        init_project(tmp_path / "p")


def test_errors_name_the_key_and_problem():
    bad = {
        "lake": {"rot": "x"},
        "datasets": {"s": {"series": {"timestamp": "t", "keys": ["a"], "values": ["v"]},
                           "source": {"kind": "kafka", "topic": "t"}, "retention": "ninety days"}},
    }
    with pytest.raises(ConfigError) as e:
        parse_config(bad)
    msg = str(e.value)
    assert "lake.rot: unknown key" in msg
    assert "datasets.s.source.bootstrap_servers: Field required" in msg
    assert "datasets.s.retention" in msg and "not a duration" in msg


def test_unknown_dataset_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="tsops init"):
        load_project(tmp_path)
    init_project(tmp_path)
    with pytest.raises(ConfigError, match="not defined"):
        load_project(tmp_path).dataset("nope")
    (tmp_path / "tsops.yaml").write_text("datasets: [1, 2]")
    with pytest.raises(ConfigError, match="datasets"):
        load_project(tmp_path)
    (tmp_path / "tsops.yaml").write_text("a: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_project(tmp_path)


def test_remote_urls_kept_and_durations():
    cfg = parse_config(yaml.safe_load("lake: {root: 's3://bucket/lake'}\ncatalog: {url: 'postgresql+psycopg://h/db'}"))
    assert cfg.lake.root == "s3://bucket/lake"
    assert parse_duration("90d").days == 90
    assert parse_duration("12h").total_seconds() == 43200
    with pytest.raises(ValueError):
        parse_duration("soon")


SERIES = {"timestamp": "t", "keys": ["a"], "values": ["v"]}


def _policy(**ds):
    return parse_config({"datasets": {"s": {"series": SERIES, **ds}}}).datasets["s"].retention


@pytest.mark.parametrize("value, message", [
    ("0d", "datasets.s.retention: Value error, '0d' would delete everything"),
    ("1000000w", "datasets.s.retention: Value error, '1000000w' is longer than 100 years"),
    ("9" * 400 + "d", "datasets.s.retention: Value error"),
    ({"raw": "90d", "clean": "0s"}, "datasets.s.retention.clean: Value error, '0s' would delete everything"),
    ({"forecasts": "101y"}, "datasets.s.retention.forecasts: Value error, '101y' is not a duration"),
    ({"forecasts": "36600d"}, "datasets.s.retention.forecasts: Value error, '36600d' is longer than 100 years"),
    ({"archive": "1d"}, "datasets.s.retention.archive: unknown key"),
    ([1, 2], "datasets.s.retention: Value error, [1, 2] is not a retention"),
])
def test_retention_policies_are_validated_at_load_naming_the_key(value, message):
    with pytest.raises(ConfigError) as e:
        _policy(retention=value)
    assert message in str(e.value)


def test_retention_policy_forms():
    # per zone; a zone left out is kept forever
    p = _policy(retention={"raw": "90d", "quarantine": "30d", "clean": "180d", "forecasts": "forever"})
    assert p.zones() == {"raw": "90d", "quarantine": "30d", "clean": "180d"}
    assert p.keep("raw").days == 90 and p.keep("forecasts") is None
    # the scalar shorthand covers every zone; quarantine_retention overrides the quarantine zone
    assert _policy(retention="90d").zones() == dict.fromkeys(("raw", "quarantine", "clean", "forecasts"), "90d")
    p = _policy(retention="90d", quarantine_retention="7d")
    assert p.quarantine == "7d" and p.raw == p.clean == p.forecasts == "90d"
    assert _policy(quarantine_retention="7d").zones() == {"quarantine": "7d"}
    assert _policy(retention="forever").zones() == {} and _policy().zones() == {}
    assert _policy(retention="100w").keep("clean").days == 700
    with pytest.raises(ConfigError, match="give the quarantine policy once"):
        _policy(retention={"quarantine": "1d"}, quarantine_retention="2d")
    with pytest.raises(ConfigError, match="datasets.s.quarantine_retention: .*longer than 0"):
        _policy(quarantine_retention="0h")


def test_init_template_documents_per_zone_retention(tmp_path):
    p = init_project(tmp_path / "p")
    text = p.read_text()
    assert "forever" in text and "quarantine_retention" in text and "100 years" in text
    assert load_project(tmp_path / "p").dataset("sensors").retention.zones() == {
        "raw": "90d", "quarantine": "30d", "clean": "180d", "forecasts": "30d"}


def test_parse_duration_overflow_is_a_value_error():
    with pytest.raises(ValueError, match="too long"):
        parse_duration("9" * 400 + "d")
