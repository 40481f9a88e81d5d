"""One validation part per run (tasks/common/validation_part.py): the split's validation part, when
the spec gives one, is what early stopping, tuned multi-label thresholds and late-fusion weights
choose on; without one the loop carves it once, and the record says which."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from tests.test_holdout import image_and_table, image_manifest, wide_series  # noqa: E402
from tests.test_multilabel_neural import QUADRANTS, quadrant_images  # noqa: E402
from trainflow import modalities  # noqa: E402
from trainflow.refs import load_npz, read_parquet  # noqa: E402
from trainflow.spec import spec_from_dict  # noqa: E402
from trainflow.tasks.common import load as loading  # noqa: E402
from trainflow.tasks.common import multilabel as ML  # noqa: E402
from trainflow.tasks.common import selection  # noqa: E402


def module(mod):
    """The module whose functions are a built-in modality's stages (load_model, probabilities, ...)."""
    import sys

    return sys.modules[type(mod).__module__]


def fitted(raw: dict, cache: Path):
    """load -> profile -> split -> fit of a raw spec, without Prefect: the spec, modality, split and model."""
    spec = spec_from_dict({"name": "valpart", **raw})
    mod = modalities.get(spec.modality)
    ref = mod.profile(loading.load(spec.data, str(cache), spec.modality, spec.split), spec)
    split = mod.split(ref, spec, str(cache))
    return spec, mod, split, mod.fit(split, spec, str(cache))


def log_loss_of(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None))))


def test_an_image_network_stops_on_the_splits_validation_part_and_ignores_val_fraction(tmp_path, capsys):
    manifest = image_manifest(tmp_path / "data")
    spec, mod, split, model = fitted({
        "data": {"loader": "image_manifest", "path": str(manifest)}, "seed": 0,
        "split": {"column": "part", "test": ["test"], "validation": ["val"]},
        "model": {"width": 4, "dense": 8},
        "train": {"epochs": 4, "batch_size": 8, "val_fraction": 0.3, "patience": 2, "device": "cpu"}}, tmp_path)
    record = model.meta["validation_part"]
    assert record == {"source": "split", "rows": 10, "used_for": ["early stopping epoch"]}
    assert any("train.val_fraction (0.3) is ignored" in n for n in model.meta["notes"])
    assert "train.val_fraction (0.3) is ignored" in capsys.readouterr().err  # a warning, not only a note
    # the kept epoch's validation loss is the saved network's loss on exactly the split's validation rows
    net, config = module(mod).load_model(model.path)
    held = load_npz(split.validation.path)
    proba = module(mod).probabilities(net, config, held["x"], "cpu")
    best = next(h for h in model.meta["history"] if h["epoch"] == model.meta["best_epoch"])
    assert best["val_loss"] == pytest.approx(log_loss_of(proba, held["y"]), rel=1e-4)
    assert selection.selection_of(model, spec)["method"].startswith("the split's validation part")


def test_without_a_validation_part_the_loop_carves_one_and_says_so(tmp_path):
    path = wide_series(tmp_path / "s.csv", "part")
    spec, mod, split, model = fitted({
        "data": {"loader": "wide_csv", "path": str(path)}, "model": {"name": "gru", "hidden": 8},
        "split": {"column": "part", "test": ["test"]},
        "train": {"epochs": 2, "batch_size": 8, "val_fraction": 0.25, "device": "cpu"}}, tmp_path)
    assert split.validation is None
    assert model.meta["validation_part"] == {"source": "carved", "rows": 8, "share": 0.25, "seed": spec.seed,
                                             "stratified": True, "used_for": ["early stopping epoch"]}
    assert selection.selection_of(model, spec)["method"].startswith("validation part of the training split")


