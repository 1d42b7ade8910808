"""Serving benchmark: `tsops serve` vs `mlflow models serve` of the same registered model, same run.

Builds a small project in a temp dir (synthetic hourly series), trains and registers one model, starts both
servers on loopback (one worker each) and fires single-series forecast requests (history in the body,
horizon 24) at each: requests per second and p50/p99 latency at concurrency 1 and 4, plus the tsops lake path
(series id in the body, history read from the lake) and each server's peak RSS.

    PYTHONPATH=src /tmp/venv0/bin/python bench/serve.py [--model lstm] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> float:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before it was ready ({url})")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return time.time() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout} s")


class RssSampler(threading.Thread):
    """Peak RSS of a process tree, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak, self.stop = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)


def load(url: str, body: dict, seconds: float, concurrency: int, headers: dict | None = None) -> dict:
    """Closed-loop load: ``concurrency`` clients with keep-alive, each sending the next request on reply."""
    lat: list[float] = []
    errors = [0]
    end = time.perf_counter() + seconds
    payload = json.dumps(body).encode()
    hdr = {"content-type": "application/json", **(headers or {})}

    def worker() -> None:
        with httpx.Client(timeout=30.0) as c:
            while time.perf_counter() < end:
                t = time.perf_counter()
                r = c.post(url, content=payload, headers=hdr)
                dt = time.perf_counter() - t
                if r.status_code == 200:
                    lat.append(dt)
                else:
                    errors[0] += 1
                    if errors[0] == 1:
                        print(f"  error {r.status_code}: {r.text[:300]}", file=sys.stderr)

    with httpx.Client(timeout=30.0) as c:  # warm-up
        for _ in range(5):
            c.post(url, content=payload, headers=hdr)
    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    wall = time.perf_counter() - t0
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    return {"requests": len(lat), "errors": errors[0], "rps": len(lat) / wall, "p50_ms": q[49] * 1000,
            "p99_ms": q[98] * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lstm", help="model to register (lstm, seasonal_naive, ...)")
    ap.add_argument("--seconds", type=float, default=10.0, help="load duration per scenario")
    ap.add_argument("--history", type=int, default=168, help="history points per request")
    args = ap.parse_args()

    import pandas as pd

    from tsops.tuning.data import load_panel
    from tsops.tuning.evaluate import BacktestSpec
    from tsops.tuning.sample import synthetic_hourly, write_project
    from tsops.tuning.train import train

    tmp = Path(tempfile.mkdtemp(prefix="tsops-bench-serve-"))
    project = write_project(tmp / "proj", synthetic_hourly(10, 24 * 30, seed=1), dataset="bench",
                            season_lengths=(24,))  # the profile `tsops process` would store: a daily season
    t = time.time()
    # one torch thread: single-series inference gains nothing from more, and both servers share 2 cores
    params = {"hidden_size": 32, "input_size": 96, "batch_size": 64, "n_threads": 1} if args.model == "lstm" \
        else {}
    res = train(project, "bench", args.model, params, spec=BacktestSpec(horizon=24, n_windows=2),
                max_steps=100)
    print(f"trained and registered {res.registered_name} v{res.version} ({args.model}) in {time.time() - t:.1f} s")

    hist = load_panel(project, "bench").to_frame().query("series_id == 's3'").tail(args.history)
    hist["ts"] = pd.to_datetime(hist["ts"]).dt.tz_localize(None) if pd.to_datetime(hist["ts"]).dt.tz else hist["ts"]
    rows = [{"series_id": "s3", "ts": t_.strftime("%Y-%m-%dT%H:%M:%S"), "value": float(v)}
            for t_, v in zip(hist["ts"], hist["value"], strict=True)]
    tsops_body = {"history": rows, "horizon": 24}
    lake_body = {"series_ids": ["s3"], "horizon": 24}
    mlflow_body = {"dataframe_split": {"columns": ["series_id", "ts", "value"],
                                       "data": [[r["series_id"], r["ts"], r["value"]] for r in rows]},
                   "params": {"horizon": 24}}

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = project.tracking_uri
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    p1, p2 = free_port(), free_port()
    tsops_cmd = [sys.executable, "-c", "import typer; from tsops.cli.forecasting import serve; typer.run(serve)",
                 "--project", str(project.root), "--port", str(p1), "--check-interval", "10"]
    mlflow_cmd = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
                  f"models:/{res.registered_name}@champion", "--env-manager", "local", "-h", "127.0.0.1",
                  "-p", str(p2), "-w", "1"]
    procs = {}
    results = {}
    try:
        procs["tsops serve"] = subprocess.Popen(tsops_cmd, env=env, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE)
        procs["mlflow models serve"] = subprocess.Popen(mlflow_cmd, env=env, stdout=subprocess.DEVNULL,
                                                        stderr=subprocess.PIPE)
        ready = {"tsops serve": wait_ready(f"http://127.0.0.1:{p1}/health", procs["tsops serve"]),
                 "mlflow models serve": wait_ready(f"http://127.0.0.1:{p2}/ping", procs["mlflow models serve"])}
        samplers = {k: RssSampler(p.pid) for k, p in procs.items()}
        for s in samplers.values():
            s.start()
        # the tsops API loads the champion on first use: one request before timing
        httpx.post(f"http://127.0.0.1:{p1}/forecast", json=lake_body, timeout=60).raise_for_status()
        scenarios = [
            ("tsops serve", "history", f"http://127.0.0.1:{p1}/forecast", tsops_body),
            ("tsops serve", "lake", f"http://127.0.0.1:{p1}/forecast", lake_body),
            ("mlflow models serve", "history", f"http://127.0.0.1:{p2}/invocations", mlflow_body),
        ]
        for conc in (1, 4):
            for server, kind, url, body in scenarios:
                r = load(url, body, args.seconds, conc)
                results[(server, kind, conc)] = r
                print(f"{server:20s} {kind:8s} c={conc}: {r['rps']:7.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                      f"p99 {r['p99_ms']:7.2f} ms  ({r['requests']} ok, {r['errors']} errors)", flush=True)
        for s in samplers.values():
            s.stop.set()
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    print("\n| server | request | concurrency | req/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for (server, kind, conc), r in results.items():
        print(f"| {server} | {kind} | {conc} | {r['rps']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    for conc in (1, 4):
        a, b = results[("tsops serve", "history", conc)], results[("mlflow models serve", "history", conc)]
        print(f"\nconcurrency {conc}: tsops/mlflow throughput ratio {a['rps'] / b['rps']:.2f}, "
              f"p50 latency ratio {a['p50_ms'] / b['p50_ms']:.2f}, p99 ratio {a['p99_ms'] / b['p99_ms']:.2f}")
    for k, s in samplers.items():
        print(f"peak RSS {k}: {s.peak / 2**20:.0f} MiB (ready after {ready[k]:.1f} s)")
    import resource

    print(f"peak RSS bench driver: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
