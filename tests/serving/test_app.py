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


# ---------------------------------------------------------------------------------------------- token and body size
TOKEN = "s3cret-token"


def _concrete(path: str) -> str:
    """A request path for a route pattern: every {param} becomes a plausible value."""
    import re

    return re.sub(r"{[^}]+}", "demo", path)


def _routes(app):
    """(method, path) for every route the app's router lists (included routers flattened)."""
    from fastapi.routing import iter_route_contexts

    out = []
    for r in iter_route_contexts(app.router.routes):
        for m in sorted(r.methods or {"GET"}):
            out.append((m, _concrete(r.path)))
    return out


@pytest.fixture(scope="module")
def guarded(served_project):
    from tsops.serving.dashboard import router as dashboard_router

    app = create_app(served_project, token=TOKEN, check_interval=0, routers=[dashboard_router], max_body=4096)
    with TestClient(app) as c:
        yield app, c


def test_every_route_but_health_needs_the_token(guarded):
    app, c = guarded
    routes = _routes(app)
    paths = {p for _, p in routes}
    # the router lists the API, its docs and every dashboard page
    assert {"/forecast", "/models", "/openapi.json", "/docs", "/dashboard/", "/dashboard/models",
            "/dashboard/runs", "/dashboard/datasets/demo", "/dashboard/datasets/demo/series/demo"} <= paths
    for method, path in routes:
        r = c.request(method, path, json={"series_ids": ["s0"]} if method == "POST" else None)
        if path == "/health":
            assert r.status_code == 200
            continue
        assert r.status_code == 401, (method, path, r.status_code)
        if method != "HEAD":
            assert r.json() == {"detail": r.json()["detail"]} and "missing bearer token" in r.json()["detail"]
            assert "seasonal_naive" not in r.text and "s0" not in r.text
        # a wrong token or a forged cookie is no better
        assert c.request(method, path, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.request(method, path, cookies={"tsops_session": TOKEN}).status_code == 401
        # a browser is sent to the login page, still without data
        r = c.request(method, path, headers={"Accept": "text/html"}, follow_redirects=False)
        if method in ("GET", "HEAD"):
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
            assert r.content == b""
        else:
            assert r.status_code == 401
    # unknown paths too: nothing tells an outsider what exists
    assert c.get("/nope").status_code == 401
    # with the token every route answers as usual
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert c.get("/models", headers=ok).json()["models"][0]["champion"]["version"] == "1"
    assert c.get("/dashboard/", headers=ok).status_code == 200 and "demo" in c.get("/dashboard/", headers=ok).text
    assert c.get("/openapi.json", headers=ok).status_code == 200
    assert c.post("/forecast", json={"series_ids": ["s0"]}, headers=ok).status_code == 200


def test_login_sets_an_httponly_cookie_that_opens_the_dashboard(guarded):
    from tsops.serving.auth import session_value

    _, c = guarded
    c.cookies.clear()
    r = c.get("/dashboard/runs?dataset=demo", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303
    page = c.get(r.headers["location"])
    assert page.status_code == 200 and 'type="password"' in page.text and "demo" not in page.text.split("next")[0]
    assert 'value="/dashboard/runs?dataset=demo"' in page.text
    r = c.post("/login", data={"token": "wrong", "next": "/dashboard/runs"}, follow_redirects=False)
    assert r.status_code == 401 and "wrong token" in r.text and "set-cookie" not in r.headers
    r = c.post("/login", data={"token": TOKEN, "next": "/dashboard/runs?dataset=demo"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/runs?dataset=demo"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie and session_value(TOKEN) in cookie
    c.cookies.set("tsops_session", session_value(TOKEN))
    assert c.get("/dashboard/runs").status_code == 200
    assert c.get("/models").status_code == 200  # the API accepts the session too (same origin)
    # no open redirect after login
    r = c.post("/login", data={"token": TOKEN, "next": "//evil.example/x"}, follow_redirects=False)
    assert r.headers["location"] == "/dashboard/"
    r = c.post("/logout", follow_redirects=False)
    assert r.status_code == 303 and "Max-Age=0" in r.headers["set-cookie"]
    c.cookies.clear()
    assert c.get("/dashboard/runs").status_code == 401


def test_body_limit_413_with_a_clear_message(guarded):
    _, c = guarded
    ok = {"Authorization": f"Bearer {TOKEN}"}
    big = {"series_ids": ["s0"] * 2000}  # > 4096 bytes of JSON
    r = c.post("/forecast", json=big, headers=ok)
    assert r.status_code == 413 and "larger than the limit of 4,096 bytes" in r.json()["detail"]
    assert "--max-body" in r.json()["detail"]
    # the limit does not apply before the token: an outsider gets 401 whatever the size
    assert c.post("/forecast", json=big).status_code == 401
    assert c.post("/forecast", json={"series_ids": ["s0"]}, headers=ok).status_code == 200


def _asgi_call(app, method: str, path: str, headers: list[tuple[bytes, bytes]], chunks: int, chunk: int):
    """Drive the ASGI app directly: the body comes as ``chunks`` messages of ``chunk`` bytes; returns the status,
    the response body and how many body chunks the app pulled."""
    import asyncio

    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        if pulled >= chunks:
            return {"type": "http.disconnect"}
        pulled += 1
        return {"type": "http.request", "body": b"x" * chunk, "more_body": pulled < chunks}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "root_path": "", "scheme": "http", "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, pulled


def test_a_200mb_body_is_refused_before_it_is_read(guarded):
    app, _ = guarded
    mb, n = 1024 * 1024, 200
    ct = (b"content-type", b"application/json")
    declared = (b"content-length", str(n * mb).encode())
    # no token: 401, not one byte of the body read
    status, body, pulled = _asgi_call(app, "POST", "/forecast", [ct, declared], n, mb)
    assert status == 401 and pulled == 0 and b"missing bearer token" in body
    # with the token, a declared size over the limit: 413, nothing read
    auth = (b"authorization", f"Bearer {TOKEN}".encode())
    status, body, pulled = _asgi_call(app, "POST", "/forecast", [ct, declared, auth], n, mb)
    assert status == 413 and pulled == 0 and b"larger than the limit" in body
    # chunked (no Content-Length): stopped at the limit, after at most one chunk past it
    status, body, pulled = _asgi_call(app, "POST", "/forecast", [ct, auth], n, 1024)
    assert status == 413 and pulled == 5 and b"larger than the limit of 4,096 bytes" in body


def test_real_server_answers_401_without_reading_a_declared_200mb_body(served_project):
    """Over a socket: headers announce 200 MB, no body byte is sent; the server answers at once (it would wait
    for the body for ever if it read it first: the socket timeout would fail the test)."""
    import socket
    import threading

    import uvicorn

    app = create_app(served_project, token=TOKEN)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(b"POST /forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 200000000\r\n\r\n")
            head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 401"), head[:200]
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(b"POST /forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + f"Authorization: Bearer {TOKEN}\r\n".encode() + b"Content-Length: 200000000\r\n\r\n")
            head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
    finally:
        server.should_exit = True
        t.join(timeout=30)


def test_parse_size():
    from tsops.serving.auth import parse_size

    assert parse_size("10MB") == 10 * 1024 * 1024 and parse_size("512k") == 512 * 1024
    assert parse_size("1GiB") == 1024**3 and parse_size("1000") == 1000 and parse_size(77) == 77
    for bad in ("0", "ten", "-1MB", "5TB"):
        with pytest.raises(ValueError):
            parse_size(bad)
