"""What drift is measured on for multimodal rows: each input's own summaries, side by side.

Every joined row is an item. Each input contributes the columns its own modality profiles (a
table's features, an image's channel means and brightness grid, a series' or clip's level and
spectrum), prefixed with the input's name (``image.mean_c0``); a row that lacks the input (``missing:
mask``) leaves them empty, so the missing share of those columns is how often the input is absent,
and a batch where an input goes missing more often is drift too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainflow.tasks.multimodal.branches import branch


def input_summaries(folder: Path, config: dict[str, Any], data: dict[str, Any],
                    present: dict[str, np.ndarray]) -> Any:
    """One row per joined row, the summaries of every input that has them (None when none has)."""
    import pandas as pd

    frames = []
    for name, info in config["inputs"].items():
        frame = branch(info["modality"]).summaries(folder / name, data[name])
        if frame is None:
            continue
        has = np.asarray(present[name], dtype=bool)[:, None].repeat(frame.shape[1], 1)
        frame = frame.reset_index(drop=True).where(has)  # rows without the input: empty
        frames.append(frame.add_prefix(f"{name}."))
    return pd.concat(frames, axis=1) if frames else None
