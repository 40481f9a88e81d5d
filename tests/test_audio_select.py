"""preprocess.audio.select (the recipe chosen by CV grouped by speaker) and the mixing of training
clips (no server: the stages are called directly on generated clips)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError

from trainflow.errors import DataError
from trainflow.tasks.audio.features import AudioFeatures, mixer, spec_augmenter

RATE = 8000
PATTERN = r"(?P<label>[a-z]+)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"


def speaker_clips(folder: Path, speakers: dict[str, float], per_class: int = 4) -> Path:
    """``{label}_{speaker}_{i}.wav``: a low and a high tone, each speaker's a little higher or lower."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(RATE * 0.25)) / RATE
    rng = np.random.default_rng(0)
    for speaker, pitch in speakers.items():
        for label, hz in {"low": 300.0, "high": 1200.0}.items():
            for i in range(per_class):
                wave = 0.5 * np.sin(2 * np.pi * hz * pitch * t) + 0.05 * rng.normal(size=len(t))
                sf.write(folder / f"{label}_{speaker}_{i}.wav", wave.astype(np.float32), RATE, subtype="PCM_16")
    return folder


def spec_of(root: Path, select: dict, **split):
    from trainflow.spec import spec_from_dict

    return spec_from_dict({
        "name": "speakers", "seed": 0, "split": split or {"group": "speaker", "test": ["cy"]},
        "data": {"loader": "audio_pattern", "path": str(root), "pattern": PATTERN, "sample_rate": RATE},
        "validation": {"min_rows": 4},
        "preprocess": {"audio": {"duration": 0.25, "n_mels": 16, "n_fft": 256, "hop_length": 64,
                                 "freq_masks": 0, "time_masks": 0, "select": select}},
        "model": {"name": "audio_cnn", "width": 4, "dense": 8},
        "train": {"epochs": 4, "batch_size": 8, "lr": 0.01, "checkpoint": False, "num_threads": 1}})


def test_a_candidate_may_change_only_normalisation_and_augmentation():
    ok = AudioFeatures(select={"candidates": [{}, {"mix_clips": 0.3, "normalize": "per_clip"}]})
    assert ok.candidate(1).mix_clips == 0.3 and ok.candidate(1).select is None
    with pytest.raises(ValidationError, match=r"candidates\[1\] changes \['n_mels'\]"):
        AudioFeatures(select={"candidates": [{}, {"n_mels": 20}]})
    with pytest.raises(ValidationError, match="mix_clips"):
        AudioFeatures(select={"candidates": [{}, {"mix_clips": 2.0}]})
    with pytest.raises(ValidationError, match="at least 2"):
        AudioFeatures(select={"candidates": [{}]})


def test_mixing_adds_another_example_of_the_batch_and_is_off_by_default():
    torch = pytest.importorskip("torch")
    assert mixer(AudioFeatures()) is None and spec_augmenter(AudioFeatures(freq_masks=0, time_masks=0)) is None
    torch.manual_seed(0)
    x = torch.randn(64, 8, 20)
    out = mixer(AudioFeatures(mix_clips=0.5))(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    # each output is (x_i + w x_j) / sqrt(1 + w^2) with w <= 0.5: still mostly its own example
    corr = torch.nn.functional.cosine_similarity(out.flatten(1), x.flatten(1))
    assert float(corr.min()) > 1 / np.sqrt(1 + 0.5 ** 2) - 0.2
    assert abs(float(out.std()) - 1.0) < 0.1


def test_folds_keep_each_speaker_on_one_side():
    from trainflow.tasks.audio.select import folds_of

    groups = np.array(["a", "a", "b", "b", "c", "c", "d", "e"])
    parts = folds_of(groups, 3, "clips")
    assert len(parts) == 3
    for tr, te in parts:
        assert not set(groups[tr]) & set(groups[te])
    assert sorted(np.concatenate([te for _, te in parts])) == list(range(8))
    with pytest.raises(DataError, match="1 group"):
        folds_of(np.array(["a", "a"]), 3, "clips")


def test_select_chooses_by_grouped_cv_and_the_report_shows_the_table(tmp_path):
    from trainflow.tasks.audio import modality as audio
    from trainflow.tasks.common import load

    root = speaker_clips(tmp_path / "clips", {"al": 1.0, "bo": 1.04, "cy": 0.96, "di": 1.02})
    # per-clip normalisation erases a steady tone (the very signal here); the CV over the training
    # speakers must see it and keep per-frequency statistics
    spec = spec_of(root, {"candidates": [{"normalize": "per_clip"}, {}], "folds": 3, "epochs": 4})
    cache = str(tmp_path / "cache")
    split = audio.split(load.load(spec.data, cache, "audio", spec.split), spec, cache)
    ref = audio.fit(split, spec, cache)
    _, config = audio.load_model(ref.path)
    chosen = config["recipe_selection"]
    assert chosen["group"] == "speaker" and chosen["groups"] == 3 and chosen["folds"] == 3
    table = {row["changes"]: row["accuracy"] for row in chosen["table"]}
    assert table["as written"] >= 0.9 and table["normalize=per_clip"] <= 0.75, table
    assert chosen["chosen"] == 1 and config["features"]["normalize"] == "per_frequency"
    assert config["features"]["select"] is None  # what prediction repeats: the winner only
    assert ref.meta["selection"]["method"].startswith("3-fold cross-validation grouped by speaker")
    evaluation = audio.evaluate(ref, split, spec, str(tmp_path / "plots"))
    assert any("select chose candidate 1" in n for n in evaluation.notes)
    assert len(evaluation.tables["Recipe selection: 3-fold cross-validation grouped by speaker on the training "
                                 "split"]) == 2


def test_select_names_a_group_the_clips_do_not_carry(tmp_path):
    from trainflow.tasks.audio import modality as audio
    from trainflow.tasks.common import load

    root = speaker_clips(tmp_path / "clips", {"al": 1.0, "bo": 1.04}, per_class=2)
    spec = spec_of(root, {"candidates": [{}, {"mix_clips": 0.2}], "group": "room"}, test_size=0.25)
    cache = str(tmp_path / "cache")
    split = audio.split(load.load(spec.data, cache, "audio", spec.split), spec, cache)
    with pytest.raises(DataError, match=r"select.group is 'room'.*\(index, label, speaker\)"):
        audio.fit(split, spec, cache)


def test_select_without_a_group_is_a_spec_error(tmp_path):
    from trainflow.errors import SpecError

    with pytest.raises(SpecError, match="select needs groups to cut its folds by"):
        spec_of(tmp_path, {"candidates": [{}, {"mix_clips": 0.2}]}, test_size=0.25)
