"""Tiny generated data the modalities' contract examples share (:meth:`trainflow.modality.Modality.example`)."""

from __future__ import annotations

import numpy as np


def two_class_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy gray 8x8 images (uint8 ``[n, 8, 8]``) of two alternating classes ``y``: 0 has a bright
    top half, 1 a bright bottom half. The tiny data of the contract examples (image, multimodal)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
    x[y == 0, :4] += 180
    x[y == 1, 4:] += 180
    return x, y
