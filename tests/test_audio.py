"""The audio modality: loaders (subfolders, filename pattern, manifest, fixed splits, stereo and other
rates), features fitted on training clips only, each network, predict, a killed training that
resumes, and the bad inputs of issue 10 through the CLI."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.helpers import assert_fails_clearly, complete_runs, run_cli, write_spec
from trainflow.errors import DataError
from trainflow.tasks.audio.features import AudioFeatures, file_features, wave_features
from trainflow.tasks.audio.loaders import (FolderOptions, ManifestOptions, PatternOptions, load_audio_folder,
                                           load_audio_manifest, load_audio_pattern)
from trainflow.tasks.audio.modality import write_tones

RATE = 8000
TONES = {"low": 300.0, "high": 1200.0}
FEATURES = {"duration": 0.25, "n_mels": 16, "n_fft": 256, "hop_length": 64}


def pattern_folder(folder: Path, per_class: int = 6) -> Path:
    """FSDD-like names ``{label}_{speaker}_{index}.wav`` (tones per label), flat in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(RATE * 0.25)) / RATE
    rng = np.random.default_rng(1)
    for label, hz in TONES.items():
        for i in range(per_class):
            wave = 0.5 * np.sin(2 * np.pi * hz * t) + 0.05 * rng.normal(size=len(t))
            sf.write(folder / f"{label}_ann_{i}.wav", wave.astype(np.float32), RATE, subtype="PCM_16")
    return folder


def audio_spec(tmp_path: Path, data: dict, name: str = "tones", **extra) -> Path:
    raw = {"name": name, "data": {"sample_rate": RATE, **data}, "validation": {"min_rows": 4},
           "preprocess": {"audio": FEATURES}, "model": {"name": "audio_cnn", "width": 4, "dense": 8},
           "train": {"epochs": 3, "batch_size": 8, "lr": 0.01}, "split": {"test_size": 0.25}}
    for key, value in extra.items():
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) and isinstance(value, dict) else value
    return write_spec(tmp_path / f"{name}.yaml", raw)


# ---------------------------------------------------------------- loaders (no server)


def test_pattern_loader_labels_from_a_named_group_and_a_fixed_split(tmp_path):
    root = pattern_folder(tmp_path / "clips")
    clips = load_audio_pattern(PatternOptions(path=str(root), sample_rate=RATE,
                                              pattern=r"(?P<label>[a-z]+)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav",
                                              test_group="index", test_values=[0, 1]))
    assert sorted(set(clips.labels)) == ["high", "low"] and len(clips.files) == 12
    assert [f for f, t in zip(clips.files, clips.is_test) if t] == sorted(
        f"{lab}_ann_{i}.wav" for lab in TONES for i in (0, 1))
    assert all(len(w) == RATE // 4 for w in clips.waves) and clips.groups["speaker"] == ["ann"] * 12
    (root / "stray.wav").write_bytes((root / "low_ann_0.wav").read_bytes())
    with pytest.raises(DataError, match=r"file name 'stray\.wav' .* does not match data\.pattern"):
        load_audio_pattern(PatternOptions(path=str(root), sample_rate=RATE, pattern=r"(?P<label>[a-z]+)_\w+_\d+\.wav"))
    with pytest.raises(DataError, match=r"has no named group 'label'"):
        load_audio_pattern(PatternOptions(path=str(root), sample_rate=RATE, pattern=r"(?P<digit>\w+)\.wav"))


def test_folder_loader_mixes_stereo_down_and_resamples(tmp_path):
    write_tones(tmp_path / "c", TONES, per_class=2, rate=RATE)
    t = np.arange(16000 // 2) / 16000
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.zeros_like(t)], axis=1).astype(np.float32)
    sf.write(tmp_path / "c" / "low" / "stereo16k.flac", stereo, 16000)
    clips = load_audio_folder(FolderOptions(path=str(tmp_path / "c"), sample_rate=RATE))
    i = clips.files.index("low/stereo16k.flac")
    assert clips.info[i] == {"sample_rate": 16000, "channels": 2, "duration": 0.5, "readable": True, "error": ""}
    assert len(clips.waves[i]) == RATE // 2  # 0.5 s at 8 kHz
    assert abs(np.abs(clips.waves[i]).max() - 0.5) < 0.05  # (left + silent right) / 2
    assert clips.labels.count("low") == 3 and clips.is_test is None


