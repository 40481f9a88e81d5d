"""Audio model components: ``audio_cnn``, ``audio_gru``, ``audio_lstm`` and ``audio_autoencoder``.

A builder is called as ``build(config, bins=..., frames=..., n_classes=...)`` and returns a
``torch.nn.Module`` taking ``(x [batch, bins, frames], mask [batch, frames])`` with an ``encode``
method (see :mod:`trainflow.tasks.audio.networks`). The CNN and the recurrent nets are the builders and
options the image and sequence families use too (:mod:`trainflow.tasks.common.networks`); torch is imported only when a model is built.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from trainflow.registry import component
from trainflow.tasks.common.networks import CnnConfig, DenseHead, RecurrentConfig, cnn, recurrent

TASKS = ("classification", "multilabel")  # multi-label: one sigmoid output per label


#: networks of an ``audio_cnn`` ensemble at most: each is a whole network's training, and a model folder's
#: JSON is something people share (a crafted ``members`` would build and run thousands of networks)
MAX_MEMBERS = 8


class AudioCnnConfig(CnnConfig):
    """The image CNN's options and the ensemble's size."""

    # a new voice moves one network's accuracy by 1-4 points between seeds (FSDD, one speaker held
    # out: docs/untuned.md); the average of a few networks' probabilities is steadier and better
    members: int = Field(1, ge=1, le=MAX_MEMBERS,
                         description="Networks trained side by side on the same batches from different initial "
                                     "weights, their class probabilities averaged (a deep ensemble; each member "
                                     f"costs a network's training; at most {MAX_MEMBERS}; classification)")


@component("model", "audio_cnn", AudioCnnConfig, tasks=TASKS, modality="audio", random=True)
def build_audio_cnn(config: AudioCnnConfig, *, bins: int, frames: int, n_classes: int, **_: Any) -> Any:
    """The image CNN (conv blocks -> dense -> output) on the spectrogram as a one-channel image; with
    ``members`` > 1, that many of them as one :class:`~trainflow.tasks.audio.networks.Ensemble`."""
    from trainflow.tasks.audio.networks import Ensemble, SpectrogramCNN

    nets = [SpectrogramCNN(cnn(config, in_shape=(1, bins, frames), n_classes=n_classes)) for _ in range(config.members)]
    return nets[0] if config.members == 1 else Ensemble(nets)


def _frame_rnn(cell: str):
    def build(config: RecurrentConfig, *, bins: int, n_classes: int, **_: Any) -> Any:
        from trainflow.tasks.audio.networks import FrameRNN

        return FrameRNN(recurrent(cell)(config, in_channels=bins, out_features=n_classes, task="classification"))

    build.__doc__ = f"The sequence {cell.upper()} (conv front end, pooling over real frames) over spectrogram frames."
    return build


for _cell in ("gru", "lstm"):
    component("model", f"audio_{_cell}", RecurrentConfig, tasks=TASKS, modality="audio", random=True)(_frame_rnn(_cell))


class AutoencoderConfig(DenseHead):
    width: int = Field(16, ge=1, description="Filters of the first encoder block (doubling per block)")
    depth: int = Field(2, ge=1, le=5, description="Encoder blocks (conv 3x3 stride 2 -> batch norm -> ReLU)")
    # A few epochs of reconstruction give the encoder general spectral features before labels are used.
    pretrain_epochs: int = Field(5, ge=0, description="Epochs of reconstruction pre-training (0: none)")
    freeze_encoder: bool = Field(False, description="Keep the pre-trained encoder fixed while the classifier trains")


@component("model", "audio_autoencoder", AutoencoderConfig, tasks=TASKS, modality="audio", random=True)
def build_audio_autoencoder(config: AutoencoderConfig, *, bins: int, frames: int, n_classes: int, **_: Any) -> Any:
    """Convolutional autoencoder pre-trained on reconstruction; a classifier on its encoder features."""
    from trainflow.tasks.audio.networks import ConvAutoencoderClassifier

    return ConvAutoencoderClassifier(bins, frames, n_classes, config.width, config.depth, config.dense, config.dropout,
                                     config.pretrain_epochs, config.freeze_encoder)
