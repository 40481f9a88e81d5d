"""The window MLP: a forecasting network that reads the last ``lookback`` steps of a series.

This module imports torch at import time; only the builder in :mod:`.global_net` imports it.
"""

from __future__ import annotations

import torch
from torch import nn


class WindowMlp(nn.Module):
    """(x [batch, time, channels], mask [batch, time]) -> [batch, out_features]: the last ``lookback``
    steps (left-padded with zeros, mask 0, when the input is shorter) and their mask, flattened,
    through dense layers. The mask is an input, so one network also forecasts a series shorter than
    its lookback (the padded steps read as absent, not as zeros)."""

    def __init__(self, in_channels: int, out_features: int, lookback: int, hidden: list[int], dropout: float):
        super().__init__()
        self.lookback = lookback
        layers: list[nn.Module] = []
        width = lookback * (in_channels + 1)
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(dropout)]
            width = units
        layers.append(nn.Linear(width, out_features))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = self.lookback
        x, mask = x[:, -n:], mask[:, -n:].to(x.dtype)
        if x.shape[1] < n:  # a short input: zeros on the left, marked absent by the mask
            pad = n - x.shape[1]
            x = nn.functional.pad(x, (0, 0, pad, 0))
            mask = nn.functional.pad(mask, (pad, 0))
        flat = torch.cat([(x * mask.unsqueeze(-1)).flatten(1), mask], dim=1)
        return self.body(flat)
