"""What the clean zone does to real data, through the product path (``tsops ingest`` + ``tsops process``).

For each shipped or available data set (Beijing multi-site, UCI air quality, ETTh1, UCI weekly sales, the demo's
simulated sensors) a project is built in a scratch directory, ingested from files and processed with the default
cleaning. Printed per data set:

* row accounting: raw rows in, observed + inserted rows out, duplicates merged, future rows waiting, reconciled;
* attributes: distinct values per attribute column in raw vs clean over the same rows (every observed clean row
  must carry its own raw row's values);
* real episodes (Beijing / UCI: PM2.5 > 300 ug/m3, CO(GT) > 8 mg/m3 in runs of >= 3 hours): readings kept as
  read vs changed by the cleaning;
* the season(s) each series' profile found (daily / weekly / yearly in samples, with strength).

Usage: ``python bench/clean_zone.py [--full]`` (``--full``: all 12 Beijing stations over four years from
``../shared/data`` when present, else the two shipped station-years).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tsops.config import load_project
from tsops.datasets.files import paths_of
from tsops.ingest.api import ingest
from tsops.ingest.simulator import config_for, to_files
from tsops.quality.process import process_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _project(root: Path, name: str, series: dict, source: dict) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "tsops.yaml").write_text(yaml.safe_dump(
        {"name": name, "datasets": {name: {"series": series, "source": source}}}, allow_unicode=True))
    return d


def _episode_runs(values: np.ndarray, threshold: float, min_len: int) -> np.ndarray:
    """Mask of readings in runs of >= ``min_len`` consecutive values above ``threshold``."""
    above = np.nan_to_num(values, nan=-np.inf) > threshold
    out = np.zeros_like(above)
    i = 0
    while i < above.size:
        if above[i]:
            j = i
            while j < above.size and above[j]:
                j += 1
            if j - i >= min_len:
                out[i:j] = True
            i = j
        else:
            i += 1
    return out


def run_one(name: str, proj_dir: Path, episodes: dict[str, float] | None = None) -> None:
    project = load_project(proj_dir)
    t0 = time.perf_counter()
    irep = ingest(project, name)
    rep = process_dataset(project, name)
    secs = time.perf_counter() - t0
    lake = project.lake()
    raw = lake.read("raw", name).to_pandas()
    clean = lake.read("clean", name).to_pandas()
    print(f"\n## {name}: {irep.accepted:,} records ingested ({irep.quarantined:,} quarantined), "
          f"{len(raw['series_id'].unique())} series, ingest + process {secs:.1f} s")
    print(f"rows: in {rep.rows_in:,} -> out {rep.rows_out:,} = observed {rep.observed_out:,} + inserted "
          f"{rep.missing_inserted:,}; duplicates merged {rep.duplicates_merged:,}; future waiting "
          f"{rep.deferred_future:,}; anomalies flagged {rep.anomalies:,}; values changed {rep.values_changed:,}; "
          f"reconciled: {rep.reconciled}")
    attrs = [c for c in raw.columns if c not in ("series_id", "ts", "value", "_src", "_pos")]
    if attrs:
        last = raw.drop_duplicates(["series_id", "ts"], keep="last").set_index(["series_id", "ts"])
        obs = clean[~clean["is_missing"]].set_index(["series_id", "ts"])
        print("| attribute | distinct raw | distinct clean (observed rows) | rows differing from raw |")
        print("|---|---:|---:|---:|")
        for c in attrs[:12]:
            j = obs[[c]].join(last[[c]], rsuffix="_raw", how="left")
            a, b = j[c], j[f"{c}_raw"]
            differ = int((~((a == b) | (a.isna() & b.isna()))).sum())
            print(f"| {c} | {raw[c].nunique():,} | {obs[c].nunique():,} | {differ:,} |")
    if episodes:
        print("| series | threshold | episode readings (runs >= 3 samples) | kept as read | changed |")
        print("|---|---:|---:|---:|---:|")
        for sid, g in clean.sort_values(["series_id", "ts"]).groupby("series_id"):
            measure = str(sid).rsplit("|", 1)[-1]
            if measure not in episodes:
                continue
            raw_v = g["raw_value"].to_numpy(float)
            ep = _episode_runs(raw_v, episodes[measure], 3)
            if not ep.any():
                continue
            val = g["value"].to_numpy(float)
            kept = int((ep & (val == raw_v)).sum())
            print(f"| {sid} | {episodes[measure]:g} | {int(ep.sum()):,} | {kept:,} | {int(ep.sum()) - kept:,} |")
    profiles = project.catalog().get_profiles(name)
    found = Counter()
    for p in profiles.values():
        found[" + ".join(f"{n} {k}" for n, k in zip(p.season_names, p.season_lengths, strict=False)) or "none"] += 1
    print("seasons found (profile):", "; ".join(f"{k}: {v} series" for k, v in found.most_common()))
    for sid, p in list(profiles.items())[:8]:
        per = f"{p.period_seconds:g} s" if p.period_seconds else "none (event-like)"
        s = ", ".join(f"{n} {k} (r={r:.2f})" for n, k, r in
                      zip(p.season_names, p.season_lengths, p.season_strengths, strict=False)) or "none"
        print(f"  {sid}: period {per}, {s}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="all Beijing stations over four years (../shared/data)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch projects")
    args = ap.parse_args()
    print(f"# clean zone on real data ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()}")
    root = Path(tempfile.mkdtemp(prefix="tsops-clean-zone-"))
    try:
        # Beijing: three measures per station as series, every other column an attribute (as in the README)
        bj = sorted((SHARED / "beijing_multisite_aq").glob("*.csv.gz")) if args.full else []
        bj = bj or paths_of("beijing_multisite")
        d = _project(root, "beijing", {"timestamp": "ts", "keys": ["station"], "values": ["PM2.5", "PM10", "NO2"]},
                     {"kind": "files", "preset": "beijing_multisite", "paths": ["data/*.csv.gz"]})
        (d / "data").mkdir()
        for p in bj:
            shutil.copy(p, d / "data" / p.name)
        run_one("beijing", d, episodes={"PM2.5": 300.0, "PM10": 400.0})

        d = _project(root, "air", {"timestamp": "ts", "keys": ["site"], "values": ["CO(GT)", "NO2(GT)", "T", "RH"]},
                     {"kind": "files", "preset": "air_quality_uci", "paths": ["data/*.csv.gz"]})
        (d / "data").mkdir()
        for p in paths_of("air_quality_uci"):
            shutil.copy(p, d / "data" / p.name)
        run_one("air", d, episodes={"CO(GT)": 8.0})

        ett = SHARED / "ett" / "ETTh1.csv"
        if ett.is_file():
            d = _project(root, "etth1", {"timestamp": "date", "keys": ["transformer"],
                                         "values": ["OT", "HUFL", "LUFL"]},
                         {"kind": "files", "format": "csv", "paths": ["data/*.csv"]})
            (d / "data").mkdir()
            e = pd.read_csv(ett)
            e.insert(1, "transformer", "ETTh1")
            e.to_csv(d / "data" / "etth1.csv", index=False)
            run_one("etth1", d)
        else:
            print("\n## etth1: not available on this machine (../shared/data/ett)")

        d = _project(root, "sales", {"timestamp": "ts", "keys": ["Product_Code"], "values": ["sales"]},
                     {"kind": "files", "preset": "sales_weekly", "paths": ["data/*.csv"]})
        (d / "data").mkdir()
        for p in paths_of("sales_weekly"):
            shutil.copy(p, d / "data" / p.name)
        run_one("sales", d)

        d = _project(root, "demo", {"timestamp": "event_time", "keys": ["position", "type_name"],
                                    "values": ["input_data"]},
                     {"kind": "files", "format": "jsonl", "paths": ["incoming/*.jsonl"]})
        start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=3)
        to_files(dataclasses.replace(config_for(days=2.5, seed=7, malformed_rate=0.003), start=start),
                 d / "incoming")
        run_one("demo", d)
        intel = list((SHARED / "intel_lab").glob("data*"))
        if not intel:
            print("\n## intel lab: only mote_locs.txt is on this machine (no readings): not run")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
