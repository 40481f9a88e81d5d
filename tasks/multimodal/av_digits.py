"""The audio-visual digits demo data: each spoken digit of FSDD paired with a handwritten one.

Like the AV-MNIST benchmark (spoken and written digits of the same class, paired), built at load
time from data we ship, so nothing is downloaded or added to the repository:

- **clips**: ``data/fsdd`` (``{digit}_{speaker}_{index}.flac``); takes 0-4 of every speaker and digit
  are the test set (FSDD's convention, 300 clips); ``train_per_digit`` of the other 270 takes of each
  digit are drawn for training (seeded), all when null;
- **pairing**: scikit-learn's 8x8 digits (``load_digits``, ~180 per digit) are split per digit by a
  seeded permutation into a test pool (``image_test_share``) and a training pool, so no image is in
  both parts; the clips of one digit and part, in a seeded order, take that pool's images in turn
  (distinct while the pool lasts, then again from its start); the installed scikit-learn's digits
  file is in the data digest (:func:`digits_file`), so other digits never reuse the cache;
- **degradation** (each item from its own generator, seeded by ``seed`` and the clip's name):
  the image has a square of ``occlusion`` x ``occlusion`` pixels blanked at a random place and
  Gaussian noise of standard deviation ``image_noise`` (pixel values 0-16) added, then clipped to
  0-16; the clip has white Gaussian noise mixed in at ``snr_db`` dB below its own mean power.

Two loaders give the two halves, joined by the clip's stem (``data.join: stem``): ``av_digits_audio``
(the noisy clips, audio modality) and ``av_digits_images`` (the paired, degraded images, image
modality). Both must be given the same ``path``, ``seed``, ``train_per_digit`` and
``image_test_share``; items they do not share are dropped by the join and reported.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.registry import component
from trainflow.tasks.audio.loaders import Clips, audio_files, audio_root, pattern_groups, read_clips
from trainflow.tasks.image.loaders import Images

FSDD_PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.(flac|wav)"
TEST_TAKES = {"0", "1", "2", "3", "4"}  # FSDD's conventional test set
RATE = 8000  # FSDD's sample rate
DIGITS = [str(d) for d in range(10)]


class PairingOptions(BaseModel):
    """Which clips, and which image each one gets (the same in both loaders)."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="The FSDD folder ({digit}_{speaker}_{index}.flac files)")
    seed: int = Field(0, description="Seeds the clip choice, the pairing and every item's degradation")
    train_per_digit: int | None = Field(None, ge=1, le=270, description="Training clips per digit (of 270, "
                                                                        "seeded); null: all. The test set is "
                                                                        "always takes 0-4 (300 clips)")
    image_test_share: float = Field(0.25, gt=0, lt=1, description="Share of each digit's images kept for "
                                                                  "pairing with test clips")


class AudioPairOptions(PairingOptions):
    # 0 dB: the noise is as loud as the speech; with a small training set the speech alone stays near 0.8-0.9.
    snr_db: float = Field(0.0, description="Signal-to-noise ratio of the mixed-in white noise (dB)")


class ImagePairOptions(PairingOptions):
    occlusion: int = Field(4, ge=0, le=8, description="Side of the blanked square (pixels of 8; 0: none)")
    image_noise: float = Field(4.0, ge=0, description="Standard deviation of the added Gaussian noise (0-16 scale)")


@dataclass
class Pair:
    """One clip and its image: the clip's file (relative to the FSDD folder), digit, whether it is a
    test item, and the index of its scikit-learn digits image."""

    file: str
    digit: str
    test: bool
    image: int

    @property
    def stem(self) -> str:
        return Path(self.file).stem


def digits_file(options: PairingOptions | None = None) -> list[Path]:
    """The installed scikit-learn's digits data file, which ``load_digits`` reads: its content is in
    the data digest (``source_files``), so a scikit-learn whose digits differ does not reuse the cache."""
    from importlib.resources import files

    return [Path(str(files("sklearn.datasets.data").joinpath("digits.csv.gz")))]


def item_rng(seed: int, name: str, what: str) -> np.random.Generator:
    """The generator of one item's degradation: it depends on the seed and the item only."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), zlib.crc32(what.encode())])


def pairs(options: PairingOptions) -> list[Pair]:
    """The clips chosen and the image paired with each (see the module docstring), in file order."""
    from sklearn.datasets import load_digits

    root = audio_root(options.path)
    files = audio_files(root, [".flac", ".wav"])
    groups = pattern_groups(files, FSDD_PATTERN, root, ("label", "index"))
    target = load_digits().target
    rng = np.random.default_rng(options.seed)
    chosen: list[Pair] = []
    for digit in DIGITS:
        images = rng.permutation(np.flatnonzero(target == int(digit)))
        cut = int(round(options.image_test_share * len(images)))
        pools = {True: images[:cut], False: images[cut:]}
        for test in (True, False):
            clips = [i for i, (lab, idx) in enumerate(zip(groups["label"], groups["index"]))
                     if lab == digit and (idx in TEST_TAKES) == test]
            clips = list(rng.permutation(clips))
            if not test and options.train_per_digit is not None:
                clips = clips[: options.train_per_digit]
            pool = pools[test]
            chosen += [Pair(files[c].name, digit, test, int(pool[k % len(pool)])) for k, c in enumerate(clips)]
    return sorted(chosen, key=lambda p: p.file)


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


@component("loader", "av_digits_images", ImagePairOptions, modality="image", image_size=(8, 8),
           source_files=digits_file)
def load_av_digits_images(config: ImagePairOptions) -> Images:
    """The image half of the audio-visual digits: a scikit-learn digits image of each clip's digit,
    occluded and noisy; named by the clip's stem."""
    from sklearn.datasets import load_digits

    chosen = pairs(config)
    pixels = load_digits().images
    x = np.zeros((len(chosen), 8, 8, 1), np.float32)
    for i, p in enumerate(chosen):
        rng = item_rng(config.seed, p.stem, "image")
        img = pixels[p.image].astype(np.float64)
        if config.occlusion:
            r, c = rng.integers(0, 8 - config.occlusion + 1, 2)
            img[r: r + config.occlusion, c: c + config.occlusion] = 0.0
        img = img + rng.normal(0.0, config.image_noise, img.shape)
        x[i, :, :, 0] = np.clip(img, 0.0, 16.0)
    return Images(x=x, y=np.array([int(p.digit) for p in chosen], dtype=np.int64), classes=DIGITS, max_value=16.0,
                  source=f"sklearn.datasets.load_digits paired with {config.path}",
                  is_test=np.array([p.test for p in chosen]), files=[p.stem for p in chosen])
