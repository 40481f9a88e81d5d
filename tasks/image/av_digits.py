"""The image half of the audio-visual digits demo (the pairing: :mod:`trainflow.tasks.common.av_digits`)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from trainflow.registry import component
from trainflow.tasks.common.av_digits import DIGITS, PairingOptions, digits_file, item_rng, pairs
from trainflow.tasks.image.loaders import Images


class ImagePairOptions(PairingOptions):
    occlusion: int = Field(4, ge=0, le=8, description="Side of the blanked square (pixels of 8; 0: none)")
    image_noise: float = Field(4.0, ge=0, description="Standard deviation of the added Gaussian noise (0-16 scale)")


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
