"""Voice perturbation of training clips: speed (the waveform resampled), vocal tract length
perturbation (the mel filterbank's frequencies warped) and additive noise at a random SNR.

Unlike the warps of :func:`~trainflow.tasks.audio.features.warper`, which stretch the features a
network sees, these change the sound before the features are computed, so a perturbed clip is a
clip another voice could have spoken: faster or slower with its pitch and formants moved (Ko et al.
2015, Kaldi's 0.9 / 1.0 / 1.1), with a longer or shorter vocal tract (Jaitly & Hinton 2013), in noise.

- :func:`perturbed_features`: ``preprocess.audio.copies`` perturbed copies of every training clip,
  each with its own seeded random factors, as raw features ``[copies, n, bins, frames]``;
- :func:`bank_augmenter`: the training-batch function that draws, per example, the clip itself or
  one of its copies (then the batch warps and masks as before). Validation and test clips are never
  perturbed: only the training loop calls it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainflow.tasks.audio.features import AudioFeatures, fix_length, mel_features

#: the warp is linear up to this share of the Nyquist frequency, then bends so that Nyquist stays put
#: (Jaitly & Hinton's 4.8 kHz of 8 kHz is 0.6; 0.8 keeps the formants of an 8 kHz clip on the linear part)
VTLP_BOUNDARY = 0.8


def perturbs(config: AudioFeatures) -> bool:
    """Whether ``config`` asks for perturbed copies (speed, vtlp or noise_snr)."""
    return bool(config.speed or config.vtlp or config.noise_snr is not None)


def vtlp_frequencies(freqs: np.ndarray, alpha: float, nyquist: float) -> np.ndarray:
    """``freqs`` (Hz) warped by ``alpha``: scaled by it up to a boundary, then linearly to ``nyquist``."""
    bound = VTLP_BOUNDARY * nyquist * min(alpha, 1.0) / alpha
    high = nyquist - (nyquist - VTLP_BOUNDARY * nyquist * min(alpha, 1.0)) / (nyquist - bound) * (nyquist - freqs)
    return np.where(freqs <= bound, freqs * alpha, high)


def mel_filterbank(sample_rate: int, config: AudioFeatures, alpha: float = 1.0) -> np.ndarray:
    """librosa's (Slaney) mel filterbank ``[n_mels, 1 + n_fft // 2]`` with the FFT bins' frequencies
    warped by ``alpha`` (:func:`vtlp_frequencies`): a bin's energy goes to the band of its warped
    frequency. ``alpha`` 1 gives ``librosa.filters.mel`` itself."""
    import librosa

    fmax = config.fmax or sample_rate / 2
    freqs = vtlp_frequencies(librosa.fft_frequencies(sr=sample_rate, n_fft=config.n_fft), alpha, sample_rate / 2)
    mel_f = librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=fmax)
    ramps = mel_f[:, None] - freqs[None, :]
    fdiff = np.diff(mel_f)[:, None]
    weights = np.maximum(0, np.minimum(-ramps[:-2] / fdiff[:-1], ramps[2:] / fdiff[1:]))
    return (weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]).astype(np.float32)


def _speed(wave: np.ndarray, factor: float) -> np.ndarray:
    """``wave`` played ``factor`` times faster (resampled: pitch and formants up as much)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    ratio = Fraction(factor).limit_denominator(100)  # 1 +- 0.5 at 1 % steps: a short polyphase filter
    return resample_poly(wave, ratio.denominator, ratio.numerator).astype(np.float32)


