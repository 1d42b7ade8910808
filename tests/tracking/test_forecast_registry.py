"""Champion rules against a real MLflow registry (SQLite store in tmp)."""

import pytest

from tsops.tracking.forecast_registry import beats, promote_if_better


def test_beats():
    assert beats(0.9, 1.0) and not beats(1.0, 1.0) and not beats(1.1, 1.0)
    assert beats(0.9, None) and beats(0.9, float("nan"))
    assert not beats(float("inf"), 1.0) and not beats(float("nan"), None)
    assert not beats(0.95, 1.0, min_improvement=0.1) and beats(0.85, 1.0, min_improvement=0.1)


@pytest.fixture
def registry(tmp_path, tmp_path_factory):
    import mlflow
    from mlflow import MlflowClient

    from tsops.tuning.sample import seed_tracking_db, synthetic_hourly, write_project

    p = write_project(tmp_path / "p", synthetic_hourly(1, 30))
    seed_tracking_db(p, tmp_path_factory.getbasetemp() / "mlflow-template.db")
    mlflow.set_tracking_uri(p.tracking_uri)
    client = MlflowClient(p.tracking_uri)
    client.create_registered_model("m")
    exp = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())

    def new_version(score: float, fp: str) -> str:
        run = client.create_run(exp)
        mv = client.create_model_version("m", f"runs:/{run.info.run_id}/model", run.info.run_id,
                                         tags={"tsops.backtest_score": repr(score),
                                               "tsops.backtest_fingerprint": fp})
        return str(mv.version)

    return client, new_version


def test_champion_moves_only_on_a_better_score_and_keeps_the_previous(registry):
    client, new_version = registry
    v1 = new_version(1.0, "fp")
    assert promote_if_better(client, "m", v1, 1.0, "fp").promoted
    v2 = new_version(1.2, "fp")
    p2 = promote_if_better(client, "m", v2, 1.2, "fp", rescore=lambda uri: pytest.fail("same backtest"))
    assert not p2.promoted and p2.champion_score == 1.0 and not p2.rescored
    assert str(client.get_model_version_by_alias("m", "challenger").version) == v2
    v3 = new_version(0.8, "fp")
    p3 = promote_if_better(client, "m", v3, 0.8, "fp")
    assert p3.promoted and p3.champion_before == v1
    assert str(client.get_model_version_by_alias("m", "champion").version) == v3
    assert str(client.get_model_version_by_alias("m", "previous").version) == v1


def test_champion_from_another_backtest_is_rescored(registry):
    client, new_version = registry
    v1 = new_version(0.5, "old-data")
    promote_if_better(client, "m", v1, 0.5, "old-data")
    v2 = new_version(0.9, "new-data")
    seen = []
    p = promote_if_better(client, "m", v2, 0.9, "new-data", rescore=lambda uri: seen.append(uri) or 1.3)
    assert seen == [f"models:/m/{v1}"] and p.rescored and p.promoted and p.champion_score == 1.3
