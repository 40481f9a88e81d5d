"""The image networks: ``cnn``, the seed's convolutional network, with width, depth, dropout,
batch-norm and activation options (built in :mod:`trainflow.tasks.common.networks`, which audio
shares). torch is imported only when a network is built."""

from __future__ import annotations

from typing import Any

from trainflow.registry import component
from trainflow.tasks.common.networks import CnnConfig, cnn


@component("model", "cnn", CnnConfig, tasks=("classification", "multilabel"), modality="image", random=True)
def build_cnn(config: CnnConfig, in_shape: tuple[int, int, int] = (3, 32, 32), n_classes: int = 10, **_: Any) -> Any:
    """Conv 32 3x3 -> pool -> Conv 64 3x3 -> pool -> Dense 64 -> Dense n_classes (the seed's CNN)."""
    return cnn(config, in_shape, n_classes)
