"""Forecasting commands: ``tsops train``, ``tsops tune``, ``tsops forecast``, ``tsops serve``.

Plain typer functions; register them at the root with ``app.command()(train)`` etc. Each takes
``--project/-p``; without it the root's ``tsops -p DIR`` applies, else $TSOPS_PROJECT or the directory tree
above the cwd. Heavy imports (mlflow, ray,
torch) stay inside the function bodies.

Defaults resolve as: the flag > the dataset's ``forecast:`` section of ``tsops.yaml`` > the ``pipeline:`` section
> built-in. Seasons come from each series' profile (``tsops process``) unless ``--season N`` overrides them.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import typer

from tsops.cli import ui

console = ui.console
err_console = ui.err_console
log = logging.getLogger(__name__)

_PROJECT = typer.Option(None, "--project", "-p", envvar="TSOPS_PROJECT",  # noqa: UP045
                        help="project directory (default: search from the cwd)")


def _project(ctx: typer.Context, path: Optional[Path]):  # noqa: UP045
    """The project: ``--project`` of the command, else the root's ``tsops -p DIR``, else $TSOPS_PROJECT / cwd."""
    from tsops.cli.main import load

    if path is None:
        root = ctx.find_root()
        if root is not ctx:
            path = root.params.get("project")
    return load(path)


def _fail(exc: BaseException) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["hidden_size=8", "lr=0.01", "scaling=series"]`` -> values parsed as JSON where possible."""
    out: dict[str, Any] = {}
    for it in items or []:
        if "=" not in it:
            raise typer.BadParameter(f"{it!r} is not KEY=VALUE (e.g. hidden_size=16)", param_hint="--param")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def _spec(proj, dataset: str, horizon: int | None, windows: int | None, season: int | None, metric: str | None):
    """The backtest spec: flags > the dataset's ``forecast:`` config > ``pipeline:`` > built-in defaults."""
    from tsops.config import ConfigError
    from tsops.tuning.seasons import backtest_spec

    try:
        return backtest_spec(proj, dataset, horizon=horizon, windows=windows, metric=metric, season=season)
    except ConfigError:
        raise
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


_SEASON_HELP = "season in samples for every series (1 = none); default: each series' profile from `tsops process`"


def _print_season(res) -> None:
    s = res.season or {}
    if s:
        console.print(f"season: {s.get('season', s.get('season_length'))} (dataset: {s.get('season_lengths')}, "
                      f"from {s.get('season_source')})")


def _print_board(board, limit: int = 15) -> None:
    t = ui.table("leaderboard", ("rank", "model", "score", "state", "seconds", "season", "params"),
                 numeric=("rank", "score", "seconds"))
    for r in board.head(limit).itertuples():
        rank = "" if r.rank != r.rank else str(int(r.rank))
        season = f"{getattr(r, 'season', '')} ({getattr(r, 'season_source', '')})" if getattr(r, "season", "") else ""
        t.add_row(rank, r.model, f"{r.score:.4f}", str(r.state), f"{r.seconds:.1f}", season, str(r.params))
    console.print(t)


def _print_result(res) -> None:
    champ = "none" if res.champion_score is None else f"{res.champion_score:.4f}"
    verdict = "[green]promoted to champion[/green]" if res.promoted else \
        "[yellow]registered as challenger (champion kept)[/yellow]"
    console.print(f"{res.registered_name} version {res.version}: {res.metric} {res.score:.4f} "
                  f"(champion on the same backtest: {champ}) -> {verdict}")
    console.print(f"MLflow run {res.parent_run_id}")


_ERRORS = (ValueError, LookupError, RuntimeError, TypeError)

_COVARIATES_HELP = ("other series as inputs of neural models: K (the K series that lead others most, from "
                    "the analysis stage) or id1,id2")


