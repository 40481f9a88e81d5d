"""Every preprocessing and model option trains and scores on real data (function level, no server)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA
from trainflow.errors import DataError
from trainflow.spec import spec_from_dict
from trainflow.tasks.tabular import modality as tabular
from trainflow.tasks.tabular.preprocess import check_sampler


def make_spec(tmp_path, **sections) -> object:
    raw = {"name": "opt", "data": {"loader": "csv", "path": str(DATA / "penguins.csv"), "target": "species"},
           "split": {"test_size": 0.25, "seed": 42}}
    raw.update(sections)
    return spec_from_dict(raw)


@pytest.fixture(scope="module")
def penguins_ref(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    df = pd.read_csv(DATA / "penguins.csv", na_values=["NA"]).drop(columns=["year"])
    cfg = type("C", (), {"target": "species", "path": "penguins.csv"})()
    return tabular.store(df, str(cache), "p" * 64, cfg), str(cache)


def fit_and_score(spec, ref, cache, plots):
    split = tabular.split(ref, spec, cache)
    model = tabular.fit(split, spec, cache)
    return tabular.evaluate(model, split, spec, plots), model


@pytest.mark.parametrize("impute", [
    {"method": "drop_rows"}, {"method": "mean"}, {"method": "median", "add_indicator": True},
    {"method": "most_frequent"}, {"method": "constant", "fill_value": -1}, {"method": "knn", "n_neighbors": 3},
    {"method": "iterative"},
])
def test_imputers(impute, penguins_ref, tmp_path):
    ref, cache = penguins_ref
    ev, _ = fit_and_score(make_spec(tmp_path, preprocess={"impute": impute}), ref, cache, str(tmp_path))
    assert ev.metrics["balanced_accuracy"] > 0.93


@pytest.mark.parametrize("resample", ["none", "class_weight", "random_over", "random_under", "smote", "smotenc",
                                      "adasyn", "smote_tomek", "smote_enn"])
def test_imbalance_methods(resample, penguins_ref, tmp_path):
    ref, cache = penguins_ref
    ev, model = fit_and_score(make_spec(tmp_path, preprocess={"resample": {"method": resample}}), ref, cache,
                              str(tmp_path))
    assert ev.metrics["balanced_accuracy"] > 0.93
    if resample not in ("none", "class_weight"):
        assert "resample" in model.meta["steps"]
        assert "Class balance" in ev.plots


@pytest.fixture(scope="module")
def four_chinstraps_ref(tmp_path_factory):
    """Penguins with 4 Chinstrap rows: 3 of them in the training split, fewer than SMOTE's 5 neighbours + 1."""
    cache = tmp_path_factory.mktemp("cache4")
    df = pd.read_csv(DATA / "penguins.csv", na_values=["NA"]).drop(columns=["year"])
    df = pd.concat([df[df.species != "Chinstrap"], df[df.species == "Chinstrap"].head(4)], ignore_index=True)
    cfg = type("C", (), {"target": "species", "path": "p4.csv"})()
    return tabular.store(df, str(cache), "4" * 64, cfg), str(cache)


@pytest.mark.parametrize("resample", [{"method": "smote"}, {"method": "smotenc"}, {"method": "adasyn"},
                                      {"method": "smote_tomek"}, {"method": "smote_enn", "k_neighbors": 3}])
def test_a_class_too_small_for_the_neighbours_is_named(resample, four_chinstraps_ref):
    # scikit-learn said only "n_neighbors = 6, n_samples_fit = 3", from deep inside the flow (exit 1)
    ref, cache = four_chinstraps_ref
    spec = make_spec(None, split={"test_size": 0.25, "stratify": True, "seed": 42}, preprocess={"resample": resample})
    split = tabular.split(ref, spec, cache)
    option = "n_neighbors" if resample["method"] == "adasyn" else "k_neighbors"
    k = resample.get("k_neighbors", 5)
    with pytest.raises(DataError) as err:
        tabular.fit(split, spec, cache)
    assert err.value.exit_code == 3
    assert (f"needs at least {k + 1} rows of each class it synthesises rows for ({option} = {k}, plus the row "
            f"itself), but in the training rows class 'Chinstrap' has 3 rows: set preprocess.resample.{option} "
            f"to at most 2, or choose preprocess.resample.method random_over") in str(err.value)
    # the fix it names trains
    fixed = make_spec(None, split={"test_size": 0.25, "stratify": True, "seed": 42},
                      preprocess={"resample": {**resample, option: 2}})
    assert "resample" in tabular.fit(tabular.split(ref, fixed, cache), fixed, cache).meta["steps"]


def test_a_cross_validation_fold_too_small_for_the_neighbours_is_named(four_chinstraps_ref):
    ref, cache = four_chinstraps_ref
    spec = make_spec(None, split={"test_size": 0.25, "stratify": True, "seed": 42, "cv_folds": 3},
                     preprocess={"resample": {"method": "smote", "k_neighbors": 2}})
    with pytest.raises(DataError, match=r"in the training rows of cross-validation fold 1 of 3 \(split.cv_folds\) "
                                        r"class 'Chinstrap' has 2 rows: set preprocess.resample.k_neighbors to at most 1"):
        tabular.fit(tabular.split(ref, spec, cache), spec, cache)


