"""Predict on a CSV manifest, alike for images and audio: the file column the model was trained with
(``file`` for models without one), a clear error naming the CSV and its columns, and (multi-label)
one warning, in one wording, for labels the model never saw, whether an .npz or a manifest names them.
No Prefect server: the stages are called directly on tiny generated data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")
pytest.importorskip("soundfile")

from trainflow.errors import DataError  # noqa: E402
from trainflow.spec import spec_from_dict  # noqa: E402
from trainflow.tasks.audio import modality as audio  # noqa: E402
from trainflow.tasks.common import load, neural  # noqa: E402
from trainflow.tasks.image import modality as image  # noqa: E402

RATE = 8000
TONES = {"low": 300.0, "high": 1200.0}


def write_pngs(folder: Path, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` 8x8 gray PNGs under ``folder/img``, bright on top ('top') or bottom ('bottom')."""
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    names, labels = [], []
    for i in range(n):
        x = rng.integers(0, 60, (8, 8)).astype(np.uint8)
        labels.append("top" if i % 2 == 0 else "bottom")
        x[:4] += 180 if i % 2 == 0 else 0
        x[4:] += 180 if i % 2 else 0
        names.append(f"img/{i:03d}.png")
        Image.fromarray(x, mode="L").save(folder / names[-1])
    return names, labels


def trained(tmp_path: Path, modality: Any, name: str, data: dict, extra: dict) -> Path:
    """Train ``modality`` on ``data`` (2 epochs) and export it into a run folder; returns the folder."""
    spec = spec_from_dict({"name": "m", "data": data, "validation": {"min_rows": 4},
                           "train": {"epochs": 2, "batch_size": 8, "device": "cpu"}, **extra})
    cache = str(tmp_path / "cache")
    split = modality.split(load.load(spec.data, cache, name), spec, cache)
    run = tmp_path / "run"
    run.mkdir()
    neural.export(modality.fit(split, spec, cache), str(run))
    return run


def test_image_predict_reads_the_file_column_the_model_was_trained_with(tmp_path):
    names, labels = write_pngs(tmp_path, 16)
    pd.DataFrame({"picture": names, "label": labels}).to_csv(tmp_path / "train.csv", index=False)
    run = trained(tmp_path, image, "image", {"loader": "image_manifest", "path": str(tmp_path / "train.csv"),
                                    "file": "picture"}, {"model": {"width": 4, "dense": 8}})
    new = tmp_path / "new"
    new_names, _ = write_pngs(new, 4, seed=1)
    pd.DataFrame({"picture": new_names, "note": "x"}).to_csv(new / "new.csv", index=False)
    out = image.predict(run, new / "new.csv")
    assert out["item"].tolist() == new_names and set(out["prediction"]) <= {"top", "bottom"}
    pd.DataFrame({"file": new_names}).to_csv(new / "other.csv", index=False)  # not the training column
    with pytest.raises(DataError) as err:
        image.predict(run, new / "other.csv")
    assert "other.csv' has no column 'picture'" in str(err.value) and "Its columns are: file." in str(err.value)
    assert "training manifest" in str(err.value)


def test_audio_predict_takes_a_manifest_in_the_file_column_the_model_was_trained_with(tmp_path):
    files = audio.write_tones(tmp_path / "clips", TONES, per_class=6, rate=RATE, flat=True)
    pd.DataFrame({"clip": [f"clips/{f.name}" for f in files],
                  "label": [f.name.split("_")[0] for f in files]}).to_csv(tmp_path / "train.csv", index=False)
    run = trained(tmp_path, audio, "audio", {"loader": "audio_manifest", "path": str(tmp_path / "train.csv"),
                                             "file": "clip", "sample_rate": RATE},
                  {"preprocess": {"audio": {"duration": 0.25, "n_mels": 16, "n_fft": 256, "hop_length": 64}},
                   "model": {"name": "audio_cnn", "width": 4, "dense": 8}, "split": {"test_size": 0.25}})
    new = audio.write_tones(tmp_path / "new", TONES, per_class=1, rate=RATE, flat=True, seed=3)
    pd.DataFrame({"clip": [f.name for f in new]}).to_csv(tmp_path / "new" / "new.csv", index=False)
    out = audio.predict(run, tmp_path / "new" / "new.csv")
    assert out["file"].tolist() == [f.name for f in new] and set(out["prediction"]) <= set(TONES)
    pd.DataFrame({"file": [f.name for f in new]}).to_csv(tmp_path / "new" / "other.csv", index=False)
    with pytest.raises(DataError) as err:
        audio.predict(run, tmp_path / "new" / "other.csv")
    assert "other.csv' has no column 'clip'" in str(err.value) and "Its columns are: file." in str(err.value)


