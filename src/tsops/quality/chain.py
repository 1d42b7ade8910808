"""The cleaning chain: validate -> dedup -> period -> gaps -> impute -> anomalies -> treatment.

Two entry points share the numba kernels of :mod:`tsops.quality.kernels`:

* :func:`clean_series` — one series' long frame in, ``(clean frame, quality document)`` out. This is what
  ``tsops process`` maps over a data set (see :mod:`tsops.engine`).
* :func:`clean_many` — many series at once over a CSR layout (``ts``, ``values``, ``offsets``), for
  throughput (numba-parallel across series).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import pandas as pd

from tsops.quality import kernels as K
from tsops.quality.anomaly import (
    CLASS_NAMES,
    TREATMENT_POLICIES,
    TREATMENTS,
    anomaly_events,
    apply_treatment,
    class_names,
    fault_mask,
    method_names,
    residual_anomalies,
)
from tsops.quality.impute import IMPUTERS, compare_imputers, impute_values
from tsops.quality.validate import validate_frame

log = logging.getLogger(__name__)

CORE_COLUMNS = ("series_id", "ts", "value")
OUTPUT_COLUMNS = ("series_id", "ts", "value", "raw_value", "is_missing", "is_imputed", "is_anomaly",
                  "anomaly_method", "anomaly_class", "treatment", "is_dup_conflict")
_DEDUP = {"last": K.DEDUP_LAST, "first": K.DEDUP_FIRST, "mean": K.DEDUP_MEAN, "flag": K.DEDUP_FLAG}
_KERNEL_IMPUTE = {"linear": K.IMPUTE_LINEAR, "locf": K.IMPUTE_LOCF, "ema": K.IMPUTE_EMA, "none": K.IMPUTE_NONE}
_ANOMALY_METHODS = ("iqr", "iqr_diff", "residual", "decomposition", "bounds", "stuck")
_KERNEL_BITS = {"iqr": K.ANOM_IQR, "iqr_diff": K.ANOM_IQR_DIFF, "decomposition": K.ANOM_DECOMP,
                "bounds": K.ANOM_BOUNDS, "stuck": K.ANOM_STUCK}


@dataclass
class CleaningConfig:
    """Settings of the cleaning chain (JSON round-trip with ``to_dict`` / ``from_dict``).

    dedup: same timestamp with different values -> 'last', 'first', 'mean' or 'flag' (value set to NaN and
    imputed; the conflict is always marked in ``is_dup_conflict``). period: force a sampling period instead
    of estimating it. max_fill: at most this many missing rows are inserted per gap (longer gaps are left
    open and counted). min_period_confidence: below it the series is treated as event-like and no missing
    rows are inserted (the period is still reported). impute: 'linear', 'spline', 'seasonal', 'locf', 'ema', 'none' or 'auto' (best of
    :func:`compare_imputers` per series); residual_method: 'robust' (rolling/phase medians) or 'stl' for the
    residual anomaly rule; score_imputation: also score a fixed method on the series (RMSE /
    MAE on hidden known values) for the quality document (a per-series Python step, off by default; 'auto'
    always scores the candidates it chooses from).

    Anomalies (see :mod:`tsops.quality.anomaly`): anomaly_methods, any of 'decomposition', 'bounds', 'stuck',
    'iqr', 'iqr_diff', 'residual'. season_lengths: the series' seasons in samples, e.g. (24,) or (24, 168)
    (() = none: a robust local level only); an input (the series profile owns it), never guessed here.
    bounds: (low, high) physical range, either side None = open; readings outside are 'implausible'.
    anomaly_z: a residual beyond this many local robust sds is flagged. level_window: samples of the rolling
    median level (0 = the longest season, made odd, or 25 without a season). shift_window: samples on each
    side of the level-shift test (0 = 4 level windows); shift_z: a level change beyond this many robust sds of
    the windows is a shift (0 = no shift test). stuck_min_run: identical readings in a row that make a stuck
    run (0 = the shortest season, or 2 level windows without a season; -1 = off). spike_max_len: longest
    excursion (samples) that can be a spike.

    treatment: 'faults' (default: ``fault_treatment`` on spike / implausible / stuck points only; episodes and
    level shifts are flagged and kept), or on every flagged point 'none', 'drop' (value NaN, row kept),
    'clip' (to the IQR fences), 'ema', 'interpolate'. fault_treatment: one of the latter for 'faults'.
    """

    dedup: str = "last"
    period: str | None = None
    period_coverage: float = 0.95
    period_tol: float = 0.1
    period_max_sample: int = 1024
    max_fill: int = 10_000
    min_period_confidence: float = 0.2
    impute: str = "linear"
    ema_alpha: float = 0.3
    season_length: int | None = None
    anomaly_methods: tuple[str, ...] = ("decomposition", "bounds", "stuck")
    season_lengths: tuple[int, ...] = ()
    bounds: tuple[float | None, float | None] | None = None
    anomaly_z: float = 4.0
    level_window: int = 0
    shift_window: int = 0
    shift_z: float = 4.0
    stuck_min_run: int = 0
    spike_max_len: int = 2
    iqr_k: float = 3.0
    iqr_diff_k: float = 3.0
    residual_z: float = 4.0
    residual_method: str = "robust"
    treatment: str = "faults"
    fault_treatment: str = "interpolate"
    future_tolerance: str = "5min"
    now: str | None = None
    consistent_columns: tuple[str, ...] = ("unit",)
    compare_imputers_frac: float = 0.1
    score_imputation: bool = False
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.anomaly_methods = tuple(self.anomaly_methods)
        self.consistent_columns = tuple(self.consistent_columns)
        self._check_anomaly_settings()
        if self.dedup not in _DEDUP:
            raise ValueError(f"CleaningConfig.dedup must be one of {sorted(_DEDUP)}, got {self.dedup!r}")
        if self.impute not in (*IMPUTERS, "none", "auto"):
            raise ValueError(f"CleaningConfig.impute must be one of {IMPUTERS + ('none', 'auto')}, "
                             f"got {self.impute!r}")
        bad = [m for m in self.anomaly_methods if m not in _ANOMALY_METHODS]
        if bad:
            raise ValueError(f"CleaningConfig.anomaly_methods: unknown {bad}; choose from {_ANOMALY_METHODS}")
        if self.treatment not in TREATMENT_POLICIES:
            raise ValueError(f"CleaningConfig.treatment must be one of {sorted(TREATMENT_POLICIES)}, "
                             f"got {self.treatment!r}")
        if self.period is not None and pd.Timedelta(self.period) <= pd.Timedelta(0):
            raise ValueError(f"CleaningConfig.period must be positive, got {self.period!r}")
        if self.residual_method not in ("robust", "stl"):
            raise ValueError(f"CleaningConfig.residual_method must be 'robust' or 'stl', got {self.residual_method!r}")
        if self.max_fill < 0:
            raise ValueError(f"CleaningConfig.max_fill must be >= 0, got {self.max_fill}")

    def _check_anomaly_settings(self) -> None:
        try:
            self.season_lengths = tuple(int(s) for s in (self.season_lengths or ()))
        except (TypeError, ValueError):
            raise ValueError(f"CleaningConfig.season_lengths must be a tuple of integers (samples per season), "
                             f"e.g. (24,) or (24, 168); got {self.season_lengths!r}") from None
        if any(s < 2 for s in self.season_lengths):
            raise ValueError(f"CleaningConfig.season_lengths must all be >= 2 samples, got {self.season_lengths}")
        if self.bounds is not None:
            b = tuple(self.bounds)
            if len(b) != 2 or any(x is not None and not isinstance(x, int | float) for x in b):
                raise ValueError(f"CleaningConfig.bounds must be (low, high) numbers or None, got {self.bounds!r}")
            if b[0] is not None and b[1] is not None and b[0] >= b[1]:
                raise ValueError(f"CleaningConfig.bounds low must be below high, got {self.bounds!r}")
            self.bounds = b
        if self.fault_treatment not in TREATMENTS:
            raise ValueError(f"CleaningConfig.fault_treatment must be one of {sorted(TREATMENTS)}, "
                             f"got {self.fault_treatment!r}")
        for name in ("anomaly_z", "shift_z", "iqr_k", "iqr_diff_k"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"CleaningConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        for name, low in (("level_window", 0), ("shift_window", 0), ("stuck_min_run", -1), ("spike_max_len", 1)):
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or v < low:
                raise ValueError(f"CleaningConfig.{name} must be an integer >= {low}, got {v!r}")
        if self.level_window == 1 or self.shift_window == 1:
            raise ValueError("CleaningConfig.level_window and shift_window must be 0 (derived) or >= 2 samples")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["anomaly_methods"] = list(self.anomaly_methods)
        d["consistent_columns"] = list(self.consistent_columns)
        d["season_lengths"] = list(self.season_lengths)
        d["bounds"] = None if self.bounds is None else list(self.bounds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CleaningConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown CleaningConfig field(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)

    # ---- derived kernel arguments
    def now_us(self) -> int:
        now = pd.Timestamp.now(tz="UTC") if self.now is None else pd.Timestamp(self.now)
        if now.tzinfo is None:
            now = now.tz_localize("UTC")
        return int((now + pd.Timedelta(self.future_tolerance)).value // 1000)  # .value is always ns

    def frozen_now(self) -> CleaningConfig:
        """This config with ``now`` fixed to the wall clock (when unset), so every step of one call agrees on
        which rows lie in the future."""
        return self if self.now is not None else replace(self, now=pd.Timestamp.now(tz="UTC").isoformat())

    def period_us(self) -> float:
        return 0.0 if self.period is None else pd.Timedelta(self.period).value / 1000.0

    def kernel_steps(self) -> tuple[int, int, int]:
        """(impute code, anomaly bits, treatment code) the kernel runs; the rest happens in Python."""
        python_side = self.impute not in _KERNEL_IMPUTE or "residual" in self.anomaly_methods
        imp = _KERNEL_IMPUTE.get(self.impute, K.IMPUTE_NONE)
        bits = 0
        for m in self.anomaly_methods:
            bits |= _KERNEL_BITS.get(m, 0)
        treat = K.TREAT_NONE if python_side else self.treatment_code()
        return imp, bits, treat

    def treatment_code(self) -> int:
        return K.TREAT_FAULTS if self.treatment == "faults" else TREATMENTS[self.treatment]

    def applied_treatment(self) -> str:
        """Name of the replacement written to the ``treatment`` column of a treated row."""
        return self.fault_treatment if self.treatment == "faults" else self.treatment

    def anomaly_params(self) -> np.ndarray:
        """The kernel's anomaly parameter vector (slots ``kernels.AP_*``)."""
        lo, hi = self.bounds if self.bounds is not None else (None, None)
        ap = np.zeros(K.N_AP)
        ap[K.AP_Z] = self.anomaly_z
        ap[K.AP_LO] = -np.inf if lo is None else float(lo)
        ap[K.AP_HI] = np.inf if hi is None else float(hi)
        ap[K.AP_LEVEL_W] = self.level_window
        ap[K.AP_SHIFT_W] = self.shift_window
        ap[K.AP_SHIFT_Z] = self.shift_z
        ap[K.AP_STUCK] = self.stuck_min_run
        ap[K.AP_SPIKE_LEN] = self.spike_max_len
        ap[K.AP_NORMAL] = 1.0  # a spike jumps by more than the flagging threshold, away and back
        ap[K.AP_FLOOR] = 0.5  # the local scale never drops below half the series' robust sd of the residual
        return ap


