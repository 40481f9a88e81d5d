"""The test rows of a multimodal split as the input ``predict`` reads, for paired promotion.

A YAML file names one file per input, as a user's predict input does, and ``predict`` joins them as
in training. With a ``position`` join each input's test items are handed over by its own modality
(its ``scoring_rows`` of the branch's split: the images' ``.npz``, the table's Parquet file, a folder
of clips...): every branch's test part holds the test rows in the split's order. With a join by
``id`` or ``stem`` each input's test items are written with the joined rows' keys
(:meth:`~trainflow.tasks.common.branch.Branch.write_new`: images in an ``.npz`` with their ``names``, a
table with its id column, clips as WAV files named by key, series in a long CSV); an input whose modality cannot carry keys stops the comparison (promotion
then falls back to the point rule and says why).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainflow import modalities
from trainflow.errors import DataError
from trainflow.refs import SplitRef, atomic_write_text, load_npz


def scoring_rows(split: SplitRef, index_file: str) -> tuple[Path, list[str]]:
    """The YAML input naming each input's test items (written beside the test part) and the test
    rows' true classes (``index_file``: the stored data's index, with the joined rows' keys). DataError
    where a test row lacks an input (its branch's test part skips it)."""
    import yaml

    index = load_npz(split.test.path)
    present = index["present"].astype(bool)
    names = list(split.test.meta["inputs"])
    lacking = [n for i, n in enumerate(names) if not present[:, i].all()]
    if lacking:
        raise DataError(f"{int((~present).any(axis=1).sum())} test rows lack input(s) {', '.join(lacking)}; their "
                        "branches' test parts skip those rows, so the inputs cannot be lined up for predict")
    folder = Path(split.test.path).with_name("scoring")
    join = split.test.meta.get("join", "position")
    paths = _keyed(split, names, index["rows"], folder, index_file) if join != "position" else {}
    for n in names if join == "position" else ():
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


def _keyed(split: SplitRef, names: list[str], rows: np.ndarray, folder: Path, index_file: str) -> dict[str, str]:
    """Each input's test items written with the joined rows' keys (a join by id or stem)."""
    from trainflow.tasks.multimodal.branches import branch

    meta = split.test.meta
    keys = [str(k) for k in load_npz(Path(meta["data"]) / index_file)["keys"][rows]]
    paths = {}
    for n in names:
        info = meta["inputs"][n]
        adapter = branch(info["modality"])
        (folder / n).mkdir(parents=True, exist_ok=True)
        stored = adapter.load(Path(meta["data"]) / info["file"])  # the input's aligned items, as stored
        path = adapter.write_new(adapter.take(stored, rows), keys, folder / n, info.get("options") or {})
        if path is None:
            raise DataError(f"input '{n}' ({info['modality']}) cannot write its test items with their "
                            f"{meta.get('join')}s, which this model joins by")
        paths[n] = str(Path(path).resolve())
    return paths
