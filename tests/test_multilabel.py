"""Multi-label tables (task: multilabel): loaders, split, models, thresholds, metrics, predict, bad input."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.helpers import assert_fails_clearly, run_cli, write_spec
from trainflow import modalities
from trainflow.errors import DataError, SpecError
from trainflow.spec import load_spec, spec_from_dict
from trainflow.tasks.common import load as loading
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import multilabel as ML

LABELS = ["l1", "l2", "l3"]


def tiny_table(n: int = 80, seed: int = 0) -> pd.DataFrame:
    """Three labels, each decided by one feature (l3 by x1 and x2 together), plus a noise feature."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "noise": x[:, 2], "l1": (x[:, 0] > 0).astype(int),
                         "l2": (x[:, 1] > 0).astype(int), "l3": (x[:, 0] + x[:, 1] > 0.5).astype(int)})


def stages(raw: dict, cache: str):
    """Run load -> profile -> split -> fit -> evaluate of a raw spec without Prefect."""
    spec = spec_from_dict({"name": "ml", "task": "multilabel", "validation": {"min_rows": 5}, **raw})
    mod = modalities.get(spec.modality)
    ref = mod.profile(loading.load(spec.data, cache, spec.modality), spec)
    split = mod.split(ref, spec, cache)
    model = mod.fit(split, spec, cache)
    return spec, mod, split, model, mod.evaluate(model, split, spec, cache)


def test_arff_loader_reads_meka_labels_and_keeps_the_fixed_split():
    from trainflow.tasks.tabular.loaders import ArffConfig, load_arff

    df = load_arff(ArffConfig(train=str(REPO / "data/emotions_train.arff"), test=str(REPO / "data/emotions_test.arff")))
    assert df.attrs["labels"] == ["amazed-suprised", "happy-pleased", "relaxing-calm", "quiet-still", "sad-lonely",
                                  "angry-aggresive"]
    assert df[ML.FOLD].value_counts().to_dict() == {"train": 391, "test": 202}
    assert df[df.attrs["labels"]].isin([0, 1]).all().all() and df.shape[1] == 72 + 6 + 1
    # the positives per label of the training file (data/README.md of the shared copy)
    assert df[df[ML.FOLD] == "train"][df.attrs["labels"]].sum().tolist() == [119, 107, 168, 89, 95, 131]


def test_delimited_labels_become_columns_and_iterative_stratification_keeps_every_label_in_test(tmp_path):
    df = tiny_table()
    df["tags"] = ["|".join(lab for lab in LABELS if row[lab]) for _, row in df.iterrows()]
    df.drop(columns=LABELS).to_csv(tmp_path / "d.csv", index=False)
    spec, _, split, _, ev = stages({"data": {"loader": "csv", "path": str(tmp_path / "d.csv"), "target": "tags",
                                             "separator": "|"}, "split": {"test_size": 0.25}}, str(tmp_path))
    assert split.train.meta["labels"] == LABELS and split.train.meta["features"] == ["x1", "x2", "noise"]
    counts = split.meta["label_counts"]
    total = df[LABELS].sum()
    for lab in LABELS:  # each label's positives shared about 3:1, as the rows are
        assert counts["train"][lab] + counts["test"][lab] == total[lab]
        assert abs(counts["test"][lab] - total[lab] / 4) <= 2
    assert spec.model.name == "random_forest" and ev.metrics["micro_f1"] > 0.7


@pytest.mark.parametrize("model", [
    {"name": "binary_relevance", "base": "logistic_regression"},
    {"name": "binary_relevance", "base": "svm", "base_options": {"C": 2.0}},
    {"name": "classifier_chain", "order": [2, 0, 1]},
    {"name": "classifier_chain", "chains": 3},
    {"name": "random_forest", "n_estimators": 20},
    {"name": "knn", "n_neighbors": 5},
], ids=lambda m: "-".join(str(v) for v in m.values()))
def test_each_model_fits_saves_loads_and_predicts_one_column_per_label(tmp_path, model):
    tiny_table().to_csv(tmp_path / "d.csv", index=False)
    raw = {"data": {"loader": "csv", "path": str(tmp_path / "d.csv"), "targets": LABELS}, "model": model,
           "preprocess": {"resample": {"method": "class_weight"}} if model["name"] != "knn" else {}}
    _, mod, _, ref, ev = stages(raw, str(tmp_path))
    assert ev.metrics["hamming_loss"] < 0.25 and set(ev.per_class) == set(LABELS)
    assert {"precision", "recall", "f1", "roc_auc", "threshold"} <= set(ev.per_class["l1"])
    run = tmp_path / "run"
    run.mkdir()
    mod.export(ref, str(run))
    tiny_table(10, seed=1).drop(columns=LABELS).to_csv(tmp_path / "new.csv", index=False)
    out = mod.predict(run, tmp_path / "new.csv")  # loaded back through trust's exact types
    assert list(out.columns) == LABELS + [f"proba_{lab}" for lab in LABELS]
    assert out[LABELS].isin([0, 1]).all().all()
    assert ((out[[f"proba_{lab}" for lab in LABELS]].to_numpy() >= 0.5).astype(int) == out[LABELS].to_numpy()).all()