@dataclass
class CleanBatch:
    """Output of :func:`clean_many`: CSR arrays (series ``s`` at ``offsets[s]:offsets[s+1]``) and stats."""

    offsets: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    raw_value: np.ndarray
    is_missing: np.ndarray
    is_dup_conflict: np.ndarray
    is_imputed: np.ndarray
    anomaly_code: np.ndarray
    anomaly_class: np.ndarray
    anomaly_score: np.ndarray
    is_treated: np.ndarray
    stats: pd.DataFrame

    def to_frame(self, series_ids: list[str] | np.ndarray, treatment: str | None = None) -> pd.DataFrame:
        """Long frame of all series (``series_ids`` in CSR order); with ``treatment`` (the replacement's name,
        :meth:`CleaningConfig.applied_treatment`), a ``treatment`` column holding it on treated rows ('' on the
        others, also on rows only flagged), in the column order of :data:`OUTPUT_COLUMNS`."""
        counts = np.diff(self.offsets)
        is_anom = self.anomaly_code != 0
        cols = {
            "series_id": np.repeat(np.asarray(series_ids, dtype=object), counts),
            "ts": pd.Series(self.ts.view("datetime64[us]")).dt.tz_localize("UTC"),
            "value": self.value, "raw_value": self.raw_value, "is_missing": self.is_missing,
            "is_imputed": self.is_imputed, "is_anomaly": is_anom,
            "anomaly_method": method_names(self.anomaly_code),
            "anomaly_class": class_names(self.anomaly_class),
        }
        if treatment is not None:
            cols["treatment"] = np.array(["", treatment], dtype=object)[self.is_treated.view(np.uint8)]
        cols["is_dup_conflict"] = self.is_dup_conflict
        # column by column: the dict constructor would consolidate (copy) same-dtype columns into 2-D blocks
        out = pd.DataFrame({"series_id": cols.pop("series_id")})
        for name, col in cols.items():
            out[name] = col
        return out


