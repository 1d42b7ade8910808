"""Global LSTM forecaster in PyTorch.

The input window (scaled value plus covariate channels) runs through a stacked LSTM; a linear head maps the
last hidden state to all ``horizon`` steps at once (direct multi-step), added to the window's last value.
Per-series scaling (mean/std of each series' training part) is the default; ``scaling="window"`` and
``scaling="log"`` are also available.

``patch_len > 1`` feeds the LSTM non-overlapping patches of the window (e.g. one day of 24 hourly values per
recurrent step) instead of single points: a 336-point window becomes 14 steps, which makes long inputs
affordable on CPU (the recurrent loop is sequential) and gives every step a whole season to look at.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tsops.models._window import GlobalWindowModel


def _net():
    import torch
    from torch import nn

    class LSTMNet(nn.Module):
        def __init__(self, n_cov: int, H: int, hidden: int, layers: int, dropout: float, patch: int) -> None:
            super().__init__()
            self.patch = patch
            self.lstm = nn.LSTM((1 + n_cov) * patch, hidden, num_layers=layers, batch_first=True,
                                dropout=dropout if layers > 1 else 0.0)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(hidden, H)

        def forward(self, x, cov=None):
            z = x.unsqueeze(-1)  # (B, L, 1)
            if cov is not None:
                z = torch.cat([z, cov.transpose(1, 2)], dim=-1)
            if self.patch > 1:
                B, L, C = z.shape
                drop = L % self.patch  # the oldest points that do not fill a patch
                z = z[:, drop:].reshape(B, (L - drop) // self.patch, self.patch * C)
            out, _ = self.lstm(z)
            return x[:, -1:] + self.head(self.drop(out[:, -1]))

    return LSTMNet


class LSTMForecaster(GlobalWindowModel):
    """Global LSTM: ``hidden_size`` units, ``num_layers`` layers, ``dropout`` between layers, ``patch_len``
    input points per recurrent step (1 = classic point-by-point LSTM)."""

    name = "lstm"
    INPUT_CYCLES: ClassVar[int] = 4
    INPUT_HORIZONS: ClassVar[int] = 2
    INPUT_MULTIPLES: ClassVar[tuple[int, ...]] = (1, 2, 4, 7)
    INPUT_MULTIPLES_NO_SEASON: ClassVar[tuple[int, ...]] = (1, 2, 4, 7)

    @classmethod
    def search_space(cls, seasons: tuple[int, ...] = (), horizon: int | None = None,
                     max_input: int | None = None) -> dict[str, dict[str, Any]]:
        """The space of the tuning study; input sizes are 1, 2, 4 and 7 seasons (see :meth:`input_sizes`)."""
        sp: dict[str, dict[str, Any]] = {
            "hidden_size": {"type": "choice", "values": [2, 4, 8, 16, 32, 64]},
            "learning_rate": {"type": "loguniform", "low": 1e-3, "high": 0.1},
            "num_layers": {"type": "choice", "values": [1, 2, 3, 4, 5]},
            "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
        }
        sizes = cls.input_sizes(seasons, horizon, max_input)
        if sizes:
            sp["input_size"] = {"type": "choice", "values": sizes}
        return sp

    def __init__(
        self,
        horizon: int = 48,
        input_size: int | None = None,
        hidden_size: int = 32,
        num_layers: int = 1,
        dropout: float = 0.0,
        scaling: str = "series",
        learning_rate: float = 5e-3,
        patch_len: int = 1,
        **kw: Any,
    ) -> None:
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"hidden_size and num_layers must be >= 1 (got {hidden_size}, {num_layers})")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
        super().__init__(horizon=horizon, input_size=input_size, hidden_size=int(hidden_size),
                         num_layers=int(num_layers), dropout=float(dropout), scaling=scaling,
                         learning_rate=learning_rate, patch_len=int(patch_len), **kw)
        size = self._params["input_size"]
        if not 1 <= int(patch_len) <= size:
            raise ValueError(f"patch_len must be between 1 and input_size={size} (got {patch_len})")

    def _build_net(self, n_cov: int):
        p = self._params
        return _net()(n_cov, p["horizon"], p["hidden_size"], p["num_layers"], p["dropout"],
                      p.get("patch_len", 1))
