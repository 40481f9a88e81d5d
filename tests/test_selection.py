"""Selection never sees the test split: a sweep chooses on cross-validation of the training split,
even when the test split would choose otherwise, and metrics.json says how the model was chosen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import complete_runs, write_spec
from trainflow import modalities
from trainflow.flows import sweep
from trainflow.refs import read_parquet
from trainflow.tasks.common import load as loading
from trainflow.tasks.common import selection

GRID = ["model.C=1,0.000001"]  # C=1 learns the rule; C=1e-6 hardly learns anything


def _spec(folder: Path, csv: Path) -> Path:
    return write_spec(folder / "flipped.yaml", {
        "name": "flipped", "task": "classification",
        "data": {"loader": "csv", "path": str(csv), "target": "y"},
        "validation": {"min_rows": 10},
        "split": {"test_size": 0.3, "stratify": False, "seed": 1},  # test rows depend on the row count only
        "preprocess": {"resample": {"method": "none"}},
        "model": {"name": "logistic_regression", "C": 1.0},
        "evaluate": {"primary": "accuracy"},
    })


def _split(spec_path: Path, cache: Path):
    """The candidates and their split, computed by the modality itself (the sweep's own split)."""
    specs, _ = sweep.candidate_specs(str(spec_path), [], sweep.parse_grid(GRID))
    mod = modalities.get(specs[0].modality)
    ref = mod.profile(loading.load(specs[0].data, str(cache), specs[0].modality), specs[0])
    return specs, mod, mod.split(ref, specs[0].training_view(), str(cache))


@pytest.mark.usefixtures("prefect_server")
def test_a_candidate_best_on_test_but_not_on_cv_is_not_chosen(tmp_path):
    # y follows x > 0.5 in the training rows and the opposite rule in the test rows: on the test split
    # a model that learned nothing (C=1e-6, the majority class) beats the one that learned the rule.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.uniform(0, 1, 200).round(6)})
    frame["y"] = np.where(frame.x > 0.5, "high", "low")
    csv = tmp_path / "rows.csv"
    frame.to_csv(csv, index=False)
    spec_path = _spec(tmp_path, csv)
    *_, first = _split(spec_path, tmp_path / "probe")
    test_x = set(read_parquet(first.test.path)["x"].round(6))
    frame.loc[frame.x.isin(test_x), "y"] = np.where(frame.loc[frame.x.isin(test_x), "x"] > 0.5, "low", "high")
    frame.to_csv(csv, index=False)

    # the construction holds: on this split's test rows the weak candidate scores higher
    specs, mod, split = _split(spec_path, tmp_path / "runs" / ".cache")
    assert set(read_parquet(split.test.path)["x"].round(6)) == test_x
    test_scores = []
    for spec in specs:
        model = mod.fit(split, spec.training_view(), str(tmp_path / "scratch"))
        test_scores.append(mod.evaluate(model, split, spec, str(tmp_path / "plots")).metrics["accuracy"])
    assert test_scores[1] > test_scores[0] + 0.3, test_scores

    summary = sweep.sweep_pipeline(specs[0], specs, [{"model.C": "1"}, {"model.C": "0.000001"}],
                                   out=str(tmp_path / "runs"))
    rows = summary["sweep"]
    assert rows[0]["best"] == "yes" and rows[0]["selection_score"] > 0.9 > rows[1]["selection_score"]
    assert rows[1].get("test_accuracy") is None  # the test split is scored for the chosen one only
    assert rows[0]["test_accuracy"] == pytest.approx(test_scores[0])
    [run] = complete_runs(tmp_path / "runs", "flipped")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["spec"]["model"]["C"] == 1
    assert metrics["selection"] == {"method": "5-fold cross-validation on the training split", "metric": "accuracy",
                                    "value": rows[0]["selection_score"], "std": pytest.approx(metrics["selection"]["std"]),
                                    "greater_is_better": True, "candidates": 2}


def test_a_plain_run_records_what_chose_its_model(tmp_path):
    """selection_of reads what a fit measured: CV folds, a network's validation part, or nothing."""
    from trainflow.refs import ModelRef
    from trainflow.spec import load_spec

    from tests.conftest import SPECS

    penguins = load_spec(str(SPECS / "penguins.yaml"))
    plain = ModelRef(path=str(tmp_path), digest="x", modality="tabular", meta={})
    assert selection.selection_of(plain, penguins) is None
    assert selection.none_record(penguins) == {"method": "none", "metric": "balanced_accuracy", "value": None}
    cv = ModelRef(path=str(tmp_path), digest="x", modality="tabular",
                  meta={"cv": {"metric": "balanced_accuracy", "folds": [0.9, 1.0], "mean": 0.95, "std": 0.05}})
    assert selection.selection_of(cv, penguins)["value"] == 0.95
    digits = load_spec(str(SPECS / "digits.yaml"))
    net = ModelRef(path=str(tmp_path), digest="x", modality="image", meta={
        "best_epoch": 2, "history": [{"epoch": 1, "val_loss": 0.5, "val_accuracy": 0.8},
                                     {"epoch": 2, "val_loss": 0.3, "val_accuracy": 0.9},
                                     {"epoch": 3, "val_loss": 0.4, "val_accuracy": 0.95}]})
    record = selection.selection_of(net, digits)  # the kept epoch (2), not the last one
    assert record["metric"] == "val_loss" and record["value"] == 0.3 and "epoch 2" in record["method"]
    assert record["greater_is_better"] is False
    assert selection.selection_overrides(digits) == ["split.cv_folds=5", "train.val_fraction=0.2"]
    assert selection.selection_overrides(penguins) == ["split.cv_folds=5"]
