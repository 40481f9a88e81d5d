"""The torch device a spec's ``train.device`` names: the rule the training loop, prediction and the
cache keys (:func:`trainflow.cache_keys.auto_device`) share. torch is imported only when called."""

from __future__ import annotations

from typing import Any

from trainflow.errors import TrainflowError


def resolve_device(name: str) -> Any:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without one is an error."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise TrainflowError("train.device is 'cuda' but no CUDA device is available here; use 'auto' or 'cpu'.")
    return torch.device("cuda" if name in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