def test_tuned_thresholds_are_saved_and_applied_at_predict(tmp_path):
    tiny_table(120).to_csv(tmp_path / "d.csv", index=False)
    _, mod, _, ref, ev = stages({"data": {"loader": "csv", "path": str(tmp_path / "d.csv"), "targets": LABELS},
                                 "model": {"name": "binary_relevance"}, "multilabel": {"threshold": "tuned"}},
                                str(tmp_path))
    thresholds = ref.meta["thresholds"]
    assert set(thresholds) == set(LABELS) and all(0 < t < 1 for t in thresholds.values())
    assert thresholds != dict.fromkeys(LABELS, 0.5)  # a grid of 19 values per label: not all at 0.5
    run = tmp_path / "run"
    run.mkdir()
    mod.export(ref, str(run))
    tiny_table(30, seed=2).drop(columns=LABELS).to_csv(tmp_path / "new.csv", index=False)
    out = mod.predict(run, tmp_path / "new.csv")
    proba = out[[f"proba_{lab}" for lab in LABELS]].to_numpy()
    expected = (proba >= np.array([thresholds[lab] for lab in LABELS])).astype(int)
    np.testing.assert_array_equal(out[LABELS].to_numpy(), expected)


def test_a_label_constant_in_training_is_reported_and_predicted_as_its_value(tmp_path):
    df = tiny_table()
    df["l3"] = 0
    df.to_csv(tmp_path / "d.csv", index=False)
    _, _, _, ref, ev = stages({"data": {"loader": "csv", "path": str(tmp_path / "d.csv"), "targets": LABELS},
                               "model": {"name": "binary_relevance"}}, str(tmp_path))
    assert ref.meta["constant_labels"] == {"l3": 0}
    assert any("label 'l3' is 0 in every training row" in n for n in ev.notes)
    assert ev.per_class["l3"]["support"] == 0 and np.isnan(ev.per_class["l3"]["roc_auc"])


def test_multilabel_metrics_and_their_direction():
    Y = np.array([[1, 0, 1], [0, 1, 0]])
    P = np.array([[1, 0, 0], [0, 1, 0]])
    proba = np.array([[0.9, 0.1, 0.4], [0.2, 0.8, 0.3]])
    s = M.score(M.DEFAULTS["multilabel"], Y, P, proba)
    assert s["hamming_loss"] == pytest.approx(1 / 6) and s["subset_accuracy"] == 0.5
    assert s["micro_f1"] == pytest.approx(0.8) and s["samples_f1"] == pytest.approx((2 / 3 + 1) / 2)
    assert s["macro_roc_auc"] == 1.0  # labels 1 and 2 take both values; label 3 does not and is left out
    assert not M.greater_is_better("hamming_loss") and M.greater_is_better("micro_f1")
    assert M.PRIMARY["multilabel"] == "micro_f1"


def test_samples_f1_scores_a_rightly_empty_label_set_as_correct():
    Y = np.array([[0, 0, 0], [1, 0, 1], [0, 0, 0]])
    assert M.score(["samples_f1"], Y, Y.copy())["samples_f1"] == 1.0  # perfect predictions, empty rows included
    P = np.array([[0, 1, 0], [1, 0, 1], [0, 0, 0]])  # a label predicted for a row that has none
    assert M.score(["samples_f1"], Y, P)["samples_f1"] == pytest.approx(2 / 3)
    assert M.score(["macro_f1"], Y, Y.copy())["macro_f1"] == pytest.approx(2 / 3)  # label 2 never true: 0


def test_spec_problems_of_multilabel_labels():
    base = {"name": "x", "data": {"loader": "csv", "path": "d.csv"}}
    problems = []
    for raw in ({**base, "data": {**base["data"], "targets": ["a", "b"]}},
                {**base, "task": "multilabel"},
                {**base, "task": "multilabel", "data": {**base["data"], "targets": ["a"]},
                 "preprocess": {"resample": {"method": "smote"}}},
                {**base, "task": "multilabel", "data": {**base["data"], "targets": ["a"]},
                 "model": {"name": "binary_relevance", "base": "ridge"}}):
        with pytest.raises(SpecError) as exc:
            spec_from_dict(raw)
        problems.append(str(exc.value))
    assert "set 'task: multilabel'" in problems[0]
    assert "give the labels" in problems[1]
    assert "'smote'" in problems[2] and "class_weight" in problems[2]
    assert "must be a tabular classifier" in problems[3] and "'ridge'" in problems[3]


