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
