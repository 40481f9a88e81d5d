"""Fusion: how the branches of a multimodal pipeline become one classifier (the ``model`` of its spec).

- ``early_fusion``: each branch's preprocessed inputs, flattened and concatenated (a masked branch
  zeroed, plus one 0/1 mask column per input), then any tabular classifier (saved with skops);
- ``intermediate_fusion``: each branch's network without its output layer (a table: one hidden
  layer), embeddings concatenated with the mask flags, a joint head; trained end to end by the shared
  training loop, starting from the branches' trained weights (``pretrained``);
- ``late_fusion``: the branches' class probabilities averaged over the inputs present (``average``),
  or pooled with learned weights (``learned``: a weighted geometric mean, the logarithmic opinion
  pool, whose non-negative weights also temper over- or under-confident branches), fitted on a share
  of the training rows the branches did not train on.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.registry import REGISTRY, component

CLS = ("classification",)


class EarlyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field("logistic_regression", description="A tabular classifier for the joined features")
    options: dict[str, Any] = Field({}, description="Its options")


class IntermediateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: int = Field(64, ge=1, description="Units of the joint head's hidden layer (and of a table's encoder)")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout on the joined embeddings")
    # Starting from the trained branches makes the joint training short and steady on small data.
    pretrained: bool = Field(True, description="Start each encoder from its trained unimodal branch")


class LateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weighting: Literal["average", "learned"] = Field(
        "average", description="average: mean of the probabilities; learned: weighted geometric mean, weights "
                               "that minimise log loss on tune_share")
    tune_share: float = Field(0.2, gt=0, lt=0.5, description="learned: share of the training rows held out from "
                                                             "the branches to learn the weights on")


@component("model", "early_fusion", EarlyOptions, tasks=CLS, modality="multimodal")
def early_fusion(config: EarlyOptions, seed: int = 0, **_: Any) -> Any:
    """Concatenated preprocessed inputs of every branch, then a tabular classifier."""
    comp = REGISTRY.get("model", config.model, task="classification", where="model.model")
    return comp.build(comp.parse(config.options, where="model.options"), seed=seed, class_weight=None,
                      task="classification")


@component("model", "intermediate_fusion", IntermediateOptions, tasks=CLS, modality="multimodal")
def intermediate_fusion(config: IntermediateOptions, encoders: list[tuple[Any, int, int]] = (), n_classes: int = 2,
                        **_: Any) -> Any:
    """Each branch's encoder network, embeddings joined, a joint head, trained end to end."""
    return FusionNet(encoders, n_classes, config.hidden, config.dropout)


@component("model", "late_fusion", LateOptions, tasks=CLS, modality="multimodal")
def late_fusion(config: LateOptions, **_: Any) -> None:
    """Average (or learned weighting) of each branch's class probabilities."""
    return None


def FusionNet(encoders: list[tuple[Any, int, int]], n_classes: int, hidden: int, dropout: float) -> Any:
    """The intermediate-fusion network: ``encoders`` are ``(module, tensors it takes, output width)``;
    it is called with every branch's tensors in order, then the mask flags ``[n, branches]``."""
    import torch
    from torch import nn

    class _Fusion(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoders = nn.ModuleList(e for e, _, _ in encoders)
            self.takes = [k for _, k, _ in encoders]
            width = sum(w for _, _, w in encoders) + len(encoders)
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU(),
                                      nn.Linear(hidden, n_classes))

        def forward(self, *inputs: Any) -> Any:
            mask, parts, i = inputs[-1], [], 0
            for b, (enc, k) in enumerate(zip(self.encoders, self.takes)):
                parts.append(enc(*inputs[i:i + k]) * mask[:, b:b + 1])  # a missing input contributes nothing
                i += k
            return self.head(torch.cat([*parts, mask], dim=1))

    return _Fusion()


def fit_width(features: np.ndarray, width: int) -> np.ndarray:
    """``features`` with exactly ``width`` columns: zeros appended, or the last columns cut (a series
    longer or shorter than in training)."""
    if features.shape[1] >= width:
        return features[:, :width]
    return np.pad(features, ((0, 0), (0, width - features.shape[1])))


def early_matrix(parts: list[np.ndarray], present: np.ndarray) -> np.ndarray:
    """The early-fusion features: each branch's block (zeroed where missing), then the mask flags."""
    blocks = [np.nan_to_num(p.astype(np.float64)) * present[:, [b]] for b, p in enumerate(parts)]
    return np.concatenate([*blocks, present.astype(np.float64)], axis=1)


def late_average(probas: list[np.ndarray], present: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted average of the branches' probabilities over the inputs present in each row."""
    w = present * weights[None, :]
    w = w / np.clip(w.sum(1, keepdims=True), 1e-12, None)
    return sum(p * w[:, [b]] for b, p in enumerate(probas))


def log_pool(probas: list[np.ndarray], present: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted geometric mean of the branches' probabilities over the inputs present, renormalised:
    unlike the arithmetic mean it lets two inputs that each rule out different classes agree on one."""
    logits = sum(np.log(np.clip(p, 1e-9, None)) * (present[:, [b]] * weights[b]) for b, p in enumerate(probas))
    logits = logits - logits.max(1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(1, keepdims=True)


def learn_weights(probas: list[np.ndarray], present: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative branch weights for :func:`log_pool` that minimise its log loss on the rows given
    (which the branches did not train on)."""
    from scipy.optimize import minimize

    def loss(theta: np.ndarray) -> float:
        p = log_pool(probas, present, np.exp(theta))
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    return np.exp(minimize(loss, np.zeros(len(probas)), method="Nelder-Mead").x)
