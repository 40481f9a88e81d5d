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


def image_summaries(x: np.ndarray, max_value: float) -> Any:
    """One row per image of ``x`` ([n, h, w, c] pixels up to ``max_value``): ``mean_c<k>``, ``std_c<k>``
    per channel and ``cell_<row>_<col>``, the brightness of each grid cell (channels averaged)."""
    import pandas as pd

    x = np.asarray(x, dtype=np.float32) / float(max_value or 1)
    n, h, w, c = x.shape
    columns: dict[str, np.ndarray] = {}
    for k in range(c):
        columns[f"mean_c{k}"] = x[..., k].reshape(n, -1).mean(1)
        columns[f"std_c{k}"] = x[..., k].reshape(n, -1).std(1)
    gray = x.mean(axis=3)
    rows, cols = np.array_split(np.arange(h), min(GRID, h)), np.array_split(np.arange(w), min(GRID, w))
    for i, r in enumerate(rows):
        for j, q in enumerate(cols):
            columns[f"cell_{i}_{j}"] = gray[:, r][:, :, q].reshape(n, -1).mean(1)
    return pd.DataFrame(columns)