def _season_csr(season_lengths, n_series: int, default: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    if season_lengths is None:
        per = [default] * n_series
    else:
        per = [tuple(int(x) for x in (s or ())) for s in season_lengths]
        if len(per) != n_series:
            raise ValueError(f"season_lengths has {len(per)} entries for {n_series} series: give one tuple per "
                             "series (or None for the config's season_lengths)")
        bad = [(i, s) for i, s in enumerate(per) if any(x < 2 for x in s)]
        if bad:
            raise ValueError(f"season_lengths of series #{bad[0][0]} is {bad[0][1]}: every season must be >= 2")
    off = np.zeros(n_series + 1, np.int64)
    off[1:] = np.cumsum([len(s) for s in per])
    val = np.array([x for s in per for x in s], np.int64)
    return off, val


def clean_many(ts_us: np.ndarray, values: np.ndarray, offsets: np.ndarray,
               config: CleaningConfig | None = None, season_lengths=None) -> CleanBatch:
    """Run the kernel part of the chain over many series at once (numba-parallel across series).

    ``ts_us`` int64 epoch microseconds (``kernels.NAT`` for missing), ``values`` float64, ``offsets`` int64 of
    length n_series + 1. ``season_lengths``: one tuple of season lengths (samples) per series, e.g. from each
    series' profile; None = ``config.season_lengths`` for all. Imputation 'spline'/'seasonal'/'auto' and
    'residual' anomalies are per-series Python steps: use :func:`clean_series` for those (here they fall back
    to no imputation / the kernel's rules only).
    """
    cfg = config or CleaningConfig()
    ts_us = np.ascontiguousarray(ts_us, np.int64)
    values = np.ascontiguousarray(values, np.float64)
    offsets = np.ascontiguousarray(offsets, np.int64)
    if ts_us.shape != values.shape:
        raise ValueError(f"ts_us and values differ in shape: {ts_us.shape} vs {values.shape}")
    if offsets.size < 1 or offsets[0] != 0 or offsets[-1] != ts_us.size or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must start at 0, be non-decreasing and end at len(ts_us)")
    imp, bits, _ = cfg.kernel_steps()
    treat = cfg.treatment_code() if cfg.impute in _KERNEL_IMPUTE else K.TREAT_NONE
    soff, sval = _season_csr(season_lengths, offsets.size - 1, cfg.season_lengths)
    kernel = K._clean_serial_kernel if offsets.size <= 2 else K._clean_many_kernel
    out = kernel(
        ts_us, values, offsets, cfg.now_us(), _DEDUP[cfg.dedup], cfg.period_us(), cfg.period_coverage,
        cfg.period_tol, cfg.period_max_sample, float(cfg.max_fill), cfg.min_period_confidence, imp,
        cfg.ema_alpha, bits, cfg.iqr_k, cfg.iqr_diff_k, treat, TREATMENTS[cfg.fault_treatment], soff, sval,
        cfg.anomaly_params())
    oo, ot, ov, oraw, omiss, oconf, oimp, ocode, ocls, oscore, otreat, stats = out
    return CleanBatch(oo, ot, ov, oraw, omiss, oconf, oimp, ocode, ocls, oscore, otreat,
                      pd.DataFrame(stats, columns=K.STAT_FIELDS))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    if isinstance(x, float | np.floating):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, pd.Timestamp | pd.Timedelta):
        return str(x)
    return x


