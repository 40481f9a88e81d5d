"""Multi-label networks (task: multilabel) for images and sequences, the loop's multi-label loss and
weights, and the tabular multi-label gaps (per-label leakage alarm, cross-validation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from tests.conftest import SPECS  # noqa: E402
from tests.helpers import assert_fails_clearly, complete_runs, run_cli, write_spec  # noqa: E402
from trainflow import modalities  # noqa: E402
from trainflow.errors import SpecError  # noqa: E402
from trainflow.spec import spec_from_dict  # noqa: E402
from trainflow.tasks.common import load as loading  # noqa: E402
from trainflow.tasks.common.training import (TrainConfig, carve_validation, label_weights, positive_weights,  # noqa: E402
                                             train_model)

QUADRANTS = ["top_left", "top_right", "bottom_left", "bottom_right"]
FREQUENCIES = ["f2", "f5", "f9"]


def quadrant_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8 gray images whose labels are which quadrants are bright (each on with probability 0.4)."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 4)) < 0.4).astype(np.int64)
    x = rng.integers(0, 70, (n, 8, 8)).astype(np.uint8)
    for j, (r, c) in enumerate(((0, 0), (0, 4), (4, 0), (4, 4))):
        x[Y[:, j] == 1, r:r + 4, c:c + 4] += 150
    return x, Y


def frequency_series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Series of 48 steps whose labels are which of three frequencies they contain (plus noise)."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 3)) < 0.45).astype(np.int64)
    t = np.arange(48) / 48
    x = rng.normal(scale=0.3, size=(n, 48))
    for j, f in enumerate((2, 5, 9)):
        x += Y[:, [j]] * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, (n, 1)))
    return x, Y


def stages(raw: dict, cache: Path):
    """load -> validate -> split -> fit -> evaluate of a raw multi-label spec, without Prefect."""
    spec = spec_from_dict({"name": "mlnn", "task": "multilabel", "validation": {"min_rows": 5}, **raw})
    mod = modalities.get(spec.modality)
    ref = mod.profile(loading.load(spec.data, str(cache), spec.modality), spec)
    mod.validate(ref, spec, None)
    split = mod.split(ref, spec, str(cache))
    model = mod.fit(split, spec, str(cache))
    return spec, mod, split, model, mod.evaluate(model, split, spec, str(cache))


def trivial_micro_f1(Y: np.ndarray) -> float:
    """The best micro-F1 without looking at the input: every label on (always beats all off)."""
    p = Y.mean()
    return 2 * p / (1 + p)


def exported(mod, model, folder: Path) -> Path:
    folder.mkdir()
    mod.export(model, str(folder))
    return folder


# ---------------------------------------------------------------- images


def test_multilabel_image_network_learns_which_quadrants_are_bright_and_predict_applies_its_thresholds(tmp_path):
    x, Y = quadrant_images(200)
    np.savez(tmp_path / "quads.npz", x=x, y=Y, labels=np.array(QUADRANTS))
    spec, mod, split, model, ev = stages({
        "data": {"loader": "npz", "path": str(tmp_path / "quads.npz")}, "split": {"test_size": 0.25},
        "model": {"width": 8, "dense": 16}, "multilabel": {"threshold": "tuned"},
        "train": {"epochs": 12, "batch_size": 32, "lr": 0.01, "val_fraction": 0.25, "device": "cpu"}}, tmp_path)
    assert spec.model.name == "cnn" and split.meta["label_counts"]["test"].keys() == set(QUADRANTS)
    assert ev.metrics["micro_f1"] >= 0.9 > trivial_micro_f1(Y) + 0.2, ev.metrics
    assert ev.metrics["hamming_loss"] <= 0.08 and ev.metrics["subset_accuracy"] >= 0.7
    assert set(ev.per_class) == set(QUADRANTS) and {"precision", "recall", "f1", "roc_auc", "threshold"} <= set(
        ev.per_class["top_left"])
    assert "Per-label scores" in ev.plots and "Learning curves" in ev.plots and "Label cardinality" in ev.tables
    assert "split by iterative stratification over the labels" in ev.notes

    run = exported(mod, model, tmp_path / "run")
    config = json.loads((run / "model.json").read_text())
    assert config["task"] == "multilabel" and config["labels"] == QUADRANTS
    assert all(0 < t < 1 for t in config["thresholds"]) and config["thresholds"] != [0.5] * 4  # tuned, saved
    new_x, new_Y = quadrant_images(40, seed=7)
    np.savez(tmp_path / "new.npz", x=new_x)
    out = mod.predict(run, tmp_path / "new.npz")
    assert list(out.columns) == ["item", *QUADRANTS, *[f"proba_{q}" for q in QUADRANTS]]
    proba = out[[f"proba_{q}" for q in QUADRANTS]].to_numpy()
    np.testing.assert_array_equal(out[QUADRANTS].to_numpy(), (proba >= np.array(config["thresholds"])).astype(int))
    assert (out[QUADRANTS].to_numpy() == new_Y).mean() >= 0.9


def test_a_label_constant_in_training_is_reported_and_predicted_as_its_value(tmp_path):
    x, Y = quadrant_images(60)
    Y[:, 3] = 0
    np.savez(tmp_path / "quads.npz", x=x, y=Y)
    *_, model, ev = stages({"data": {"loader": "npz", "path": str(tmp_path / "quads.npz")},
                            "model": {"width": 4, "dense": 8}, "train": {"epochs": 2, "device": "cpu"}}, tmp_path)
    assert model.meta["constant_labels"] == {"label_3": 0}
    assert any("label 'label_3' is 0 in every training" in n for n in ev.notes)
    assert ev.per_class["label_3"]["support"] == 0 and ev.per_class["label_3"]["recall"] == 0


# ---------------------------------------------------------------- sequences


def test_multilabel_sequence_network_learns_which_frequencies_are_present(tmp_path):
    x, Y = frequency_series(200)
    np.savez(tmp_path / "waves.npz", x=x, y=Y, labels=np.array(FREQUENCIES))
    spec, mod, split, model, ev = stages({
        "data": {"loader": "npz_series", "path": str(tmp_path / "waves.npz")}, "split": {"test_size": 0.25},
        "model": {"name": "cnn1d", "filters": [16, 16], "kernels": [7, 5]},
        "preprocess": {"sequence": {"normalize": "none"}},
        "train": {"epochs": 12, "batch_size": 32, "lr": 0.01, "device": "cpu", "imbalance": "class_weight",
                  "pos_weight": "balanced", "val_fraction": 0.2}}, tmp_path)
    assert ev.metrics["micro_f1"] >= 0.85 > trivial_micro_f1(Y) + 0.15, ev.metrics
    assert ev.metrics["macro_roc_auc"] >= 0.9
    run = exported(mod, model, tmp_path / "run")
    assert json.loads((run / "model.json").read_text())["thresholds"] == [0.5] * 3  # the default threshold
    new_x, _ = frequency_series(10, seed=3)
    np.savez(tmp_path / "new.npz", x=new_x)
    out = mod.predict(run, tmp_path / "new.npz")
    assert list(out.columns) == ["series", *FREQUENCIES, *[f"proba_{f}" for f in FREQUENCIES]]
    assert out[FREQUENCIES].isin([0, 1]).all().all()


# ---------------------------------------------------------------- the training loop


def test_label_weights_balance_each_labels_ones_and_zeros():
    Y = torch.tensor([[1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 1, 1]], dtype=torch.float32)
    w1, w0 = label_weights(Y)
    assert w1.tolist() == [2.0, 2.0, 1.0] and w0.tolist() == pytest.approx([4 / 6, 4 / 6, 1.0])  # last: constant
    assert positive_weights(Y).tolist() == [3.0, 3.0, 1.0]


def test_the_validation_carve_out_of_a_label_matrix_is_iteratively_stratified():
    rng = np.random.default_rng(0)
    Y = torch.as_tensor((rng.random((200, 4)) < [0.5, 0.2, 0.1, 0.05]).astype(np.float32))
    tr, va = carve_validation(200, Y, 0.25, seed=0, stratify=True)
    assert len(va) == 50 and not set(tr.tolist()) & set(va.tolist())
    off = (Y[va].sum(0) - 0.25 * Y.sum(0)).abs()
    assert (off <= 1).all(), off  # each label, rare ones (12 positives) too, keeps its share to one example


def _ml_setup():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 5, generator=g)
    Y = torch.stack([x[:, 0] > 0, x[:, 1] > 0.5, x[:, 0] + x[:, 2] > 0], 1).float()
    torch.manual_seed(1)
    return (x, Y), torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def test_a_multilabel_network_resumed_from_its_checkpoint_reaches_the_same_weights(tmp_path):
    config = TrainConfig(epochs=4, batch_size=16, lr=0.02, val_fraction=0.25, imbalance="class_weight",
                         pos_weight="balanced", device="cpu", num_threads=1)
    data, whole = _ml_setup()
    full = train_model(whole, data, None, config, seed=0, checkpoint_dir=tmp_path / "a", task="multilabel",
                       log=lambda _: None)
    data, part = _ml_setup()
    train_model(part, data, None, config.model_copy(update={"epochs": 2}), seed=0, checkpoint_dir=tmp_path / "b",
                task="multilabel", log=lambda _: None)
    data, resumed = _ml_setup()
    again = train_model(resumed, data, None, config, seed=0, checkpoint_dir=tmp_path / "b", task="multilabel",
                        log=lambda _: None)
    assert again.resumed_from == 2 and full.history[-1]["train_loss"] < full.history[0]["train_loss"]
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert len(full.validation) == 24


# ---------------------------------------------------------------- spec problems


def test_multilabel_training_options_that_do_not_fit_are_spec_errors():
    base = {"name": "x", "data": {"loader": "npz", "path": "q.npz"}}
    with pytest.raises(SpecError) as exc:
        spec_from_dict({**base, "task": "multilabel", "multilabel": {"threshold": "tuned"},
                        "train": {"imbalance": "oversample", "loss": "cross_entropy"}})
    msg = str(exc.value)
    assert "'train.imbalance' 'oversample'" in msg and "class_weight" in msg
    assert "'train.loss' 'cross_entropy' does not fit task multilabel" in msg
    assert "'multilabel.threshold' 'tuned'" in msg and "train.val_fraction" in msg
    with pytest.raises(SpecError, match="'train.pos_weight' is for task multilabel"):
        spec_from_dict({**base, "train": {"pos_weight": "balanced"}})
    spec = spec_from_dict({**base, "task": "multilabel"})
    assert spec.model.name == "cnn" and spec.multilabel.threshold == 0.5
    assert spec_from_dict({"name": "s", "task": "multilabel", "data": {"loader": "npz_series", "path": "s.npz"}}
                          ).model.name == "gru"


# ---------------------------------------------------------------- the CLI: example spec, bad input


@pytest.mark.usefixtures("prefect_server")
def test_the_example_spec_runs_and_predict_writes_a_column_per_label(tmp_path, capsys):
    x, Y = quadrant_images(80)
    np.savez(tmp_path / "tags.npz", x=x, y=Y, labels=np.array(QUADRANTS))
    rc, err = run_cli("run", SPECS / "multilabel_images.yaml", "--out", tmp_path / "out", "--set",
                      f"data.path={tmp_path / 'tags.npz'}", "--set", "train.epochs=2", capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(tmp_path / "out", "multilabel_images")
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"hamming_loss", "micro_f1", "macro_f1", "samples_f1", "subset_accuracy"} <= set(metrics["metrics"])
    assert "Per-label scores" in (run / "report.md").read_text()
    np.savez(tmp_path / "new.npz", x=x[:5], labels=np.array([*QUADRANTS[:3], "centre"]))
    rc, err = run_cli("predict", run, tmp_path / "new.npz", "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 0, err
    assert "'centre'" in err and "never seen in training" in err and "new.npz" in err  # reported, not fatal
    out = pd.read_csv(tmp_path / "p.csv")
    assert list(out.columns) == ["item", *QUADRANTS, *[f"proba_{q}" for q in QUADRANTS]]


@pytest.mark.usefixtures("prefect_server")
def test_an_image_label_column_with_values_other_than_0_1_fails_validation(tmp_path, capsys):
    x, Y = quadrant_images(40)
    Y[5, 2] = 2
    np.savez(tmp_path / "q.npz", x=x, y=Y, labels=np.array(QUADRANTS))
    spec = write_spec(tmp_path / "s.yaml", {"name": "badimg", "task": "multilabel", "validation": {"min_rows": 5},
                                            "data": {"loader": "npz", "path": str(tmp_path / "q.npz")}})
    assert_fails_clearly(spec, tmp_path / "out", "badimg", 4,
                         ["'label bottom_left'", "a multi-label label column holds 0 or 1"], capsys)


@pytest.mark.usefixtures("prefect_server")
def test_all_image_labels_constant_fails_clearly(tmp_path, capsys):
    x, Y = quadrant_images(40)
    np.savez(tmp_path / "q.npz", x=x, y=np.ones_like(Y))
    spec = write_spec(tmp_path / "s.yaml", {"name": "constimg", "task": "multilabel", "validation": {"min_rows": 5},
                                            "data": {"loader": "npz", "path": str(tmp_path / "q.npz")},
                                            "train": {"epochs": 1}})
    assert_fails_clearly(spec, tmp_path / "out", "constimg", 3, ["q.npz", "Every label", "label_0=1"], capsys)


@pytest.mark.usefixtures("prefect_server")
def test_single_labels_for_a_multilabel_spec_fail_clearly(tmp_path, capsys):
    x, Y = quadrant_images(40)
    np.savez(tmp_path / "q.npz", x=x, y=Y[:, 0])
    spec = write_spec(tmp_path / "s.yaml", {"name": "onelab", "task": "multilabel", "validation": {"min_rows": 5},
                                            "data": {"loader": "npz", "path": str(tmp_path / "q.npz")}})
    assert_fails_clearly(spec, tmp_path / "out", "onelab", 3, ["q.npz", "one label per item", "2-D label array"],
                         capsys)


# ---------------------------------------------------------------- tables: per-label leakage, cross-validation


def _table(n: int = 90) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "a": (x[:, 0] > 0).astype(int),
                         "b": (x[:, 1] + x[:, 2] > 0).astype(int), "c": (x[:, 2] > 0.3).astype(int)})


def test_a_column_that_alone_predicts_one_label_raises_the_leakage_alarm(tmp_path):
    from tests.test_multilabel import stages as table_stages

    df = _table()
    df.to_csv(tmp_path / "d.csv", index=False)
    *_, ev = table_stages({"data": {"loader": "csv", "path": str(tmp_path / "d.csv"), "targets": ["a", "b", "c"]},
                           "model": {"name": "knn"}}, str(tmp_path))
    alarms = [n for n in ev.notes if n.startswith("leakage:")]
    assert any("column 'x1' alone predicts the label 'a'" in n for n in alarms), alarms
    assert any("column 'x3' alone predicts the label 'c'" in n for n in alarms), alarms
    assert not any("the label 'b'" in n for n in alarms)  # b needs two columns: no single one leaks it


def test_cross_validation_of_a_multilabel_table_uses_stratified_folds(tmp_path):
    from tests.test_multilabel import stages as table_stages

    _table().to_csv(tmp_path / "d.csv", index=False)
    _, _, _, model, ev = table_stages({"data": {"loader": "csv", "path": str(tmp_path / "d.csv"),
                                                "targets": ["a", "b", "c"]},
                                       "split": {"cv_folds": 3}, "model": {"name": "binary_relevance"}}, str(tmp_path))
    cv = model.meta["cv"]
    assert cv["metric"] == "micro_f1" and len(cv["folds"]) == 3 and all(0.6 < s <= 1 for s in cv["folds"])
    assert ev.metrics["cv_micro_f1_mean"] == pytest.approx(np.mean(cv["folds"]))
