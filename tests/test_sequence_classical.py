"""Sequence classification models beyond the recurrent nets, run through the modality's stages
without Prefect on tiny generated data (univariate, and multivariate with unequal lengths):
MiniRocket, ROCKET and 1-NN DTW (sktime) saved as arrays + JSON, the InceptionTime- and
ResNet-style networks with their training recipe, every older network on the hard case, the
default model, the normalization advice, and refusal of tampered model files.

MiniRocket's numba kernels compile once per process (seconds; cached on disk by numba), so the
MiniRocket runs share one module fixture and use the smallest kernel count.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SPECS
from trainflow.errors import DataError
from trainflow.spec import load_spec, spec_from_dict
from trainflow.registry import REGISTRY
from trainflow.tasks.common import load
from trainflow.tasks.common.training import TrainConfig, apply_recipe
from trainflow.tasks.sequence import advice, classical
from trainflow.tasks.sequence import modality as seq


def shapes(n: int, rng: np.random.Generator, channels: int, unequal: bool, level: bool = False):
    """Three classes told apart by shape (a bump early, late, or none) in channel 0; other channels noise.
    ``level``: the classes differ by their mean level instead (and have the same shape)."""
    x, lengths, y = [], [], []
    for i in range(n):
        label = i % 3
        T = int(rng.integers(24, 40)) if unequal else 32
        t = np.linspace(0, 1, T)
        s = 0.2 * rng.standard_normal((T, channels))
        if level:
            s[:, 0] += 3.0 * label + np.sin(6 * t)
        elif label < 2:
            s[:, 0] += np.exp(-((t - (0.25 if label == 0 else 0.75)) ** 2) / 0.005) * 2
        x.append(s)
        lengths.append(T)
        y.append(f"c{label}")
    X = np.zeros((n, max(lengths), channels))
    for i, s in enumerate(x):
        X[i, : len(s)] = s
    return X, np.array(lengths), np.array(y)


def write_set(folder: Path, channels: int, unequal: bool, level: bool = False, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    X, L, y = shapes(48, rng, channels, unequal, level)
    np.savez(folder / "series.npz", x=X, y=y, lengths=L)
    np.savez(folder / "new.npz", x=X[:6], lengths=L[:6])
    return {"loader": "npz_series", "path": str(folder / "series.npz")}


def run_stages(tmp: Path, data: dict, model: dict | None, **sections) -> dict:
    """store -> split -> fit -> evaluate -> export -> predict; returns what each gave (model None: the default)."""
    spec = spec_from_dict({"name": "seqcls", "task": "classification", "data": data, **({"model": model} if model else {}),
                           "validation": {"min_rows": 10}, "split": {"test_size": 0.25}, **sections})
    cache = str(tmp / "cache")
    ref = load.load(spec.data, cache, spec.modality)
    split = seq.split(ref, spec.training_view(), cache)
    model_ref = seq.fit(split, spec.training_view(), cache)
    evaluation = seq.evaluate(model_ref, split, spec, str(tmp / "plots"))
    run_dir = tmp / "run"
    run_dir.mkdir(exist_ok=True)
    files = seq.export(model_ref, str(run_dir))
    test = seq.load_series(split.test.path)
    test_file = tmp / "test.npz"
    lengths = np.array([len(s) for s in test["series"]])
    X = np.zeros((len(lengths), lengths.max(), test["series"][0].shape[1]))
    for i, s in enumerate(test["series"]):
        X[i, : len(s)] = s
    np.savez(test_file, x=X, lengths=lengths, y=test["y"])
    frame = seq.predict(run_dir, test_file)
    return {"spec": spec, "model": model_ref, "evaluation": evaluation, "files": files, "run_dir": run_dir,
            "frame": frame, "test_y": test["y"]}


def check_run(result: dict, at_least: float) -> None:
    ev, frame = result["evaluation"], result["frame"]
    acc = ev.metrics["accuracy"]
    assert isinstance(acc, float) and not math.isnan(acc)
    # predict on the exported folder gives the evaluation's accuracy on the same test series
    assert (frame["prediction"].to_numpy() == result["test_y"]).mean() == pytest.approx(acc)
    assert acc >= at_least, ev.metrics


SMALL = {"num_kernels": 840}  # 84 is too few for 3 channels of which 2 are noise


@pytest.fixture(scope="module")
def minirocket_runs(tmp_path_factory):
    """MiniRocket once on univariate equal-length and once on multivariate unequal-length data."""
    out = {}
    for name, channels, unequal in (("uni", 1, False), ("multi", 3, True)):
        tmp = tmp_path_factory.mktemp(f"minirocket-{name}")
        out[name] = run_stages(tmp, write_set(tmp / "data", channels, unequal), {"name": "minirocket", **SMALL})
    return out


@pytest.mark.parametrize("case", ["uni", "multi"])
def test_minirocket_trains_evaluates_predicts(minirocket_runs, case):
    result = minirocket_runs[case]
    check_run(result, 0.9)
    assert set(result["files"]) == {"model.npz", "model.json"}
    assert not list(result["run_dir"].glob("*.skops")) and not list(result["run_dir"].glob("*.pkl"))
    assert any("minirocket:" in s and "ridge alpha" in s for s in result["model"].meta["steps"])


@pytest.mark.parametrize("model", [{"name": "rocket", "num_kernels": 200}, {"name": "multirocket", "num_kernels": 168},
                                   {"name": "knn_dtw"},
                                   {"name": "knn_dtw", "window": 1.0, "n_neighbors": 3}])
def test_rocket_and_knn_dtw_on_multivariate_unequal_lengths(tmp_path, model):
    check_run(run_stages(tmp_path, write_set(tmp_path / "data", 2, True), model), 0.8)


@pytest.mark.parametrize("name", ["inception_time", "resnet1d", "gru", "lstm", "rnn", "cnn1d"])
def test_every_network_runs_on_multivariate_unequal_lengths(tmp_path, name):
    small = {"inception_time": {"filters": 4, "depth": 3, "kernels": [9, 5, 3], "bottleneck": 4},
             "resnet1d": {"filters": [8, 8], "kernels": [5, 3]}, "cnn1d": {"filters": [8, 8], "kernels": [5, 3]}}
    options = small.get(name, {"hidden": 8, "front_channels": 8})
    result = run_stages(tmp_path, write_set(tmp_path / "data", 2, True), {"name": name, **options},
                        train={"epochs": 3, "batch_size": 8})
    check_run(result, 0.0)  # a few epochs: what counts is that it runs and predict agrees with evaluate


def test_inception_time_gets_its_recipe(tmp_path):
    """The recipe fills the train fields left at their defaults (batch, schedule, early stopping) and says so."""
    result = run_stages(tmp_path, write_set(tmp_path / "data", 1, False),
                        {"name": "inception_time", "filters": 8, "depth": 3, "kernels": [9, 5, 3], "bottleneck": 8},
                        train={"epochs": 12})  # epochs given: the recipe fills only the other fields
    notes = " ".join(result["model"].meta["notes"])
    assert "training recipe for 36 training examples" in notes and "batch_size 8" in notes and "epochs" not in \
        notes.split("training recipe")[1].split("(")[0]
    check_run(result, 0.5)  # three classes: chance is 0.33 (12 epochs; GunPoint figures in docs/sequence.md)


def test_recipe_fills_only_fields_the_spec_does_not_set():
    recipe = REGISTRY.get("model", "inception_time").extra["train_recipe"]
    filled, notes = apply_recipe(TrainConfig(), recipe, 50)
    # every series trained on, the lowest training loss kept, ~700 steps of batch 8 (GunPoint's 50 series)
    assert (filled.batch_size, filled.epochs, filled.schedule, filled.monitor) == (8, 100, "cosine", "train_loss")
    assert (filled.val_fraction, filled.patience) == (0, 0) and "monitor train_loss" in notes[0]
    mine, _ = apply_recipe(TrainConfig(batch_size=32, epochs=7), recipe, 50)
    assert (mine.batch_size, mine.epochs, mine.schedule) == (32, 7, "cosine")
    default_but_set, _ = apply_recipe(TrainConfig(epochs=10), recipe, 50)  # 10 is the default, set on purpose
    assert default_but_set.epochs == 10 and default_but_set.schedule == "cosine"
    # a spec asking for a validation split keeps early stopping on the validation loss
    early, _ = apply_recipe(TrainConfig(val_fraction=0.2, patience=20), recipe, 50)
    assert (early.monitor, early.val_fraction, early.patience, early.epochs) == ("val_loss", 0.2, 20, 100)
    assert apply_recipe(TrainConfig(recipe=False), recipe, 50) == (TrainConfig(recipe=False), [])
    assert apply_recipe(TrainConfig(), None, 50) == (TrainConfig(), [])
    assert apply_recipe(TrainConfig(), recipe, 12)[0].epochs == 150  # few series: few steps per epoch, capped
    big = apply_recipe(TrainConfig(), recipe, 1000)[0]
    assert (big.batch_size, big.epochs) == (16, 40)  # many series: enough steps in the fewest epochs


CONV = {"epochs": 100, "batch_size": 8, "lr": 0.001, "schedule": "cosine", "monitor": "train_loss"}
RECURRENT = {"epochs": 60, "batch_size": 16, "lr": 0.001, "schedule": "none", "monitor": "val_loss"}


@pytest.mark.parametrize(("name", "expected"), [("gru", RECURRENT), ("lstm", RECURRENT), ("rnn", RECURRENT),
                                                ("cnn1d", CONV), ("resnet1d", CONV), ("inception_time", CONV)])
def test_the_gunpoint_spec_gives_each_network_its_recipe_and_a_set_field_wins(name, expected):
    """``gunpoint.yaml --set model.name=<network>``: the network's recipe for 50 series, not another
    family's tuning; a field the user sets (``--set train.epochs=30``) wins over the recipe."""
    def trained_with(*overrides: str) -> dict:
        spec = load_spec(SPECS / "gunpoint.yaml", [f"model.name={name}", *overrides])
        train, _ = apply_recipe(spec.train, REGISTRY.get("model", name).extra.get("train_recipe"), 50)
        return {k: getattr(train, k) for k in expected}

    assert trained_with() == expected
    assert trained_with("train.epochs=30") == {**expected, "epochs": 30}
    assert trained_with("train.recipe=false")["epochs"] == 10  # recipes off: the loop's defaults