def test_adasyn_giving_up_on_the_data_is_a_data_error(tmp_path):
    # a class none of whose neighbours is of another class: ADASYN raised a RuntimeError (exit 1)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": np.r_[rng.normal(size=60), rng.normal(size=30) + 50], "b": rng.normal(size=90),
                       "label": ["p"] * 60 + ["q"] * 30})
    ref = tabular.store(df, str(tmp_path), "a" * 64, type("C", (), {"target": "label", "path": "x.csv"})())
    spec = spec_from_dict({"name": "t", "data": {"loader": "csv", "path": "x.csv", "target": "label"},
                           "preprocess": {"resample": {"method": "adasyn"}}})
    with pytest.raises(DataError, match="ADASYN .* gives up on the training rows: 'Not any neigbours belong to the "
                                        "majority class.*'; choose preprocess.resample.method smote or random_over"):
        tabular.fit(tabular.split(ref, spec, str(tmp_path)), spec, str(tmp_path))


def test_a_sampler_check_names_a_single_row_and_a_strategy_that_does_not_fit():
    from imblearn.over_sampling import SMOTE

    y = np.array([0] * 10 + [1] * 8 + [2])
    with pytest.raises(DataError, match="class 'c' has 1 row: drop or merge that class"):
        check_sampler(SMOTE(k_neighbors=1), y, ["a", "b", "c"], "the training rows")
    with pytest.raises(DataError, match="sampling_strategy 0.5 does not fit the 3 classes of the training rows"):
        check_sampler(SMOTE(sampling_strategy=0.5), y, ["a", "b", "c"], "the training rows")
    check_sampler(SMOTE(k_neighbors=1, sampling_strategy="minority"), y[:-1], None, "the training rows")


@pytest.mark.parametrize("reduce", [{"method": "pca", "n_components": 3}, {"method": "pca", "n_components": 0.9},
                                    {"method": "select_k_best", "k": 4}, {"method": "variance_threshold"}])
def test_reducers(reduce, penguins_ref, tmp_path):
    ref, cache = penguins_ref
    ev, model = fit_and_score(make_spec(tmp_path, preprocess={"reduce": reduce}), ref, cache, str(tmp_path))
    assert "reduce" in model.meta["steps"]
    assert ev.metrics["accuracy"] > 0.85


@pytest.mark.parametrize("model", [
    {"name": "logistic_regression", "penalty": "l1", "C": 0.5}, {"name": "logistic_regression", "penalty": "elasticnet"},
    {"name": "logistic_regression", "multiclass": "ovr"}, {"name": "logistic_regression", "multiclass": "ovo"},
    {"name": "random_forest", "n_estimators": 30}, {"name": "hist_gradient_boosting", "max_iter": 50},
    {"name": "svm"}, {"name": "mlp", "hidden_layer_sizes": [16], "max_iter": 300},
])
def test_classifiers(model, penguins_ref, tmp_path):
    ref, cache = penguins_ref
    ev, _ = fit_and_score(make_spec(tmp_path, model=model, preprocess={"scale": {"method": "robust"}}), ref, cache,
                          str(tmp_path))
    assert ev.metrics["balanced_accuracy"] > 0.9
    assert set(ev.per_class) == {"Adelie", "Chinstrap", "Gentoo"}


def test_cross_validation_reports_fold_scores(penguins_ref, tmp_path):
    ref, cache = penguins_ref
    ev, model = fit_and_score(make_spec(tmp_path, split={"test_size": 0.25, "cv_folds": 3}), ref, cache, str(tmp_path))
    assert len(model.meta["cv"]["folds"]) == 3
    assert 0.9 < ev.metrics["cv_balanced_accuracy_mean"] <= 1


@pytest.mark.parametrize("model", [{"name": "linear"}, {"name": "ridge", "alpha": 2}, {"name": "lasso", "alpha": 0.01},
                                   {"name": "random_forest", "n_estimators": 30},
                                   {"name": "hist_gradient_boosting", "max_iter": 50}])
def test_regression_models(model, tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x1": rng.normal(size=120), "x2": rng.normal(size=120), "colour": rng.choice(["r", "g"], 120)})
    df["y"] = 3 * df.x1 - 2 * df.x2 + (df.colour == "r") * 1.5 + rng.normal(scale=0.1, size=120)
    df.loc[::10, "x2"] = np.nan
    cfg = type("C", (), {"target": "y", "path": "synthetic"})()
    ref = tabular.store(df, str(tmp_path), "r" * 64, cfg)
    spec = spec_from_dict({"name": "reg", "task": "regression", "model": model,
                           "data": {"loader": "csv", "path": "x.csv", "target": "y"}})
    ev, _ = fit_and_score(spec, ref, str(tmp_path), str(tmp_path))
    assert set(ev.metrics) == {"rmse", "mae", "r2"}
    assert ev.metrics["r2"] > 0.8 and ev.metrics["mae"] < ev.metrics["rmse"] * 1.01
