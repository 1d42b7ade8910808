"""Anomalies: events vs faults (issue 12). Old default (IQR k=3 on values + differences, interpolate, on
7-day windows with one day of context as ``tsops process`` ran it) vs the new default (robust decomposition
with the given seasons, classes, only faults replaced), both through :func:`tsops.quality.clean_frame`.

Data: Beijing multi-site PM2.5 (/work/shared/data/beijing_multisite_aq when present, else the two stations
shipped in tsops.datasets), UCI air quality (shipped; -200 = missing). The Intel lab readings are not on this
machine (only mote_locs.txt): not measured.

Two questions per data set:
1. Real events: readings inside real episodes (raw value above a level in runs of >= 3 samples: PM2.5 > 300
   ug/m3; for the UCI series, the series' 99th percentile) - how many are treated (value changed)?
2. Injected faults (seeded): isolated spikes of random sign and 5-20 robust sds of the series, stuck runs and
   (for series with a lower bound) negative readings. Precision and recall of the fault classes against the
   injected truth. Points the method already treats on the series before injection (real faults or false
   alarms) are left out of the precision; they are counted in "treated (no injection)". Spike recall: the
   injected spikes that were replaced (a spike beyond a bound counts, whatever its class); spike precision:
   of the readings classed spike (old: treated), the share that are injected faults; fault precision: the
   same over every replaced reading.

    PYTHONPATH=src python bench/anomaly.py [--stations 12] [--md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tsops.datasets.files import data_dir
from tsops.quality import CleaningConfig, clean_frame

SHARED = Path("/work/shared/data/beijing_multisite_aq")
OLD = CleaningConfig(anomaly_methods=("iqr", "iqr_diff"), iqr_k=3.0, iqr_diff_k=3.0, treatment="interpolate",
                     now="2030-01-01", score_imputation=False)


def new_config(seasons: tuple[int, ...], bounds) -> CleaningConfig:
    return CleaningConfig(season_lengths=seasons, bounds=bounds, now="2030-01-01", score_imputation=False)


# ------------------------------------------------------------------------------------------------------ data
def beijing(stations: int) -> tuple[str, pd.DataFrame]:
    files = sorted(SHARED.glob("PRSA_Data_*.csv.gz"))[:stations] if SHARED.is_dir() else []
    name = f"Beijing PM2.5, {len(files)} stations x 4 years"
    if not files:
        files = sorted(data_dir().glob("PRSA_Data_*.csv.gz"))
        name = f"Beijing PM2.5 (shipped), {len(files)} stations x 1 year"
    parts = []
    for f in files:
        raw = pd.read_csv(f)
        ts = pd.to_datetime(raw[["year", "month", "day", "hour"]]).dt.tz_localize("Asia/Shanghai")
        parts.append(pd.DataFrame({"series_id": f"{raw['station'].iloc[0]}/PM2.5",
                                   "ts": ts.dt.tz_convert("UTC").dt.as_unit("us"),
                                   "value": raw["PM2.5"].astype(float)}))
    return name, pd.concat(parts, ignore_index=True)


def beijing_shipped() -> tuple[str, pd.DataFrame]:
    parts = []
    for f in sorted(data_dir().glob("PRSA_Data_*.csv.gz")):
        raw = pd.read_csv(f)
        ts = pd.to_datetime(raw[["year", "month", "day", "hour"]]).dt.tz_localize("Asia/Shanghai")
        parts.append(pd.DataFrame({"series_id": f"{raw['station'].iloc[0]}/PM2.5",
                                   "ts": ts.dt.tz_convert("UTC").dt.as_unit("us"),
                                   "value": raw["PM2.5"].astype(float)}))
    return f"Beijing PM2.5 (shipped), {len(parts)} stations x 1 year", pd.concat(parts, ignore_index=True)


UCI_COLUMNS = {"CO(GT)": (0.0, None), "NOx(GT)": (0.0, None), "NO2(GT)": (0.0, None), "C6H6(GT)": (0.0, None),
               "T": None, "RH": (0.0, 100.0)}


def uci() -> dict[str, pd.DataFrame]:
    raw = pd.read_csv(data_dir() / "AirQualityUCI.csv.gz", sep=";", decimal=",")
    raw = raw.dropna(subset=["Date"])
    ts = pd.to_datetime(raw["Date"] + " " + raw["Time"], format="%d/%m/%Y %H.%M.%S")
    ts = ts.dt.tz_localize("Europe/Rome", ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC").dt.as_unit("us")
    out = {}
    for col in UCI_COLUMNS:
        v = raw[col].astype(float).where(lambda s: s != -200.0)
        out[col] = pd.DataFrame({"series_id": f"uci/{col}", "ts": ts, "value": v}).dropna(subset=["ts"])
    return out


# ---------------------------------------------------------------------------------------------------- cleaning
def windowed(df: pd.DataFrame, cfg: CleaningConfig, days: int = 7, context: int = 1) -> pd.DataFrame:
    """Clean in windows of ``days`` days with ``context`` days before each, as ``tsops process`` did."""
    day0 = df["ts"].min().floor("D")
    end = df["ts"].max()
    outs = []
    start = day0
    while start <= end:
        stop = start + pd.Timedelta(days=days)
        part = df[(df["ts"] >= start - pd.Timedelta(days=context)) & (df["ts"] < stop)]
        if len(part):
            out, _ = clean_frame(part, cfg)
            outs.append(out[out["ts"] >= start])
        start = stop
    return pd.concat(outs, ignore_index=True).sort_values(["series_id", "ts"], ignore_index=True)


def run(df: pd.DataFrame, cfg: CleaningConfig, window: bool) -> tuple[pd.DataFrame, float]:
    t0 = time.perf_counter()
    out = windowed(df, cfg) if window else clean_frame(df, cfg)[0]
    return out.set_index(["series_id", "ts"]).sort_index(), time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------ evaluation
def episode_mask(df: pd.DataFrame, level: float | dict, min_run: int = 3) -> pd.Series:
    """Readings above ``level`` (per series when a dict) in runs of >= ``min_run`` consecutive hours."""
    out = []
    for sid, g in df.sort_values(["series_id", "ts"]).groupby("series_id", sort=True):
        g = g.set_index("ts")["value"]
        g = g[~g.index.duplicated()].asfreq("h")
        lv = level[sid] if isinstance(level, dict) else level
        hi = (g > lv).to_numpy()
        run_id = np.cumsum(np.r_[True, hi[1:] != hi[:-1]])
        length = pd.Series(run_id).map(pd.Series(run_id).value_counts()).to_numpy()
        m = hi & (length >= min_run)
        out.append(pd.Series(m, index=pd.MultiIndex.from_product([[sid], g.index], names=["series_id", "ts"])))
    return pd.concat(out)


def inject(df: pd.DataFrame, bounds_of, seed: int, spike_rate: float = 0.004, stuck_runs: int = 2,
           stuck_len: int = 36, negatives: int = 8) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded faults on each series: isolated spikes (random sign, 5-20 robust sds of the series, at least 6
    samples apart, both neighbours real readings), stuck runs (the reading before the run repeated) and
    negative readings where the series has a lower bound of 0. Returns (dirty frame, truth: series_id, ts,
    kind)."""
    rng = np.random.default_rng(seed)
    parts, truth = [], []
    for sid, g in df.sort_values(["series_id", "ts"]).groupby("series_id", sort=True):
        g = g.reset_index(drop=True).copy()
        v = g["value"].to_numpy(float).copy()
        n = v.size
        ok = np.isfinite(v)
        x = v[ok]
        rsd = 1.4826 * np.median(np.abs(x - np.median(x)))
        used = np.zeros(n, bool)
        kinds = np.array([""] * n, dtype=object)
        # stuck runs first (long), then spikes and negatives away from them
        for _ in range(stuck_runs):
            for _try in range(50):
                a = int(rng.integers(1, n - stuck_len - 1))
                if ok[a - 1] and ok[a:a + stuck_len].all() and not used[a - 6:a + stuck_len + 6].any():
                    v[a:a + stuck_len] = v[a - 1]
                    used[a - 6:a + stuck_len + 6] = True
                    kinds[a:a + stuck_len] = "stuck"
                    break
        cand = np.flatnonzero(ok)
        n_spikes = int(spike_rate * cand.size)
        for i in rng.permutation(cand[(cand > 0) & (cand < n - 1)]):
            if n_spikes == 0:
                break
            if used[max(0, i - 6):i + 7].any() or not (ok[i - 1] and ok[i + 1]):
                continue
            step = rng.choice([-1.0, 1.0]) * rng.uniform(5, 20) * rsd
            b = bounds_of(sid)
            if b is not None and b[0] is not None and v[i] + step < b[0]:
                step = -step  # a spike, not an implausible reading: upwards where down would cross the bound
            v[i] += step
            used[max(0, i - 6):i + 7] = True
            kinds[i] = "spike"
            n_spikes -= 1
        lo = bounds_of(sid)
        if lo is not None and lo[0] == 0.0:
            left = negatives
            for i in rng.permutation(cand):
                if left == 0:
                    break
                if used[max(0, i - 6):i + 7].any():
                    continue
                v[i] = -rng.uniform(1, 50)
                used[max(0, i - 6):i + 7] = True
                kinds[i] = "implausible"
                left -= 1
        g["value"] = v
        parts.append(g)
        k = kinds != ""
        truth.append(pd.DataFrame({"series_id": sid, "ts": g["ts"][k].to_numpy(), "kind": kinds[k]}))
    return pd.concat(parts, ignore_index=True), pd.concat(truth, ignore_index=True)