def test_the_recurrent_recipe_scales_with_the_training_series():
    recipe = REGISTRY.get("model", "gru").extra["train_recipe"]
    assert recipe(50) == {"batch_size": 16, "epochs": 60}  # GunPoint: 4 steps per epoch
    assert recipe(1000) == {"batch_size": 128, "epochs": 30}  # the loop's batch; ~240 steps
    assert recipe(100_000)["epochs"] == 10


def waves(n: int, seed: int):
    """Three classes told apart by frequency (2, 4 or 8 cycles in 48 steps) at a random phase and
    amplitude, with noise: ``(x [n, 48, 1], mask, y)`` tensors."""
    import torch

    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    t = np.linspace(0, 1, 48)
    x = [rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * 2 ** (k + 1) * t + rng.uniform(0, 2 * np.pi))
         + 0.3 * rng.standard_normal(48) for k in y]
    X = torch.tensor(np.array(x), dtype=torch.float32).unsqueeze(-1)
    return X, torch.ones(X.shape[:2]), torch.tensor(y)


def test_the_recipe_learns_where_the_loop_defaults_underfit():
    """A small ResNet on tiny generated data: the loop's defaults (10 epochs of one batch of 128) stay
    at chance on new series; the recipe (batch 8, 117 epochs, cosine, lowest training loss) separates them."""
    import torch

    from trainflow.tasks.common.training import predict, train_model

    comp = REGISTRY.get("model", "resnet1d")
    train, test = waves(48, 0), waves(60, 1)

    def accuracy(config: TrainConfig) -> float:
        torch.manual_seed(0)
        model = comp.build(comp.config(filters=[8, 8], kernels=[5, 3]), in_channels=1, out_features=3)
        train_model(model, train, None, config, seed=0, log=lambda _: None)
        return float((predict(model, test[:2]).argmax(1) == test[2]).float().mean())

    loop_defaults = TrainConfig(num_threads=1, checkpoint=False)
    recipe, notes = apply_recipe(loop_defaults, comp.extra["train_recipe"], len(train[2]))
    assert recipe.epochs > 100 and notes
    assert accuracy(loop_defaults) < 0.6
    assert accuracy(recipe) >= 0.95