def test_manifest_loader_with_a_split_column_and_a_missing_file(tmp_path):
    files = write_tones(tmp_path / "audio", TONES, per_class=3, rate=RATE, flat=True)
    rows = [{"path": f"audio/{f.name}", "digit": f.name.split("_")[0], "fold": "test" if f.name.endswith("0.wav") else "train"}
            for f in files]
    manifest = tmp_path / "clips.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    clips = load_audio_manifest(ManifestOptions(path=str(manifest), file="path", label="digit", split="fold",
                                                sample_rate=RATE))
    assert clips.files == [r["path"] for r in rows] and clips.labels == [r["digit"] for r in rows]
    assert clips.is_test.tolist() == [r["fold"] == "test" for r in rows]
    pd.DataFrame([*rows, {"path": "audio/gone.wav", "digit": "low", "fold": "train"}]).to_csv(manifest, index=False)
    with pytest.raises(DataError, match=r"manifest '.*clips\.csv' names the audio file 'audio/gone\.wav' \(row 7"):
        load_audio_manifest(ManifestOptions(path=str(manifest), file="path", label="digit", sample_rate=RATE,
                                            unreadable="error"))


def test_features_have_the_configured_shape_and_read_files(tmp_path):
    files = write_tones(tmp_path, TONES, per_class=1, rate=RATE)
    config = AudioFeatures(**FEATURES)
    x, frames = file_features(files, RATE, config)
    assert x.shape == (2, 16, 1 + 2000 // 64) and frames.tolist() == [32, 32] and x.dtype == np.float32
    mfcc, _ = wave_features([np.zeros(100, np.float32)], RATE, AudioFeatures(features="mfcc", n_mfcc=13, duration=None,
                                                                             n_fft=256, hop_length=64))
    assert mfcc.shape == (1, 13, 2) and np.isfinite(mfcc).all()  # silence: a finite floor, no crash


def test_normalisation_is_fitted_on_training_clips_only(tmp_path):
    """Test clips ten times louder must not move the per-frequency statistics saved with the model."""
    from trainflow.spec import spec_from_dict
    from trainflow.tasks.audio import modality as audio
    from trainflow.tasks.audio.features import fit_normalization
    from trainflow.tasks.common import load

    root = pattern_folder(tmp_path / "clips")
    for f in root.glob("*_[01].wav"):  # the test clips (index 0, 1): much louder
        wave, rate = sf.read(f)
        sf.write(f, np.clip(wave * 1.9, -1, 1), rate)
    spec = spec_from_dict(yaml_of(audio_spec(tmp_path, {
        "loader": "audio_pattern", "path": str(root), "pattern": r"(?P<label>[a-z]+)_\w+_(?P<index>\d+)\.wav"},
        split={"column": "index", "test": [0, 1]})))
    cache = str(tmp_path / "cache")
    split = audio.split(load.load(spec.data, cache, "audio", spec.split), spec, cache)
    prepared = audio.prepare(split, spec)
    train_files = sorted(f for f in root.glob("*.wav") if not f.stem.endswith(("_0", "_1")))
    x, frames = file_features(train_files, RATE, spec.preprocess.audio)
    expected = fit_normalization(x, frames, spec.preprocess.audio)
    assert np.allclose(prepared.config["normalization"]["mean"], expected.mean_, atol=1e-5)
    everything, all_frames = file_features(sorted(root.glob("*.wav")), RATE, spec.preprocess.audio)
    assert not np.allclose(fit_normalization(everything, all_frames, spec.preprocess.audio).mean_, expected.mean_,
                           atol=1e-3)
    assert prepared.augment is not None  # SpecAugment on training batches (evaluate/predict never call it)


def yaml_of(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------- each network (no server)


@pytest.mark.parametrize("model", [{"name": "audio_gru", "hidden": 8, "front_channels": 8},
                                   {"name": "audio_lstm", "hidden": 8, "front": "none"},
                                   {"name": "audio_autoencoder", "width": 4, "dense": 8, "pretrain_epochs": 2},
                                   {"name": "audio_cnn", "width": 4, "dense": 8, "members": 2}])
def test_each_network_trains_and_predicts(tmp_path, model):
    from trainflow.spec import spec_from_dict
    from trainflow.tasks.audio import modality as audio
    from trainflow.tasks.common import load

    write_tones(tmp_path / "clips", TONES, per_class=8, rate=RATE)
    duration = None if model["name"] == "audio_lstm" else 0.25  # the LSTM keeps lengths (masked)
    raw = yaml_of(audio_spec(tmp_path, {"loader": "audio_folder", "path": str(tmp_path / "clips")},
                             model=model, train={"epochs": 6, "batch_size": 4, "lr": 0.01},
                             preprocess={"audio": {**FEATURES, "duration": duration}}))
    raw["model"] = model
    spec = spec_from_dict(raw)
    cache = str(tmp_path / "cache")
    split = audio.split(load.load(spec.data, cache, "audio"), spec, cache)
    ref = audio.fit(split, spec, cache)
    if model["name"] == "audio_autoencoder":
        assert any("pre-training: 2 epochs of reconstruction" in n for n in ref.meta["notes"])
    evaluation = audio.evaluate(ref, split, spec, str(tmp_path / "plots"))
    assert evaluation.metrics["accuracy"] >= 0.75
    net, config = audio.load_model(ref.path)
    assert config["build"]["bins"] == 16 and "normalization" in config
    import torch

    x = torch.zeros(2, 16, config["frames"])
    assert net.encode(x, torch.ones(2, config["frames"])).shape[0] == 2  # the embedding before the head
    (tmp_path / "run").mkdir()
    audio.Audio().export(ref, str(tmp_path / "run"))
    frame = audio.predict(tmp_path / "run", tmp_path / "clips" / "high")
    assert (frame["prediction"] == "high").mean() >= 0.75


# ---------------------------------------------------------------- end to end (server)


@pytest.mark.usefixtures("prefect_server")
def test_audio_pipeline_runs_and_predicts_a_folder_a_file_and_with_the_champion(tmp_path, capsys):
    root = pattern_folder(tmp_path / "clips", per_class=8)
    sf.write(root / "low_ann_9.wav", np.zeros(RATE // 4, np.float32), RATE)  # a silent clip: reported
    spec = audio_spec(tmp_path, {"loader": "audio_pattern", "path": str(root),
                                 "pattern": r"(?P<label>[a-z]+)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"},
                      audio_validation={"max_silent_share": 0.1}, train={"epochs": 8, "batch_size": 4, "lr": 0.01},
                      split={"column": "index", "test": [0, 1]})
    out = tmp_path / "runs"
    rc, err = run_cli("run", spec, "--out", out, capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(out, "tones")
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["metrics"]["accuracy"] == 1.0 and summary["modality"] == "audio"
    report = (run / "report.md").read_text()
    assert "1 silent clip(s) (below -60 dBFS), kept: low_ann_9.wav" in report  # reported, not a crash
    assert "fixed split by column 'index': 13 train / 4 test clips" in report
    assert {"model.safetensors", "model.json"} <= {p.name for p in run.iterdir()}
    new = tmp_path / "new"
    write_tones(new, TONES, per_class=2, rate=16000, seed=5)  # another rate: resampled to the model's
    for target, name in ((run, "pred.csv"), ("tones", "champ.csv")):
        rc, err = run_cli("predict", target, new, "--out", tmp_path / name, "--runs", out, capsys=capsys)
        assert rc == 0, err
        pred = pd.read_csv(tmp_path / name)
        assert pred["file"].tolist() == ["high/high_0.wav", "high/high_1.wav", "low/low_0.wav", "low/low_1.wav"]
        assert pred["prediction"].tolist() == ["high", "high", "low", "low"]
    rc, err = run_cli("predict", run, new / "low" / "low_1.wav", "--out", tmp_path / "one.csv", capsys=capsys)
    assert rc == 0, err
    assert pd.read_csv(tmp_path / "one.csv")["prediction"].tolist() == ["low"]
    long = tmp_path / "long"
    write_tones(long, {"low": TONES["low"]}, per_class=1, seconds=2.0)  # 8x the 0.25 s the model reads
    rc, err = run_cli("predict", run, long, "--out", tmp_path / "long.csv", capsys=capsys)
    assert rc == 0 and "1 clip(s) are over twice the 0.25 s the model reads" in err and "low_0.wav (2.0 s)" in err, err
    # one file that is not audio costs the batch only its own prediction, named in a warning ...
    (new / "low" / "bad.wav").write_text("not audio")
    rc, err = run_cli("predict", run, new, "--out", tmp_path / "bad.csv", capsys=capsys)
    assert rc == 0 and "1 of 5 audio file(s)" in err and "bad.wav' is not audio soundfile can decode" in err, err
    assert "BufferedReader" not in err and len(pd.read_csv(tmp_path / "bad.csv")) == 4
    # ... but an input with nothing readable is an error, with nothing written
    rc, err = run_cli("predict", run, new / "low" / "bad.wav", "--out", tmp_path / "bad1.csv", capsys=capsys)
    assert rc == 3 and "None of the 1 audio file(s)" in err and "Traceback" not in err
    assert not (tmp_path / "bad1.csv").exists()
    # a shared model folder whose JSON asks for a 300 x 300 test-time grid (90,000 passes a clip) is refused
    crafted = tmp_path / "crafted"
    shutil.copytree(run, crafted)
    config = json.loads((crafted / "model.json").read_text())
    config["features"]["tta_speed"] = config["features"]["tta_vtlp"] = [1.0] * 300
    (crafted / "model.json").write_text(json.dumps(config))
    rc, err = run_cli("predict", crafted, new / "low" / "low_1.wav", "--out", tmp_path / "crafted.csv", capsys=capsys)
    assert rc == 3 and "crafted/model.json' is damaged" in err and "at most 5 items" in err
    assert not (tmp_path / "crafted.csv").exists()
    # and one whose JSON asks for an ensemble of 100,000 networks (model.members)
    config["features"]["tta_speed"] = config["features"]["tta_vtlp"] = []
    config["options"]["members"] = 100_000
    (crafted / "model.json").write_text(json.dumps(config))
    rc, err = run_cli("predict", crafted, new / "low" / "low_1.wav", "--out", tmp_path / "crafted.csv", capsys=capsys)
    assert rc == 3 and "crafted/model.json' is damaged" in err and "members" in err and "less than or equal to 8" in err
    assert not (tmp_path / "crafted.csv").exists()
    # and fields of another type or size: a frame count that would allocate tens of GiB, a rate of 0
    config["options"]["members"] = 1
    for key, value in (("frames", 1_000_000_000), ("sample_rate", 0), ("sample_rate", "abc"), ("suffixes", 3),
                       ("normalization", "x")):
        (crafted / "model.json").write_text(json.dumps({**config, key: value}))
        rc, err = run_cli("predict", crafted, new / "low" / "low_1.wav", "--out", tmp_path / "crafted.csv",
                          capsys=capsys)
        assert rc == 3 and "crafted/model.json' is damaged" in err and key in err and "Traceback" not in err, err


def _folder_with(tmp_path: Path, name: str, content: bytes | None = None) -> Path:
    write_tones(tmp_path / "clips", TONES, per_class=4, rate=RATE)
    if content is not None:
        (tmp_path / "clips" / "low" / name).write_bytes(content)
    return tmp_path / "clips"


STRICT = {"data": {"unreadable": "error"}}  # the first unreadable file stops the load
BAD = {
    "zero-byte WAV": (lambda t: _folder_with(t, "empty.wav", b""), STRICT, 3,
                      [r"empty.wav' is empty (zero bytes)", "data.unreadable: skip"]),
    "corrupt WAV": (lambda t: _folder_with(t, "cut.wav", (t / "clips" / "low" / "low_0.wav").read_bytes()[:30]
                                           if (t / "clips").exists() else b"RIFF\x00\x00"), STRICT, 3,
                    ["cut.wav' is not audio soundfile can decode"]),
    "text file named .wav": (lambda t: _folder_with(t, "notes.wav", b"hello, this is not audio\n" * 20), STRICT, 3,
                             ["notes.wav' is not audio soundfile can decode"]),
    "one class": (lambda t: write_tones(t / "clips", {"low": 300.0}, per_class=6, rate=RATE) and t / "clips", {}, 4,
                  ["a classifier needs at least two classes"]),
    "all silence beyond the allowed share": (
        lambda t: [sf.write(t / "clips" / "low" / f"quiet{i}.wav", np.zeros(800, np.float32), RATE) for i in range(4)]
        and t / "clips", {"audio_validation": {"max_silent_share": 0.05}}, 4, ["silent", "dBFS"]),
    "filename does not match the pattern": (
        lambda t: pattern_folder(t / "clips") and (t / "clips" / "Low-7.wav").write_bytes(b"x") and t / "clips",
        {"data": {"loader": "audio_pattern", "pattern": r"(?P<label>[a-z]+)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"}},
        3, ["file name 'Low-7.wav'", "does not match data.pattern"]),
}


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("case", list(BAD))
def test_bad_audio_input_fails_clearly(tmp_path, capsys, case):
    make, extra, code, phrases = BAD[case]
    if case == "all silence beyond the allowed share":
        write_tones(tmp_path / "clips", TONES, per_class=4, rate=RATE)
    root = make(tmp_path)
    extra = dict(extra)
    data = {"loader": "audio_folder", "path": str(root), **extra.pop("data", {})}
    spec = audio_spec(tmp_path, data, name="bad", **extra)
    assert_fails_clearly(spec, tmp_path / "runs", "bad", code, phrases, capsys)


@pytest.mark.usefixtures("prefect_server")
def test_unreadable_skip_leaves_out_a_corrupt_clip_and_says_which_and_why(tmp_path, capsys):
    root = _folder_with(tmp_path, "cut.wav")
    good = (root / "low" / "low_0.wav").read_bytes()
    (root / "low" / "cut.wav").write_bytes(good[:30])  # a header cut short: soundfile cannot decode it
    # strict (unreadable: error): exit 3 naming the file, and how to skip it
    spec = audio_spec(tmp_path, {"loader": "audio_folder", "path": str(root), "unreadable": "error"}, name="strict")
    assert_fails_clearly(spec, tmp_path / "runs", "strict", 3,
                         ["cut.wav' is not audio soundfile can decode", "data.unreadable: skip"], capsys)
    # skipped, within the allowed share: the run completes without it and says which file and why
    spec = audio_spec(tmp_path, {"loader": "audio_folder", "path": str(root), "unreadable": "skip"}, name="lenient",
                      audio_validation={"max_unreadable_share": 0.2})
    rc, err = run_cli("run", spec, "--out", tmp_path / "runs", capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(tmp_path / "runs", "lenient")
    report = (run / "report.md").read_text()
    assert "skipped unreadable audio file:" in report and "cut.wav' is not audio soundfile can decode" in report
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["rows"], metrics["rows_skipped"]) == (8, 1)  # the clips used; the skipped file apart
    validation = metrics["validation"]
    [(name, why)] = validation["unreadable_files"].items()
    assert name == "low/cut.wav" and "cut.wav' is not audio soundfile can decode" in why
    assert validation["class_counts"] == {"high": 4, "low": 4}  # the clips trained and tested on
    # the defaults (skip, 0.5%), here 1 of 9 files: validation stops the run (exit 4), naming the file and the share
    spec = audio_spec(tmp_path, {"loader": "audio_folder", "path": str(root)}, name="noshare")
    assert_fails_clearly(spec, tmp_path / "runs", "noshare", 4, ["low/cut.wav", "max_unreadable_share is 0.005"],
                         capsys)


@pytest.mark.usefixtures("prefect_server")
def test_manifest_naming_a_missing_file_fails_clearly(tmp_path, capsys):
    files = write_tones(tmp_path / "audio", TONES, per_class=3, rate=RATE, flat=True)
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"file": [f"audio/{f.name}" for f in files] + ["audio/missing.wav"],
                  "label": [f.name.split("_")[0] for f in files] + ["low"]}).to_csv(manifest, index=False)
    spec = audio_spec(tmp_path, {"loader": "audio_manifest", "path": str(manifest), "unreadable": "error"}, name="bad")
    assert_fails_clearly(spec, tmp_path / "runs", "bad", 3,
                         ["names the audio file 'audio/missing.wav' (row 7, column 'file')", "does not exist"], capsys)


# ---------------------------------------------------------------- kill and resume


# fit() trains the spec's model in the cache; run as a script, the fit SIGKILLs itself once the checkpoint
# of epoch 2 of the classifier phase is written (on_epoch runs after the save; the pre-training
# phase's rows have no accuracy): the point a watcher polling for that checkpoint would kill it at.
RESUME_DRIVER = """
import os, signal, sys
import yaml
from trainflow.spec import spec_from_dict
from trainflow.tasks.audio import modality as audio
from trainflow.tasks.common import load, training

def fit(spec_file, cache):
    spec = spec_from_dict(yaml.safe_load(open(spec_file).read()))
    split = audio.split(load.load(spec.data, cache, "audio"), spec, cache)
    return audio.fit(split, spec, cache)

def die_after_classifier_epoch_2(row):
    if "train_accuracy" in row and row["epoch"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)

if __name__ == "__main__":  # spec, cache, and "kill" to die after the classifier's epoch 2
    if sys.argv[3:] == ["kill"]:
        original = training.train_model
        training.train_model = lambda *a, **k: original(*a, on_epoch=die_after_classifier_epoch_2, **k)
    print("model:", fit(sys.argv[1], sys.argv[2]).path)
"""


def test_killed_audio_training_resumes_to_the_same_weights(tmp_path):
    """The autoencoder (two phases through the shared loop) killed (its own process, SIGKILL) in its
    classifier phase resumes there, after the finished pre-training, and ends with the weights of an
    uninterrupted run. All three fits are child processes started alike: a test process's torch (its
    thread pool's history, the CPU kernels it picked) can differ from a fresh one's in the last bits
    (an OMP_NUM_THREADS=1 child on an AMD EPYC, or this process pinned to one core by pytest-xdist),
    and Adam turns that into 0.03 on the biases before batch norm."""
    from safetensors.torch import load_file

    from trainflow.tasks.common.training import CHECKPOINT, load_checkpoint

    write_tones(tmp_path / "clips", TONES, per_class=6, rate=RATE)
    spec = audio_spec(tmp_path, {"loader": "audio_folder", "path": str(tmp_path / "clips")}, name="resume",
                      model={"name": "audio_autoencoder", "width": 4, "dense": 8, "pretrain_epochs": 2},
                      train={"epochs": 4, "batch_size": 4, "lr": 0.01, "num_threads": 1})
    (tmp_path / "audio_resume_driver.py").write_text(RESUME_DRIVER)

    def child(cache: str, *kill: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(tmp_path / "audio_resume_driver.py"), str(spec),
                                 str(tmp_path / cache), *kill], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)

    def model(out: str) -> dict:
        return load_file(Path(out.split("model: ")[-1].strip()) / "model.safetensors")

    killed, whole = child("killed", "kill"), child("whole")
    killed_out, _ = killed.communicate(timeout=300)
    whole_out, _ = whole.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, "the fit must be killed mid-run\n" + killed_out
    assert whole.returncode == 0, whole_out
    states = [load_checkpoint(p) for p in (tmp_path / "killed").rglob(CHECKPOINT)]
    assert any(s and s["epoch"] == 2 and "train_accuracy" in s["history"][-1] for s in states), states
    resumed = child("killed")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and "resuming from the checkpoint of epoch 2" in out, out
    weights, expected = model(out), model(whole_out)
    assert weights.keys() == expected.keys()
    assert all(np.array_equal(weights[k].numpy(), expected[k].numpy()) for k in weights)



def test_predict_leaves_out_a_clip_with_no_samples_and_names_it(tmp_path, capsys):
    """A WAV header with no samples decodes into nothing: no prediction, named (the drift check crashed on it)."""
    import soundfile as sf

    from trainflow.tasks.audio.modality import readable_clips

    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), RATE)
    sf.write(tmp_path / "tone.wav", np.sin(np.arange(RATE // 4) / 5).astype(np.float32), RATE)
    waves, names = readable_clips(tmp_path, [tmp_path / "empty.wav", tmp_path / "tone.wav"], ["empty.wav", "tone.wav"],
                                  RATE)
    assert names == ["tone.wav"] and len(waves[0]) > 0
    assert "1 of 2 audio file(s)" in capsys.readouterr().err