def evaluate(name: str, variant: str, clean: pd.DataFrame, dirty: pd.DataFrame, truth: pd.DataFrame,
             episodes: pd.Series, secs: float) -> dict:
    """One result row: episode readings kept/treated on the clean run, fault precision/recall on the dirty."""
    treated_clean = clean["treatment"] != ""
    ep = episodes.reindex(clean.index, fill_value=False).to_numpy(bool)
    ep_changed = ep & treated_clean.to_numpy()
    t = truth.set_index(["series_id", "ts"])["kind"]
    kind = t.reindex(dirty.index).fillna("").to_numpy()
    treated = (dirty["treatment"] != "").to_numpy()
    pre = treated_clean.reindex(dirty.index, fill_value=False).to_numpy(bool)
    cls = dirty["anomaly_class"].to_numpy() if "anomaly_class" in dirty else np.array([""] * len(dirty))
    is_fault = kind != ""

    def rec(k: str) -> float:
        m = kind == k
        return float((treated & m).sum() / m.sum()) if m.sum() else float("nan")

    new_treated = treated & ~pre
    spike_pts = (cls == "spike") & ~pre if variant != "old" else new_treated
    return {
        "data": name, "variant": variant, "seconds": round(secs, 1),
        "episode readings": int(ep.sum()), "episode treated": int(ep_changed.sum()),
        "episode treated %": round(100 * ep_changed.sum() / max(1, ep.sum()), 1),
        "treated (no injection)": int(treated_clean.sum()),
        "spike recall": round(rec("spike"), 3),
        "spike precision": round(float((spike_pts & is_fault).sum() / spike_pts.sum()), 3) if spike_pts.any()
        else float("nan"),
        "stuck recall": round(rec("stuck"), 3), "neg. recall": round(rec("implausible"), 3),
        "fault precision": round(float((new_treated & is_fault).sum() / max(1, new_treated.sum())), 3),
        "n injected": int(is_fault.sum()),
    }