@pytest.mark.parametrize("name", ["minirocket", "rocket", "multirocket", "knn_dtw"])
@pytest.mark.parametrize(("unequal", "k"), [(False, 3), (True, 3), (False, 2)])
def test_saved_arrays_give_the_fitted_models_predictions(tmp_path, name, unequal, k):
    X, L, y = shapes(30, np.random.default_rng(1), 2, unequal)
    series = [X[i, :n] for i, n in enumerate(L)]
    labels = np.array([int(v[1]) for v in y]) % k  # k = 2: a binary ridge has one decision function
    comp = REGISTRY.get("model", name)
    options = comp.config.model_validate({"num_kernels": 84 if "mini" in name or "multi" in name else 100}
                                         if name != "knn_dtw" else {})
    model = comp.build(options, seed=0).fit(series[:20], labels[:20], k)
    before = model.proba(series[20:])
    classical.save(tmp_path / "m", model, {"model": name, "options": options.model_dump(mode="json"),
                                           "preprocess": seq.SeriesPreprocessor().fit(series).state(),
                                           "fitted": model.state()})
    loaded, _ = classical.load(tmp_path / "m")  # its arrays checked against a fresh transform
    np.testing.assert_allclose(loaded.proba(series[20:]), before)
    assert before.shape == (10, k) and np.allclose(before.sum(1), 1)


