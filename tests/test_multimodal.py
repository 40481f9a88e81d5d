"""Multimodal pipelines: an image input and a table input, each alone half informative, together fully.

Four classes ``2*a + b``: the image shows bit ``a`` (bright top or bottom half), the table's column
``b`` shows bit ``b``. Each input alone can reach about 0.5 accuracy; fused, about 1.0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_fails_clearly, run_cli, write_spec
from trainflow import modalities
from trainflow.errors import DataError
from trainflow.spec import spec_from_dict
from trainflow.tasks.common import load

N = 160


def write_images(folder: Path, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``images.npz``: n images of bit ``a``, labelled ``2*a + b``; returns ``b`` and the labels."""
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    y = 2 * a + b
    x = rng.integers(0, 40, (n, 8, 8)).astype(np.uint8)
    x[a == 1, :4] += 150
    x[a == 0, 4:] += 150
    np.savez(folder / "images.npz", x=x, y=y)
    return b, y


def write_data(folder: Path, n: int = N, ids: bool = False) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    b, y = write_images(folder, n, rng)
    table = pd.DataFrame({"b": b + rng.normal(0, 0.1, n), "noise": rng.normal(size=n)})
    if ids:
        table.insert(0, "key", [str(i) for i in range(n)])
    table.to_csv(folder / "extra.csv", index=False)
    return {"images": folder / "images.npz", "extra": folder / "extra.csv"}


def raw_spec(paths: dict[str, Path], model: dict, **data) -> dict:
    return {"name": "mm", "seed": 0, "validation": {"min_rows": 10}, "split": {"test_size": 0.25},
            "data": {"loader": "multimodal", "inputs": {
                "image": {"loader": "npz", "path": str(paths["images"]),
                          "model": {"width": 4, "dense": 16, "padding": "same"}},
                "extra": {"loader": "csv", "path": str(paths["extra"])}}, **data},
            "model": model, "train": {"epochs": 12, "batch_size": 16, "lr": 0.01, "num_threads": 1}}


def run_stages(raw: dict, tmp_path: Path):
    spec = spec_from_dict(raw)
    mod = modalities.get(spec.modality)
    cache = str(tmp_path / "cache")
    data = load.load(spec.data, cache, spec.modality)
    mod.validate(data, spec, None)
    split = mod.split(data, spec.training_view(), cache)
    model = mod.fit(split, spec.training_view(), cache)
    plots = tmp_path / "plots"
    plots.mkdir(exist_ok=True)
    return spec, data, split, model, mod.evaluate(model, split, spec, str(plots))


@pytest.mark.parametrize("model", [{"name": "late_fusion"}, {"name": "late_fusion", "weighting": "learned"},
                                   {"name": "early_fusion"}, {"name": "intermediate_fusion", "hidden": 16}])
def test_each_fusion_beats_each_input_alone_and_predicts(model, tmp_path):
    paths = write_data(tmp_path)
    spec, data, split, ref, ev = run_stages(raw_spec(paths, model), tmp_path)
    table = ev.tables["Fusion vs each input alone (same split)"]
    assert [r["model"].split(" ")[0] for r in table] == ["fused", "image", "extra"]
    singles = [ev.metrics["branch_image_accuracy"], ev.metrics["branch_extra_accuracy"]]
    assert max(singles) < 0.75  # each input alone knows one of the two bits
    assert ev.metrics["accuracy"] >= max(singles) + 0.15, (ev.metrics, singles)
    # each input carries one of the two bits: masking either costs the fused model accuracy
    masked = {r["input masked"]: r for r in ev.tables["Masking each input (test split)"]}
    assert set(masked) == {"image", "extra"} and all(r["drop"] >= 0.1 for r in masked.values()), masked
    assert "ece" in ev.metrics and "accuracy" in ev.intervals
    run = tmp_path / "run"
    run.mkdir()
    files = modalities.get("multimodal").export(ref, str(run))
    assert "model.json" in files and (run / "image" / "model.safetensors").is_file()
    assert not list(run.rglob("*.pkl")) and not list(run.rglob("*.pt"))
    np.savez(tmp_path / "new.npz", x=np.load(paths["images"])["x"][:6])
    pd.read_csv(paths["extra"]).head(6).to_csv(tmp_path / "new.csv", index=False)
    (tmp_path / "new.yaml").write_text("image: new.npz\nextra: new.csv\n")
    out = modalities.get("multimodal").predict(run, tmp_path / "new.yaml")
    assert len(out) == 6 and {"item", "prediction", "proba_0", "proba_3"} <= set(out.columns)
    truth = np.load(paths["images"])["y"][:6].astype(str)
    assert (out["prediction"].to_numpy() == truth).sum() >= 4, (out, truth)  # each input alone: about 3 of 6


