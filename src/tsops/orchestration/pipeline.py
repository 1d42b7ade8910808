"""``tsops pipeline run``: ingest -> process -> analyze -> train (when due) -> forecast -> report -> retention.

Incremental: every stage works only on what changed since its last success (new raw partitions, new clean
days, a new champion), so a second run with no new data changes nothing. Guarded by a per-dataset lock. A
failed stage leaves the earlier stages' outputs in place and the run is recorded as failed; the next run
resumes from what the stages recorded. Every run is recorded in the catalog with its lineage: the raw
partitions it read, the quality summary, the model version that forecast, and the outputs it wrote.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsops.config import Project, parse_duration
from tsops.masking import mask_secrets
from tsops.orchestration.lock import DatasetLock

log = logging.getLogger(__name__)

STAGES = ("ingest", "process", "analyze", "train", "forecast", "report", "retention")


@dataclass
class Context:
    project: Project
    dataset: str
    force_train: bool = False
    families: list[str] | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def changed(self, stage: str, key: str = "changed") -> bool:
        return bool(self.results.get(stage, {}).get(key))


# ------------------------------------------------------------------------------------------------- stages
def stage_ingest(ctx: Context) -> dict[str, Any]:
    from tsops.ingest.api import ingest
    from tsops.quality.process import day_fingerprint

    if ctx.project.dataset(ctx.dataset).source is None:
        return {"status": "skipped", "why": "no source configured", "changed": False}
    lake = ctx.project.lake()
    before = {d: day_fingerprint(lake, "raw", ctx.dataset, d) for d in lake.days("raw", ctx.dataset)}
    rep = ingest(ctx.project, ctx.dataset)
    after = {d: day_fingerprint(lake, "raw", ctx.dataset, d) for d in lake.days("raw", ctx.dataset)}
    new = sorted(d.isoformat() for d, fp in after.items() if before.get(d) != fp)
    return {"consumed": rep.consumed, "accepted": rep.accepted, "quarantined": rep.quarantined,
            "input_partitions": new, "changed": rep.consumed > 0}


def stage_process(ctx: Context) -> dict[str, Any]:
    from tsops.quality.process import process_dataset

    rep = process_dataset(ctx.project, ctx.dataset)
    return {"days": rep.days_processed, "series": rep.series, "rows": rep.rows_out,
            "missing_inserted": rep.missing_inserted, "anomalies": rep.anomalies,
            "duplicates_merged": rep.duplicates_merged, "deferred_future": rep.deferred_future,
            "values_changed": rep.values_changed, "reconciled": rep.reconciled,
            "changed": bool(rep.days_processed)}


def stage_analyze(ctx: Context) -> dict[str, Any]:
    from tsops.analysis.dataset import analyze_dataset

    cat = ctx.project.catalog()
    try:
        has = bool(((cat.get_dataset(ctx.dataset) or {}).get("doc") or {}).get("analysis"))
    finally:
        cat.close()
    if has and not ctx.changed("process"):
        return {"status": "skipped", "why": "no new clean data", "changed": False}
    rep = analyze_dataset(ctx.project, ctx.dataset)
    summary = quality_summary(ctx.project, ctx.dataset)
    return {"series": rep.series, "pairs": rep.pairs, "top_pairs": rep.top_pairs[:3], "quality": summary,
            "changed": True}


def quality_summary(project: Project, dataset: str) -> dict[str, Any]:
    cat = project.catalog()
    try:
        series = cat.list_series(dataset)
    finally:
        cat.close()

    def mean(key: str) -> float | None:
        vals = [s[key] for s in series if isinstance(s.get(key), int | float)]
        return float(np.mean(vals)) if vals else None

    return {"series": len(series), "missing_ratio": mean("missing_ratio"), "anomaly_ratio": mean("anomaly_ratio")}


def training_due(ctx: Context) -> tuple[bool, str, dict[str, Any]]:
    """Whether the champion must be (re)trained, why, and the monitoring figures."""
    from tsops.serving.batch import season_mismatch
    from tsops.serving.champion import NoChampionError, load_champion

    cfg = ctx.project.config.pipeline
    if ctx.force_train:
        return True, "forced", {}
    try:
        champ = load_champion(ctx.project, ctx.dataset)
    except NoChampionError:
        return True, "no champion yet", {}
    # the recent error is scaled with the seasons the champion's backtest error was scaled with
    monitoring = forecast_error(ctx.project, ctx.dataset,
                                _champion_season(ctx.project, champ.name, champ.version))
    score = _champion_score(ctx.project, champ.name, champ.version)  # None unless the backtest metric is MASE
    if score is not None:
        monitoring["backtest_mase"] = score
    created = _version_created(ctx.project, champ.name, champ.version)
    if created is not None:
        age = dt.datetime.now(dt.UTC) - created
        monitoring["champion_age_h"] = round(age.total_seconds() / 3600, 2)
        if age > parse_duration(cfg.retrain_every):
            return True, f"champion older than retrain_every ({cfg.retrain_every})", monitoring
        shifts = level_shifts_since(ctx.project, ctx.dataset, created)
        if shifts:
            monitoring["level_shifts"] = shifts[:10]
            first = shifts[0]
            return True, (f"level shift in {len(shifts)} series since the champion was trained (e.g. "
                          f"{first['series_id']} at {first['at']})"), monitoring
    cat = ctx.project.catalog()
    try:
        profiles = cat.get_profiles(ctx.dataset)
    finally:
        cat.close()
    changed = season_mismatch(champ.model, profiles, sorted(profiles))
    if changed:
        monitoring["season_changed"] = {k: list(v) for k, v in list(changed.items())[:10]}
        sid, (used, now) = next(iter(changed.items()))
        return True, (f"season changed in {len(changed)} series since the champion was trained (e.g. {sid}: "
                      f"{used} -> {now} samples)"), monitoring
    recent = monitoring.get("recent_mase")
    if recent is not None and score:
        monitoring["drift_ratio"] = recent / score
        if recent > cfg.drift_threshold * score:
            return True, (f"forecast error drifted: recent MASE {recent:.3f} > {cfg.drift_threshold} x backtest "
                          f"{score:.3f}"), monitoring
    return False, "champion is recent and accurate", monitoring


def level_shifts_since(project: Project, dataset: str, since: dt.datetime) -> list[dict[str, Any]]:
    """Level shifts the quality stage found (profile events) after ``since``: a new regime the champion has not
    seen. Each: series_id, at (the first reading at the new level), magnitude."""
    cat = project.catalog()
    try:
        profiles = cat.get_profiles(dataset)
    finally:
        cat.close()
    out = []
    for sid, prof in profiles.items():
        for e in prof.events:
            if e.get("class") != "level_shift":
                continue
            at = pd.Timestamp(e.get("peak_ts") or e.get("start"))
            if at.tzinfo is None:
                at = at.tz_localize("UTC")
            if at > pd.Timestamp(since):
                out.append({"series_id": sid, "at": at.isoformat(), "magnitude": e.get("magnitude")})
    return sorted(out, key=lambda x: x["at"])


def _champion_score(project: Project, name: str, version: str) -> float | None:
    import mlflow
    from mlflow import MlflowClient

    from tsops.tracking.forecast_registry import TAG_METRIC, TAG_SCORE

    mlflow.set_tracking_uri(project.tracking_uri)
    tags = MlflowClient().get_model_version(name, version).tags or {}
    if tags.get(TAG_METRIC, "mase") != "mase":
        return None
    try:
        return float(tags[TAG_SCORE]) if TAG_SCORE in tags else None
    except ValueError:
        return None


def _version_created(project: Project, name: str, version: str) -> dt.datetime | None:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(project.tracking_uri)
    mv = MlflowClient().get_model_version(name, version)
    return dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.UTC) if mv.creation_timestamp else None


def forecast_error(project: Project, dataset: str, season_length: int | None = None,
                   days: float | None = 30) -> dict[str, Any]:
    """MASE of the forecasts already written against the clean values that have arrived since.

    Each forecast row is matched to the clean observation of its series nearest in time (within half a grid
    step); the scale is the in-sample seasonal-naive MAE of the series' clean history before the forecast,
    with the series' own season from its profile (the clean zone is on the series' own grid), or
    ``season_length`` for every series when given (1 = no season: lag 1). Series without a profile are left
    out and counted (``no_profile``).
    """
    from tsops.analysis.dataset import read_recent

    fc = read_recent(project, dataset, "forecasts", days)
    if fc.empty:
        return {}
    clean = read_recent(project, dataset, "clean", days)
    if clean.empty:
        return {}
    profiles = {}
    if season_length is None:
        cat = project.catalog()
        try:
            profiles = cat.get_profiles(dataset)
        finally:
            cat.close()
    fc = fc.sort_values("issued_at").drop_duplicates(["series_id", "ts"], keep="last")
    errors, n, no_profile = [], 0, []
    for sid, f in fc.groupby("series_id"):
        if season_length is not None:
            m = season_length if season_length > 1 else 1
        elif sid in profiles:
            m = profiles[sid].season_or(1)
        else:
            no_profile.append(sid)
            continue
        c = clean[clean["series_id"] == sid].sort_values("ts")
        if len(c) < m + 2:
            continue
        step = c["ts"].diff().median()
        f = f.sort_values("ts")
        mm = pd.merge_asof(f[["ts", "mean", "issued_at"]], c[["ts", "value"]], on="ts", direction="nearest",
                           tolerance=step / 2).dropna(subset=["value"])
        mm = mm[mm["ts"] > mm["issued_at"]]
        if mm.empty:
            continue
        hist = c[c["ts"] <= mm["issued_at"].min()]["value"].to_numpy(float)
        if len(hist) <= m:
            continue
        scale = np.nanmean(np.abs(hist[m:] - hist[:-m]))
        if not np.isfinite(scale) or scale == 0:
            continue
        errors.append(np.mean(np.abs(mm["value"].to_numpy() - mm["mean"].to_numpy())) / scale)
        n += len(mm)
    extra = {"no_profile": len(no_profile)} if no_profile else {}
    if no_profile:
        log.warning("forecast error of %s: %d series have no profile (e.g. %s): left out", dataset,
                    len(no_profile), no_profile[0])
    if not errors:
        return {"evaluated_points": 0, **extra}
    return {"recent_mase": float(np.mean(errors)), "evaluated_points": n, "evaluated_series": len(errors),
            "season": "override" if season_length is not None else "profile", **extra}


def _champion_season(project: Project, name: str, version: str) -> int | None:
    """The season the champion was backtested with when it was an override (None: from the profiles)."""
    import json

    import mlflow
    from mlflow import MlflowClient

    from tsops.tracking.forecast_registry import TAG_SPEC

    mlflow.set_tracking_uri(project.tracking_uri)
    tags = MlflowClient().get_model_version(name, version).tags or {}
    try:
        spec = json.loads(tags.get(TAG_SPEC, "{}"))
    except ValueError:
        return None
    # versions from before season sources always had a given season
    return spec.get("season_length") if spec.get("season_source", "override") == "override" else None


def stage_train(ctx: Context) -> dict[str, Any]:
    due, why, monitoring = training_due(ctx)
    if not due:
        return {"status": "skipped", "why": why, "monitoring": monitoring, "changed": False}
    from tsops.tuning.tune import tune

    cfg = ctx.project.config.pipeline
    res = tune(ctx.project, ctx.dataset, families=ctx.families or cfg.families, trials=cfg.tune_trials,
               minutes=cfg.tune_minutes, max_steps=cfg.max_steps, max_points=cfg.max_points,
               covariates=cfg.covariates)
    return {"why": why, "monitoring": monitoring, "best_model": res.best_model, "score": res.score,
            "metric": res.metric, "model": res.registered_name, "version": res.version,
            "promoted": res.promoted, "covariates": res.covariates, "changed": res.promoted}


def stage_forecast(ctx: Context) -> dict[str, Any]:
    from tsops.serving.batch import forecast_dataset
    from tsops.serving.champion import NoChampionError

    if not (ctx.changed("process") or ctx.changed("train")) and _has_forecasts(ctx):
        return {"status": "skipped", "why": "no new data and no new champion", "changed": False}
    try:
        fr = forecast_dataset(ctx.project, ctx.dataset,
                              horizon=ctx.project.dataset(ctx.dataset).forecast.horizon
                              or ctx.project.config.pipeline.horizon,
                              max_points=ctx.project.config.pipeline.max_points)
    except NoChampionError as err:
        return {"status": "skipped", "why": str(err), "changed": False}
    return {"model": fr.name, "model_version": fr.version, "rows": fr.rows, "series": fr.n_series,
            "outputs": fr.files, "issued_at": fr.issued_at.isoformat(), "changed": True}


def _has_forecasts(ctx: Context) -> bool:
    return bool(ctx.project.lake().days("forecasts", ctx.dataset))


def stage_report(ctx: Context) -> dict[str, Any]:
    from tsops.analysis.report import build_report

    out = ctx.project.root / "reports" / f"{ctx.dataset}.html"
    if out.exists() and not any(ctx.changed(s) for s in ("process", "analyze", "forecast")):
        return {"status": "skipped", "why": "nothing changed", "path": str(out), "changed": False}
    path = build_report(ctx.project, ctx.dataset, out)
    return {"path": str(path), "outputs": [str(path)], "changed": True}


def stage_retention(ctx: Context) -> dict[str, Any]:
    """Last: delete the day partitions older than the dataset's per-zone policy (after the report used them)."""
    from tsops.lake.retention import retain_dataset

    policy = ctx.project.dataset(ctx.dataset).retention
    if not policy.zones():
        return {"status": "skipped", "why": "no retention policy (every zone kept forever)", "changed": False}
    results = retain_dataset(ctx.project, ctx.dataset)
    removed = {r.zone: [d.isoformat() for d in r.removed] for r in results if r.removed}
    return {"partitions_removed": sum(len(r.removed) for r in results), "files": sum(r.files for r in results),
            "rows": sum(r.rows for r in results),
            "series_updated": sum(r.series_updated for r in results),
            "policy": policy.zones(), "removed": removed, "changed": bool(removed)}


