"""``tsops demo``: simulated sensor traffic through Kafka (librdkafka's mock cluster), the whole pipeline
(ingest, clean, analyse, a small Ray Tune search, champion registration, forecasts, report), one forecast
request answered over HTTP, and where to look next."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from tsops.catalog import us_to_iso
from tsops.config import init_project, load_project
from tsops.masking import mask_url

DEMO_TOPIC = "sensor-data-view"


def _demo_config(bootstrap: str | None, incoming: str) -> dict:
    sensors_source = (
        {"kind": "kafka", "bootstrap_servers": bootstrap, "topic": DEMO_TOPIC, "group_id": "tsops-demo",
         "batch_size": 20_000, "idle_timeout_s": 8, "consumer": {"session.timeout.ms": 6000}}
        if bootstrap
        else {"kind": "files", "format": "jsonl", "paths": [f"{incoming}/*.jsonl"]}
    )
    return {
        "name": "tsops-demo",
        "datasets": {
            "sensors": {
                "series": {"timestamp": "event_time", "keys": ["position", "type_name"], "values": ["input_data"]},
                "source": sensors_source,
                "retention": "90d",
            }
        },
        "pipeline": {"schedule": "@hourly", "horizon": 24, "tune_trials": 4, "tune_minutes": 4,
                     "families": ["seasonal_naive", "auto_theta", "lstm"], "max_steps": 120, "max_points": 720},
    }


def run_demo(directory: Path, *, days: float = 2.0, seed: int = 7, use_kafka: bool = True,
             pipeline: bool = True, console: Console | None = None) -> Path:
    """Build a fresh demo project in ``directory`` and run ingestion over simulated traffic, half a day at a time."""
    from tsops.ingest.api import ingest
    from tsops.ingest.simulator import config_for, to_files, to_kafka

    console = console or Console()
    directory = Path(directory).resolve()
    for sub in ("lake", "incoming", "mlartifacts"):
        shutil.rmtree(directory / sub, ignore_errors=True)
    for f in ("catalog.db", "catalog.db-wal", "catalog.db-shm", "tsops.yaml"):
        (directory / f).unlink(missing_ok=True)
    init_project(directory, name="tsops-demo")

    owner = None
    bootstrap = None
    if use_kafka:
        from confluent_kafka import Producer

        # owns the mock cluster while the demo runs; librdkafka's own log lines go to Python logging
        owner = Producer({"test.mock.num.brokers": 1}, logger=logging.getLogger("confluent_kafka.mock"))
        md = owner.list_topics(timeout=10)
        bootstrap = ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
    incoming = "incoming/sensors"
    (directory / "tsops.yaml").write_text(
        "# tsops demo project (rewritten by `tsops demo`)\n"
        + yaml.safe_dump(_demo_config(bootstrap, incoming), allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    project = load_project(directory)
    console.rule("[bold]tsops demo")
    console.print(f"project: {directory}\nsource: " + (
        f"Kafka topic {DEMO_TOPIC!r} on librdkafka's mock cluster at {bootstrap}" if bootstrap else
        f"JSON Lines files in {directory / incoming}"))

    # all the traffic, the later half day included, lies in the past of the wall clock (ending an hour ago),
    # so what the demo cleans and shows never depends on when it runs
    chunk_s = 12 * 3600.0
    n_chunks = max(1, round(days * 86400 / chunk_s))
    start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(
        seconds=n_chunks * chunk_s + chunk_s / 2 + 3600)
    t = Table(title="incremental ingestion, half a day at a time")
    for c in ("window (UTC)", "produced", "malformed sent", "consumed", "accepted", "quarantined", "rec/s"):
        t.add_column(c, justify="right")
    totals = {"produced": 0, "consumed": 0, "accepted": 0, "quarantined": 0}
    t0 = time.perf_counter()
    for k in range(n_chunks):
        base = config_for(days=chunk_s / 86400, seed=seed + k, malformed_rate=0.003)
        cfg = _replace(base, start=start + dt.timedelta(seconds=k * chunk_s))
        if bootstrap:
            sent = to_kafka(cfg, {"bootstrap.servers": bootstrap, "linger.ms": 20}, DEMO_TOPIC)
        else:
            sent = to_files(cfg, directory / incoming)  # file names carry the seed: one set per chunk
        rep = ingest(project, "sensors")
        malformed = sum(v for key, v in sent.per_fault.items() if key.startswith("malformed"))
        t.add_row(f"{cfg.start:%m-%d %H:%M} +12h", f"{sent.produced:,}", f"{malformed:,}", f"{rep.consumed:,}",
                  f"{rep.accepted:,}", f"{rep.quarantined:,}", f"{rep.records_per_s:,.0f}")
        totals["produced"] += sent.produced
        for key in ("consumed", "accepted", "quarantined"):
            totals[key] += getattr(rep, key)
    console.print(t)
    ok = totals["accepted"] + totals["quarantined"] == totals["consumed"] == totals["produced"]
    console.print(
        f"{'[green]reconciled[/green]' if ok else '[red]NOT reconciled[/red]'}: produced {totals['produced']:,} = "
        f"accepted {totals['accepted']:,} + quarantined {totals['quarantined']:,} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    rep = ingest(project, "sensors")  # a second run finds nothing new: exactly once
    console.print(f"re-run of ingestion: {rep.consumed} new records (nothing is ingested twice)")
    _print_catalog(project, console)
    _print_sql(project, console)

    if pipeline:
        from tsops.orchestration.pipeline import run_pipeline

        console.rule("[bold]pipeline: process -> analyze -> train (Ray Tune) -> forecast -> report")
        with _StageProgress(console) as on_stage:
            run = run_pipeline(project, "sensors", on_stage=on_stage)
        if run.status != "success":
            raise RuntimeError(f"demo pipeline failed: {run.error}")
        # half a day more arrives: the next run is incremental (champion kept, forecasts refreshed)
        k = n_chunks
        cfg = _replace(config_for(days=chunk_s / 86400, seed=seed + k, malformed_rate=0.003),
                       start=start + dt.timedelta(seconds=k * chunk_s - chunk_s / 2))
        if bootstrap:
            to_kafka(cfg, {"bootstrap.servers": bootstrap, "linger.ms": 20}, DEMO_TOPIC)
        else:
            to_files(cfg, directory / incoming)
        console.rule("[bold]new data arrives: the pipeline runs again, incrementally")
        with _StageProgress(console) as on_stage:
            run2 = run_pipeline(project, "sensors", on_stage=on_stage)
        if run2.status != "success":
            raise RuntimeError(f"demo pipeline failed: {run2.error}")
        _answer_request(project, console)
    if owner is not None:
        owner.flush(5)
    console.rule("[bold]where to look")
    cat = project.catalog()
    try:
        first_id = next((s["series_id"] for s in cat.list_series("sensors")), None)
    finally:
        cat.close()
    report = project.root / "reports" / "sensors.html"
    console.print(
        f"lake:      {project.lake_root}  (raw/ clean/ forecasts/ quarantine/, Hive partitions year=/month=/day=)\n"
        f"catalog:   {mask_url(project.catalog_url)}\n"
        + (f"report:    {report}\n" if report.exists() else "")
        + f"MLflow:    mlflow ui --backend-store-uri {mask_url(project.tracking_uri)}\n"
        f"dashboard: tsops -p {directory} serve   then open http://127.0.0.1:8000/dashboard/\n"
        f"runs:      tsops -p {directory} runs list   ·   tsops -p {directory} runs show <id>\n"
        f"Airflow:   tsops -p {directory} airflow render\n"
        f"SQL:       tsops -p {directory} sql \"SELECT series_id, count(*) FROM clean_sensors GROUP BY 1\""
        + (f"\nseries:    tsops -p {directory} catalog show \"{first_id}\" --dataset sensors" if first_id else "")
        + f"\nresample:  tsops -p {directory} resample --dataset sensors --every 1h --agg mean"
    )
    if not ok:
        raise RuntimeError("demo counts did not reconcile: see the table above")
    return directory


class _StageProgress:
    """One line per finished stage, and meanwhile a progress line naming the stage at work (the pipeline
    reports a stage when it ends, so the one at work is the next in the pipeline's order)."""

    ORDER = ("ingest", "process", "analyze", "train", "forecast", "report")

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)
        self.task = self.progress.add_task(f"pipeline: {self.ORDER[0]}", total=len(self.ORDER))

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def __call__(self, stage: str, r: dict) -> None:
        self.console.print(f"  {stage:<9} {r.get('status', 'ran'):<8} {r.get('seconds', 0):6.1f} s  "
                           f"{_stage_line(stage, r)}")
        k = self.ORDER.index(stage) + 1 if stage in self.ORDER else self.progress.tasks[0].completed + 1
        nxt = self.ORDER[k] if k < len(self.ORDER) else "done"
        hint = " (Ray Tune: a minute or two)" if nxt == "train" else ""
        self.progress.update(self.task, completed=k, description=f"pipeline: {nxt}{hint}")


