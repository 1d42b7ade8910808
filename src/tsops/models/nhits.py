"""N-HiTS-style global MLP forecaster (Challu et al., 2023), small enough to train on CPU in seconds.

Blocks run in sequence on the residual of the input window: each block max-pools its input (coarse blocks
see a smoothed window), an MLP maps it to a backcast (subtracted from the residual) and to a few forecast
coefficients that are linearly interpolated to the full horizon (coarse blocks produce smooth forecasts).
Covariate channels are pooled the same way and concatenated to every block's input.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from tsops.models._window import GlobalWindowModel


def _nets():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, L: int, H: int, n_cov: int, pool: int, downsample: int, hidden: int,
                     n_layers: int, dropout: float) -> None:
            super().__init__()
            self.pool = nn.MaxPool1d(pool, stride=pool, ceil_mode=True) if pool > 1 else None
            L_in = math.ceil(L / pool)
            self.H = H
            self.n_coef = max(1, math.ceil(H / downsample))
            layers: list[nn.Module] = []
            d = L_in * (1 + n_cov)
            for _ in range(n_layers):
                layers += [nn.Linear(d, hidden), nn.ReLU()]
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
                d = hidden
            self.mlp = nn.Sequential(*layers)
            self.back = nn.Linear(hidden, L)
            self.fore = nn.Linear(hidden, self.n_coef)

        def forward(self, x, cov):
            z = x.unsqueeze(1)
            if cov is not None:
                z = torch.cat([z, cov], dim=1)
            if self.pool is not None:
                z = self.pool(z)
            hdn = self.mlp(z.flatten(1))
            b = self.back(hdn)
            c = self.fore(hdn)
            if self.n_coef != self.H:
                c = nn.functional.interpolate(c.unsqueeze(1), size=self.H, mode="linear",
                                              align_corners=True).squeeze(1)
            return b, c

    class NHiTSNet(nn.Module):
        def __init__(self, L: int, H: int, n_cov: int, pools, downsamples, blocks_per_stack: int, hidden: int,
                     n_layers: int, dropout: float) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(
                Block(L, H, n_cov, pk, ds, hidden, n_layers, dropout)
                for pk, ds in zip(pools, downsamples, strict=True)
                for _ in range(blocks_per_stack)
            )

        def forward(self, x, cov=None):
            # the last input value as a level, so blocks model deviations from it
            level = x[:, -1:]
            resid = x - level
            out = level.expand(-1, self.blocks[0].H)
            for blk in self.blocks:
                b, f = blk(resid, cov)
                resid = resid - b
                out = out + f
            return out

    return NHiTSNet


class NHiTSForecaster(GlobalWindowModel):
    """Global N-HiTS-style MLP over many series (window scaling, early stopping on a validation window).

    Architecture parameters: ``hidden_size`` units in ``n_layers`` layers per block, ``pool_sizes`` and
    ``downsample`` per stack (one entry per stack), ``blocks_per_stack``, ``dropout``. Training parameters
    are those of :class:`~tsops.models._window.GlobalWindowModel`.
    """

    name = "nhits"
    INPUT_CYCLES: ClassVar[int] = 7
    INPUT_HORIZONS: ClassVar[int] = 5
    INPUT_MULTIPLES: ClassVar[tuple[int, ...]] = (4, 7, 14, 21)
    INPUT_MULTIPLES_NO_SEASON: ClassVar[tuple[int, ...]] = (1, 2, 3, 5)

    @classmethod
    def search_space(cls, seasons: tuple[int, ...] = (), horizon: int | None = None,
                     max_input: int | None = None) -> dict[str, dict[str, Any]]:
        """Input sizes of 4, 7, 14 and 21 seasons (see :meth:`input_sizes`), width, depth, learning rate, loss
        and dropout."""
        sp: dict[str, dict[str, Any]] = {}
        sizes = cls.input_sizes(seasons, horizon, max_input)
        if sizes:
            sp["input_size"] = {"type": "choice", "values": sizes}
        sp.update({
            "hidden_size": {"type": "choice", "values": [128, 256, 512]},
            "n_layers": {"type": "choice", "values": [1, 2, 3]},
            "learning_rate": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
            "loss": {"type": "choice", "values": ["mae", "mase", "smape"]},
            "dropout": {"type": "uniform", "low": 0.0, "high": 0.2},
        })
        return sp

    def __init__(
        self,
        horizon: int = 48,
        input_size: int | None = None,
        hidden_size: int = 256,
        n_layers: int = 2,
        pool_sizes: tuple[int, ...] | list[int] = (8, 4, 1),
        downsample: tuple[int, ...] | list[int] = (12, 4, 1),
        blocks_per_stack: int = 1,
        dropout: float = 0.0,
        **kw: Any,
    ) -> None:
        if len(pool_sizes) != len(downsample):
            raise ValueError(f"pool_sizes {list(pool_sizes)} and downsample {list(downsample)} need one "
                             "entry per stack each")
        if hidden_size < 1 or n_layers < 1 or blocks_per_stack < 1:
            raise ValueError("hidden_size, n_layers and blocks_per_stack must be >= 1")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
        super().__init__(
            horizon=horizon, input_size=input_size, hidden_size=int(hidden_size), n_layers=int(n_layers),
            pool_sizes=[int(v) for v in pool_sizes], downsample=[int(v) for v in downsample],
            blocks_per_stack=int(blocks_per_stack), dropout=float(dropout), **kw,
        )

    def _build_net(self, n_cov: int):
        p = self._params
        return _nets()(p["input_size"], p["horizon"], n_cov, p["pool_sizes"], p["downsample"],
                       p["blocks_per_stack"], p["hidden_size"], p["n_layers"], p["dropout"])