def basic_stats(values: np.ndarray) -> dict:
    """count, mean, std, min, p05, p25, median, p75, p95, max of the finite values."""
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"count": 0}
    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"count": int(x.size), "mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
            "min": float(x.min()), "p05": q[0], "p25": q[1], "median": q[2], "p75": q[3], "p95": q[4],
            "max": float(x.max())}


def clean_series(df: pd.DataFrame, config: CleaningConfig | None = None,
                 season_lengths: Sequence[int] | None = None) -> tuple[pd.DataFrame, dict]:
    """Clean one series' long frame; return (clean frame, JSON-serialisable quality document).

    The frame has one row per grid point: ``series_id, ts, value, raw_value, is_missing, is_imputed,
    is_anomaly, anomaly_method, treatment, is_dup_conflict`` followed by the input's attribute columns: each
    observed row keeps its own values, an inserted row only those constant over the series (see
    :func:`_attach_attributes`). Rows with NaT timestamps, or beyond ``now + future_tolerance``, are left out
    and counted in the document (``dropped``), never silently; the raw zone keeps them.

    ``season_lengths``: the series' seasons in samples (its profile's); None = ``config.season_lengths``.
    """
    cfg = (config or CleaningConfig()).frozen_now()
    seasons = _series_seasons(cfg, season_lengths)
    sids = df["series_id"].astype(str).unique() if "series_id" in df.columns else []
    if len(sids) > 1:
        raise ValueError(f"clean_series takes one series, got {len(sids)} series_id values (e.g. {list(sids[:3])});"
                         " map it over series with tsops.engine")
    val = validate_frame(df, now=cfg.now, future_tolerance=pd.Timedelta(cfg.future_tolerance),
                         consistent_columns=cfg.consistent_columns)
    frame = val.frame
    sid = str(sids[0]) if len(sids) else ""
    attrs = [c for c in frame.columns if c not in CORE_COLUMNS]
    ts = frame["ts"].to_numpy(dtype="datetime64[us]").view(np.int64) if len(frame) else np.empty(0, np.int64)
    ts = np.where(frame["ts"].isna().to_numpy(), K.NAT, ts) if len(frame) else ts
    batch = clean_many(ts, frame["value"].to_numpy(np.float64), np.array([0, len(frame)], np.int64), cfg,
                       season_lengths=[seasons])
    st = batch.stats.iloc[0].to_dict()
    t = batch.ts
    v = batch.value.copy()
    imputed = batch.is_imputed.copy()
    code = batch.anomaly_code.copy()
    cls = batch.anomaly_class.copy()
    treated = batch.is_treated.copy()
    period_us = st["period_us"]
    period = pd.Timedelta(int(round(period_us)), unit="us") if math.isfinite(period_us) else None
    season = cfg.season_length or (seasons[0] if seasons else None)
    imputation: dict = {"method": cfg.impute}
    python_side = cfg.impute not in _KERNEL_IMPUTE or "residual" in cfg.anomaly_methods
    if python_side and len(v):
        if cfg.impute not in _KERNEL_IMPUTE:
            method = cfg.impute
            if method == "auto":
                try:
                    scores = compare_imputers(t, batch.value, season_length=season,
                                              frac=cfg.compare_imputers_frac, seed=cfg.seed, alpha=cfg.ema_alpha)
                    method = str(scores.index[0])
                    imputation.update(method=method, rmse=scores["rmse"].iloc[0], mae=scores["mae"].iloc[0],
                                      scores=scores[["rmse", "mae"]].to_dict(orient="index"))
                except ValueError as exc:
                    log.info("series %s: %s; using linear imputation", sid, exc)
                    method = "linear"
                    imputation.update(method=method, note=str(exc))
            v, imputed = impute_values(t, batch.value, method, season_length=season, alpha=cfg.ema_alpha)
            st["n_imputed"] = int(imputed.sum())
        if "residual" in cfg.anomaly_methods and np.isfinite(v).sum() >= 8:
            mask, _ = residual_anomalies(v, season, cfg.residual_z, method=cfg.residual_method)
            code = code | np.where(mask & ~imputed & ~batch.is_missing, K.ANOM_RESIDUAL, 0).astype(np.uint8)
            cls = _classify_unclassified(code, cls)
        treat_mask = (code != 0) & (fault_mask(cls) if cfg.treatment == "faults" else True)
        v = apply_treatment(t, v, treat_mask, cfg.applied_treatment(), st["fence_lo"], st["fence_hi"],
                            cfg.ema_alpha)
        treated = treated | (treat_mask & (cfg.applied_treatment() != "none"))
        st["n_anomalies"] = int((code != 0).sum())
        st["n_treated"] = int(treated.sum())
        for c, name in enumerate(CLASS_NAMES[1:], start=1):
            st[f"n_{name}"] = int((cls == c).sum())
    is_anom = code != 0
    _score_imputation(imputation, cfg, t, v, imputed | is_anom, season)
    out = pd.DataFrame({
        "series_id": sid,
        "ts": pd.to_datetime(t, unit="us", utc=True).as_unit("us"),
        "value": v, "raw_value": batch.raw_value, "is_missing": batch.is_missing, "is_imputed": imputed,
        "is_anomaly": is_anom, "anomaly_method": method_names(code), "anomaly_class": class_names(cls),
        "treatment": np.where(treated, cfg.applied_treatment(), ""), "is_dup_conflict": batch.is_dup_conflict,
    })
    if attrs:
        codes = np.zeros(len(frame), np.int64)
        _attach_attributes(out, frame, attrs, codes, ts, cfg.now_us(), np.array([0, len(out)], np.int64),
                           batch.is_missing)
    doc = _quality_doc(sid, st, cfg, period, season, imputation, t, v, batch.raw_value, imputed, is_anom,
                       val.to_dict().get(sid, []),
                       anomalies=_anomaly_summary(st, cfg, t, batch.raw_value, cls, batch.anomaly_score, treated,
                                                  seasons))
    return out, doc


