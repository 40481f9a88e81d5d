"""Arrays a stage has just written are handed to the next stage of the process, not read back
(a CIFAR-sized split is ~180 MB), while the file is unchanged; the image stages use it."""

from __future__ import annotations

import numpy as np

from trainflow import memo
from trainflow.refs import load_npz, remember_npz, save_npz


def test_remembered_arrays_are_handed_over_until_the_file_changes_or_the_last_reader_takes_them(tmp_path):
    memo.clear()
    path = tmp_path / "part.npz"
    arrays = {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "y": np.array([0, 1, 0])}
    save_npz(path, **arrays)
    remember_npz(path, arrays)
    again = load_npz(path)
    assert again["x"] is arrays["x"], "read back from disk although this process had just written it"
    assert load_npz(path, keep=False)["y"] is arrays["y"]
    fresh = load_npz(path)  # forgotten by the last reader: read from the file
    assert fresh["x"] is not arrays["x"] and np.array_equal(fresh["x"], arrays["x"])
    remember_npz(path, arrays)
    save_npz(path, x=np.zeros((2, 2)), y=np.ones(2))  # someone rewrote it: the remembered arrays are stale
    assert np.array_equal(load_npz(path)["x"], np.zeros((2, 2)))


def test_the_image_split_hands_its_parts_to_fit_and_evaluate(tmp_path):
    from trainflow.spec import spec_from_dict
    from trainflow.tasks.common import load as loading
    from trainflow.tasks.image import modality as image

    memo.clear()
    x = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3)).astype(np.uint8)
    np.savez(tmp_path / "images.npz", x=x, y=np.arange(40) % 2)
    spec = spec_from_dict({"name": "imgs", "data": {"loader": "npz", "path": str(tmp_path / "images.npz")},
                           "validation": {"min_rows": 4}})
    ref = loading.load(spec.data, str(tmp_path / "cache"), "image")
    split = image.split(ref, spec, str(tmp_path / "cache"))
    train = load_npz(split.train.path, keep=False)
    assert train is not None and memo.recall(split.train.path) is None, "the last reader forgets the arrays"
    assert memo.recall(split.test.path) is not None and memo.recall(ref.path) is None
    assert np.array_equal(load_npz(split.test.path)["x"], np.load(split.test.path)["x"])
