"""Derived datasets: ``tsops resample`` puts every series of a dataset on a coarser regular grid.

Contract: the source's clean zone (its raw zone when it has not been processed yet) is aggregated per series
into bins of ``every`` (``mean``, ``sum``, ``min``, ``max``, ``median``, ``first``, ``last``) with
:func:`tsops.analysis.decompose.downsample`. The result is written to the *raw* zone of a new dataset, which
is then an ordinary dataset: ``tsops process`` cleans it, ``tsops train`` trains on it. Each row keeps
``n_source`` (how many source observations the bin aggregates); bins with no observation are not written
(they are counted in the report, and ``tsops process`` sees them as gaps). The new dataset is registered in
the catalog with its lineage (``derived_from``: parent, zone, rule, aggregation, run) and in ``tsops.yaml``
(``series`` over ``series_id``, ``ts``, ``value``; no ``source``), so every command knows it.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

import pandas as pd
import pyarrow as pa
import yaml

from tsops.analysis.decompose import downsample
from tsops.config import PROJECT_FILE, ConfigError, Project, parse_config, parse_duration

AGGREGATIONS = ("mean", "sum", "min", "max", "median", "first", "last")
STEM = "resample-0001"


@dataclass
class ResampleReport:
    source: str
    dataset: str
    zone: str
    every: str
    agg: str
    series: int
    rows_in: int
    rows_out: int
    empty_bins: int
    seconds: float
    run_id: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def derived_name(source: str, every: str) -> str:
    """Default name of a derived dataset: ``<source>_<every>`` (``air_1h``)."""
    return f"{source}_{re.sub(r'[^A-Za-z0-9]+', '', every)}"


def _add_to_project_file(project: Project, name: str, source: str) -> None:
    """Append the derived dataset under ``datasets:`` of tsops.yaml, keeping the file's comments."""
    path = project.root / PROJECT_FILE
    text = path.read_text(encoding="utf-8")
    entry = (f"  {name}:  # derived by `tsops resample` from {source}\n"
             "    series: {timestamp: ts, keys: [series_id], values: [value], measure_in_id: false}\n")
    m = re.search(r"^datasets:[ \t]*(#.*)?$", text, flags=re.M)
    if m:
        new = text[: m.end()] + "\n" + entry + text[m.end() + 1:]
    elif re.search(r"^datasets:", text, flags=re.M):
        raise ConfigError(f"{path}: `datasets:` is written inline; add dataset {name!r} by hand "
                          "(series: {timestamp: ts, keys: [series_id], values: [value]})")
    else:
        new = text.rstrip("\n") + "\n\ndatasets:\n" + entry
    cfg = parse_config(yaml.safe_load(new), str(path))  # never write an invalid project file
    path.write_text(new, encoding="utf-8")
    project.config = cfg


def resample_dataset(project: Project, source: str, every: str, agg: str = "mean", to: str | None = None,
                     force: bool = False) -> ResampleReport:
    """Aggregate ``source`` onto an ``every`` grid (``1h``, ``30m``, ``1d``) into a new dataset ``to``."""
    if agg not in AGGREGATIONS:
        raise ValueError(f"--agg {agg!r}: expected one of {', '.join(AGGREGATIONS)}")
    step = pd.Timedelta(parse_duration(every))
    if step <= pd.Timedelta(0):
        raise ValueError(f"--every {every!r} must be a positive duration such as 1h, 30m or 1d")
    name = to or derived_name(source, every)
    if name == source:
        raise ValueError(f"the derived dataset needs a name other than its source {source!r} (--to NAME)")
    lake, cat = project.lake(), project.catalog()
    t0 = time.perf_counter()
    try:
        zone = "clean" if lake.files("clean", source) else "raw"
        if not lake.files(zone, source):
            raise ValueError(f"dataset {source!r} has no data in the lake (run `tsops ingest -d {source}`)")
        exists = bool(lake.files("raw", name)) or cat.get_dataset(name) is not None \
            or name in project.config.datasets
        if exists and not force:
            raise ValueError(f"dataset {name!r} already exists: pass --force to replace it, or --to ANOTHER_NAME")
        run_id = cat.start_run("resample", name, {"source": source, "every": every, "agg": agg})
        try:
            df = lake.read(zone, source, columns=["series_id", "ts", "value"]).to_pandas()
            counts = df.dropna(subset=["value"]).set_index("ts").groupby("series_id", observed=True)["value"] \
                .resample(step).count().rename("n_source").reset_index()
            out = downsample(df, step, how=agg).merge(counts, on=["series_id", "ts"], how="left")
            out["n_source"] = out["n_source"].fillna(0).astype("int64")
            empty = int((out["n_source"] == 0).sum())
            out = out[out["n_source"] > 0].sort_values(["series_id", "ts"]).reset_index(drop=True)
            for day in lake.days("raw", name):
                lake.delete_day("raw", name, day)
            for day in lake.days("clean", name):
                lake.delete_day("clean", name, day)
            out["ts"] = pd.to_datetime(out["ts"], utc=True).dt.as_unit("us")
            table = pa.Table.from_pandas(out, preserve_index=False)
            lake.write_table("raw", name, table, STEM)
            units = {s["series_id"]: s.get("unit") for s in cat.list_series(source)}
            docs = []
            for sid, g in out.groupby("series_id", sort=True):
                ts_us = g["ts"].astype("int64")
                docs.append({"series_id": sid, "count": len(g), "first_ts_us": int(ts_us.min()),
                             "last_ts_us": int(ts_us.max()), "unit": units.get(sid),
                             "derived_from": {"dataset": source, "series_id": sid}})
            lineage = {"dataset": source, "zone": zone, "every": every, "agg": agg, "run_id": run_id}
            cat.upsert_dataset(name, {"derived_from": lineage, "processed": {}})
            if docs:
                cat.upsert_series(name, docs)
            if name not in project.config.datasets:
                _add_to_project_file(project, name, source)
            rep = ResampleReport(source, name, zone, every, agg, len(docs), len(df), len(out), empty,
                                 time.perf_counter() - t0, run_id)
            cat.finish_run(run_id, "success", rep.as_dict())
            return rep
        except BaseException as err:
            cat.finish_run(run_id, "failed", error=f"{type(err).__name__}: {err}")
            raise
    finally:
        cat.close()


__all__ = ["AGGREGATIONS", "ResampleReport", "derived_name", "resample_dataset"]
