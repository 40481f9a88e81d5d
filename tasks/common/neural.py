"""The base of the neural modalities (images, sequences, forecasting, ...): what they share.

A neural modality trains a registered ``model`` component (a ``torch.nn.Module`` builder) with the
one training loop of :mod:`trainflow.tasks.common.training`, configured by the spec's ``train``
section, and saves it as safetensors weights plus a JSON config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainflow.modality import Modality
from trainflow.tasks.common.training import TrainConfig

if TYPE_CHECKING:
    from trainflow.flows.spec import PipelineSpec


class NeuralModality(Modality):
    """A modality whose models are PyTorch networks trained by the shared loop."""

    sections = {"train": TrainConfig}

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """``train.device: cuda`` needs a CUDA device where the spec is run."""
        if spec.train.device == "cuda":
            import torch  # only for this check: a CPU spec does not pay for the import

            if not torch.cuda.is_available():
                return ["'train.device' is 'cuda' but no CUDA device is available here; use 'auto' or 'cpu'."]
        return []
