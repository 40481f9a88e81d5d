"""Sequence model components: ``lstm``, ``gru``, ``rnn`` and ``cnn1d`` (a fully convolutional network).

A builder is called as ``build(config, in_channels=..., out_features=..., task=...)`` and returns a
``torch.nn.Module`` taking ``(x [batch, time, channels], mask [batch, time])``. The networks are in
:mod:`trainflow.tasks.sequence.networks`; torch is imported only when a model is built.

Defaults are the ones measured on GunPoint (150 steps, 50 training series; see docs/sequence.md):
a recurrent net that reads only its last hidden state stays at chance there, so the recurrent
models pool over every step (``pool: meanmax``) behind a small strided conv front end that
shortens the sequence 2x and extracts local shape.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainflow.registry import component
from trainflow.tasks.common.networks import RecurrentConfig, recurrent

SEQ_TASKS = ("classification", "multilabel", "regression", "forecasting")
#: the data modalities these networks accept (sequence classification/regression and forecasting)
SEQ_MODALITIES = ("sequence", "forecast")


class FcnConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Wang et al. (2017) use 128-256-128 filters; half the width trains 4x faster on a CPU and
    # still separates GunPoint.
    filters: list[int] = Field([64, 128, 64], min_length=1, description="Filters per conv block")
    kernels: list[int] = Field([8, 5, 3], min_length=1, description="Kernel size per conv block")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the linear head")

    @model_validator(mode="after")
    def _one_kernel_per_block(self) -> FcnConfig:
        if len(self.kernels) != len(self.filters):
            raise ValueError(f"'kernels' must have one kernel size per entry of 'filters' ({len(self.filters)}); "
                             f"got {len(self.kernels)}")
        return self


#: gradient steps the recipe aims for, and the bounds on its epochs (measured on GunPoint,
#: ArrowHead and ItalyPowerDemand: see docs/sequence.md)
RECIPE_STEPS, RECIPE_EPOCHS = 700, (40, 150)


def small_data_recipe(n: int) -> dict[str, Any]:
    """Training defaults for the conv nets (FCN, ResNet, InceptionTime), scaled to ``n`` training
    series: InceptionTime's recipe (Ismail Fawaz et al. 2020) shortened for a CPU. Every training
    series is trained on (a 20% carve-out of a 50-series set is too few to pick an epoch by, and
    costs a fifth of the data); the weights of the epoch with the lowest training loss are kept;
    batch ``n/10`` within 8..16; about 700 gradient steps (40 to 150 epochs) under a cosine
    learning-rate schedule."""
    batch = int(min(16, max(8, n // 10)))
    steps = max(1, math.ceil(n / batch))
    lo, hi = RECIPE_EPOCHS
    return {"batch_size": batch, "epochs": int(min(hi, max(lo, math.ceil(RECIPE_STEPS / steps)))),
            "schedule": "cosine", "val_fraction": 0.0, "patience": 0, "monitor": "train_loss"}


#: gradient steps the recurrent nets' recipe aims for, and the bounds on its epochs (GunPoint's
#: 50 series: batch 16 for 60 epochs, measured in docs/sequence.md)
RECURRENT_STEPS, RECURRENT_EPOCHS = 240, (10, 60)


def recurrent_recipe(n: int) -> dict[str, Any]:
    """Training defaults for the recurrent nets, scaled to ``n`` training series: batch ``n/4`` within
    16..128 (the loop's default 128 is one step per epoch on a small set) and about 240 gradient
    steps (10 to 60 epochs), at a constant learning rate, the last epoch kept."""
    batch = int(min(128, max(16, n // 4)))
    steps = max(1, math.ceil(n / batch))
    lo, hi = RECURRENT_EPOCHS
    return {"batch_size": batch, "epochs": int(min(hi, max(lo, math.ceil(RECURRENT_STEPS / steps))))}


for _cell in ("lstm", "gru", "rnn"):
    component("model", _cell, RecurrentConfig, tasks=SEQ_TASKS, modality="sequence",
              modalities=SEQ_MODALITIES, random=True, train_recipe=recurrent_recipe)(recurrent(_cell))


@component("model", "cnn1d", FcnConfig, tasks=SEQ_TASKS, modality="sequence", modalities=SEQ_MODALITIES,
           random=True, train_recipe=small_data_recipe)
def build_cnn1d(config: FcnConfig, *, in_channels: int, out_features: int, **_: Any) -> Any:
    """Fully convolutional network (FCN): conv blocks, global average pooling, linear head."""
    from trainflow.tasks.sequence.networks import FCN

    return FCN(in_channels, out_features, config.filters, config.kernels, config.dropout)


class InceptionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The paper's 32 filters x 4 branches and depth 6; kernels 40/20/10 made odd for 'same' padding.
    filters: int = Field(32, ge=1, description="Filters per branch (4 branches per module)")
    depth: int = Field(6, ge=1, description="Inception modules (a residual shortcut every 3)")
    kernels: list[int] = Field([39, 19, 9], min_length=1, description="Kernel sizes of the parallel convolutions")
    bottleneck: int = Field(32, ge=0, description="Channels of the 1x1 bottleneck (0 = none)")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the linear head")


class ResNetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Wang et al. (2017): three residual blocks of 64-128-128 filters, kernels 8-5-3.
    filters: list[int] = Field([64, 128, 128], min_length=1, description="Filters per residual block")
    kernels: list[int] = Field([8, 5, 3], min_length=1, description="Kernel sizes of the convs inside each block")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the linear head")


@component("model", "inception_time", InceptionConfig, tasks=("classification", "regression"), modality="sequence",
           random=True, train_recipe=small_data_recipe)
def build_inception_time(config: InceptionConfig, *, in_channels: int, out_features: int, **_: Any) -> Any:
    """InceptionTime-style network (inception modules, residual shortcuts, global average pooling)."""
    from trainflow.tasks.sequence.networks import InceptionTime

    return InceptionTime(in_channels, out_features, config.filters, config.depth, config.kernels,
                         config.bottleneck, config.dropout)


@component("model", "resnet1d", ResNetConfig, tasks=("classification", "regression"), modality="sequence",
           random=True, train_recipe=small_data_recipe)
def build_resnet1d(config: ResNetConfig, *, in_channels: int, out_features: int, **_: Any) -> Any:
    """ResNet for time series (three residual conv blocks, global average pooling)."""
    from trainflow.tasks.sequence.networks import ResNet1d

    return ResNet1d(in_channels, out_features, config.filters, config.kernels, config.dropout)