def test_a_sequence_network_validates_on_the_splits_share(tmp_path):
    path = wide_series(tmp_path / "s.csv", "part")
    _, mod, split, model = fitted({
        "data": {"loader": "wide_csv", "path": str(path)}, "model": {"name": "gru", "hidden": 8},
        "split": {"column": "part", "test": ["test"], "validation": 0.25},
        "train": {"epochs": 2, "batch_size": 8, "device": "cpu"}}, tmp_path)
    assert model.meta["validation_part"]["source"] == "split" and model.meta["validation_part"]["rows"] == 8
    net, config = module(mod).load_model(model.path)
    from trainflow.tasks.sequence.preprocess import load_series

    held = load_series(split.validation.path)
    proba = module(mod).outputs(net, config, held["series"], "cpu")
    y = np.array([config["classes"].index(str(v)) for v in held["y"]])
    best = next(h for h in model.meta["history"] if h["epoch"] == model.meta["best_epoch"])
    assert best["val_loss"] == pytest.approx(log_loss_of(proba, y), rel=1e-4)


def test_tuned_network_thresholds_come_from_the_splits_validation_part_without_val_fraction(tmp_path):
    x, Y = quadrant_images(120)
    np.savez(tmp_path / "quads.npz", x=x, y=Y, labels=np.array(QUADRANTS))
    _, mod, split, model = fitted({
        "task": "multilabel", "data": {"loader": "npz", "path": str(tmp_path / "quads.npz")},
        "split": {"test_size": 0.25, "validation": 0.25}, "model": {"width": 4, "dense": 8},
        "multilabel": {"threshold": "tuned"}, "train": {"epochs": 3, "batch_size": 16, "lr": 0.01, "device": "cpu"}},
        tmp_path)
    assert model.meta["validation_part"]["source"] == "split"
    assert "multi-label thresholds" in model.meta["validation_part"]["used_for"]
    net, config = module(mod).load_model(model.path)
    held = load_npz(split.validation.path)
    proba = module(mod).probabilities(net, config, held["x"], "cpu")
    assert config["thresholds"] == ML.best_thresholds(held["y"].astype(np.int64), proba)


def test_tuned_table_thresholds_come_from_the_splits_validation_part(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 120
    X = rng.normal(size=(n, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(
        tags=["|".join(t for t, on in (("p", X[i, 0] > 0), ("q", X[i, 1] + 0.5 * X[i, 2] > 0.3)) if on)
              for i in range(n)], part=(["train"] * 3 + ["val", "test"]) * (n // 5))
    frame.to_csv(tmp_path / "t.csv", index=False)
    _, mod, split, model = fitted({
        "task": "multilabel", "data": {"loader": "csv", "path": str(tmp_path / "t.csv"), "target": "tags",
                                       "separator": "|"},
        "split": {"column": "part", "test": ["test"], "validation": ["val"]}, "model": {"name": "random_forest", "n_estimators": 20},
        "multilabel": {"threshold": "tuned", "tune_share": 0.3}}, tmp_path)
    assert "'multilabel.tune_share' (0.3) is ignored" in capsys.readouterr().err
    pipe, schema = module(mod).load_model(model.path)
    held = read_parquet(split.validation.path, keep=False)
    labels = schema["labels"]
    proba = ML.positive_proba(pipe.steps[-1][1], ML.transform(pipe, held.drop(columns=labels)))
    # the final pipeline (all training rows) scored on the validation rows chose them, not a carve-out
    assert schema["thresholds"] == ML.best_thresholds(ML.label_matrix(held, labels), proba)


def test_multimodal_keeps_its_validation_part_out_of_the_training_part(tmp_path):
    manifest = image_and_table(tmp_path)
    _, mod, split, model = fitted({
        "data": {"loader": "multimodal", "join": "id",
                 "inputs": {"img": {"loader": "image_manifest", "path": str(manifest), "model": {"width": 4, "dense": 8}},
                            "tab": {"loader": "csv", "path": str(tmp_path / "table.csv"), "target": "label",
                                    "id": "file"}}},
        "split": {"column": "part", "test": ["test"], "validation": ["val"]},
        "model": {"name": "late_fusion", "weighting": "learned"},
        "train": {"epochs": 2, "batch_size": 8, "device": "cpu"}}, tmp_path)
    train, held = load_npz(split.train.path), load_npz(split.validation.path)
    assert len(held["rows"]) == 10 and not set(train["rows"]) & set(held["rows"])
    assert not train["tune"].any()  # no carve-out of the training rows: the validation part learns the weights
    assert split.meta["class_counts"]["train"] == {"bright": 10, "dark": 10}
    config = json.loads((Path(model.path) / "model.json").read_text())
    assert len(config["weights"]) == 2