def _attach_attributes(out: pd.DataFrame, frame: pd.DataFrame, attrs: list[str], codes: np.ndarray,
                       ts_us: np.ndarray, now_us: int, out_offsets: np.ndarray, is_missing: np.ndarray) -> None:
    """Give every clean row its own attribute values (in place on ``out``).

    An observed row takes the attributes of the input row it came from: the kernels keep observed timestamps
    as they are, so that row is found by (series, ts) among the rows the kernels kept (no NaT, not beyond
    ``now_us``), the last one of a group of duplicates (the first under ``dedup='first'`` would differ only in
    the value, which ``raw_value`` / ``is_dup_conflict`` record). An inserted (missing) row is no observation:
    it carries only the attributes that are constant over its series in this batch (its keys, its unit) and
    null elsewhere. ``codes`` are the series' codes in ``out`` order (0..n-1), ``ts_us`` int64 (NAT = missing).
    """
    keep = (ts_us != K.NAT) & (ts_us <= now_us)
    rows = np.flatnonzero(keep)
    rows = rows[np.lexsort((ts_us[rows], codes[rows]))]  # stable: arrival order within equal timestamps
    c_k, t_k = codes[rows], ts_us[rows]
    last = np.ones(rows.size, bool)
    last[:-1] = (c_k[1:] != c_k[:-1]) | (t_k[1:] != t_k[:-1])
    src = rows[last]  # one input row per kept (series, ts), in output order
    observed = np.flatnonzero(~is_missing)
    if observed.size != src.size:
        raise AssertionError(f"cleaning kept {observed.size} observed rows but {src.size} distinct input "
                             "timestamps: attribute rows cannot be matched")
    take = np.full(len(out), -1, np.int64)
    take[observed] = src
    inserted = np.flatnonzero(is_missing)
    n_series = out_offsets.size - 1
    series_of_inserted = np.searchsorted(out_offsets, inserted, side="right") - 1
    code_rows = codes[rows]
    for c in attrs:
        col = frame[c]
        vals = col.take(np.where(take >= 0, take, 0)).reset_index(drop=True)
        if inserted.size:
            # one value per series when the column is constant there (nulls ignored), else null
            per_series = col.iloc[rows].groupby(code_rows, sort=True)
            nun = per_series.nunique(dropna=True).reindex(range(n_series), fill_value=0).to_numpy()
            first = per_series.first().reindex(range(n_series)).to_numpy(dtype=object)
            const = np.where(nun == 1, first, None)[series_of_inserted]
            if pd.isna(const).any() and vals.dtype.kind in "iub":  # ints / bools stay ints / bools, with nulls
                vals = vals.astype("boolean" if vals.dtype.kind == "b" else vals.dtype.name.capitalize())
            vals.iloc[inserted] = pd.Series(const, dtype=vals.dtype).array
        out[c] = vals


