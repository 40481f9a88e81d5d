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
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

#: added before the logarithm, so silence gives a finite floor instead of -inf
LOG_FLOOR = 1e-6
#: values of tta_speed / tta_vtlp / tta_tempo at most (a grid of 5 x 5 is 25 passes over every predicted clip)
TTA_MAX = 5
#: the fields of ``preprocess.audio`` a candidate of ``select`` may change: the normalisation and the
#: augmentation of training batches, never the features' shape (one feature pass serves every candidate)
SELECTABLE = ("normalize", "freq_masks", "freq_mask_width", "time_masks", "time_mask_width", "freq_warp",
              "time_stretch", "time_shift", "mix_clips", "speed", "vtlp", "noise_snr", "copies",
              "tta_speed", "tta_vtlp", "tta_tempo")


class AudioSelect(BaseModel):
    """``preprocess.audio.select``: the recipe chosen by cross-validation over groups of the training
    clips (speakers), so the score that chooses is the score of a voice the fold never heard."""

    model_config = ConfigDict(extra="forbid")
    candidates: list[dict[str, Any]] = Field(
        ..., min_length=2, description="Recipes to compare, each a change of preprocess.audio's normalisation or "
                                       "augmentation fields ({} is the section as written)")
    group: str | None = Field(None, description="Named group of data.pattern (or split.group) whose values stay on "
                                                "one side of every fold, e.g. speaker; default: split.group")
    # 3 folds of a few epochs: a ranking of recipes, not a final fit (5 FSDD speakers: 2 + 2 + 1 held out)
    folds: int = Field(3, ge=2, description="Folds of the grouped cross-validation (fewer when fewer groups)")
    epochs: int = Field(8, ge=1, description="Training epochs of each fold's network")


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
    # per_clip is what speech wants (the FSDD demo: with MFCCs it lifted held-out speakers by 8-20
    # points, docs/untuned.md) but not the default: it erases whatever is steady within a clip, which
    # for a hum, a tone or an engine is the very signal.
    normalize: Literal["per_clip", "per_frequency", "none"] = Field(
        "per_frequency", description="per_clip: each clip's bins to mean 0, std 1 over its own voiced frames (cepstral "
                                "mean/variance normalisation: removes a voice's and a microphone's colouring), then "
                                "per_frequency; per_frequency: each bin to mean 0, std 1 with training statistics; none")
    # SpecAugment (Park et al. 2019): masking a few bands and frames of training batches regularises
    # small speech models; 0 masks turns it off.
    freq_masks: int = Field(2, ge=0, description="Frequency masks per training example (0: off)")
    freq_mask_width: int = Field(5, ge=1, description="Widest frequency mask (bins)")
    time_masks: int = Field(2, ge=0, description="Time masks per training example (0: off)")
    time_mask_width: int = Field(8, ge=1, description="Widest time mask (frames)")
    # Vocal tract length perturbation (Jaitly & Hinton 2013) and speed perturbation (Ko et al. 2015),
    # done on the features of each training batch (one resampling, no second feature pass): a new
    # voice is mostly a stretched spectrum and a different pace.
    freq_warp: float = Field(0.0, ge=0, lt=0.5, description="Stretch each training example's bins by a random factor "
                                                            "in 1 +- this, from the lowest bin (0: off)")
    time_stretch: float = Field(0.0, ge=0, lt=0.5, description="Stretch each training example in time by a random "
                                                               "factor in 1 +- this (speed perturbation; 0: off)")
    time_shift: int = Field(0, ge=0, description="Shift each training example by up to this many frames (0: off)")
    # "mixing with noise" whose noise is the training clips themselves (nothing downloaded): another
    # example of the batch added to each one; on normalised features a regulariser, not an acoustic mix.
    mix_clips: float = Field(0.0, ge=0, le=1, description="Add another training example of the batch at a random "
                                                          "weight up to this to each one, label kept (0: off)")
    # Perturbations of the voice itself, on the training clips' waveforms and filterbank (not on the
    # coefficients): each of `copies` perturbed copies of a clip gets its own random factors, its features
    # are computed once before training, and each training batch draws the original or one copy per
    # example (tasks/audio/perturb.py). Kaldi's speed perturbation is 0.9 / 1.0 / 1.1; VTLP 0.9-1.1.
    speed: float = Field(0.0, ge=0, lt=0.5, description="Resample each copy's waveform by a random factor in 1 +- "
                                                        "this: pitch, formants and pace move together (0: off)")
    vtlp: float = Field(0.0, ge=0, lt=0.5, description="Warp the mel filterbank's frequencies of each copy by a random "
                                                       "factor in 1 +- this (vocal tract length perturbation; 0: off)")
    noise_snr: list[float] | None = Field(None, description="[low, high]: add white noise to each copy at a random "
                                                            "signal-to-noise ratio in this range (dB); null: off")
    copies: int = Field(4, ge=1, le=16, description="Perturbed copies of each training clip (speed, vtlp, noise_snr)")
    # test-time augmentation: a new voice may be slower or lower than any the network heard; the
    # average over a few speeds meets it part-way (the training clips are never touched by it)
    # at most TTA_MAX values each: every pair is a feature pass and a forward pass of each predicted
    # clip, and a model folder's JSON is something people share (a crafted grid of 300 x 300 hung predict)
    tta_speed: list[Annotated[float, Field(ge=0.5, le=1.5)]] = Field(
        [], max_length=TTA_MAX, description="Predict each clip played at each of these speeds (e.g. [0.9, 1.0, 1.1]) "
                                            "and average the class probabilities (test-time augmentation; []: off; "
                                            f"at most {TTA_MAX})")
    tta_vtlp: list[Annotated[float, Field(ge=0.5, le=1.5)]] = Field(
        [], max_length=TTA_MAX, description="The same over these VTLP factors of the filterbank (with tta_speed: "
                                            f"every pair; []: off; at most {TTA_MAX})")
    # speed t with the filterbank warped by 1/t moves the formants back where the voice had them: the
    # same words said faster or slower (a slow voice such as FSDD's lucas scores best at 1.1-1.2)
    tta_tempo: list[Annotated[float, Field(ge=0.5, le=1.5)]] = Field(
        [], max_length=TTA_MAX, description="Also predict each clip at each of these tempos: played t times faster "
                                            "through the filterbank warped by 1/t, so the pace changes and the "
                                            "formants stay (e.g. [0.8, 1.2]); added to the tta_speed x tta_vtlp "
                                            f"pairs (test-time augmentation; []: off; at most {TTA_MAX})")
    select: AudioSelect | None = Field(None, description="Choose among candidate recipes by grouped cross-validation "
                                                         "on the training clips (classification)")

    @model_validator(mode="after")
    def _candidates_valid(self) -> AudioFeatures:
        snr = self.noise_snr
        if snr is not None and (len(snr) != 2 or snr[0] > snr[1]):
            raise ValueError(f"preprocess.audio.noise_snr must be [low, high] in dB with low <= high (e.g. [10, 30]); "
                             f"got {snr}")
        if (self.speed or self.vtlp or snr is not None or self.tta_speed or self.tta_vtlp or self.tta_tempo) \
                and self.duration is None:
            raise ValueError("preprocess.audio.speed, vtlp, noise_snr, tta_speed, tta_vtlp and tta_tempo need a fixed "
                             "preprocess.audio.duration (a perturbed clip must have the original's frames); got "
                             "duration null")
        for i, cand in enumerate(self.select.candidates if self.select else []):
            wrong = sorted(set(cand) - set(SELECTABLE))
            if wrong:
                raise ValueError(f"preprocess.audio.select.candidates[{i}] changes {wrong}; a candidate may change "
                                 f"only {', '.join(SELECTABLE)}")
            self.candidate(i)  # its values pass the field checks
        return self

    def candidate(self, i: int) -> AudioFeatures:
        """The section with ``select.candidates[i]`` applied, validated, without ``select``."""
        base = self.model_dump(exclude={"select"})
        return AudioFeatures.model_validate({**base, **self.select.candidates[i]})

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
    return mel_features(mel, config)


