"""PyTorch networks for sequences: a fully convolutional net, InceptionTime, a 1-D ResNet; the recurrent
net (RNN, LSTM, GRU) that audio and text build too is in :mod:`trainflow.tasks.common.layers`.

Every network is called as ``model(x, mask)`` with ``x`` of shape [batch, time, channels] (padded
with zeros) and ``mask`` of shape [batch, time] (1 where a step is real, 0 where it is padding), and
returns [batch, out_features]: class scores, a regression target, or ``horizon * channels`` values
of a forecast. Padding never reaches the output: pooling is over real steps only, and recurrent nets
can run on packed sequences.

This module imports torch at import time; only the model builders in ``tasks/sequence/models.py`` import it.
"""

from __future__ import annotations

import torch
from torch import nn
from trainflow.tasks.common.layers import ConvBlock, masked_pool


class FCN(nn.Module):
    """Fully convolutional network (Wang, Yan & Oates 2017): conv blocks, global average pooling, linear."""

    def __init__(self, in_channels: int, out_features: int, filters: list[int], kernels: list[int], dropout: float):
        super().__init__()
        chans = [in_channels, *filters]
        self.blocks = nn.ModuleList(ConvBlock(a, b, k) for a, b, k in zip(chans[:-1], chans[1:], kernels))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(filters[-1], out_features)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        keep = mask.unsqueeze(1).to(h.dtype)
        for block in self.blocks:
            h = block(h)[..., : keep.shape[-1]] * keep
        return self.head(self.drop(masked_pool(h.transpose(1, 2), mask, "mean")))


class InceptionModule(nn.Module):
    """One InceptionTime module: a 1x1 bottleneck, three parallel convolutions of growing kernel
    sizes and a max-pool branch, concatenated, batch norm, ReLU."""

    def __init__(self, c_in: int, filters: int, kernels: list[int], bottleneck: int):
        super().__init__()
        self.bottleneck = nn.Conv1d(c_in, bottleneck, 1, bias=False) if c_in > 1 and bottleneck else None
        width = bottleneck if self.bottleneck is not None else c_in
        self.convs = nn.ModuleList(nn.Conv1d(width, filters, k, padding=k // 2, bias=False) for k in kernels)
        self.pool = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1), nn.Conv1d(c_in, filters, 1, bias=False))
        self.bn = nn.BatchNorm1d(filters * (len(kernels) + 1))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, T]
        z = self.bottleneck(x) if self.bottleneck is not None else x
        T = x.shape[-1]
        return self.act(self.bn(torch.cat([conv(z)[..., :T] for conv in self.convs] + [self.pool(x)], dim=1)))


class InceptionTime(nn.Module):
    """InceptionTime (Ismail Fawaz et al. 2020), one network of the ensemble: ``depth`` inception
    modules with a residual shortcut every 3, global average pooling over real steps, linear head."""

    def __init__(self, in_channels: int, out_features: int, filters: int, depth: int, kernels: list[int],
                 bottleneck: int, dropout: float):
        super().__init__()
        width = filters * (len(kernels) + 1)
        self.inception = nn.ModuleList(InceptionModule(in_channels if i == 0 else width, filters, kernels, bottleneck)
                                      for i in range(depth))
        self.shortcuts = nn.ModuleList(
            nn.Sequential(nn.Conv1d(in_channels if i == 0 else width, width, 1, bias=False), nn.BatchNorm1d(width))
            for i in range(depth // 3))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.unsqueeze(1).to(x.dtype)
        h = x.transpose(1, 2) * keep
        res = h
        for i, module in enumerate(self.inception):
            h = module(h) * keep
            if i % 3 == 2:
                h = torch.relu(h + self.shortcuts[i // 3](res)) * keep
                res = h
        return self.head(self.drop(masked_pool(h.transpose(1, 2), mask, "mean")))


class ResidualBlock(nn.Module):
    """Three conv blocks (kernels 8, 5, 3 by default) with a 1x1 conv + batch-norm shortcut."""

    def __init__(self, c_in: int, c_out: int, kernels: list[int]):
        super().__init__()
        chans = [c_in] + [c_out] * len(kernels)
        self.convs = nn.ModuleList(nn.Sequential(nn.Conv1d(a, b, k, padding=k // 2), nn.BatchNorm1d(b))
                                   for a, b, k in zip(chans[:-1], chans[1:], kernels))
        self.shortcut = nn.Sequential(nn.Conv1d(c_in, c_out, 1), nn.BatchNorm1d(c_out))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        h, T = x, x.shape[-1]
        for i, conv in enumerate(self.convs):
            h = conv(h)[..., :T] * keep
            if i < len(self.convs) - 1:
                h = torch.relu(h)
        return torch.relu(h + self.shortcut(x)) * keep


class ResNet1d(nn.Module):
    """ResNet for time series (Wang, Yan & Oates 2017): residual blocks, global average pooling, linear."""

    def __init__(self, in_channels: int, out_features: int, filters: list[int], kernels: list[int], dropout: float):
        super().__init__()
        chans = [in_channels, *filters]
        self.blocks = nn.ModuleList(ResidualBlock(a, b, kernels) for a, b in zip(chans[:-1], chans[1:]))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(filters[-1], out_features)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.unsqueeze(1).to(x.dtype)
        h = x.transpose(1, 2) * keep
        for block in self.blocks:
            h = block(h, keep)
        return self.head(self.drop(masked_pool(h.transpose(1, 2), mask, "mean")))