def _noisy(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``wave`` plus white noise ``snr_db`` under its RMS level (the clip's own samples, not the padding)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if len(wave) else 0.0
    return (wave + rng.normal(size=len(wave)) * rms / 10 ** (snr_db / 20)).astype(np.float32)


def _factors(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    return 1 + (rng.random(n) * 2 - 1) * spread


def perturbed_features(waves: list[np.ndarray], sample_rate: int, config: AudioFeatures, seed: int) -> np.ndarray:
    """Raw features ``[copies, n, bins, frames]`` (before normalisation) of ``config.copies`` perturbed
    copies of each clip: speed factor and VTLP factor uniform in ``1 +- speed`` / ``1 +- vtlp`` and an
    SNR uniform in ``noise_snr``, drawn per copy and clip from ``seed``. Needs a fixed ``duration``."""
    rng = np.random.default_rng(seed)
    n, out = len(waves), []
    for _ in range(config.copies):
        speed, alpha = _factors(rng, n, config.speed), _factors(rng, n, config.vtlp)
        snr = rng.uniform(*config.noise_snr, size=n) if config.noise_snr is not None else None
        out.append(voice_features(waves, sample_rate, config, speed, alpha, snr, rng))
    return np.stack(out)


def voice_features(waves: list[np.ndarray], sample_rate: int, config: AudioFeatures, speed: np.ndarray,
                   alpha: np.ndarray, snr: np.ndarray | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Raw features ``[n, bins, frames]`` of ``waves`` each played ``speed[i]`` times faster, with its
    filterbank warped by ``alpha[i]`` and white noise ``snr[i]`` dB under it (None: none; noise from ``rng``)."""
    import librosa

    samples = round(config.duration * sample_rate)
    fixed = []
    for i, wave in enumerate(waves):
        w = np.asarray(wave, dtype=np.float32)
        w = _speed(w, float(speed[i])) if speed[i] != 1 else w
        w = _noisy(w, snr[i], rng) if snr is not None else w
        fixed.append(fix_length(w, samples))
    power = np.abs(librosa.stft(np.stack(fixed), n_fft=config.n_fft, hop_length=config.hop_length,
                                win_length=config.win_length, center=True)) ** 2  # [n, 1 + n_fft/2, frames]
    alpha = np.round(alpha, 3)  # factors 0.1 % apart share a filterbank
    mel = np.empty((len(fixed), config.n_mels, power.shape[2]), np.float32)
    for a in np.unique(alpha):
        which = alpha == a
        mel[which] = np.einsum("mf,nft->nmt", mel_filterbank(sample_rate, config, float(a)), power[which])
    return mel_features(mel, config)


def bank_augmenter(bank: Any, then: Any = None) -> Any:
    """A training-batch function ``augment(x, rows)`` (the loop passes the batch's rows) that replaces
    each example by itself or one of its perturbed copies, drawn uniformly (torch's RNG), then applies
    ``then`` (the warps and masks of :func:`~trainflow.tasks.audio.features.spec_augmenter`) if given.
    ``bank``: the normalised copies ``[copies, n, bins, frames]`` of the rows of the training tensors."""
    import torch

    bank = torch.as_tensor(bank)

    def augment(x: Any, rows: Any) -> Any:
        pick = torch.randint(0, bank.shape[0] + 1, (x.shape[0],))  # 0: the clip itself
        rows = torch.as_tensor(rows).cpu()
        copy = bank[(pick - 1).clamp(min=0), rows].to(x.device, x.dtype)
        x = torch.where((pick > 0).to(x.device)[:, None, None], copy, x)
        return then(x) if then is not None else x

    augment.rows = True
    return augment


def training_augmenter(waves: list[np.ndarray], sample_rate: int, frames: np.ndarray, config: AudioFeatures,
                       norm: Any, seed: int) -> Any:
    """The function of a training batch for ``config``: :func:`~trainflow.tasks.audio.features.spec_augmenter`,
    after :func:`bank_augmenter` over the perturbed copies of ``waves`` (the training rows, in order)
    normalised with the training clips' ``norm`` when ``config`` perturbs; None when nothing is on."""
    from trainflow.tasks.audio.features import normalized, spec_augmenter

    then = spec_augmenter(config)
    if not perturbs(config):
        return then
    raw = perturbed_features(waves, sample_rate, config, seed)
    k, n, bins, total = raw.shape
    bank = normalized(raw.reshape(k * n, bins, total), np.tile(frames, k), norm).reshape(raw.shape)
    return bank_augmenter(bank, then)


def describe(config: AudioFeatures) -> str:
    """The report's line for the perturbation of ``config`` ('' when off)."""
    if not perturbs(config):
        return ""
    parts = ([f"speed x(1 +- {config.speed:g})"] if config.speed else []) + (
        [f"VTLP x(1 +- {config.vtlp:g})"] if config.vtlp else []) + (
        [f"white noise at {config.noise_snr[0]:g}-{config.noise_snr[1]:g} dB SNR"] if config.noise_snr else [])
    return (f"voice perturbation of training clips: {', '.join(parts)}; {config.copies} copies a clip, each batch "
            "drawing the clip or one copy")


def tta_grid(config: AudioFeatures) -> list[tuple[float, float]]:
    """The (speed, VTLP factor) pairs a clip is predicted at: ``tta_speed`` x ``tta_vtlp`` ([(1, 1)] when
    both are off), then (t, 1/t) for each tempo t of ``tta_tempo`` (the pace changed, the formants kept)."""
    grid = [(float(s), float(a)) for s in (config.tta_speed or [1.0]) for a in (config.tta_vtlp or [1.0])]
    return grid + [(float(t), 1.0 / float(t)) for t in config.tta_tempo]


def voiced_at(waves: list[np.ndarray], sample_rate: int, config: AudioFeatures, speed: float,
              alpha: float) -> np.ndarray:
    """Raw features ``[n, bins, frames]`` of ``waves`` played ``speed`` times faster through the
    filterbank warped by ``alpha`` (:func:`voice_features` with one pair for every clip)."""
    n = len(waves)
    return voice_features(waves, sample_rate, config, np.full(n, speed), np.full(n, alpha))