def test_rows_missing_one_input_are_dropped_and_reported(tmp_path):
    paths = write_data(tmp_path, ids=True)
    images = dict(np.load(paths["images"]))
    folder = tmp_path / "imgs"
    for i in range(N - 20):  # 20 rows have no image
        cls = folder / str(images["y"][i])
        cls.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.fromarray(images["x"][i]).save(cls / f"{i}.png")
    raw = raw_spec(paths, {"name": "late_fusion"}, join="stem")
    raw["data"]["inputs"]["image"] = {"loader": "image_folder", "path": str(folder),
                                      "model": {"width": 4, "dense": 16, "padding": "same"}}
    raw["data"]["inputs"]["extra"]["id"] = "key"
    spec = spec_from_dict(raw)
    data = load.load(spec.data, str(tmp_path / "cache"), "multimodal")
    assert data.meta["rows"] == N - 20
    assert any("dropped 20 item(s) of input 'extra'" in n for n in data.meta["notes"])


def test_rows_missing_one_input_are_masked_when_asked(tmp_path):
    paths = write_data(tmp_path, ids=True)
    images = dict(np.load(paths["images"]))
    keep = np.arange(N) % 5 != 0  # every fifth row has no image
    np.savez(tmp_path / "some.npz", x=images["x"][keep], y=images["y"][keep])
    # an npz has no ids: join the table (ids 0..N-1) by position would not line up, so ids go by an
    # image folder's file names instead
    from PIL import Image

    folder = tmp_path / "imgs"
    for i in np.flatnonzero(keep):
        (folder / str(images["y"][i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(images["x"][i]).save(folder / str(images["y"][i]) / f"{i}.png")
    raw = raw_spec(paths, {"name": "intermediate_fusion", "hidden": 16}, join="stem", missing="mask")
    raw["data"]["inputs"]["image"] = {"loader": "image_folder", "path": str(folder),
                                      "model": {"width": 4, "dense": 16, "padding": "same"}}
    raw["data"]["inputs"]["extra"] = {"loader": "csv", "path": str(paths["extra"]), "id": "key"}
    # the table has no labels: every row needs one from the images, so a masked image row has none
    with pytest.raises(DataError, match="have no label"):
        load.load(spec_from_dict(raw).data, str(tmp_path / "cache"), "multimodal")
    table = pd.read_csv(paths["extra"]).assign(label=images["y"])
    table.to_csv(paths["extra"], index=False)
    raw["data"]["inputs"]["extra"]["target"] = "label"
    spec, data, split, ref, ev = run_stages(raw, tmp_path)
    assert data.meta["rows"] == N
    assert any("input 'image' lacks 32 of 160 rows" in n for n in data.meta["notes"])
    assert ev.metrics["accuracy"] > ev.metrics["branch_extra_accuracy"]
    run = tmp_path / "run"
    run.mkdir()
    modalities.get("multimodal").export(ref, str(run))
    pd.read_csv(paths["extra"]).head(5).to_csv(tmp_path / "new.csv", index=False)
    (tmp_path / "only_table.yaml").write_text("extra: new.csv\n")  # the image input left out: masked
    out = modalities.get("multimodal").predict(run, tmp_path / "only_table.yaml")
    assert len(out) == 5 and not out["has_image"].any() and out["has_extra"].all()


# ---------------------------------------------------------------- bad input, through the CLI


@pytest.fixture
def server(prefect_server):
    return prefect_server


@pytest.mark.usefixtures("server")
@pytest.mark.parametrize("case", ["ids match nothing", "different row counts", "loader fails"])
def test_bad_input_fails_clearly(case, tmp_path, capsys):
    paths = write_data(tmp_path, ids=True)
    raw = raw_spec(paths, {"name": "late_fusion"})
    if case == "ids match nothing":
        from PIL import Image

        folder = tmp_path / "imgs"
        for i in range(20):
            (folder / str(i % 2)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / str(i % 2) / f"img{i}.png")
        raw["data"].update(join="stem")
        raw["data"]["inputs"]["image"] = {"loader": "image_folder", "path": str(folder)}
        raw["data"]["inputs"]["extra"]["id"] = "key"
        phrases = ["No stem is in every input", "'image'", "'img0'", "'extra'"]
    elif case == "different row counts":
        pd.read_csv(paths["extra"]).head(N - 7).to_csv(paths["extra"], index=False)
        phrases = ["different numbers of rows", f"'image' {N}", f"'extra' {N - 7}", "data.join"]
    else:
        paths["extra"].write_text("")
        phrases = ["input 'extra'", "loader 'csv'", "extra.csv", "is empty"]
    assert_fails_clearly(write_spec(tmp_path / "spec.yaml", raw), tmp_path / "runs", "mm", 3, phrases, capsys)


def test_spec_problems_name_the_input(tmp_path, capsys):
    paths = write_data(tmp_path)
    raw = raw_spec(paths, {"name": "early_fusion", "model": "cnn"})
    raw["data"]["inputs"]["image"]["model"] = {"name": "cnn", "widht": 4}
    raw["data"]["inputs"]["extra"]["loader"] = "csvv"
    rc, err = run_cli("run", write_spec(tmp_path / "spec.yaml", raw), "--out", tmp_path / "runs", capsys=capsys)
    assert rc == 2
    assert "data.inputs.image" in err and "widht" in err
    assert "csvv" in err and "model.model" in err and "Traceback" not in err


def test_predict_needs_every_input_unless_masked(tmp_path):
    paths = write_data(tmp_path)
    *_, ref, _ = run_stages(raw_spec(paths, {"name": "late_fusion"}), tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    modalities.get("multimodal").export(ref, str(run))
    (tmp_path / "one.yaml").write_text("image: images.npz\n")
    with pytest.raises(DataError, match="lacks input\\(s\\) 'extra'.*data.missing: drop"):
        modalities.get("multimodal").predict(run, tmp_path / "one.yaml")
    (tmp_path / "typo.yaml").write_text("imgae: images.npz\nextra: extra.csv\n")
    with pytest.raises(DataError, match="did you mean 'image'"):
        modalities.get("multimodal").predict(run, tmp_path / "typo.yaml")


# ---------------------------------------------------------------- an audio input


def write_tones_and_images(folder: Path, n: int = 96) -> dict[str, Path]:
    """Four classes ``2*a + b``: the 8x8 image shows bit ``a``, a 0.25 s tone (300 or 1200 Hz, with
    noise) bit ``b``; clips listed in a manifest in row order, so ``join: position`` pairs them."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    b, y = write_images(folder, n, rng)
    rate, t = 8000, np.arange(2000) / 8000
    (folder / "clips").mkdir()
    for i in range(n):
        hz = (300.0, 1200.0)[b[i]] * rng.uniform(0.97, 1.03)
        wave = 0.4 * np.sin(2 * np.pi * hz * t) + 0.05 * rng.normal(size=len(t))
        sf.write(folder / "clips" / f"c{i:03d}.wav", wave.astype(np.float32), rate, subtype="PCM_16")
    pd.DataFrame({"file": [f"clips/c{i:03d}.wav" for i in range(n)], "label": y}).to_csv(folder / "clips.csv",
                                                                                      index=False)
    return {"images": folder / "images.npz", "clips": folder / "clips.csv", "y": y}


def audio_image_spec(paths: dict[str, Path], model: dict) -> dict:
    raw = raw_spec({**paths, "extra": paths["clips"]}, model)
    raw["data"]["inputs"] = {"image": raw["data"]["inputs"]["image"], "speech": {
        "loader": "audio_manifest", "path": str(paths["clips"]), "sample_rate": 8000,
        "model": {"name": "audio_cnn", "width": 4, "dense": 8, "padding": "same"},
        "preprocess": {"audio": {"duration": 0.25, "n_mels": 16, "n_fft": 256, "hop_length": 128}}}}
    return raw


@pytest.mark.parametrize("model", [{"name": "intermediate_fusion", "hidden": 16}, {"name": "early_fusion"},
                                   {"name": "late_fusion"}])
def test_an_audio_input_is_a_branch_like_the_others(model, tmp_path):
    paths = write_tones_and_images(tmp_path)
    spec, data, split, ref, ev = run_stages(audio_image_spec(paths, model), tmp_path)
    assert data.meta["inputs"]["speech"]["modality"] == "audio"
    table = ev.tables["Fusion vs each input alone (same split)"]
    assert table[2]["model"].startswith("speech alone (audio, audio_cnn)")
    singles = [ev.metrics["branch_image_accuracy"], ev.metrics["branch_speech_accuracy"]]
    assert max(singles) < 0.8  # each input alone tells one of the two bits
    assert ev.metrics["accuracy"] >= max(singles) + 0.15, (ev.metrics, singles)
    # the audio branch's normalisation was fitted on its training clips only
    from trainflow import trust

    config = trust.read_json(Path(ref.path) / "speech" / "model.json")
    from trainflow.tasks.audio.modality import load_npz, waves_of
    from trainflow.tasks.audio.features import AudioFeatures, fit_normalization, wave_features

    pre = AudioFeatures.model_validate(config["features"])
    train = split.meta["branches"]["speech"]["train"]["path"]
    x, frames = wave_features(waves_of(load_npz(train)), 8000, pre)
    assert np.allclose(config["normalization"]["mean"], fit_normalization(x, frames, pre).mean_, atol=1e-4)
    # predict: new clips (a folder, read as the audio modality reads one) and new images, by position
    run = tmp_path / "run"
    run.mkdir()
    modalities.get("multimodal").export(ref, str(run))
    np.savez(tmp_path / "new.npz", x=np.load(paths["images"])["x"][:8])
    new = tmp_path / "new_clips"
    new.mkdir()
    for i in range(8):
        (new / f"c{i:03d}.wav").write_bytes((tmp_path / "clips" / f"c{i:03d}.wav").read_bytes())
    (tmp_path / "new.yaml").write_text("image: new.npz\nspeech: new_clips\n")
    out = modalities.get("multimodal").predict(run, tmp_path / "new.yaml")
    assert len(out) == 8 and {"item", "prediction", "proba_0", "proba_3"} <= set(out.columns)
    assert (out["prediction"].to_numpy() == paths["y"][:8].astype(str)).sum() >= 6, out


def test_the_data_digest_covers_the_clips_an_audio_manifest_input_names(tmp_path):
    """An input's loader lists the files its file names (an audio manifest's clips): an edited clip
    is new data for the multimodal pipeline too, though the manifest CSV is unchanged."""
    import soundfile as sf

    from trainflow.tasks.audio.modality import write_tones

    files = write_tones(tmp_path / "audio", {"low": 300.0, "high": 1200.0}, per_class=4, flat=True)
    pd.DataFrame({"file": [f"audio/{f.name}" for f in files],
                  "label": [f.name.split("_")[0] for f in files]}).to_csv(tmp_path / "m.csv", index=False)
    pd.DataFrame({"noise": np.arange(len(files), dtype=float)}).to_csv(tmp_path / "extra.csv", index=False)
    spec = spec_from_dict({"name": "mm", "model": {"name": "late_fusion"}, "data": {"loader": "multimodal", "inputs": {
        "speech": {"loader": "audio_manifest", "path": str(tmp_path / "m.csv"), "sample_rate": 8000},
        "extra": {"loader": "csv", "path": str(tmp_path / "extra.csv")}}}})
    before = load.load(spec.data, str(tmp_path / "cache"), "multimodal")
    sf.write(files[0], np.zeros(2000, np.float32), 8000)  # the first clip re-recorded (silence)
    after = load.load(spec.data, str(tmp_path / "cache"), "multimodal")
    assert after.digest != before.digest
