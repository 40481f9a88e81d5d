"""PyTorch networks for audio features ``x`` [batch, bins, frames] with ``mask`` [batch, frames].

Each network has ``encode(x, mask)`` -> [batch, embedding] (what comes before the classification
head, for other heads such as a multimodal fusion) and ``forward(x, mask)`` -> class scores.

- :class:`SpectrogramCNN` wraps the image family's CNN (:func:`trainflow.tasks.common.networks.cnn`),
  the spectrogram seen as a one-channel image;
- :class:`Ensemble`: several networks of one shape trained side by side, their probabilities averaged;
- :class:`FrameRNN` wraps the sequence family's recurrent net over frames
  (:class:`trainflow.tasks.common.layers.RecurrentNet`);
- :class:`ConvAutoencoderClassifier`: a convolutional autoencoder whose encoder features feed a dense
  classifier; :meth:`ConvAutoencoderClassifier.pretraining` gives the reconstruction phase that the
  neural base trains first with the same loop.

This module imports torch at import time; the builders in ``tasks/audio/models.py`` import it lazily.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class SpectrogramCNN(nn.Module):
    """An image CNN (``nn.Sequential`` ending in its output layer) on the spectrogram as a 1-channel image."""

    def __init__(self, cnn: nn.Sequential):
        super().__init__()
        self.body, self.head = cnn[:-1], cnn[-1]

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(x.unsqueeze(1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encode(x, mask))


class Ensemble(nn.Module):
    """Networks of one shape trained side by side from different initial weights (a deep ensemble).
    In training their class scores come stacked ``[members, batch, classes]``: the shared loop's loss is
    then the sum of the members' losses, so each member's gradient is the one it would get alone.
    Otherwise the log of their averaged class probabilities, so a softmax of it is that average."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([m.encode(x, mask) for m in self.members], 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.stack([m(x, mask) for m in self.members])
        if self.training:
            return out
        return torch.logsumexp(out.log_softmax(-1), 0) - math.log(len(self.members))


class FrameRNN(nn.Module):
    """A sequence recurrent net (conv front end, GRU/LSTM, pooling over real frames) over the frames."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net.encode(x.transpose(1, 2), mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2), mask)


class _Reconstruction(nn.Module):
    """The autoencoder path (encoder -> decoder) of a :class:`ConvAutoencoderClassifier`, sharing its weights."""

    def __init__(self, owner: ConvAutoencoderClassifier):
        super().__init__()
        self.encoder, self.decoder = owner.encoder, owner.decoder

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = self.decoder(self.encoder(x.unsqueeze(1)))
        return out[:, 0, : x.shape[1], : x.shape[2]]


class ConvAutoencoderClassifier(nn.Module):
    """Conv encoder (stride-2 blocks) and a mirrored transposed-conv decoder; a dense classifier on
    the flattened encoder features. Pre-training reconstructs the (masked, when SpecAugment is on)
    input; the classifier then trains on the encoder, fine-tuning it unless ``freeze_encoder``."""

    def __init__(self, bins: int, frames: int, n_classes: int, width: int, depth: int, dense: int,
                 dropout: float, pretrain_epochs: int, freeze_encoder: bool):
        super().__init__()
        enc: list[nn.Module] = []
        dec: list[nn.Module] = []
        c, h, w = 1, bins, frames
        for i in range(depth):
            out = width * 2**i
            enc += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            last = i == 0
            dec = [nn.ConvTranspose2d(out, c, 3, stride=2, padding=1, output_padding=1),
                   *([] if last else [nn.BatchNorm2d(c), nn.ReLU()]), *dec]
            c, h, w = out, (h + 1) // 2, (w + 1) // 2
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, dense), nn.ReLU(),
                                   *([nn.Dropout(dropout)] if dropout else []))
        self.head = nn.Linear(dense, n_classes)
        self.pretrain_epochs, self.freeze_encoder = pretrain_epochs, freeze_encoder

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.embed(self.encoder(x.unsqueeze(1)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encode(x, mask))

    def pretraining(self, inputs: tuple[Any, ...]) -> tuple[nn.Module, tuple[Any, ...], int] | None:
        """The reconstruction phase for the neural base: (module, inputs ``(x, mask, target x)``,
        epochs), or None with ``pretrain_epochs`` 0. Called before the classifier phase; afterwards
        the encoder is frozen when ``freeze_encoder``."""
        if not self.pretrain_epochs:
            return None
        return _Reconstruction(self), (inputs[0], inputs[1], inputs[0]), self.pretrain_epochs

    def after_pretraining(self) -> None:
        """Freeze the encoder (and its batch-norm statistics) when asked to."""
        if self.freeze_encoder:
            for p in self.encoder.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> ConvAutoencoderClassifier:
        super().train(mode)
        if mode and self.freeze_encoder and not any(p.requires_grad for p in self.encoder.parameters()):
            self.encoder.eval()  # frozen: keep the pre-trained batch-norm statistics
        return self


class Encoder(nn.Module):
    """The ``encode(x, mask)`` path of an audio network as a module of its own: its embedding, for
    another head (the multimodal fusion network's)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net.encode(x, mask)


def encoder_and_width(net: nn.Module, bins: int, frames: int) -> tuple[Encoder, int]:
    """:class:`Encoder` of ``net`` and the width of its embedding (one silent batch through it)."""
    enc = Encoder(net)
    was_training = net.training
    net.eval()
    with torch.no_grad():
        width = enc(torch.zeros(1, bins, frames), torch.ones(1, frames)).shape[1]
    net.train(was_training)
    return enc, int(width)
