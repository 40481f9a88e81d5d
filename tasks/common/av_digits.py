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

This module holds the pairing both halves share. Two loaders give the halves, joined by the clip's
stem (``data.join: stem``): ``av_digits_audio`` (the noisy clips, audio modality;
``tasks/audio/av_digits.py``) and ``av_digits_images`` (the paired, degraded images, image modality;
``tasks/image/av_digits.py``). Both must be given the same ``path``, ``seed``, ``train_per_digit``
and ``image_test_share``; items they do not share are dropped by the join and reported.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.tasks.common.load import existing_folder, files_with_suffix, pattern_groups

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

    root = existing_folder(options.path, "audio folder")
    files = files_with_suffix(root, [".flac", ".wav"])
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
