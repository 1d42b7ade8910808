"""The forecasting API: happy paths, every error path (4xx with a reason), token, champion reload."""

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tsops.serving.app import create_app
from tsops.tuning.data import load_panel
from tsops.tuning.evaluate import BacktestSpec

SPEC = BacktestSpec(horizon=12, n_windows=2)


@pytest.fixture(scope="module")
def client(served_project):
    return TestClient(create_app(served_project, check_interval=0))


def history(p, sid="s0", n=48):
    df = load_panel(p, "demo").to_frame().query("series_id == @sid").tail(n)
    return [{"series_id": sid, "ts": t.isoformat(), "value": float(v)} for t, v in zip(df.ts, df.value, strict=True)]


def test_health_models_and_openapi(client):
    assert client.get("/health").json()["status"] == "ok"
    models = client.get("/models").json()["models"]
    assert models[0]["dataset"] == "demo" and models[0]["champion"]["version"] == "1"
    assert models[0]["champion"]["model"] == "seasonal_naive" and models[0]["champion"]["intervals"] == [80, 95]
    spec = client.get("/openapi.json").json()
    assert "/forecast" in spec["paths"] and "ForecastRequest" in spec["components"]["schemas"]


def test_forecast_series_from_the_lake(client, served_project):
    r = client.post("/forecast", json={"series_ids": ["s1", "s2"], "horizon": 6})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == "1" and body["source"] == "lake" and body["horizon"] == 6
    fc = pd.DataFrame(body["forecasts"])
    assert len(fc) == 12 and set(fc.series_id) == {"s1", "s2"}
    assert (fc.lo_95 <= fc.lo_80).all() and (fc.lo_80 <= fc["mean"]).all() and (fc.hi_80 <= fc.hi_95).all()
    end = load_panel(served_project, "demo").end_ts[1]
    assert fc.ts.iloc[0] == (pd.Timestamp(end) + pd.Timedelta("1h")).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_forecast_history_in_the_body_matches_the_pyfunc(client, served_project):
    import mlflow

    h = history(served_project)
    r = client.post("/forecast", json={"history": h, "horizon": 5})
    assert r.status_code == 200, r.text
    api = pd.DataFrame(r.json()["forecasts"])
    mlflow.set_tracking_uri(served_project.tracking_uri)
    pf = mlflow.pyfunc.load_model("models:/tsops-demo@champion")
    df = pd.DataFrame(h).assign(ts=lambda d: pd.to_datetime(d.ts).dt.tz_localize(None))
    ref = pf.predict(df, params={"horizon": 5})
    assert list(ref.columns) == ["series_id", "step", "ts", "mean", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert api["mean"].to_numpy() == pytest.approx(ref["mean"].to_numpy())
    assert api["hi_95"].to_numpy() == pytest.approx(ref["hi_95"].to_numpy())
    # epoch seconds work too, and irregular timestamps are put on the model's grid
    h2 = [dict(o, ts=pd.Timestamp(o["ts"]).timestamp() + 17) for o in h]
    assert client.post("/forecast", json={"history": h2, "horizon": 2}).status_code == 200


@pytest.mark.parametrize("body, status, reason", [
    ({"series_ids": ["nope"]}, 404, "no observations of series ['nope']"),
    ({"series_ids": ["s0", "nope"]}, 404, "unknown series in dataset 'demo': ['nope']"),
    ({"dataset": "other", "series_ids": ["s0"]}, 404, "unknown dataset 'other'"),
    ({"history": []}, 422, "history"),
    ({"series_ids": []}, 422, "series_ids"),
    ({}, 422, "exactly one of series_ids"),
    ({"series_ids": ["s0"], "history": [{"series_id": "s0", "ts": "2024-01-01", "value": 1}]}, 422,
     "exactly one of"),
    ({"history": [{"series_id": "s0", "ts": "2024-01-01", "value": "abc"}]}, 422, "history.0.value"),
    ({"history": [{"series_id": "s0", "ts": "2024-01-01T00:00", "value": 1.0},
                  {"series_id": "s0", "ts": "not a time", "value": 2.0}]}, 400, "timestamp"),
    ({"history": [{"series_id": "s0", "ts": "2024-01-01", "value": 1.0}]}, 400, "at least 2"),
    ({"history": [{"series_id": "s0", "ts": "2024-01-01", "value": None},
                  {"series_id": "s0", "ts": "2024-01-02", "value": None}]}, 400, "at least 2"),
    ({"history": [{"series_id": "s0", "ts": "2024-01-01"}]}, 422, "value"),
    ({"history": [{"series_id": "s0", "ts": 1e300, "value": 1.0}, {"series_id": "s0", "ts": 0, "value": 1.0}]},
     400, "epoch timestamp out of range"),
    ({"history": [{"series_id": "s0", "ts": "3000-01-01", "value": 1.0},
                  {"series_id": "s0", "ts": "3000-01-02", "value": 1.0}]}, 400, "timestamp"),
    ({"history": [{"series_id": "s0", "ts": 5, "value": 1.0}, {"series_id": "s0", "ts": "2024-01-01", "value": 1}]},
     400, "mix epoch numbers and strings"),
    ({"history": [{"series_id": "s0", "ts": "1990-01-01", "value": 1.0},
                  {"series_id": "s0", "ts": "2024-01-01", "value": 2.0}]}, 400, "at most 100000 are allowed"),
    ({"series_ids": ["s0"], "horizon": 0}, 422, "horizon"),
    ({"series_ids": ["s0"], "horizon": 100000}, 400, "horizon must be between 1 and"),
    ({"series_ids": ["s0"], "horizon": "ten"}, 422, "horizon"),
    ({"series_ids": "s0"}, 422, "series_ids"),
    ({"series_ids": ["s0"], "extra": 1}, 422, "extra"),
])
def test_malformed_requests_get_4xx_with_a_reason(client, body, status, reason):
    r = client.post("/forecast", json=body)
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"]


def test_non_json_body_is_a_4xx(client):
    r = client.post("/forecast", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    r = client.post("/forecast", content=b"series_ids=s0", headers={"content-type": "text/plain"})
    assert 400 <= r.status_code < 500


def test_bearer_token(served_project):
    c = TestClient(create_app(served_project, token="s3cret"))
    assert c.get("/health").status_code == 200        # liveness stays open
    r = c.post("/forecast", json={"series_ids": ["s0"]})
    assert r.status_code == 401 and "missing bearer token" in r.json()["detail"]
    r = c.post("/forecast", json={"series_ids": ["s0"]}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "invalid bearer token" in r.json()["detail"]
    assert c.get("/models", headers={"Authorization": "Basic s3cret"}).status_code == 401
    r = c.post("/forecast", json={"series_ids": ["s0"]}, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200


def test_no_champion_is_a_503_with_a_reason(tmp_path, tmp_path_factory):
    from tsops.tuning.sample import seed_tracking_db, synthetic_hourly, write_project

    p = write_project(tmp_path / "empty", synthetic_hourly(1, 30))
    seed_tracking_db(p, tmp_path_factory.getbasetemp() / "mlflow-template.db")
    c = TestClient(create_app(p))
    r = c.post("/forecast", json={"series_ids": ["s0"]})
    assert r.status_code == 503 and "no 'champion' alias" in r.json()["detail"]
    assert c.get("/models").json()["models"][0]["champion"] is None


def test_reloads_when_the_champion_alias_moves(served_project):
    from mlflow import MlflowClient

    from tsops.tuning.train import train

    c = TestClient(create_app(served_project, check_interval=0))
    assert c.post("/forecast", json={"series_ids": ["s0"]}).json()["version"] == "1"
    res = train(served_project, "demo", "naive", spec=SPEC)          # worse: registered, not promoted
    assert not res.promoted
    assert c.post("/forecast", json={"series_ids": ["s0"]}).json()["version"] == "1"
    client = MlflowClient(served_project.tracking_uri)
    client.set_registered_model_alias("tsops-demo", "champion", res.version)   # e.g. a manual rollout
    body = c.post("/forecast", json={"series_ids": ["s0"], "horizon": 3}).json()
    assert body["version"] == res.version and body["model"] == "tsops-demo"
    assert c.get("/health").json() == {"status": "ok", "loaded": {"demo": res.version}, "reloads": 1}
    client.set_registered_model_alias("tsops-demo", "champion", "1")
