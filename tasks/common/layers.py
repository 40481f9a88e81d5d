"""PyTorch layers and networks that several modalities build: masked pooling over real steps, the
conv block, the recurrent net (RNN, LSTM, GRU) that sequences, audio frames and texts share, and the
seed ensemble that forecasting averages.

Every network is called as ``model(x, mask)`` with ``x`` of shape [batch, time, channels] (padded
with zeros) and ``mask`` of shape [batch, time] (1 where a step is real, 0 where it is padding).
This module imports torch at import time; only the builders in :mod:`trainflow.tasks.common.networks`
(and the modalities' network modules) import it.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_pool(h: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool ``h`` [B, T, F] over the real steps of ``mask`` [B, T]: ``mean``, ``max``, ``meanmax`` or ``last``."""
    m = mask.unsqueeze(-1).to(h.dtype)
    if how == "last":
        last = (mask.sum(1).long() - 1).clamp(min=0)
        return h[torch.arange(h.shape[0], device=h.device), last]
    mean = (h * m).sum(1) / m.sum(1).clamp(min=1)
    if how == "mean":
        return mean
    mx = h.masked_fill(m == 0, float("-inf")).amax(1)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    return mx if how == "max" else torch.cat([mean, mx], dim=-1)


class ConvBlock(nn.Module):
    """Conv1d ('same' length) -> BatchNorm -> ReLU, with padded steps zeroed after each block."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
        self.bn = nn.BatchNorm1d(c_out)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, T]
        return self.act(self.bn(self.conv(x)))


def _downsample_mask(mask: torch.Tensor, length: int) -> torch.Tensor:
    if mask.shape[1] == length:
        return mask
    return nn.functional.adaptive_max_pool1d(mask.unsqueeze(1).float(), length).squeeze(1)


class RecurrentNet(nn.Module):
    """An optional conv front end, then an RNN/LSTM/GRU, then pooling over time and a linear head.

    The front end (one conv block with stride) shortens the sequence and extracts local shape, which
    is what lets a recurrent net learn GunPoint-length series (150 steps) in a few dozen epochs; the
    head pools over every step instead of reading only the last hidden state.
    """

    CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

    def __init__(self, cell: str, in_channels: int, out_features: int, hidden: int, layers: int,
                 bidirectional: bool, dropout: float, front: str, front_channels: int, front_kernel: int,
                 front_stride: int, pool: str, packed: bool):
        super().__init__()
        self.front = ConvBlock(in_channels, front_channels, front_kernel, front_stride) if front == "conv" else None
        rnn_in = front_channels if self.front is not None else in_channels
        extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.rnn = self.CELLS[cell](rnn_in, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                                    dropout=dropout if layers > 1 else 0.0, **extra)
        width = hidden * (2 if bidirectional else 1) * (2 if pool == "meanmax" else 1)
        self.pool, self.packed = pool, packed
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.encode(x, mask)))

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The pooled recurrent features before the head: [batch, width] (an embedding for other heads)."""
        if self.front is not None:
            h = self.front(x.transpose(1, 2))
            mask = _downsample_mask(mask, h.shape[-1])
            x = (h * mask.unsqueeze(1)).transpose(1, 2)
        if self.packed:
            lengths = mask.sum(1).long().clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        else:
            out, _ = self.rnn(x)
        return masked_pool(out, mask, self.pool)


class SeedEnsemble(nn.Module):
    """The mean output of several networks of one architecture, trained from different seeds."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(*inputs) for m in self.members]).mean(0)