def test_a_model_without_a_saved_file_column_reads_file_and_a_missing_file_names_the_row(tmp_path):
    """Models saved before the column was recorded (or trained on a folder) read the column 'file'."""
    names, _ = write_pngs(tmp_path, 2)
    pd.DataFrame({"file": names}).to_csv(tmp_path / "new.csv", index=False)
    config = {"size": [8, 8], "channels": 1, "convert": True}
    x, items = image.read_new_images(tmp_path / "new.csv", config)
    assert x.shape == (2, 8, 8, 1) and items == names
    pd.DataFrame({"path": names}).to_csv(tmp_path / "wrong.csv", index=False)
    with pytest.raises(DataError, match=r"wrong.csv' has no column 'file' \(the file column predict reads\)"):
        image.read_new_images(tmp_path / "wrong.csv", config)
    files = audio.write_tones(tmp_path / "clips", TONES, per_class=1, rate=RATE, flat=True)
    pd.DataFrame({"file": [f"clips/{f.name}" for f in files] + ["clips/gone.wav"]}).to_csv(tmp_path / "a.csv",
                                                                                          index=False)
    with pytest.raises(DataError, match=r"names the audio file 'clips/gone.wav' \(row 3, column 'file'\)"):
        audio.new_clips(tmp_path / "a.csv", {"sample_rate": RATE})


LABELS = ["cat", "dog"]
WARNING = "never seen in training: 'bird'; the model cannot predict them (it knows cat, dog)"


def test_unseen_labels_are_warned_alike_from_an_npz_and_from_image_and_audio_manifests(tmp_path, capsys):
    saved = {"file": "file", "label": "tags", "separator": "|"}
    config = {"size": [8, 8], "channels": 1, "convert": True, "task": "multilabel", "labels": LABELS,
              "manifest": saved}
    np.savez(tmp_path / "new.npz", x=np.zeros((2, 8, 8), np.uint8), labels=np.array(["cat", "bird"]))
    image.read_new_images(tmp_path / "new.npz", config)
    names, _ = write_pngs(tmp_path, 2)
    pd.DataFrame({"file": names, "tags": ["cat|bird", None]}).to_csv(tmp_path / "img.csv", index=False)
    image.read_new_images(tmp_path / "img.csv", config)
    files = audio.write_tones(tmp_path / "clips", TONES, per_class=1, rate=RATE, flat=True)
    pd.DataFrame({"file": [f"clips/{f.name}" for f in files], "tags": ["dog", "bird"]}).to_csv(tmp_path / "a.csv",
                                                                                            index=False)
    audio.new_clips(tmp_path / "a.csv", {"sample_rate": RATE, "task": "multilabel", "labels": LABELS,
                                         "manifest": saved})
    # trainflow's own lines: after flows ran in this process, Prefect's handlers echo the logger's too
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("trainflow: warning:") and "never seen" in line]
    assert len(lines) == 3 and all(WARNING in line for line in lines), lines
    assert "new.npz' names labels" in lines[0]
    assert "img.csv' has labels in column 'tags'" in lines[1] and "a.csv' has labels in column 'tags'" in lines[2]
    pd.DataFrame({"file": names}).to_csv(tmp_path / "plain.csv", index=False)  # no label column: nothing to say
    image.read_new_images(tmp_path / "plain.csv", config)
    image.read_new_images(tmp_path / "img.csv", {**config, "task": "classification"})  # single-label: no check
    assert "never seen" not in capsys.readouterr().err


@pytest.mark.parametrize("saved", [{"file": ["x"]}, {"file": 5}, "file", {"file": " "}])
def test_a_crafted_file_column_in_a_model_config_is_refused_by_name(tmp_path, saved):
    from trainflow.errors import DataError
    from trainflow.tasks.common.manifest import read_new_manifest

    (tmp_path / "new.csv").write_text("file\na.png\n")
    with pytest.raises(DataError, match="training manifest's file column"):
        read_new_manifest(tmp_path / "new.csv", saved, "image")