# ---------------------------------------------------------------- trust


def tampered_copy(minirocket_runs, tmp_path, case: str = "uni") -> Path:
    copy = tmp_path / "received"
    shutil.copytree(minirocket_runs[case]["run_dir"], copy)
    return copy


class Payload:
    """Pickled into an object array, it would leave a marker when unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_object_array_in_model_npz_is_refused_and_never_runs(minirocket_runs, tmp_path):
    run = tampered_copy(minirocket_runs, tmp_path)
    marker = tmp_path / "PWNED"
    arrays = dict(np.load(run / "model.npz"))
    arrays["coef"] = np.array([Payload(str(marker))], dtype=object)
    np.savez(run / "model.npz", **arrays)
    with pytest.raises(DataError, match="model.npz' is damaged.*allow_pickle"):
        seq.predict(run, minirocket_runs["uni"]["run_dir"].parent / "test.npz")
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shape"])
def test_damaged_model_npz_is_reported(minirocket_runs, tmp_path, damage):
    run = tampered_copy(minirocket_runs, tmp_path)
    good = (run / "model.npz").read_bytes()
    if damage == "wrong_shape":
        arrays = dict(np.load(run / "model.npz"))
        arrays["coef"] = arrays["coef"][:, :5]
        np.savez(run / "model.npz", **arrays)
    else:
        (run / "model.npz").write_bytes(good[: len(good) // 2] if damage == "truncated" else b"\x00garbage" * 99)
    with pytest.raises(DataError, match="model.npz' is damaged"):
        seq.predict(run, minirocket_runs["uni"]["run_dir"].parent / "test.npz")


def _tamper(arrays: dict, fitted: dict, how: str) -> None:
    """One crafted change to a saved MiniRocket (param_0..4: channels per combination, channel
    indices, dilations, features per dilation, biases)."""
    if how == "index_out_of_range":
        arrays["param_1"][0] = 10_000
    elif how == "wrong_shape":
        arrays["param_1"] = arrays["param_1"][:-1]
    elif how == "wrong_dtype":
        arrays["param_2"] = arrays["param_2"].astype(np.int64)
    elif how == "nan_bias":
        arrays["param_4"][3] = np.nan
    elif how == "swapped_dilation":
        arrays["param_2"][[0, -1]] = arrays["param_2"][[-1, 0]]
    elif how == "other_seed":  # arrays of another draw than the seed says
        fitted["seed"] += 1
    elif how == "longer_length":
        fitted["series_length"] *= 4
    elif how == "huge_length":  # must be refused before the check allocates a dummy series that long
        fitted["series_length"] = 10**12
    elif how == "fewer_params":
        fitted["n_params"] = 2
    elif how == "ridge_width":
        arrays["mean"], arrays["std"] = arrays["mean"][:-1], arrays["std"][:-1]
        arrays["coef"] = arrays["coef"][:, :-1]
    elif how == "negative_class":
        arrays["classes"][0] = -1


TAMPERING = {"index_out_of_range": r"'param_1' \(minirocket's channel indices\) differs",
             "wrong_shape": r"'param_1' \(minirocket's channel indices\) is int32 \[\d+\]; the transform's is int32",
             "wrong_dtype": r"'param_2' \(minirocket's dilations\) is int64",
             "nan_bias": r"'param_4' \(minirocket's biases\) holds values that are not finite",
             "swapped_dilation": r"'param_2' \(minirocket's dilations\) differs",
             "other_seed": r"'param_\d' \(minirocket's [a-z ]+\) differs",
             "longer_length": r"'param_\d' \(minirocket's [a-z ]+\) (differs|is int32)",
             "huge_length": r"series length 1000000000000 x 1 channels is outside 1\.\.50,000,000 values",
             "fewer_params": r"5 parameter arrays, not 2",
             "ridge_width": r"ridge arrays .* do not fit the transform's \d+ features",
             "negative_class": r"ridge arrays"}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_tampered_transform_arrays_are_named_before_numba_runs(minirocket_runs, tmp_path, how):
    import json

    # one channel: the seed draws no channel choices, so another seed shows on three channels only
    run = tampered_copy(minirocket_runs, tmp_path, "multi" if how == "other_seed" else "uni")
    arrays, config = dict(np.load(run / "model.npz")), json.loads((run / "model.json").read_text())
    _tamper(arrays, config["fitted"], how)
    np.savez(run / "model.npz", **arrays)
    (run / "model.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match=f"model.npz' is damaged .*{TAMPERING[how]}"):
        seq.load_model(run)


@pytest.mark.parametrize(("name", "array", "named"), [
    ("rocket", "param_6", r"'param_6' \(rocket's channel indices\) differs"),
    ("rocket", "param_4", r"'param_4' \(rocket's paddings\) differs"),
    ("multirocket", "param_6", r"'param_6' \(multirocket's channel indices \(differences\)\) differs"),
    ("knn_dtw", "lengths", r"not 2-channel training series")])
def test_the_other_models_name_a_tampered_index_array(tmp_path, name, array, named):
    X, L, y = shapes(12, np.random.default_rng(3), 2, True)
    series, labels = [X[i, :n] for i, n in enumerate(L)], np.arange(12) % 3
    comp = REGISTRY.get("model", name)
    options = comp.config.model_validate({} if name == "knn_dtw" else {"num_kernels": 84})
    model = comp.build(options, seed=0).fit(series, labels, 3)
    arrays = model.arrays()
    arrays[array] = arrays[array].copy()
    arrays[array][0] += 10_000  # far beyond the series' channels or length
    classical.save(tmp_path / "m", model, {"model": name, "options": options.model_dump(mode="json"),
                                           "preprocess": seq.SeriesPreprocessor().fit(series).state(),
                                           "fitted": model.state()})
    np.savez(tmp_path / "m" / "model.npz", **arrays)
    with pytest.raises(DataError, match=f"model.npz' is damaged .*{named}"):
        classical.load(tmp_path / "m")


def test_a_tampered_model_stops_predict_with_a_clear_message(minirocket_runs, tmp_path, capsys):
    from tests.helpers import run_cli

    run = tampered_copy(minirocket_runs, tmp_path)
    arrays = dict(np.load(run / "model.npz"))
    arrays["param_1"][:] = 1_000_000  # channel indices far out of range: an out-of-bounds read in numba
    np.savez(run / "model.npz", **arrays)
    (run / "metrics.json").write_text('{"modality": "sequence"}')  # what predict reads of a published run
    rc, err = run_cli("predict", run, minirocket_runs["uni"]["run_dir"].parent / "test.npz", "--out",
                      tmp_path / "p.csv", capsys=capsys)
    assert rc == 3 and "model.npz' is damaged" in err and "'param_1' (minirocket's channel indices)" in err
    assert "Traceback" not in err and not (tmp_path / "p.csv").exists()


def test_series_of_another_length_than_an_equal_length_fit_are_a_data_error(minirocket_runs):
    model, _ = seq.load_model(minirocket_runs["uni"]["run_dir"])
    length = model.fit_length_
    with pytest.raises(DataError, match=f"1 of 2 series are not {length} steps long.*series 2: 9 steps"):
        model.features([np.zeros((length, 1)), np.zeros((9, 1))])


def test_a_model_saved_without_its_seed_is_refused(minirocket_runs, tmp_path):
    import json

    run = tampered_copy(minirocket_runs, tmp_path)
    config = json.loads((run / "model.json").read_text())
    del config["fitted"]["seed"]  # as an earlier trainflow saved it: nothing to check the arrays against
    (run / "model.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="lacks 'seed'.*re-run the pipeline"):
        seq.load_model(run)


def test_checking_the_arrays_keeps_the_load_cheap_and_the_global_generator_as_it_was(minirocket_runs):
    import time

    seq.load_model(minirocket_runs["multi"]["run_dir"])  # numba's compiled kernels loaded once
    np.random.seed(7)
    expected = np.random.random()
    np.random.seed(7)
    started = time.process_time()
    seq.load_model(minirocket_runs["multi"]["run_dir"])
    assert time.process_time() - started < 0.5
    assert np.random.random() == expected, "the dummy fit seeds numpy's global generator: it is restored"


def test_config_naming_another_model_is_refused(minirocket_runs, tmp_path):
    import json

    run = tampered_copy(minirocket_runs, tmp_path)
    config = json.loads((run / "model.json").read_text())
    config["model"] = "builtins.eval"
    (run / "model.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="model.json' is damaged"):
        seq.load_model(run)
    config["model"] = "gru"  # a network's name: the arrays are not its weights
    (run / "model.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="model.json' is damaged"):
        seq.load_model(run)


# ---------------------------------------------------------------- defaults and advice


def test_default_sequence_classifier_is_minirocket():
    spec = load_spec(SPECS / "gunpoint.yaml")
    assert spec.model.name == "minirocket"
    raw = {"name": "x", "task": "regression", "data": {"loader": "npz_series", "path": "a.npz"}}
    assert spec_from_dict(raw).model.name == "gru"  # regression: the classical models are classifiers


def test_normalization_advice_when_level_separates_the_classes(tmp_path):
    X, L, y = shapes(45, np.random.default_rng(2), 1, False, level=True)
    train = {"series": [X[i, :n] for i, n in enumerate(L)], "y": y}
    [note] = advice.normalization_notes(train, "per_series")
    assert "normalize=global" in note and "balanced accuracy" in note
    assert advice.normalization_notes(train, "global") == []
    X, L, y = shapes(45, np.random.default_rng(2), 1, False)
    assert advice.normalization_notes({"series": [X[i, :n] for i, n in enumerate(L)], "y": y}, "per_series") == []


@pytest.mark.parametrize("normalize, low, high", [("global", 0.9, 1.0), ("per_series", 0.0, 0.6)])
def test_classical_models_carry_a_cross_validated_selection_score(tmp_path, normalize, low, high):
    """With split.cv_folds (a sweep or a tune sets 5) a classical model is scored by stratified k-fold
    CV on the training series, preprocessing and model refitted in every fold, so sweep and tune rank
    it like a table. Classes told apart by their level: per-series normalisation erases them, and the
    CV score says so before the test split is touched."""
    from trainflow.tasks.common import selection

    data = write_set(tmp_path / "data", 1, False, level=True)
    spec = spec_from_dict({"name": "seqcv", "task": "classification", "data": data, "validation": {"min_rows": 10},
                           "model": {"name": "minirocket", **SMALL}, "split": {"test_size": 0.25, "cv_folds": 3},
                           "preprocess": {"sequence": {"normalize": normalize}}})
    cache = str(tmp_path / "cache")
    split = seq.split(load.load(spec.data, cache, spec.modality), spec.training_view(), cache)
    steps = []
    with selection.reporting(lambda step, values: steps.append(step)):  # what a tuner's pruner hears
        model = seq.fit(split, spec.training_view(), cache)
    record = selection.selection_of(model, spec)
    assert record["method"] == "3-fold cross-validation on the training split", record
    assert record["metric"] == "balanced_accuracy" and steps == [1, 2, 3]
    assert record["value"] == pytest.approx(np.mean(model.meta["cv"]["folds"]))
    assert low <= record["value"] <= high
