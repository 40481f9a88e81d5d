"""PyTorch networks for texts: an embedding, then a (bi)GRU, an LSTM or a 1-D CNN, then pooling.

Every network is called as ``model(ids, lengths)`` with ``ids`` [batch, time] (token ids, 0 = padding)
and ``lengths`` [batch] (real tokens per text), and returns class scores [batch, n_classes]. Padding
never reaches the output: recurrent encoders run on packed sequences, and pooling (mean, max or
attention) is over real tokens only.

This module imports torch at import time; only the builders in ``tasks/text/models.py`` import it.
"""

from __future__ import annotations

import torch
from torch import nn

from trainflow.tasks.common.layers import masked_pool


class AttentionPool(nn.Module):
    """A learned score per token, softmax over the real tokens, the weighted sum of their states."""

    def __init__(self, width: int):
        super().__init__()
        self.score = nn.Linear(width, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(h).squeeze(-1).masked_fill(mask == 0, float("-inf"))
        return (scores.softmax(1).unsqueeze(-1) * h).sum(1)


class TextNet(nn.Module):
    """Embedding -> encoder (``gru`` | ``lstm``: packed, optionally bidirectional; ``cnn``: parallel
    convolutions of several widths) -> pooling over tokens (``mean`` | ``max`` | ``attention``) -> linear."""

    def __init__(self, encoder: str, vocab_size: int, n_classes: int, embedding_dim: int, hidden: int,
                 layers: int = 1, bidirectional: bool = True, kernels: tuple[int, ...] = (3, 4, 5),
                 pool: str = "max", dropout: float = 0.0):
        super().__init__()
        self.encoder, self.pool = encoder, pool
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        if encoder == "cnn":
            self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, hidden, k, padding=k // 2) for k in kernels)
            width = hidden * len(kernels)
        else:
            cell = nn.GRU if encoder == "gru" else nn.LSTM
            self.rnn = cell(embedding_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                            dropout=dropout if layers > 1 else 0.0)
            width = hidden * (2 if bidirectional else 1)
        self.attention = AttentionPool(width) if pool == "attention" else None
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_classes)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Token states [batch, time, width]; padded steps hold zeros."""
        x = self.drop(self.embedding(ids))
        if self.encoder == "cnn":
            x = x.transpose(1, 2)  # [B, E, T]
            h = torch.cat([torch.relu(conv(x))[..., : ids.shape[1]] for conv in self.convs], dim=1)
            return h.transpose(1, 2)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return out

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        ids = ids[:, : int(lengths.max())]  # padding beyond the batch's longest text only costs time
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths.to(ids.device)[:, None]
        h = self.encode(ids, lengths)
        pooled = self.attention(h, mask) if self.attention is not None else masked_pool(h, mask, self.pool)
        return self.head(self.drop(pooled))
