"""The test rows of a multimodal split as the input ``predict`` reads, for paired promotion.

Each input's test items are handed over by its own modality (its ``scoring_rows`` of the branch's
split: the images' ``.npz``, the table's Parquet file, a folder of clips...), and a YAML file names
them, as a user's predict input does; ``predict`` joins them as in training. Every branch's test part
holds the test rows in the split's order, so a ``position`` join lines them up. The files carry the
keys of their own modality (an image ``.npz`` numbers its images, clips are named by position), not the
original ones: a model joined by ``id`` or ``stem`` cannot join them, predict says so, and promotion
falls back to the point rule with that reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainflow import modalities
from trainflow.errors import DataError
from trainflow.refs import SplitRef, atomic_write_text, load_npz


def scoring_rows(split: SplitRef) -> tuple[Path, list[str]]:
    """The YAML input naming each input's test items (written beside the test part) and the test
    rows' true classes. DataError where a test row lacks an input (its branch's test part skips it)."""
    import yaml

    index = load_npz(split.test.path)
    present = index["present"].astype(bool)
    names = list(split.test.meta["inputs"])
    lacking = [n for i, n in enumerate(names) if not present[:, i].all()]
    if lacking:
        raise DataError(f"{int((~present).any(axis=1).sum())} test rows lack input(s) {', '.join(lacking)}; their "
                        "branches' test parts skip those rows, so the inputs cannot be lined up for predict")
    paths = {}
    for n in names:
        branch = SplitRef.model_validate(split.meta["branches"][n])
        rows = modalities.get(split.test.meta["inputs"][n]["modality"]).scoring_rows(branch)
        if rows is None:
            raise DataError(f"input '{n}' ({split.test.meta['inputs'][n]['modality']}) cannot hand its test rows "
                            "to predict")
        if len(rows[1]) != len(present):
            raise DataError(f"input '{n}' has {len(rows[1])} test items for {len(present)} test rows")
        paths[n] = str(Path(rows[0]).resolve())
    path = Path(split.test.path).with_name("scoring.yaml")
    atomic_write_text(path, yaml.safe_dump(paths))
    return path, [str(v) for v in np.asarray(index["labels"])]