def bench_set(name: str, df: pd.DataFrame, level, bounds_of, variants: list[tuple[str, object, bool]],
              seed: int) -> list[dict]:
    episodes = episode_mask(df, level)
    dirty_df, truth = inject(df, bounds_of, seed)
    rows = []
    for label, cfg, window in variants:
        clean, secs = run(df, cfg, window)
        dirty, _ = run(dirty_df, cfg, window)
        rows.append(evaluate(name, label, clean, dirty, truth, episodes, secs))
        print(", ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stations", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--md", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    rows: list[dict] = []
    pm_bounds = (0.0, None)
    bj = [("old", OLD, True), ("new (24,)", new_config((24,), pm_bounds), False),
          ("new (24,168)", new_config((24, 168), pm_bounds), False),
          ("new (24,), 7-day windows", new_config((24,), pm_bounds), True)]
    sets = [beijing(args.stations)]
    if SHARED.is_dir():
        sets.append(beijing_shipped())
    for name, df in sets:
        rows += bench_set(name, df, 300.0, lambda sid: pm_bounds, bj, args.seed)
    series = uci()
    for col, df in series.items():
        b = UCI_COLUMNS[col]
        p99 = {f"uci/{col}": float(np.nanpercentile(df["value"], 99))}
        variants = [("old", OLD, True), ("new (24,)", new_config((24,), b), False),
                    ("new (24,168)", new_config((24, 168), b), False)]
        rows += bench_set(f"UCI {col} (episode: > p99)", df, p99, lambda sid, b=b: b, variants, args.seed)
    table = pd.DataFrame(rows)
    print(markdown(table) if args.md else table.to_string(index=False))


def markdown(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(table.columns) + " |"
    sep = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, sep, *body])


if __name__ == "__main__":
    main()