STAGE_FUNCS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "ingest": stage_ingest, "process": stage_process, "analyze": stage_analyze, "train": stage_train,
    "forecast": stage_forecast, "report": stage_report, "retention": stage_retention,
}


# ------------------------------------------------------------------------------------------------- runner
@dataclass
class PipelineRun:
    run_id: int
    dataset: str
    status: str
    stages: dict[str, dict[str, Any]]
    seconds: float
    error: str | None = None


def lineage(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What a run read and wrote, for `tsops runs show`."""
    out: dict[str, Any] = {
        "input_partitions": results.get("ingest", {}).get("input_partitions", []),
        "processed_days": results.get("process", {}).get("days", []),
        "quality": results.get("analyze", {}).get("quality"),
        "model_version": None, "outputs": [],
    }
    fc = results.get("forecast", {})
    if fc.get("model"):
        out["model_version"] = f"{fc['model']} v{fc['model_version']}"
    tr = results.get("train", {})
    if tr.get("version"):
        out["trained"] = f"{tr['model']} v{tr['version']} ({'promoted' if tr.get('promoted') else 'not promoted'})"
    if results.get("retention", {}).get("removed"):
        out["deleted_partitions"] = results["retention"]["removed"]
    for r in results.values():
        out["outputs"] += r.get("outputs", [])
    return out


def run_pipeline(project: Project, dataset: str, stages: Sequence[str] | None = None, *, wait: bool = False,
                 force_train: bool = False, families: list[str] | None = None,
                 on_stage: Callable[[str, dict[str, Any]], None] | None = None) -> PipelineRun:
    """Run the stages (all by default, in order) for one dataset under its lock; record the run."""
    stages = list(stages or STAGES)
    unknown = [s for s in stages if s not in STAGE_FUNCS]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    project.dataset(dataset)  # clear error for an unknown dataset
    stages = [s for s in STAGES if s in stages]
    ctx = Context(project, dataset, force_train=force_train, families=families)
    with DatasetLock(project.root, dataset, wait=wait):
        cat = project.catalog()
        run_id = cat.start_run("pipeline", dataset, {"stages": stages})
        cat.close()
        t0 = time.perf_counter()
        error = None
        for stage in stages:
            s0 = time.perf_counter()
            try:
                res = STAGE_FUNCS[stage](ctx)
            except Exception as err:  # recorded, then re-raised after the run log is written
                res = {"status": "failed", "error": mask_secrets(f"{type(err).__name__}: {err}")}
                error = mask_secrets(f"stage {stage!r} failed: {type(err).__name__}: {err}")
                log.exception("pipeline stage %s failed", stage)
            res.setdefault("status", "ran")
            res["seconds"] = round(time.perf_counter() - s0, 3)
            ctx.results[stage] = res
            if on_stage:
                on_stage(stage, res)
            if error:
                break
        stats = {"stages": ctx.results, "lineage": lineage(ctx.results)}
        cat = project.catalog()
        cat.finish_run(run_id, "failed" if error else "success", _clean_json(stats), error=error)
        cat.close()
    run = PipelineRun(run_id, dataset, "failed" if error else "success", ctx.results,
                      time.perf_counter() - t0, error)
    return run


def _clean_json(x: Any) -> Any:
    import json

    return json.loads(json.dumps(x, default=str))
