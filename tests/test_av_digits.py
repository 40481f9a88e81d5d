"""The audio-visual digits demo data (FSDD clips paired with scikit-learn digits, both degraded):
a deterministic build that keeps FSDD's takes 0-4 as the test set, pairs each clip with an image of
its own digit and never the same image in both parts; and the demo spec end to end on a small
subset through the CLI (a real Prefect server), with ``trainflow predict`` on new clips and images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.helpers import complete_runs, run_cli
from trainflow.tasks.audio.av_digits import AudioPairOptions, load_av_digits_audio
from trainflow.tasks.common.av_digits import digits_file, pairs
from trainflow.tasks.image.av_digits import ImagePairOptions, load_av_digits_images

REPO = Path(__file__).resolve().parents[1]
FSDD = str(REPO / "data" / "fsdd")
SPEC = REPO / "flows" / "specs" / "av_digits.yaml"


def takes(files: list[str]) -> np.ndarray:
    return np.array([int(Path(f).stem.split("_")[2]) for f in files])


def test_pairs_are_deterministic_keep_the_fsdd_test_split_and_share_no_image():
    every = pairs(ImagePairOptions(path=FSDD))
    assert len(every) == 3000 and sum(p.test for p in every) == 300
    assert all(p.test == (takes([p.file])[0] <= 4) for p in every)  # FSDD's takes 0-4, nothing else
    assert [p.__dict__ for p in pairs(ImagePairOptions(path=FSDD))] == [p.__dict__ for p in every]
    from sklearn.datasets import load_digits

    target = load_digits().target
    assert all(str(target[p.image]) == p.digit for p in every)  # each clip gets an image of its own digit
    test_images = {p.image for p in every if p.test}
    assert len(test_images) == 300 and not test_images & {p.image for p in every if not p.test}
    other_seed = pairs(ImagePairOptions(path=FSDD, seed=1))
    assert [p.image for p in other_seed] != [p.image for p in every]
    # fewer training clips: the same test pairs (the test set does not depend on the training subset)
    few = pairs(ImagePairOptions(path=FSDD, train_per_digit=5))
    assert len(few) == 350 and [p for p in few if p.test] == [p for p in every if p.test]


def test_images_are_degraded_by_a_seeded_recipe():
    from sklearn.datasets import load_digits

    clean = load_av_digits_images(ImagePairOptions(path=FSDD, train_per_digit=3, occlusion=0, image_noise=0.0))
    chosen = pairs(ImagePairOptions(path=FSDD, train_per_digit=3))
    assert np.array_equal(clean.x[..., 0], load_digits().images[[p.image for p in chosen]])
    assert clean.files == [p.stem for p in chosen] and list(clean.is_test) == [p.test for p in chosen]
    occluded = load_av_digits_images(ImagePairOptions(path=FSDD, train_per_digit=3, occlusion=4, image_noise=0.0))
    for img, orig in zip(occluded.x[..., 0], clean.x[..., 0]):  # one 4x4 square blanked, the rest untouched
        squares = [(r, c) for r in range(5) for c in range(5) if not img[r:r + 4, c:c + 4].any()]
        assert any(np.array_equal(np.where(_square(r, c), 0, orig), img) for r, c in squares)
    options = ImagePairOptions(path=FSDD, train_per_digit=3)
    a, b = load_av_digits_images(options), load_av_digits_images(options)
    assert np.array_equal(a.x, b.x) and a.x.min() >= 0 and a.x.max() <= 16
    assert not np.array_equal(a.x, load_av_digits_images(ImagePairOptions(path=FSDD, train_per_digit=3, seed=1)).x)


def _square(r: int, c: int) -> np.ndarray:
    mask = np.zeros((8, 8), bool)
    mask[r:r + 4, c:c + 4] = True
    return mask


def test_clips_get_white_noise_at_the_given_snr():
    clean = load_av_digits_audio(AudioPairOptions(path=FSDD, train_per_digit=1, snr_db=200.0))
    noisy = load_av_digits_audio(AudioPairOptions(path=FSDD, train_per_digit=1, snr_db=5.0))
    again = load_av_digits_audio(AudioPairOptions(path=FSDD, train_per_digit=1, snr_db=5.0))
    assert noisy.files == clean.files and len(noisy.files) == 310 and noisy.is_test.sum() == 300
    assert all(np.array_equal(x, y) for x, y in zip(noisy.waves, again.waves))
    ratios = [10 * np.log10(np.mean(c.astype(np.float64) ** 2) / np.mean((n - c).astype(np.float64) ** 2))
              for c, n in zip(clean.waves, noisy.waves)]
    assert abs(np.mean(ratios) - 5.0) < 0.2, np.mean(ratios)


def test_the_data_digest_covers_the_digits_file_scikit_learn_reads(tmp_path, monkeypatch):
    """The images come from the installed scikit-learn's digits file, so its content is in the data
    digest: a scikit-learn whose digits differ (here: one pixel edited) does not reuse the cache."""
    import gzip
    import importlib.resources
    import shutil

    from sklearn.datasets import load_digits

    from trainflow.spec import spec_from_dict
    from trainflow.tasks.common import load

    [real] = digits_file()
    with gzip.open(real, "rt") as fh:  # the very file load_digits reads: pixels and target
        assert np.array_equal(np.loadtxt(fh, delimiter=",")[:, :-1], load_digits().data)
    inputs = {"speech": {"loader": "av_digits_audio", "path": FSDD, "train_per_digit": 1},
              "image": {"loader": "av_digits_images", "path": FSDD, "train_per_digit": 1}}
    spec = spec_from_dict({"name": "av", "task": "classification", "model": {"name": "late_fusion"},
                           "data": {"loader": "multimodal", "join": "stem", "inputs": inputs}})
    before = load.load(spec.data, str(tmp_path / "cache"), "multimodal")
    # another scikit-learn: its data folder is this copy, with the first image's first pixel changed
    other = tmp_path / "sklearn_data"
    shutil.copytree(real.parent, other)
    rows = gzip.open(real, "rt").read().splitlines()
    first = rows[0].split(",")
    rows[0] = ",".join(["16.0" if float(first[0]) == 0 else "0.0", *first[1:]])
    with gzip.open(other / real.name, "wt") as fh:
        fh.write("\n".join(rows) + "\n")
    real_files = importlib.resources.files
    monkeypatch.setattr(importlib.resources, "files",
                        lambda module: other if module == "sklearn.datasets.data" else real_files(module))
    assert load_digits().data[0, 0] != float(first[0])  # scikit-learn now reads the edited digits
    after = load.load(spec.data, str(tmp_path / "cache"), "multimodal")
    assert after.digest != before.digest and after.path != before.path


@pytest.mark.usefixtures("prefect_server")
def test_the_demo_spec_runs_end_to_end_on_a_subset_and_predicts(tmp_path, capsys):
    small = ["data.inputs.speech.train_per_digit=30", "data.inputs.image.train_per_digit=30", "train.epochs=15",
             "validation.min_rows=100"]
    rc, err = run_cli("run", SPEC, "--out", tmp_path / "runs", *sum((["--set", s] for s in small), []), capsys=capsys)
    assert rc == 0, err
    [run] = complete_runs(tmp_path / "runs", "av_digits")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics = metrics.get("metrics", metrics)
    assert {"accuracy", "branch_speech_accuracy", "branch_image_accuracy"} <= set(metrics)
    assert metrics["accuracy"] > 0.45, metrics  # 300 training pairs, 15 epochs: far above chance (0.1) already
    report = (run / "report.md").read_text()
    assert "Fusion vs each input alone" in report and "| fused (late_fusion) | 300 |" in report  # takes 0-4
    # new items, named by stem: degraded test clips (WAV) and their images (PNG, values 0-16)
    from PIL import Image

    options = {"path": FSDD, "train_per_digit": 1}
    clips = load_av_digits_audio(AudioPairOptions(**options, snr_db=7.5))
    images = load_av_digits_images(ImagePairOptions(**options, image_noise=2.0))
    (tmp_path / "new" / "clips").mkdir(parents=True)
    (tmp_path / "new" / "images").mkdir()
    picked = np.flatnonzero(clips.is_test)[::30]  # one take of each digit
    for i in picked:
        stem = Path(clips.files[i]).stem
        sf.write(tmp_path / "new" / "clips" / f"{stem}.wav", clips.waves[i], 8000, subtype="FLOAT")
        Image.fromarray(np.round(images.x[i, :, :, 0]).astype(np.uint8)).save(tmp_path / "new" / "images" / f"{stem}.png")
    (tmp_path / "new.yaml").write_text("speech: new/clips\nimage: new/images\n")
    rc, err = run_cli("predict", run, tmp_path / "new.yaml", "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 0, err
    out = pd.read_csv(tmp_path / "p.csv", dtype={"item": str})
    assert sorted(out["item"]) == sorted(Path(clips.files[i]).stem for i in picked)
    assert {"prediction", "proba_0", "proba_9"} <= set(out.columns)
    truth = out["item"].str[0].astype(int)
    assert (out["prediction"] == truth).mean() >= 0.4, out
