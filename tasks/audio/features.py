"""Audio features: log-mel spectrograms or MFCCs (librosa), per-frequency normalisation fitted on
training clips, and SpecAugment-style masking of training batches.

The reusable seam (the multimodal pipeline uses it for its audio branch):

- :class:`AudioFeatures` (the spec's ``preprocess.audio``): window, hop, mel bins / MFCCs, duration;
- :func:`file_features`: clip paths + sample rate + :class:`AudioFeatures` -> ``[n, bins, frames]``
  float32 and the real frames of each clip (:func:`wave_features` does the same for decoded waves);
- :class:`FrequencyNormalizer`: ``fit`` on training features only, ``transform``, and a JSON
  ``state`` saved with the model (``from_state`` at predict time);
- :func:`spec_augmenter`: the training-batch augmentation (``Prepared.augment``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

#: added before the logarithm, so silence gives a finite floor instead of -inf
LOG_FLOOR = 1e-6


class AudioFeatures(BaseModel):
    """How clips become features (``preprocess.audio``); the statistics are fitted on training clips."""

    model_config = ConfigDict(extra="forbid")
    features: Literal["logmel", "mfcc"] = Field("logmel", description="logmel: log mel spectrogram; mfcc: MFCCs")
    # FSDD's clips are 0.44 s on average, 98% are under 0.8 s; a fixed length lets a CNN see a 2-D image.
    duration: float | None = Field(1.0, gt=0, description="Pad with silence / trim every clip to this many seconds; "
                                                          "null: keep lengths (recurrent models, padded with a mask)")
    n_fft: int = Field(512, ge=16, description="FFT window (samples)")
    win_length: int | None = Field(None, ge=16, description="Window length (samples); default n_fft")
    hop_length: int = Field(128, ge=1, description="Samples between frames")
    n_mels: int = Field(40, ge=1, description="Mel bands")
    n_mfcc: int = Field(20, ge=1, description="MFCCs (features: mfcc)")
    fmin: float = Field(0.0, ge=0, description="Lowest frequency of the mel bands (Hz)")
    fmax: float | None = Field(None, gt=0, description="Highest frequency (Hz); default: half the sample rate")
    normalize: Literal["per_frequency", "none"] = Field(
        "per_frequency", description="per_frequency: each bin to mean 0, std 1 with training statistics; none")
    # SpecAugment (Park et al. 2019): masking a few bands and frames of training batches regularises
    # small speech models; 0 masks turns it off.
    freq_masks: int = Field(2, ge=0, description="Frequency masks per training example (0: off)")
    freq_mask_width: int = Field(5, ge=1, description="Widest frequency mask (bins)")
    time_masks: int = Field(2, ge=0, description="Time masks per training example (0: off)")
    time_mask_width: int = Field(8, ge=1, description="Widest time mask (frames)")

    @property
    def bins(self) -> int:
        """Feature rows per frame."""
        return self.n_mfcc if self.features == "mfcc" else self.n_mels


def fix_length(wave: np.ndarray, samples: int | None) -> np.ndarray:
    """``wave`` padded with zeros or trimmed to ``samples`` (unchanged for None)."""
    if samples is None or len(wave) == samples:
        return wave
    if len(wave) > samples:
        return wave[:samples]
    return np.pad(wave, (0, samples - len(wave)))


def frames_of(samples: int, config: AudioFeatures) -> int:
    """Frames of a clip of ``samples`` samples (librosa's centred framing)."""
    return 1 + samples // config.hop_length


def clip_features(wave: np.ndarray, sample_rate: int, config: AudioFeatures) -> np.ndarray:
    """One decoded clip ``[samples]`` -> ``[bins, frames]`` float32 (natural-log mel power, or MFCCs);
    clips of one length stacked ``[n, samples]`` -> ``[n, bins, frames]``."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=np.asarray(wave, dtype=np.float32), sr=sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        win_length=config.win_length, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax)
    logmel = np.log(mel + LOG_FLOOR)
    if config.features == "mfcc":
        return librosa.feature.mfcc(S=logmel, n_mfcc=config.n_mfcc).astype(np.float32)
    return logmel.astype(np.float32)


def wave_features(waves: list[np.ndarray], sample_rate: int, config: AudioFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Decoded clips -> features ``[n, bins, frames]`` (zero-padded to the longest clip when
    ``config.duration`` is None) and the real frames of each clip ``[n]``."""
    samples = round(config.duration * sample_rate) if config.duration else None
    fixed = [fix_length(np.asarray(w, dtype=np.float32), samples) for w in waves]
    frames = np.array([frames_of(len(w), config) for w in fixed], dtype=np.int64)
    out = np.zeros((len(fixed), config.bins, int(frames.max()) if len(frames) else 0), dtype=np.float32)
    if samples is not None and fixed:  # one length: one batched librosa call (several times faster)
        return clip_features(np.stack(fixed), sample_rate, config), frames
    quiet = clip_features(np.zeros(max(config.n_fft, 1), np.float32), sample_rate, config)[:, :1]
    for i, w in enumerate(fixed):
        f = clip_features(w, sample_rate, config)
        out[i, :, : f.shape[1]] = f
        out[i, :, f.shape[1]:] = quiet  # padding looks like silence, not like a 0 dB tone
    return out, frames


def file_features(paths: list[str | Path], sample_rate: int, config: AudioFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Audio files (read, mixed to mono and resampled to ``sample_rate`` by
    :func:`trainflow.tasks.audio.loaders.read_clip`) -> :func:`wave_features`. DataError naming a
    file that cannot be read."""
    from trainflow.tasks.audio.loaders import read_clip

    return wave_features([read_clip(p, sample_rate)[0] for p in paths], sample_rate, config)


def frame_mask(frames: np.ndarray, total: int) -> np.ndarray:
    """``[n, total]`` float32: 1 for the real frames of each clip, 0 for padding."""
    return (np.arange(total)[None, :] < np.asarray(frames)[:, None]).astype(np.float32)


class FrequencyNormalizer:
    """Per-frequency-bin standardisation (an estimator: ``fit`` on training features only, state in
    attributes ending in ``_``); padded frames are left out of the statistics."""

    def __init__(self, normalize: str = "per_frequency"):
        self.normalize = normalize

    def fit(self, x: np.ndarray, frames: np.ndarray | None = None) -> FrequencyNormalizer:
        """Learn each bin's mean and std from ``x`` [n, bins, T] (real frames only)."""
        mask = frame_mask(frames, x.shape[2]) if frames is not None else np.ones(x.shape[::2], np.float32)
        weight = mask[:, None, :]
        count = max(float(weight.sum()), 1.0)
        mean = (x * weight).sum(axis=(0, 2), dtype=np.float64) / count
        var = (((x - mean[None, :, None]) ** 2) * weight).sum(axis=(0, 2), dtype=np.float64) / count
        std = np.sqrt(var)
        self.mean_ = mean.tolist() if self.normalize != "none" else [0.0] * x.shape[1]
        self.std_ = np.where(std > 1e-6, std, 1.0).tolist() if self.normalize != "none" else [1.0] * x.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``x`` [n, bins, T] standardised with the training statistics (float32)."""
        mean, std = np.asarray(self.mean_, np.float32), np.asarray(self.std_, np.float32)
        return ((x - mean[None, :, None]) / std[None, :, None]).astype(np.float32)

    def state(self) -> dict[str, Any]:
        return {"normalize": self.normalize, "mean": self.mean_, "std": self.std_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FrequencyNormalizer:
        norm = cls(state["normalize"])
        norm.mean_, norm.std_ = list(state["mean"]), list(state["std"])
        return norm


def fit_normalization(x: np.ndarray, frames: np.ndarray | None, config: AudioFeatures) -> FrequencyNormalizer:
    """The normaliser of ``config.normalize`` fitted on training features ``x`` [n, bins, T]."""
    return FrequencyNormalizer(config.normalize).fit(x, frames)


def spec_augmenter(config: AudioFeatures) -> Any:
    """A function of a training batch ``[b, bins, frames]`` that zeroes random frequency bands and
    time spans (SpecAugment masking, on the batch's device), or None when both are off. Zero is the
    training mean after per-frequency normalisation, so a mask reads as "average", not as a tone."""
    if not config.freq_masks and not config.time_masks:
        return None
    import torch

    def masks(b: int, size: int, count: int, width: int, device: Any) -> Any:
        keep = torch.ones(b, size, dtype=torch.bool, device=device)
        pos = torch.arange(size, device=device)[None, :]
        for _ in range(count):
            w = torch.randint(0, width + 1, (b, 1), device=device)
            start = (torch.rand(b, 1, device=device) * (size - w + 1).clamp(min=1)).long()
            keep &= ~((pos >= start) & (pos < start + w))
        return keep

    def augment(x: Any) -> Any:
        b, bins, frames = x.shape
        keep = masks(b, bins, config.freq_masks, min(config.freq_mask_width, bins), x.device)[:, :, None]
        keep = keep & masks(b, frames, config.time_masks, min(config.time_mask_width, frames), x.device)[:, None, :]
        return x * keep

    return augment