def _covariates(value: str | None):
    from tsops.tuning.covariates import parse_covariates

    try:
        return parse_covariates(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--covariates") from None


def _print_covariates(res) -> None:
    if res.covariates:
        console.print(f"covariates (series the forecast leans on): {', '.join(res.covariates)}")


@contextlib.contextmanager
def _training_progress(model: str, dataset: str, max_steps: int, windows: int) -> Iterator[None]:
    """Progress of a training: neural models log each evaluated step and each finished fit
    (tsops.models._window). A training is about ``windows`` backtest fits plus the final fit, each up to
    ``max_steps`` steps, and each followed by a shorter refit on all points when early stopping chose the
    steps: the estimate counts 2 x (windows + 1) fits and grows if there are more. Other families log no
    steps: the line shows what runs and the elapsed time."""
    fits = 2 * (windows + 1)
    with ui.step(f"training {model} on {dataset}", total=fits * max_steps, info="backtest") as (bar, task):
        done = {"fits": 0, "steps": 0}

        def on_step(rec, m) -> None:
            now = done["steps"] + int(m.group(1))
            total = max(bar.tasks[0].total or 0, now)
            bar.update(task, completed=now, total=total, info=f"fit {done['fits'] + 1}, step {m.group(1)}")

        def on_fit(rec, m) -> None:
            done["fits"] += 1
            done["steps"] += int(m.group(1))
            remaining = max(0, fits - done["fits"]) * max_steps
            bar.update(task, completed=done["steps"], total=done["steps"] + remaining)

        with ui.LogTap("tsops.models._window", r"step (\d+) \{", on_step), \
                ui.LogTap("tsops.models._window", r"trained (\d+) steps", on_fit, level=logging.INFO):
            yield


@contextlib.contextmanager
def _trial_progress(project, dataset: str, families: list[str], trials: int) -> Iterator[None]:
    """Progress of a Ray Tune search: finished trials, counted from the records the driver's MLflow
    callback writes under ``<project>/.tsops/ray_results/tune-<dataset>-*/tsops_trials/*/record.json``."""
    import threading
    import time

    storage = project.root / ".tsops" / "ray_results"
    t0 = time.time()
    stop = threading.Event()
    with ui.step(f"tuning {', '.join(families)} on {dataset}", total=trials, info="trials") as (bar, task):
        def poll() -> None:
            while not stop.wait(1.0):
                done = [f for f in storage.glob(f"tune-{dataset}-*/tsops_trials/*/record.json")
                        if f.stat().st_mtime >= t0]
                bar.update(task, completed=min(trials, len(done)))

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


def train(
    ctx: typer.Context,
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset to train on"),
    model: str = typer.Option("lstm", "--model", "-m", help="model name (tsops.models registry)"),
    param: Optional[list[str]] = typer.Option(None, "--param", "-P",  # noqa: UP045
                                              help="hyperparameter KEY=VALUE (repeatable)"),
    horizon: Optional[int] = typer.Option(None, min=1,  # noqa: UP045
                                          help="forecast horizon of the backtest and the model (default: tsops.yaml)"),
    windows: Optional[int] = typer.Option(None, min=1, help="rolling-origin backtest windows (default: 3)"),  # noqa: UP045
    season: Optional[int] = typer.Option(None, min=1, help=_SEASON_HELP),  # noqa: UP045
    metric: Optional[str] = typer.Option(None,  # noqa: UP045
                                         help="backtest metric to minimise: rmse mae mape smape mase (default: mase)"),
    max_steps: int = typer.Option(300, help="training steps of neural models"),
    max_points: Optional[int] = typer.Option(None, help="use each series' last N points"),  # noqa: UP045
    zone: str = typer.Option("clean", help="lake zone to read (falls back to raw)"),
    min_improvement: float = typer.Option(0.0, help="relative improvement needed to replace the champion"),
    seed: int = typer.Option(0),
    covariates: Optional[str] = typer.Option(None, "--covariates", help=_COVARIATES_HELP),  # noqa: UP045
    project: Optional[Path] = _PROJECT,  # noqa: UP045
) -> None:
    """Train one model configuration: backtest, fit, log to MLflow, register, maybe promote."""
    from tsops.config import ConfigError

    params = parse_params(param)
    cov = _covariates(covariates)
    try:
        from tsops.tuning.train import train as run

        proj = _project(ctx, project)
        spec = _spec(proj, dataset, horizon, windows, season, metric)
        with _training_progress(model, dataset, max_steps, spec.n_windows):
            res = run(proj, dataset, model, params, spec=spec, zone=zone, max_points=max_points,
                      max_steps=max_steps, seed=seed, min_improvement=min_improvement, covariates=cov)
    except (ConfigError, *_ERRORS) as exc:
        raise _fail(exc) from None
    _print_board(res.leaderboard.assign(rank=1.0, state="complete", params=str(res.params)))
    _print_season(res)
    _print_covariates(res)
    _print_result(res)


def tune(
    ctx: typer.Context,
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset to tune on"),
    models: str = typer.Option("seasonal_naive,auto_theta,lstm,nhits", "--models",
                               help="comma-separated model families to search"),
    trials: int = typer.Option(20, help="budget: number of configurations"),
    minutes: Optional[float] = typer.Option(None, help="budget: wall-clock minutes"),  # noqa: UP045
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: local Ray)"),  # noqa: UP045
    num_cpus: Optional[int] = typer.Option(None, help="CPUs of the local Ray (default: all)"),  # noqa: UP045
    fixed: Optional[list[str]] = typer.Option(None, "--fixed",  # noqa: UP045
                                              help="fixed FAMILY.KEY=VALUE, e.g. lstm.batch_size=64"),
    horizon: Optional[int] = typer.Option(None, min=1,  # noqa: UP045
                                          help="forecast horizon of the backtest and the models (default: tsops.yaml)"),
    windows: Optional[int] = typer.Option(None, min=1,  # noqa: UP045
                                          help="rolling-origin backtest windows, ASHA rungs (default: 3)"),
    season: Optional[int] = typer.Option(None, min=1, help=_SEASON_HELP),  # noqa: UP045
    metric: Optional[str] = typer.Option(None, help="backtest metric to minimise (default: mase)"),  # noqa: UP045
    max_steps: int = typer.Option(300, help="training steps of neural models per fit"),
    max_points: Optional[int] = typer.Option(None, help="use each series' last N points"),  # noqa: UP045
    zone: str = typer.Option("clean", help="lake zone to read (falls back to raw)"),
    min_improvement: float = typer.Option(0.0, help="relative improvement needed to replace the champion"),
    seed: int = typer.Option(0),
    covariates: Optional[str] = typer.Option(None, "--covariates", help=_COVARIATES_HELP),  # noqa: UP045
    project: Optional[Path] = _PROJECT,  # noqa: UP045
) -> None:
    """AutoML: search model families and hyperparameters with Ray Tune (Optuna + ASHA)."""
    from tsops.config import ConfigError

    fams = [m.strip() for m in models.split(",") if m.strip()]
    cov = _covariates(covariates)
    fixed_params: dict[str, dict[str, Any]] = {}
    for k, v in parse_params(fixed).items():
        if "." not in k:
            raise typer.BadParameter(f"{k!r} must be FAMILY.KEY (e.g. lstm.batch_size)", param_hint="--fixed")
        fam, key = k.split(".", 1)
        fixed_params.setdefault(fam, {})[key] = v
    try:
        import optuna  # noqa: F401 - imported first so that its own log handler is replaced by ours
        import ray  # noqa: F401

        from tsops.tuning.tune import tune as run

        ui.quiet_third_party()
        proj = _project(ctx, project)
        spec = _spec(proj, dataset, horizon, windows, season, metric)
        with _trial_progress(proj, dataset, fams, trials):
            res = run(proj, dataset, fams, trials=trials, minutes=minutes, spec=spec,
                      address=address, num_cpus=num_cpus, zone=zone, max_points=max_points, max_steps=max_steps,
                      fixed=fixed_params, seed=seed, min_improvement=min_improvement, covariates=cov)
    except (ConfigError, KeyError, *_ERRORS) as exc:
        raise _fail(exc) from None
    _print_board(res.leaderboard)
    _print_season(res)
    _print_covariates(res)
    _print_result(res)


