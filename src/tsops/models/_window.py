"""Shared machinery of the global neural models: window sampling, scaling, losses, the training loop.

A global model learns one network from windows cut out of all series. Each sample is an input window of
``input_size`` points (plus the same time span of every covariate series, as extra channels) and the next
``horizon`` points as target. Scaling is either per *window* (divide by the mean absolute value of the input
window: strictly causal) or per *series* (mean/std of the series' training part, stored in the model). The
last ``val_size`` points of every series are held out for early stopping.

The season (``season_length``, from the series profiles through the caller; None = no season) sets the lag of
the ``mase`` loss and, when ``input_size`` is not given, the input window: ``INPUT_CYCLES`` seasons (without a
season, ``INPUT_HORIZONS`` horizons). A global model has one season for the whole panel: the tuner gives it
the dataset's common season, or the most common one when series differ (and records that choice).
"""

from __future__ import annotations

import copy
import io
import logging
import math
import os
import time
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from tsops.models.base import Forecaster, Panel, fill_gaps, right_align
from tsops.models.season import check_season

log = logging.getLogger(__name__)

LOSSES = ("mae", "mse", "smape", "mase")
SCALINGS = ("window", "series", "log")


def configure_torch(n_threads: int | None = None) -> None:
    """Use ``n_threads`` CPU threads (default: all cores, at most 2 here); keep kernels deterministic."""
    import torch

    n = n_threads or min(2, os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def seed_everything(seed: int) -> np.random.Generator:
    import torch

    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def loss_fn(name: str, pred, target, mask, x_scaled, season: int | None):
    """Loss between scaled forecasts and targets; ``mask`` drops missing target points.

    Losses apply on the model's scale: with ``scaling="log"`` they see log values, so ``mae`` is a relative
    error and ``mase`` divides it by the window's seasonal variation (lag ``season``; lag 1 without a season
    or when the window is not longer than the season) of the log values."""
    import torch

    err = pred - target
    if name == "mae":
        per = err.abs()
    elif name == "mse":
        per = err**2
    elif name == "smape":
        den = pred.abs() + target.abs()
        per = torch.where(den > 0, 2.0 * err.abs() / den.clamp_min(1e-8), torch.zeros_like(den))
    elif name == "mase":
        lag = season if season and season > 1 and x_scaled.shape[1] > season else 1
        scale = (x_scaled[:, lag:] - x_scaled[:, :-lag]).abs().mean(dim=1, keepdim=True).clamp_min(1e-3)
        per = err.abs() / scale
    else:
        raise ValueError(f"loss must be one of {LOSSES} (got {name!r})")
    per = per * mask
    return per.sum() / mask.sum().clamp_min(1.0)


def log_floor(x: np.ndarray) -> np.ndarray:
    """Smallest value a log-scaled window uses: 1e-3 of its mean absolute value (values below are clipped)."""
    m = np.abs(x).mean(axis=-1)
    return np.maximum(1e-3 * m, 1e-8)


def to_scaled(y: np.ndarray, loc: np.ndarray, sc: np.ndarray, scaling: str) -> np.ndarray:
    if scaling == "log":
        return np.log(np.maximum(y, sc[:, None])) - loc[:, None]
    return (y - loc[:, None]) / sc[:, None]


def from_scaled(f: np.ndarray, loc: np.ndarray, sc: np.ndarray, scaling: str) -> np.ndarray:
    if scaling == "log":
        return np.exp(np.clip(f + loc[:, None], -700, 700))
    return f * sc[:, None] + loc[:, None]


def lr_factor(step: int, total: int, warmup: float = 0.05, floor: float = 0.01) -> float:
    """Learning-rate multiplier: linear warm-up over the first 5% of steps, then cosine decay to 1%."""
    w = max(1, int(warmup * total))
    if step < w:
        return (step + 1) / w
    frac = (step - w) / max(1, total - w)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


class WindowData:
    """Series of a panel stacked right-aligned, with per-series sampling ranges for training windows."""

    def __init__(self, panel: Panel, input_size: int, horizon: int, val_size: int, cov_idx: list[int],
                 max_history: int | None, scaling: str) -> None:
        self.L, self.H, self.val = input_size, horizon, val_size
        raw = right_align(panel.values)
        self.observed = ~np.isnan(raw)
        self.Z = fill_gaps(raw)
        n, T = self.Z.shape
        lengths = np.array([len(v) for v in panel.values])
        first = T - lengths
        self.t_train_end = T - val_size  # first held-out position
        self.hi = np.full(n, self.t_train_end - horizon)
        min_in = np.minimum(input_size, np.maximum(1, lengths - val_size - horizon))
        self.lo = np.maximum(first + min_in, input_size if cov_idx else 0)
        if max_history:
            self.lo = np.maximum(self.lo, self.hi - max_history)
        self.usable = np.where(self.hi >= self.lo)[0]
        self.cov_idx = list(cov_idx)
        self.scaling = scaling
        if scaling == "series":
            part = np.where(self.observed[:, : self.t_train_end], self.Z[:, : self.t_train_end], np.nan)
            with np.errstate(all="ignore"):
                self.mu = np.nan_to_num(np.nanmean(part, axis=1))
                sd = np.nan_to_num(np.nanstd(part, axis=1))
            self.sd = np.where(sd > 1e-8, sd, 1.0)

    def has_validation(self) -> bool:
        vs = self.usable[self.lo[self.usable] <= self.t_train_end - 1]
        return self.val > 0 and len(vs) > 0

    def gather(self, rows: np.ndarray, cuts: np.ndarray, with_target: bool = True):
        """Inputs (B, L), covariates (B, C, L), targets (B, H) and mask, all unscaled, for the cut positions."""
        L, H = self.L, self.H
        T = self.Z.shape[1]
        idx_in = cuts[:, None] + np.arange(-L, 0)[None, :]
        clip_in = np.clip(idx_in, 0, T - 1)
        x = self.Z[rows[:, None], clip_in]
        # positions before the start of the matrix repeat its first value
        x = np.where(idx_in < 0, self.Z[rows, 0][:, None], x)
        cov = None
        if self.cov_idx:
            ci = np.array(self.cov_idx)
            cov = self.Z[ci[None, :, None], clip_in[:, None, :]]
        if not with_target:
            return x, cov, None, None
        idx_t = cuts[:, None] + np.arange(H)[None, :]
        inside = idx_t < T
        idx_t = np.minimum(idx_t, T - 1)
        y = self.Z[rows[:, None], idx_t]
        m = (self.observed[rows[:, None], idx_t] & inside).astype(np.float32)
        return x, cov, y, m

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.usable[rng.integers(len(self.usable), size=batch)]
        span = self.hi[rows] - self.lo[rows] + 1
        cuts = self.lo[rows] + np.floor(rng.random(batch) * span).astype(int)
        return rows, cuts

    def scale(self, rows: np.ndarray, x: np.ndarray, cov: np.ndarray | None):
        """(loc, scale) per sample and the scaled inputs."""
        if self.scaling == "series":
            loc, sc = self.mu[rows], self.sd[rows]
        elif self.scaling == "log":
            floor = log_floor(x)
            lx = np.log(np.maximum(x, floor[:, None]))
            loc = lx.mean(axis=1)
            xs = lx - loc[:, None]
            cs = None
            if cov is not None:
                lc = np.log(np.maximum(cov, log_floor(cov.reshape(-1, cov.shape[-1])).reshape(cov.shape[:2])[..., None]))
                cs = lc - lc.mean(axis=2, keepdims=True)
            return loc, floor, xs, cs
        else:
            loc = np.zeros(len(rows))
            sc = np.abs(x).mean(axis=1)
            sc = np.where(sc > 1e-8, sc, 1.0)
        xs = (x - loc[:, None]) / sc[:, None]
        cs = None
        if cov is not None:
            if self.scaling == "series":
                ci = np.array(self.cov_idx)
                cs = (cov - self.mu[ci][None, :, None]) / self.sd[ci][None, :, None]
            else:
                cm = np.abs(cov).mean(axis=2, keepdims=True)
                cs = cov / np.where(cm > 1e-8, cm, 1.0)
        return loc, sc, xs, cs


class GlobalWindowModel(Forecaster):
    """Base of the global neural forecasters (N-HiTS-style MLP, LSTM): one network for all series."""

    name = "global"
    supports_season = True
    supports_covariates = True
    is_global = True
    trained_horizon = True
    #: default input window: this many seasons, or this many horizons without a season
    INPUT_CYCLES: ClassVar[int] = 7
    INPUT_HORIZONS: ClassVar[int] = 5
    #: input sizes the tuner tries: these multiples of the season (of the horizon without a season)
    INPUT_MULTIPLES: ClassVar[tuple[int, ...]] = (4, 7, 14, 21)
    INPUT_MULTIPLES_NO_SEASON: ClassVar[tuple[int, ...]] = (1, 2, 3, 5)

    @classmethod
    def input_sizes(cls, seasons: tuple[int, ...] = (), horizon: int | None = None,
                    max_input: int | None = None) -> list[int]:
        """Input window sizes worth trying: multiples of the main season (of the horizon without one), at most
        ``max_input`` points ([] when neither a season nor a horizon is known)."""
        m = next((int(s) for s in seasons if s and s > 1), None)
        if m is None and not horizon:
            return []
        vals = [k * m for k in cls.INPUT_MULTIPLES] if m else [k * int(horizon) for k in cls.INPUT_MULTIPLES_NO_SEASON]
        if max_input:
            fit = [v for v in vals if v <= max_input]
            vals = fit or [max(1, int(max_input))]
        return sorted(set(vals))

    def __init__(
        self,
        horizon: int = 48,
        input_size: int | None = None,
        season_length: int | None = None,
        loss: str = "mae",
        scaling: str = "window",
        learning_rate: float = 1e-3,
        batch_size: int = 256,
        max_steps: int = 1000,
        eval_every: int = 100,
        patience: int = 5,
        val_size: int | None = None,
        max_history: int | None = None,
        covariates: list[str] | str | None = None,
        seed: int = 0,
        n_threads: int | None = None,
        **arch: Any,
    ) -> None:
        season_length = check_season(season_length)
        if input_size is None:
            input_size = (self.INPUT_CYCLES * season_length if season_length and season_length > 1
                          else self.INPUT_HORIZONS * int(horizon))
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES} (got {loss!r})")
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS} (got {scaling!r})")
        for k, v in (("horizon", horizon), ("input_size", input_size), ("batch_size", batch_size),
                     ("max_steps", max_steps), ("eval_every", eval_every)):
            if int(v) < 1:
                raise ValueError(f"{k} must be >= 1 (got {v})")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0 (got {learning_rate})")
        super().__init__(
            horizon=int(horizon), input_size=int(input_size), season_length=season_length, loss=loss,
            scaling=scaling, learning_rate=float(learning_rate), batch_size=int(batch_size),
            max_steps=int(max_steps), eval_every=int(eval_every), patience=int(patience),
            val_size=None if val_size is None else int(val_size), max_history=max_history,
            covariates=(covariates if isinstance(covariates, str) else list(covariates)) if covariates else None,
            seed=int(seed), n_threads=n_threads, **arch,
        )
        self.net_ = None
        self.covariates_: list[str] = []
        self.train_log_: list[dict[str, float]] = []
        self.best_step_: int | None = None
        self.scaler_: dict[str, tuple[float, float]] = {}

    # subclasses build their network from self._params
    @abstractmethod
    def _build_net(self, n_cov: int): ...

    def _forward(self, xs, cs):
        return self.net_(xs, cs)

    def refit_clone(self) -> GlobalWindowModel:
        """A copy that trains on every point (no validation window) for the steps early stopping chose."""
        steps = self.best_step_ or self._params["max_steps"]
        return self.clone(val_size=0, max_steps=int(steps), covariates=list(self.covariates_) or None)

    def describe(self) -> dict[str, Any]:
        return {"covariates": list(self.covariates_), "best_step": self.best_step_,
                "train_log": self.train_log_[-50:]}

    def _fit(self, panel: Panel) -> None:
        import torch

        p = self._params
        configure_torch(p["n_threads"])
        rng = seed_everything(p["seed"])
        H = p["horizon"]
        cov_names = p["covariates"] or []
        if isinstance(cov_names, str):
            if not cov_names.startswith("auto"):
                raise ValueError(f"covariates must be a list of series ids or 'auto:K' (got {cov_names!r})")
            from tsops.models.covariates import select_covariates

            k = int(cov_names.split(":", 1)[1]) if ":" in cov_names else 1
            cov_names = select_covariates(panel.head(H if p["val_size"] is None else p["val_size"]), k,
                                          p["season_length"])
        cov_idx = [panel.index(c) for c in cov_names]
        if cov_idx:
            ends = {panel.end_ts[i] for i in range(len(panel))}
            if len(ends) > 1:
                raise ValueError("covariate series must end at the same time as every target series "
                                 f"(found {len(ends)} different end timestamps)")
        self.covariates_ = list(cov_names)
        L = p["input_size"]
        val = H if p["val_size"] is None else p["val_size"]
        data = WindowData(panel, L, H, val, cov_idx, p["max_history"], p["scaling"])
        if len(data.usable) == 0 and val > 0:
            log.warning("series too short for a validation window of %d points: training without one", val)
            data = WindowData(panel, L, H, 0, cov_idx, p["max_history"], p["scaling"])
            val = 0
        if len(data.usable) == 0:
            shortest = min(len(v) for v in panel.values)
            raise ValueError(f"no series is long enough to cut a training window (input_size={L}, "
                             f"horizon={H}, shortest series {shortest} points): lower input_size or horizon")
        if p["scaling"] == "series":
            self.scaler_ = {sid: (float(data.mu[i]), float(data.sd[i])) for i, sid in enumerate(panel.ids)}
        self.net_ = self._build_net(len(cov_idx))
        net = self.net_
        opt = torch.optim.Adam(net.parameters(), lr=p["learning_rate"])
        steps = p["max_steps"]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps))
        use_val = val > 0 and data.has_validation()
        if use_val:
            vrows = data.usable[data.lo[data.usable] <= data.t_train_end - 1]
            vcuts = np.full(len(vrows), data.t_train_end)
            v_x, v_c, v_y, v_m = data.gather(vrows, vcuts)
            # the validation target may be shorter than the horizon
            v_m = v_m.copy()
            v_m[:, min(val, H):] = 0.0
            v_y = np.where(v_m > 0, v_y, 0.0)
            v_batch = self._to_tensors(data, vrows, v_x, v_c, v_y, v_m)
        best, best_state, bad = math.inf, None, 0
        season = p["season_length"]
        t0 = time.process_time()
        self.train_log_ = []
        for step in range(1, steps + 1):
            net.train()
            rows, cuts = data.sample(rng, p["batch_size"])
            x, c, y, m = data.gather(rows, cuts)
            xs, cs, ys, ms = self._to_tensors(data, rows, x, c, y, m)
            pred = self._forward(xs, cs)
            loss = loss_fn(p["loss"], pred, ys, ms, xs, season)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            if step % p["eval_every"] == 0 or step == steps:
                rec = {"step": step, "train_loss": float(loss.detach())}
                if use_val:
                    net.eval()
                    with torch.no_grad():
                        vx, vc, vy, vm = v_batch
                        vl = float(loss_fn(p["loss"], self._forward(vx, vc), vy, vm, vx, season))
                    rec["val_loss"] = vl
                    if vl < best - 1e-6:
                        best, bad, self.best_step_ = vl, 0, step
                        best_state = copy.deepcopy(net.state_dict())
                    else:
                        bad += 1
                self.train_log_.append(rec)
                log.debug("%s step %d %s", self.name, step, rec)
                if use_val and p["patience"] > 0 and bad >= p["patience"]:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            self.best_step_ = step
        net.eval()
        log.info("%s trained %d steps (best %s) in %.1f CPU s", self.name, step, self.best_step_,
                 time.process_time() - t0)

    def _to_tensors(self, data: WindowData, rows, x, c, y, m):
        import torch

        loc, sc, xs, cs = data.scale(rows, x, c)
        out_x = torch.as_tensor(xs, dtype=torch.float32)
        out_c = None if cs is None else torch.as_tensor(cs, dtype=torch.float32)
        out_y = torch.as_tensor(to_scaled(y, loc, sc, data.scaling), dtype=torch.float32)
        out_m = torch.as_tensor(m, dtype=torch.float32)
        return out_x, out_c, out_y, out_m

    def _predict(self, panel: Panel, h: int) -> np.ndarray:
        import torch

        p = self._params
        configure_torch(p["n_threads"])
        H, L = p["horizon"], p["input_size"]
        cov_idx = [panel.index(c) for c in self.covariates_]
        data = WindowData(panel, L, H, 0, cov_idx, None, "log" if p["scaling"] == "log" else "window")
        if p["scaling"] == "series":
            mu = np.zeros(len(panel))
            sd = np.ones(len(panel))
            for i, sid in enumerate(panel.ids):
                if sid not in self.scaler_:
                    raise KeyError(f"series {sid!r} was not in the training panel: a model with "
                                   "scaling='series' only forecasts series it was fitted on")
                mu[i], sd[i] = self.scaler_[sid]
            data.scaling, data.mu, data.sd = "series", mu, sd
            if cov_idx:
                for j, c in zip(cov_idx, self.covariates_, strict=True):
                    data.mu[j], data.sd[j] = self.scaler_[c]
        T = data.Z.shape[1]
        rows = np.arange(len(panel))
        out = np.zeros((len(panel), h))
        # iterate the network for horizons longer than it was trained for
        Z_ext = data.Z
        done = 0
        while done < h:
            data.Z = Z_ext
            cuts = np.full(len(rows), Z_ext.shape[1])
            x, c, _, _ = data.gather(rows, cuts, with_target=False)
            loc, sc, xs, cs = data.scale(rows, x, c)
            with torch.no_grad():
                f = self._forward(torch.as_tensor(xs, dtype=torch.float32),
                                  None if cs is None else torch.as_tensor(cs, dtype=torch.float32)).numpy()
            f = from_scaled(f, loc, sc, data.scaling)
            k = min(H, h - done)
            out[:, done: done + k] = f[:, :k]
            done += k
            if done < h:
                if cov_idx:
                    raise ValueError(f"horizon {h} exceeds the trained horizon {H} and covariates have no "
                                     "future values: refit with horizon >= h")
                Z_ext = np.concatenate([Z_ext, f[:, :k]], axis=1)
        data.Z = Z_ext[:, :T]
        return out

    def __getstate__(self) -> dict[str, Any]:
        import torch

        state = self.__dict__.copy()
        if self.net_ is not None:
            buf = io.BytesIO()
            torch.save(self.net_.state_dict(), buf)
            state["net_"] = ("state_dict", len(self.covariates_), buf.getvalue())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import torch

        net = state.get("net_")
        self.__dict__.update(state)
        if isinstance(net, tuple) and net and net[0] == "state_dict":
            self.net_ = self._build_net(net[1])
            self.net_.load_state_dict(torch.load(io.BytesIO(net[2]), weights_only=True))
            self.net_.eval()