def _classify_unclassified(code: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Class for points flagged by the per-series Python rule ('residual'), which the kernel did not see: an
    isolated point (no flagged neighbour row) is a spike, any other an episode."""
    todo = (code != 0) & (cls == 0)
    if not todo.any():
        return cls
    flag = np.concatenate([[False], code != 0, [False]])
    isolated = ~flag[:-2] & ~flag[2:]
    return np.where(todo, np.where(isolated, K.CLS_SPIKE, K.CLS_EPISODE), cls).astype(np.uint8)


#: at most this many events go into a quality document: every fault and level shift event first, then the
#: largest episodes; in time order (the counts per class and ``n_events`` cover all of them)
MAX_EVENTS = 300


def _anomaly_summary(st: dict, cfg: CleaningConfig, t: np.ndarray, raw: np.ndarray, cls: np.ndarray,
                     score: np.ndarray, treated: np.ndarray, seasons: Sequence[int] = ()) -> dict:
    """Quality-document keys of the anomaly step: counts per class, treated rows and the events."""
    events = anomaly_events(t, raw, cls, score, treated)
    kept = events
    if len(events) > MAX_EVENTS:
        rank = sorted(range(len(events)), key=lambda i: (events[i]["class"] == "episode",
                                                         -abs(events[i]["magnitude"] or 0.0)))
        kept = [events[i] for i in sorted(rank[:MAX_EVENTS])]
    return {"anomaly_classes": {name: int(st[f"n_{name}"]) for name in CLASS_NAMES[1:]},
            "n_treated": int(st["n_treated"]), "fault_treatment": cfg.fault_treatment,
            "season_lengths": list(seasons), "bounds": cfg.bounds,
            "n_events": len(events), "events": kept}


def _score_imputation(imputation: dict, cfg: CleaningConfig, t: np.ndarray, v: np.ndarray, hidden: np.ndarray,
                      season: int | None) -> None:
    """Score the chosen method on this series (hide known values, re-impute): RMSE / MAE into ``imputation``."""
    if "rmse" in imputation or not cfg.score_imputation or imputation["method"] == "none" or len(v) <= 8:
        return
    known = np.where(hidden, np.nan, v)
    try:
        sc = compare_imputers(t, known, (imputation["method"],), season_length=season,
                              frac=cfg.compare_imputers_frac, seed=cfg.seed, alpha=cfg.ema_alpha)
        imputation.update(rmse=sc["rmse"].iloc[0], mae=sc["mae"].iloc[0], n_hidden=sc["n_hidden"].iloc[0])
    except ValueError as exc:
        imputation["note"] = str(exc)


def _quality_doc(sid: str, st: dict, cfg: CleaningConfig, period: pd.Timedelta | None, season: int | None,
                 imputation: dict, t: np.ndarray, v: np.ndarray, raw: np.ndarray, imputed: np.ndarray,
                 is_anom: np.ndarray, validation: list, anomalies: dict | None = None) -> dict:
    n_out = len(t)
    n_obs = n_out - int(st["n_missing_inserted"]) - int(st["n_nan_readings"])
    n_anom = int(is_anom.sum())
    ts_at = lambda i: pd.Timestamp(int(t[i]), unit="us", tz="UTC") if n_out else None  # noqa: E731
    doc = {
        "series_id": sid,
        "period_seconds": period.total_seconds() if period is not None else None,
        "phase_seconds": st["phase_us"] / 1e6,
        "period_confidence": st["confidence"],
        "period_explained_share": st["explained_share"],
        "jitter": st["jitter"],
        "season_length": season,
        "n_raw": int(st["n_raw"]), "n_valid": int(st["n_valid"]), "n_out": n_out,
        "dropped": {"nat": int(st["n_nat"]), "future": int(st["n_future"])},
        "n_out_of_order": int(st["n_out_of_order"]),
        "duplicates": {"exact": int(st["n_exact_duplicates"]),
                       "conflicting": int(st["n_conflicting_duplicates"]), "policy": cfg.dedup},
        "n_missing_inserted": int(st["n_missing_inserted"]), "n_nan_readings": int(st["n_nan_readings"]),
        "n_gaps_unfilled": int(st["n_gaps_unfilled"]),
        "missing_ratio": (n_out - n_obs) / n_out if n_out else None,
        "n_imputed": int(imputed.sum()),
        "imputation": imputation,
        "n_anomalies": n_anom,
        "anomaly_ratio": n_anom / n_obs if n_obs > 0 else None,
        "anomaly_methods": list(cfg.anomaly_methods), "treatment": cfg.treatment,
        "iqr_fences": [st["fence_lo"], st["fence_hi"]],
        **(anomalies or {}),
        "first_ts": ts_at(0), "last_ts": ts_at(-1),
        "stats": basic_stats(v), "raw_stats": basic_stats(raw),
        "validation": validation,
    }
    doc = _jsonable(doc)
    json.dumps(doc)  # fail here, not downstream, if something is not serialisable
    return doc


def _series_seasons(cfg: CleaningConfig, season_lengths: Sequence[int] | None) -> tuple[int, ...]:
    """A series' seasons for the kernels: its own (profile) when given, else the config's; cycles shorter than
    two samples are no seasons."""
    given = cfg.season_lengths if season_lengths is None else season_lengths
    return tuple(int(x) for x in given if int(x) >= 2)


def needs_python_steps(cfg: CleaningConfig) -> bool:
    """True when the config uses per-series Python steps (spline / seasonal / auto imputation, residual
    anomalies) that the batched kernels do not run."""
    return cfg.impute not in _KERNEL_IMPUTE or "residual" in cfg.anomaly_methods


def clean_frame(df: pd.DataFrame, config: CleaningConfig | None = None,
                seasons: Mapping[str, Sequence[int]] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Clean every series of a long frame at once; same result as :func:`clean_series` per series.

    Vectorised: one validation pass, one :func:`clean_many` call (numba-parallel over series), per-series
    Python only for the quality documents (set ``score_imputation=False`` to skip the per-series imputation
    scoring). Configs with Python-only steps (see :func:`needs_python_steps`) fall back to a loop over
    :func:`clean_series`. Output sorted by series_id then ts; documents in the same order. ``seasons``: each
    series' seasons in samples (from its profile) by series id; a series not in it gets ``config.season_lengths``.
    """
    cfg = (config or CleaningConfig()).frozen_now()
    seasons = seasons or {}
    if "series_id" not in df.columns:
        raise ValueError(f"long frame is missing required column 'series_id'; got columns {list(df.columns)}")
    if needs_python_steps(cfg):
        outs, docs = [], []
        for sid, g in df.groupby(df["series_id"].astype(str), sort=True):
            o, d = clean_series(g, cfg, seasons.get(str(sid)))
            outs.append(o)
            docs.append(d)
        return (pd.concat(outs, ignore_index=True) if outs else pd.DataFrame(columns=list(OUTPUT_COLUMNS))), docs
    val = validate_frame(df, now=cfg.now, future_tolerance=pd.Timedelta(cfg.future_tolerance),
                         consistent_columns=cfg.consistent_columns)
    frame = val.frame
    codes, uniques = pd.factorize(frame["series_id"], sort=True)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(uniques))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    nat = frame["ts"].isna().to_numpy()
    ts = np.where(nat, K.NAT, frame["ts"].to_numpy(dtype="datetime64[us]").view(np.int64))[order]
    per_series = [_series_seasons(cfg, seasons.get(str(sid))) for sid in uniques]
    batch = clean_many(ts, frame["value"].to_numpy(np.float64)[order], offsets, cfg, season_lengths=per_series)
    out = batch.to_frame(np.asarray(uniques, dtype=object), treatment=cfg.applied_treatment())
    is_anom = batch.anomaly_code != 0
    attrs = [c for c in frame.columns if c not in CORE_COLUMNS]
    if attrs:
        ts_in = np.where(nat, K.NAT, frame["ts"].to_numpy(dtype="datetime64[us]").view(np.int64))
        _attach_attributes(out, frame, attrs, codes, ts_in, cfg.now_us(), batch.offsets, batch.is_missing)
    issues = val.to_dict()
    docs = []
    stats = batch.stats.to_dict(orient="records")
    for s, sid in enumerate(uniques):
        a, b = batch.offsets[s], batch.offsets[s + 1]
        st = stats[s]
        period = pd.Timedelta(int(round(st["period_us"])), unit="us") if math.isfinite(st["period_us"]) else None
        season = cfg.season_length or (per_series[s][0] if per_series[s] else None)
        imputation: dict = {"method": cfg.impute}
        t, v = batch.ts[a:b], batch.value[a:b]
        imp, anom = batch.is_imputed[a:b], is_anom[a:b]
        _score_imputation(imputation, cfg, t, v, imp | anom, season)
        anomalies = _anomaly_summary(st, cfg, t, batch.raw_value[a:b], batch.anomaly_class[a:b],
                                     batch.anomaly_score[a:b], batch.is_treated[a:b], per_series[s])
        docs.append(_quality_doc(str(sid), st, cfg, period, season, imputation, t, v, batch.raw_value[a:b], imp,
                                 anom, issues.get(str(sid), []), anomalies=anomalies))
    return out, docs