def _stage_line(stage: str, r: dict) -> str:
    if r.get("status") == "skipped":
        return str(r.get("why", ""))
    if stage == "ingest":
        return f"{r.get('consumed', 0):,} records"
    if stage == "process":
        return (f"{len(r.get('days', []))} day partition(s) cleaned, {r.get('missing_inserted', 0):,} missing rows "
                f"imputed, {r.get('anomalies', 0):,} anomalies treated")
    if stage == "analyze":
        top = (r.get("top_pairs") or [{}])[0]
        return (f"{r.get('series', 0)} series profiled, {r.get('pairs', 0)} pairs correlated"
                + (f"; strongest: {top.get('leader')} ~ {top.get('follower')} ({top.get('corr', 0):+.2f})"
                   if top else ""))
    if stage == "train":
        return (f"{r.get('why')}: best {r.get('best_model')} (MASE {r.get('score', float('nan')):.3f}) -> "
                f"{r.get('model')} v{r.get('version')} {'champion' if r.get('promoted') else 'not promoted'}")
    if stage == "forecast":
        return f"{r.get('rows', 0)} forecasts of {r.get('series', 0)} series by {r.get('model')} v{r.get('model_version')}"
    if stage == "report":
        return str(r.get("path", ""))
    return ""


def _answer_request(project, console: Console) -> None:
    """Serve the champion on a loopback port and answer one forecast request over HTTP."""
    import socket
    import threading

    import httpx
    import uvicorn

    from tsops.serving.app import create_app
    from tsops.serving.dashboard import router as dashboard_router

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(project, routers=[dashboard_router])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        sid = "광주 A|C02"
        console.rule(f"[bold]one forecast request: POST {base}/forecast")
        r = httpx.post(f"{base}/forecast", json={"dataset": "sensors", "series_ids": [sid], "horizon": 6},
                       timeout=60)
        r.raise_for_status()
        body = r.json()
        t = Table(title=f"{sid}: {body['model']} v{body['version']}")
        for c in ("step", "ts", "mean", "80% interval", "95% interval"):
            t.add_column(c, justify="right")
        def band(lo, hi) -> str:
            return "–" if lo is None or hi is None else f"{lo:.1f} .. {hi:.1f}"

        for f in body["forecasts"]:
            mean = "–" if f["mean"] is None else f"{f['mean']:.1f}"
            t.add_row(str(f["step"]), str(f["ts"]), mean, band(f["lo_80"], f["hi_80"]), band(f["lo_95"], f["hi_95"]))
        console.print(t)
        d = httpx.get(f"{base}/dashboard/", timeout=30)
        console.print(f"dashboard answered {d.status_code} at {base}/dashboard/ (stopped with the demo)")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def _print_catalog(project, console: Console) -> None:
    cat = project.catalog()
    t = Table(title="catalog: series of dataset 'sensors'")
    for c in ("series_id", "unit", "observations", "first", "last"):
        t.add_column(c)
    for s in cat.list_series("sensors"):
        t.add_row(s["series_id"], str(s.get("unit") or ""), f"{s['count']:,}", s["first_ts"], s["last_ts"])
    console.print(t)
    for d in cat.list_datasets():
        console.print(f"dataset {d['name']}: {d['series']} series, {d['observations']:,} observations, "
                      f"{us_to_iso(d['first_ts_us'])} .. {us_to_iso(d['last_ts_us'])}")


def _print_sql(project, console: Console) -> None:
    from tsops.lake.sql import query

    if not project.lake().files("quarantine", "sensors"):
        console.print("quarantine: empty")
        return
    df = query(project.lake(), "SELECT regexp_extract(reason, '^[^:]*') AS reason, count(*) AS records "
                "FROM quarantine_sensors GROUP BY 1 ORDER BY 2 DESC")
    t = Table(title="quarantine by reason (DuckDB over the lake)")
    t.add_column("reason")
    t.add_column("records", justify="right")
    for r in df.itertuples(index=False):
        t.add_row(str(r.reason)[:100], f"{r.records:,}")
    console.print(t)