def test_the_emotions_demo_spec_is_valid_and_listed():
    spec = load_spec(REPO / "flows/specs/emotions.yaml")
    assert spec.task == "multilabel" and spec.data.loader == "arff" and spec.modality == "tabular"
    import yaml

    assert yaml.safe_load((REPO / "flows/specs/demos.yaml").read_text())["multilabel"] == ["emotions.yaml"]
    deploy = yaml.safe_load((REPO / "deploy/prefect.yaml").read_text())
    assert any(d["parameters"].get("spec_path") == "flows/specs/emotions.yaml" for d in deploy["deployments"])


def test_all_labels_constant_is_a_data_error():
    with pytest.raises(DataError, match="Every label of 'x.csv' has one value"):
        ML.constant_labels(np.zeros((5, 2), dtype=int), ["a", "b"], "'x.csv'")


# ---------------------------------------------------------------- bad input through the CLI


@pytest.mark.usefixtures("prefect_server")
def test_label_column_with_values_other_than_0_1_fails_validation(tmp_path, capsys):
    df = tiny_table(30)
    df.loc[3, "l2"] = 2
    df.to_csv(tmp_path / "d.csv", index=False)
    spec = write_spec(tmp_path / "s.yaml", {"name": "badml", "task": "multilabel", "validation": {"min_rows": 5},
                                            "data": {"loader": "csv", "path": str(tmp_path / "d.csv"),
                                                     "targets": LABELS}})
    assert_fails_clearly(spec, tmp_path / "out", "badml", 4, ["'l2'", "a multi-label label column holds 0 or 1"],
                         capsys)


@pytest.mark.usefixtures("prefect_server")
def test_all_labels_constant_fails_clearly(tmp_path, capsys):
    df = tiny_table(30)
    df[LABELS] = 1
    df.to_csv(tmp_path / "d.csv", index=False)
    spec = write_spec(tmp_path / "s.yaml", {"name": "constml", "task": "multilabel", "validation": {"min_rows": 5},
                                            "data": {"loader": "csv", "path": str(tmp_path / "d.csv"),
                                                     "targets": LABELS}})
    assert_fails_clearly(spec, tmp_path / "out", "constml", 3, ["d.csv", "Every label", "l1=1"], capsys)


@pytest.mark.usefixtures("prefect_server")
def test_predict_reports_a_delimited_label_never_seen_in_training(tmp_path, capsys):
    df = tiny_table(40)
    df["tags"] = ["|".join(lab for lab in LABELS if row[lab]) for _, row in df.iterrows()]
    df.drop(columns=LABELS).to_csv(tmp_path / "d.csv", index=False)
    spec = write_spec(tmp_path / "s.yaml", {"name": "tagsml", "task": "multilabel", "validation": {"min_rows": 5},
                                            "data": {"loader": "csv", "path": str(tmp_path / "d.csv"),
                                                     "target": "tags", "separator": "|"}})
    assert run_cli("run", spec, "--out", tmp_path / "out")[0] == 0
    new = tiny_table(5, seed=3).drop(columns=LABELS)
    new["tags"] = ["l1|brand-new"] * 5
    new.to_csv(tmp_path / "new.csv", index=False)
    capsys.readouterr()
    rc, err = run_cli("predict", "tagsml", tmp_path / "new.csv", "--out", tmp_path / "p.csv", "--runs",
                      tmp_path / "out", capsys=capsys)
    assert rc == 0, err
    assert "'brand-new'" in err and "never seen in training" in err and "new.csv" in err
    out = pd.read_csv(tmp_path / "p.csv")
    assert list(out.columns) == LABELS + [f"proba_{lab}" for lab in LABELS]


def test_rows_repeated_across_the_split_raise_the_duplicate_alarm(tmp_path):
    df = pd.concat([tiny_table(40)] * 2, ignore_index=True)
    df.to_csv(tmp_path / "d.csv", index=False)
    *_, ev = stages({"data": {"loader": "csv", "path": str(tmp_path / "d.csv"), "targets": LABELS},
                     "model": {"name": "knn"}}, str(tmp_path))
    assert any(n.startswith("leakage:") and "rows" in n for n in ev.notes), ev.notes