def mel_features(mel: np.ndarray, config: AudioFeatures) -> np.ndarray:
    """Mel power ``[..., n_mels, frames]`` -> the features of ``config`` (natural-log mel, or MFCCs), float32."""
    import librosa

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


#: frames more than this far (natural log of power: 40 dB) under a clip's loudest frame are left out of
#: its own statistics, so the silence padding a short clip to ``duration`` does not set its mean
VOICED_RANGE = 4 * np.log(10)


def per_clip(x: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
    """``x`` [n, bins, T] with each clip's bins standardised over its own voiced frames (real frames
    within :data:`VOICED_RANGE` of its loudest): cepstral mean and variance normalisation per utterance."""
    n, _, total = x.shape
    real = frame_mask(frames, total) if frames is not None else np.ones((n, total), np.float32)
    level = np.where(real > 0, x.mean(axis=1), -np.inf)
    voiced = (level >= level.max(axis=1, keepdims=True) - VOICED_RANGE).astype(np.float32)[:, None, :]
    count = np.maximum(voiced.sum(axis=2, keepdims=True), 1.0)
    mean = (x * voiced).sum(axis=2, keepdims=True) / count
    std = np.sqrt((((x - mean) ** 2) * voiced).sum(axis=2, keepdims=True) / count)
    return ((x - mean) / np.where(std > 1e-6, std, 1.0)).astype(np.float32)


def fit_normalization(x: np.ndarray, frames: np.ndarray | None, config: AudioFeatures) -> FrequencyNormalizer:
    """The normaliser of ``config.normalize`` fitted on training features ``x`` [n, bins, T] (for
    ``per_clip``, features already passed through :func:`per_clip`)."""
    return FrequencyNormalizer(config.normalize).fit(x, frames)


def normalized(x: np.ndarray, frames: np.ndarray | None, norm: FrequencyNormalizer) -> np.ndarray:
    """Features standardised as the model was trained: :func:`per_clip` first when its
    normalisation is ``per_clip``, then the per-frequency statistics of the training clips."""
    return norm.transform(per_clip(x, frames) if norm.normalize == "per_clip" else x)


def spec_augmenter(config: AudioFeatures) -> Any:
    """A function of a training batch ``[b, bins, frames]`` that warps each example (frequency warp,
    time stretch and shift: :func:`warper`), mixes another example into it (:func:`mixer`), then
    zeroes random frequency bands and time spans (SpecAugment masking, on the batch's device); None
    when all are off. Zero is the training mean after per-frequency normalisation, so a mask reads as
    "average", not as a tone."""
    warp, mix = warper(config), mixer(config)
    if mix is not None:
        warp = mix if warp is None else (lambda x, w=warp: mix(w(x)))
    if not config.freq_masks and not config.time_masks:
        return warp
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
        if warp is not None:
            x = warp(x)
        b, bins, frames = x.shape
        keep = masks(b, bins, config.freq_masks, min(config.freq_mask_width, bins), x.device)[:, :, None]
        keep = keep & masks(b, frames, config.time_masks, min(config.time_mask_width, frames), x.device)[:, None, :]
        return x * keep

    return augment


def warper(config: AudioFeatures) -> Any:
    """A function of a training batch ``[b, bins, frames]`` that resamples each example with its own
    random frequency warp (bins from the lowest one), time stretch (around the start) and shift, in
    one bilinear ``grid_sample``; points read from outside the example get 0 (the training mean).
    None when ``freq_warp``, ``time_stretch`` and ``time_shift`` are all 0."""
    if not (config.freq_warp or config.time_stretch or config.time_shift):
        return None
    import torch

    def warp(x: Any) -> Any:
        b, bins, frames = x.shape
        one = torch.ones(b, device=x.device, dtype=x.dtype)

        def factor(spread: float) -> Any:  # 1 +- spread, uniform
            return one + (torch.rand(b, device=x.device, dtype=x.dtype) * 2 - 1) * spread

        alpha, beta = factor(config.freq_warp), factor(config.time_stretch)
        shift = (torch.randint(-config.time_shift, config.time_shift + 1, (b,), device=x.device).to(x.dtype)
                 if config.time_shift else 0 * one) * 2 / max(frames - 1, 1)
        # grid coordinates in [-1, 1] (align_corners): the output point u reads the input at
        # scale * (u + 1) - 1 - shift, so -1 (the lowest bin, the first frame) stays put
        theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 0, 2] = beta, beta - 1 - shift  # x: frames
        theta[:, 1, 1], theta[:, 1, 2] = alpha, alpha - 1  # y: bins
        grid = torch.nn.functional.affine_grid(theta, (b, 1, bins, frames), align_corners=True)
        return torch.nn.functional.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="zeros",
                                               align_corners=True)[:, 0]

    return warp


def mixer(config: AudioFeatures) -> Any:
    """A function of a training batch ``[b, bins, frames]`` that adds to each example another one of
    the batch (a random permutation) at a weight drawn uniformly from ``[0, mix_clips]``, scaled back to
    the example's variance (``1 / sqrt(1 + w^2)``; the examples are standardised); None when off."""
    if not config.mix_clips:
        return None
    import torch

    def mix(x: Any) -> Any:
        b = x.shape[0]
        w = torch.rand(b, 1, 1, device=x.device, dtype=x.dtype) * config.mix_clips
        other = x[torch.randperm(b, device=x.device)]
        return (x + w * other) / torch.sqrt(1 + w * w)

    return mix
