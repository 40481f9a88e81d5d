"""The ``image_manifest`` loader: a CSV naming each image file, its label or labels (0/1 columns or
one delimited column) and optionally its split; runs through the CLI, predict on a manifest, the
load digest covering the images, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from tests.helpers import assert_fails_clearly, complete_runs, run_cli, write_spec  # noqa: E402
from trainflow.errors import DataError  # noqa: E402
from trainflow.spec import spec_from_dict  # noqa: E402
from trainflow.tasks.common import load as loading  # noqa: E402
from trainflow.tasks.image.loaders import ManifestConfig, load_image_manifest  # noqa: E402

QUADRANTS = ["top_left", "top_right", "bottom_left", "bottom_right"]


def write_images(folder: Path, n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` 8x8 gray PNGs under ``folder/img`` whose labels are which quadrants are bright; returns
    the file paths relative to ``folder`` and the [n, 4] 0/1 label matrix."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 4)) < 0.4).astype(np.int64)
    Y[np.arange(n) % 2 == 0, 0] = 1  # single-label runs use top_left: half the images each way
    Y[np.arange(n) % 2 == 1, 0] = 0
    (folder / "img").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        x = rng.integers(0, 70, (8, 8)).astype(np.uint8)
        for j, (r, c) in enumerate(((0, 0), (0, 4), (4, 0), (4, 4))):
            if Y[i, j]:
                x[r:r + 4, c:c + 4] += 150
        names.append(f"img/{i:03d}.png")
        Image.fromarray(x, mode="L").save(folder / names[-1])
    return names, Y


def single_label_manifest(folder: Path, n: int = 40, **columns) -> Path:
    names, Y = write_images(folder, n)
    df = pd.DataFrame({"file": names, "label": np.where(Y[:, 0] == 1, "bright", "dark"), **columns})
    df.to_csv(folder / "images.csv", index=False)
    return folder / "images.csv"


def multilabel_manifest(folder: Path, how: str, n: int = 60) -> tuple[Path, dict]:
    """A manifest whose labels are 0/1 columns (``how='columns'``) or one '|'-joined column."""
    names, Y = write_images(folder, n)
    if how == "columns":
        df = pd.DataFrame({"file": names, **{q: Y[:, j] for j, q in enumerate(QUADRANTS)}})
        options = {"targets": QUADRANTS}
    else:
        df = pd.DataFrame({"file": names, "tags": ["|".join(q for j, q in enumerate(QUADRANTS) if row[j])
                                                   for row in Y]})
        options = {"label": "tags", "separator": "|"}
    df.to_csv(folder / "tags.csv", index=False)
    return folder / "tags.csv", options


def spec(tmp_path: Path, data: dict, name: str = "imgman", **extra) -> Path:
    return write_spec(tmp_path / f"{name}.yaml", {
        "name": name, "validation": {"min_rows": 10}, "data": {"loader": "image_manifest", **data},
        "model": {"width": 4, "dense": 8}, "train": {"epochs": 2, "batch_size": 16, "device": "cpu"}, **extra})


# ---------------------------------------------------------------- the loader


def test_labels_split_root_and_resize_come_from_the_manifest(tmp_path):
    names, Y = write_images(tmp_path / "data", 12)
    fold = ["test" if i % 4 == 0 else "train" for i in range(12)]
    manifest = tmp_path / "lists" / "m.csv"
    manifest.parent.mkdir()
    pd.DataFrame({"path": names, "kind": np.where(Y[:, 0] == 1, "bright", "dark"), "fold": fold}).to_csv(
        manifest, index=False)
    images = load_image_manifest(ManifestConfig(path=str(manifest), file="path", label="kind", split="fold",
                                                root=str(tmp_path / "data"), size=(6, 6), channels=3))
    assert images.x.shape == (12, 6, 6, 3) and images.x.dtype == np.uint8 and images.max_value == 255.0
    assert images.classes == ["bright", "dark"] and images.y.tolist() == [0 if v else 1 for v in Y[:, 0]]
    assert images.files == names and images.is_test.tolist() == [f == "test" for f in fold]
    assert images.skipped == []


@pytest.mark.parametrize("how", ["columns", "delimited"])
def test_multilabel_labels_as_columns_or_one_delimited_column(tmp_path, how):
    manifest, options = multilabel_manifest(tmp_path, how, n=10)
    _, Y = write_images(tmp_path, 10)
    images = load_image_manifest(ManifestConfig(path=str(manifest), **options))
    assert images.y.shape == (10, 4) and images.y.dtype == np.float64
    order = QUADRANTS if how == "columns" else sorted(QUADRANTS)  # a delimited column's labels are sorted
    assert images.classes == order
    np.testing.assert_array_equal(images.y, Y[:, [QUADRANTS.index(q) for q in order]])


def test_skip_unreadable_drops_and_lists_a_corrupt_and_a_missing_image(tmp_path):
    manifest = single_label_manifest(tmp_path, n=8)
    (tmp_path / "img" / "002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (tmp_path / "img" / "005.png").unlink()
    images = load_image_manifest(ManifestConfig(path=str(manifest), skip_unreadable=True))
    assert len(images.x) == 6 and "img/002.png" not in images.files and "img/005.png" not in images.files
    assert [s.split(":")[0] for s in images.skipped] == ["img/005.png", "img/002.png"]
    assert "does not exist" in images.skipped[0]
    with pytest.raises(DataError, match=r"names the image file 'img/005\.png' \(row 6, column 'file'\)"):
        load_image_manifest(ManifestConfig(path=str(manifest), skip_unreadable=False))


def test_an_edited_image_changes_the_load_digest(tmp_path):
    """The manifest CSV is unchanged, but an image it names was redrawn: that is new data."""
    manifest = single_label_manifest(tmp_path, n=10)
    data = spec_from_dict({"name": "d", "data": {"loader": "image_manifest", "path": str(manifest)}}).data
    before = loading.load(data, str(tmp_path / "cache"), "image")
    again = loading.load(data, str(tmp_path / "cache"), "image")
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(tmp_path / "img" / "003.png")
    after = loading.load(data, str(tmp_path / "cache"), "image")
    assert again.digest == before.digest != after.digest


# ---------------------------------------------------------------- through the CLI


@pytest.mark.usefixtures("prefect_server")
def test_a_single_label_manifest_runs_and_predicts_on_a_manifest_and_a_folder(tmp_path, capsys):
    manifest = single_label_manifest(tmp_path, n=40, fold=["test" if i % 5 == 0 else "train" for i in range(40)])
    rc, err = run_cli("run", spec(tmp_path, {"path": str(manifest), "split": "fold"}), "--out", tmp_path / "out",
                      capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(tmp_path / "out", "imgman")
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["per_class"]) == {"bright", "dark"} and "accuracy" in metrics["metrics"]
    assert sum(metrics["per_class"][c]["support"] for c in ("bright", "dark")) == 8  # the fold column's test rows
    new = tmp_path / "new"
    names, Y = write_images(new, 6, seed=3)
    pd.DataFrame({"file": names}).to_csv(new / "new.csv", index=False)
    rc, err = run_cli("predict", run, new / "new.csv", "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 0, err
    out = pd.read_csv(tmp_path / "p.csv")
    assert list(out["item"]) == names and set(out["prediction"]) <= {"bright", "dark"}
    assert np.allclose(out[["proba_bright", "proba_dark"]].sum(axis=1), 1, atol=1e-4)
    rc, err = run_cli("predict", run, new / "img", "--out", tmp_path / "p2.csv", capsys=capsys)
    assert rc == 0, err
    folder = pd.read_csv(tmp_path / "p2.csv")
    assert list(folder["item"]) == [n.removeprefix("img/") for n in names]
    np.testing.assert_allclose(folder["proba_bright"], out["proba_bright"], atol=1e-5)  # same images, same scores


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("how", ["columns", "delimited"])
def test_a_multilabel_manifest_runs_and_predict_writes_a_column_per_label(tmp_path, capsys, how):
    manifest, options = multilabel_manifest(tmp_path, how)
    path = spec(tmp_path, {"path": str(manifest), **options}, name="imgtags", task="multilabel",
                split={"test_size": 0.25, "seed": 0})
    rc, err = run_cli("run", path, "--out", tmp_path / "out", capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(tmp_path / "out", "imgtags")
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"hamming_loss", "micro_f1", "subset_accuracy"} <= set(metrics["metrics"])
    assert set(metrics["per_class"]) == set(QUADRANTS)
    rc, err = run_cli("predict", run, manifest, "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 0, err
    out = pd.read_csv(tmp_path / "p.csv")
    assert len(out) == 60 and set(QUADRANTS) | {f"proba_{q}" for q in QUADRANTS} <= set(out.columns)
    assert set(np.unique(out[QUADRANTS].to_numpy())) <= {0, 1}


# ---------------------------------------------------------------- bad input


def _bad(t: Path, case: str) -> dict:
    manifest = single_label_manifest(t, n=12)
    df = pd.read_csv(manifest)
    if case == "missing file":
        (t / "img" / "004.png").unlink()
    elif case == "not an image":
        (t / "img" / "007.png").write_text("no pixels here\n")
    elif case == "missing column":
        df.rename(columns={"label": "lable"}).to_csv(manifest, index=False)
    elif case == "missing label":
        df.loc[3, "label"] = None
        df.to_csv(manifest, index=False)
    elif case == "no file name":
        df.loc[2, "file"] = None
        df.to_csv(manifest, index=False)
    elif case == "empty manifest":
        manifest.write_text("")
    elif case == "header only":
        manifest.write_text("file,label\n")
    if case in ("missing file", "not an image"):  # strict: the first such file stops the load
        return {"path": str(manifest), "skip_unreadable": False}
    if case == "not a 0/1 column":
        df["a"], df["b"] = ["1"] * len(df), 0
        df.loc[5, "a"] = "yes"
        df.to_csv(manifest, index=False)
        return {"path": str(manifest), "targets": ["a", "b"]}
    elif case == "no test rows":
        df["fold"] = "train"
        df.to_csv(manifest, index=False)
        return {"path": str(manifest), "split": "fold", "test_value": "holdout"}
    return {"path": str(manifest)}


BAD = {
    "missing file": (3, ["images.csv", "names the image file 'img/004.png' (row 5, column 'file')", "does not exist"]),
    "not an image": (3, ["images.csv", "names the image file 'img/007.png' (row 8, column 'file')",
                         "Pillow cannot read as an image", "data.skip_unreadable: true"]),
    "missing column": (3, ["images.csv", "no column 'label' (data.label)", "did you mean 'lable'"]),
    "missing label": (3, ["images.csv", "has no label in row 4 (column 'label')"]),
    "no file name": (3, ["images.csv", "has no file name in row 3 (column 'file')"]),
    "empty manifest": (3, ["manifest", "images.csv", "is empty"]),
    "header only": (3, ["manifest", "images.csv", "has a header but no data rows"]),
    "no test rows": (3, ["images.csv", "marks no row as a test row", "test part empty"]),
    "not a 0/1 column": (3, ["label column 'a' (data.targets)", "images.csv", "'yes' in row 6"]),
}


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("case", list(BAD))
def test_bad_manifest_input_fails_clearly(case, tmp_path, capsys):
    code, phrases = BAD[case]
    task = {"task": "multilabel"} if case == "not a 0/1 column" else {}
    assert_fails_clearly(spec(tmp_path, _bad(tmp_path, case), name="badman", **task), tmp_path / "out", "badman",
                         code, phrases, capsys)


def test_a_multilabel_task_without_multilabel_columns_is_a_spec_error(tmp_path, capsys):
    manifest = single_label_manifest(tmp_path, n=4)
    path = spec(tmp_path, {"path": str(manifest)}, name="nolabels", task="multilabel")
    rc, err = run_cli("run", path, "--out", tmp_path / "out", capsys=capsys)
    assert rc == 2 and "data.targets" in err and "data.separator" in err and "Traceback" not in err, err
    path = spec(tmp_path, {"path": str(manifest), "separator": "|"}, name="notmulti")
    rc, err = run_cli("run", path, "--out", tmp_path / "out", capsys=capsys)
    assert rc == 2 and "'data.separator' is for multi-label labels" in err, err
