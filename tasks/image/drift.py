"""What drift is measured on for images: per-channel brightness and contrast, and where the ink is.

Each image becomes a row of numbers on the 0-1 pixel scale: the mean and standard deviation of each
channel (another camera, exposure or noise moves them) and the mean brightness of each cell of a
4 x 4 grid (a rotated, shifted or cropped subject moves the ink between cells while the image's overall
brightness may not change). Prediction resizes new images to the training size (and warns), so the size
itself is not compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: cells per side of the brightness grid
GRID = 4
#: images summarised at a time
CHUNK = 2048


def image_summaries(x: np.ndarray, max_value: float) -> Any:
    """One row per image of ``x`` ([n, h, w, c] pixels up to ``max_value``): ``mean_c<k>``, ``std_c<k>``
    per channel and ``cell_<row>_<col>``, the brightness of each grid cell (channels averaged)."""
    import pandas as pd

    n, h, w, c = np.shape(x)
    rows, cols = np.array_split(np.arange(h), min(GRID, h)), np.array_split(np.arange(w), min(GRID, w))
    starts_r, starts_c = [r[0] for r in rows], [q[0] for q in cols]
    cell_sizes = np.outer([len(r) for r in rows], [len(q) for q in cols]) * c
    mean, std = np.empty((n, c)), np.empty((n, c))
    cells = np.empty((n, len(rows), len(cols)))
    scale = float(max_value or 1)
    ones = np.ones((1, h * w), dtype=np.float32)
    # a chunk of images at a time: 50,000 CIFAR images never become one 600 MB float array
    for lo in range(0, n, CHUNK):
        chunk = np.asarray(x[lo:lo + CHUNK], dtype=np.float32) / scale
        flat = chunk.reshape(len(chunk), h * w, c)
        # sums over the pixels as a matrix product: numpy's reduction over the middle axis of
        # [n, pixels, channels] took 3x as long; two passes keep a flat image's spread at 0
        centre = (ones @ flat)[:, 0, :] / (h * w)
        spread = flat - centre[:, None, :]
        mean[lo:lo + CHUNK] = centre
        std[lo:lo + CHUNK] = np.sqrt((ones @ (spread * spread))[:, 0, :] / (h * w))
        summed = np.add.reduceat(np.add.reduceat(chunk.sum(3), starts_r, axis=1), starts_c, axis=2)
        cells[lo:lo + CHUNK] = summed / cell_sizes
    columns: dict[str, np.ndarray] = {}
    for k in range(c):
        columns[f"mean_c{k}"], columns[f"std_c{k}"] = mean[:, k], std[:, k]
    for i in range(len(rows)):
        for j in range(len(cols)):
            columns[f"cell_{i}_{j}"] = cells[:, i, j]
    return pd.DataFrame(columns)
