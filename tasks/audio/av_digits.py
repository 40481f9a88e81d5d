"""The audio half of the audio-visual digits demo (the pairing: :mod:`trainflow.tasks.common.av_digits`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from trainflow.registry import component
from trainflow.tasks.audio.loaders import Clips, read_clips
from trainflow.tasks.common.av_digits import RATE, PairingOptions, digits_file, item_rng, pairs


class AudioPairOptions(PairingOptions):
    # 0 dB: the noise is as loud as the speech; with a small training set the speech alone stays near 0.8-0.9.
    snr_db: float = Field(0.0, description="Signal-to-noise ratio of the mixed-in white noise (dB)")


@component("loader", "av_digits_audio", AudioPairOptions, modality="audio", source_files=digits_file)
def load_av_digits_audio(config: AudioPairOptions) -> Clips:
    """The audio half of the audio-visual digits: FSDD clips with white noise mixed in at ``snr_db``."""
    chosen = pairs(config)
    root = Path(config.path)
    waves, info = read_clips([root / p.file for p in chosen], root, RATE)
    noisy = []
    for p, wave in zip(chosen, waves):
        power = float(np.mean(np.square(wave, dtype=np.float64))) if len(wave) else 0.0
        noise = item_rng(config.seed, p.stem, "audio").normal(size=len(wave)) * np.sqrt(power / 10 ** (config.snr_db / 10))
        noisy.append((wave + noise).astype(np.float32))
    return Clips(waves=noisy, labels=[p.digit for p in chosen], files=[p.file for p in chosen], info=info,
                 sample_rate=RATE, source=f"{config.path} (noise at {config.snr_db:g} dB SNR)",
                 is_test=np.array([p.test for p in chosen]))