def forecast(
    ctx: typer.Context,
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset to forecast"),
    horizon: Optional[int] = typer.Option(None, min=1,  # noqa: UP045
                                          help="steps ahead (default: tsops.yaml, else the model's)"),
    season: Optional[int] = typer.Option(None, min=1,  # noqa: UP045
                                         help="season for every series of a local champion (seasonal naive, "
                                              "statsforecast models); default: the champion's, from the profiles"),
    series: Optional[list[str]] = typer.Option(None, "--series", "-s",  # noqa: UP045
                                               help="only these series (repeatable)"),
    alias: str = typer.Option("champion", help="registered model alias to use"),
    max_points: Optional[int] = typer.Option(None, help="history points per series"),  # noqa: UP045
    zone: str = typer.Option("clean", help="lake zone to read (falls back to raw)"),
    project: Optional[Path] = _PROJECT,  # noqa: UP045
) -> None:
    """Forecast every series of a dataset with its champion into the lake's forecasts zone."""
    from tsops.config import ConfigError

    try:
        from tsops.serving.batch import forecast_dataset

        with ui.step(f"forecasting {dataset}"):
            run = forecast_dataset(_project(ctx, project), dataset, horizon=horizon, series=series, zone=zone,
                                   alias=alias, max_points=max_points, season=season)
    except (ConfigError, *_ERRORS) as exc:
        raise _fail(exc) from None
    console.print(f"wrote {run.rows} forecast rows of {run.n_series} series with {run.name} version "
                  f"{run.version} to forecasts/{dataset} ({len(run.files)} file(s))")
    for sid, (used, now) in list(run.season_mismatch.items())[:5]:
        err_console.print(f"[yellow]warning:[/yellow] series {sid}: the champion uses season {used}, its profile "
                          f"now says {now}: retrain (`tsops train -d {dataset}`)")


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="interface to bind"),
    port: int = typer.Option(8000, help="TCP port"),
    token: Optional[str] = typer.Option(None, envvar="TSOPS_API_TOKEN",  # noqa: UP045
                                        help="require this bearer token (default: open)"),
    check_interval: float = typer.Option(10.0, help="seconds between champion alias checks (0: every request)"),
    max_body: str = typer.Option("10MB", "--max-body", envvar="TSOPS_MAX_BODY",
                                 help="largest request body accepted (e.g. 10MB, 512KB); larger gets 413"),
    project: Optional[Path] = _PROJECT,  # noqa: UP045
) -> None:
    """Serve forecasts over HTTP (FastAPI): POST /forecast, GET /health, GET /models, /docs, /dashboard/.

    With --token (or $TSOPS_API_TOKEN) every route but /health needs it: API clients send
    'Authorization: Bearer <token>', browsers log in once at /login (an HttpOnly session cookie)."""
    import uvicorn

    from tsops.config import ConfigError
    from tsops.serving.app import create_app
    from tsops.serving.auth import parse_size

    try:
        limit = parse_size(max_body)
        from tsops.serving.dashboard import router as dashboard_router

        app = create_app(_project(ctx, project), token=token, check_interval=check_interval,
                         routers=[dashboard_router], max_body=limit)
    except (ConfigError, ValueError) as exc:
        raise _fail(exc) from None
    console.print(f"serving on http://{host}:{port}  (dashboard: /dashboard/, OpenAPI: /docs), request bodies up "
                  f"to {limit:,} bytes"
                  + ("; every route but /health needs the token (browsers: log in at /login)" if token else ""))
    uvicorn.run(app, host=host, port=port, log_level="warning")
