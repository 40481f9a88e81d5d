"""The pipeline spec: strict keys, component lookup, option checks, overrides."""

from __future__ import annotations

import pytest

from tests.conftest import SPECS
from trainflow.errors import SpecError
from trainflow.spec import PipelineSpec, apply_override, load_spec, spec_from_dict


def base(**extra) -> dict:
    raw = {"name": "t", "data": {"loader": "csv", "path": "x.csv", "target": "y"}}
    raw.update(extra)
    return raw


def test_penguins_spec_loads_with_absolute_data_path():
    spec = load_spec(SPECS / "penguins.yaml")
    assert spec.data.options()["path"].endswith("data/penguins.csv")
    assert spec.preprocess.resample.method == "smote"
    assert spec.modality == "tabular"


def test_unknown_top_level_key_is_named():
    with pytest.raises(SpecError) as err:
        spec_from_dict(base(modle={"name": "svm"}))
    assert "'modle' is not a known option" in str(err.value)


def test_unknown_component_suggests_close_match():
    with pytest.raises(SpecError) as err:
        spec_from_dict(base(preprocess={"impute": {"method": "meen"}}))
    msg = str(err.value)
    assert "'preprocess.impute.method' must be one of" in msg and "'median'" in msg
    assert "Got 'meen' (did you mean 'mean'?)" in msg


def test_invalid_option_value_names_the_field():
    with pytest.raises(SpecError) as err:
        spec_from_dict(base(preprocess={"reduce": {"method": "pca", "n_components": 1.5}}))
    assert "'preprocess.reduce.n_components'" in str(err.value)
    assert "variance ratio between 0 and 1" in str(err.value)


def test_all_problems_are_reported_together():
    with pytest.raises(SpecError) as err:
        spec_from_dict(base(model={"name": "svm", "C": -1, "kernal": "rbf"},
                            preprocess={"scale": {"method": "zscore"}}))
    problems = err.value.problems
    assert len(problems) == 3, problems
    assert any("'model.kernal' is not a known option" in p for p in problems)
    assert any("'model.C'" in p for p in problems)
    assert any("'preprocess.scale.method'" in p for p in problems)


def test_component_for_the_wrong_task_is_rejected():
    with pytest.raises(SpecError) as err:
        spec_from_dict(base(task="regression", model={"name": "logistic_regression"}))
    assert "'model.name' must be one of" in str(err.value) and "'ridge'" in str(err.value)


def test_class_weight_with_model_without_support():
    with pytest.raises(SpecError) as err:
        spec_from_dict(base(model={"name": "mlp"}, preprocess={"resample": {"method": "class_weight"}}))
    assert "class_weight" in str(err.value) and "mlp" in str(err.value)


def test_overrides_parse_yaml_values_and_create_sections():
    raw = base()
    apply_override(raw, "model.name=random_forest")
    apply_override(raw, "model.n_estimators=50")
    apply_override(raw, "preprocess.resample.method=smote")
    apply_override(raw, "validation.labels=[a, b]")
    spec = spec_from_dict(raw)
    assert spec.model.options() == {"n_estimators": 50}
    assert spec.preprocess.resample.method == "smote"
    assert spec.validation.labels == ["a", "b"]


def test_override_without_equals_is_an_error():
    with pytest.raises(SpecError, match="KEY=VALUE"):
        apply_override({}, "model.name")


def test_spec_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="bad.yaml"):
        load_spec(bad)
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")


def test_a_key_given_twice_is_named_with_its_section_and_lines(tmp_path):
    # PyYAML keeps the last of two equal keys silently: a pasted second target would change the task
    spec = tmp_path / "dup.yaml"
    spec.write_text("name: t\ndata:\n  loader: csv\n  path: x.csv\n  target: species\n  target: island\n"
                    "model: {name: logistic_regression}\nmodel:\n  name: random_forest\n")
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert err.value.exit_code == 2 and "dup.yaml" in str(err.value)
    assert err.value.problems == [
        "the key 'target' is given twice in section 'data' (lines 5 and 6); YAML would keep only the last one "
        "without a word: remove one",
        "the key 'model' is given twice at the top level (lines 7 and 8); YAML would keep only the last one "
        "without a word: remove one"]
    with pytest.raises(SpecError, match=r"--set model: .*the key 'name' is given twice"):
        apply_override(base(), "model={name: svm, name: mlp}")
    with pytest.raises(SpecError, match=r"--set model: .*not valid YAML"):
        apply_override(base(), "model={name: [}")


@pytest.mark.parametrize("extra, problem", [
    ({"validation": {"columns": {"bill_length_mm": {"type": "number", "min": 70, "max": 25}}}},
     "'validation.columns.bill_length_mm': min (70) is above max (25), so no value can pass; expected min <= max."),
    ({"data": {"loader": "text_table", "path": "x.tsv", "text": "sms", "target": "y"},
      "text_validation": {"min_tokens": 10, "max_tokens": 5}},
     "'text_validation': min_tokens (10) is above max_tokens (5), so no document can pass; expected "
     "min_tokens <= max_tokens."),
    ({"data": {"loader": "audio_pattern", "path": "clips", "pattern": "(?P<label>\\d)_.*\\.wav"},
      "audio_validation": {"min_duration": 2, "max_duration": 0.5}},
     "'audio_validation': min_duration (2) is above max_duration (0.5), so no clip can pass; expected "
     "min_duration <= max_duration."),
], ids=["column min/max", "text tokens", "audio duration"])
def test_a_minimum_above_its_maximum_is_a_spec_error(extra, problem):
    # no row could pass: it failed later as "Data validation failed" (exit 4), after loading the data
    with pytest.raises(SpecError) as err:
        spec_from_dict(base(**extra))
    assert err.value.exit_code == 2 and problem in err.value.problems, err.value.problems
    spec_from_dict(base(validation={"columns": {"b": {"min": 3, "max": 3}}}))  # equal bounds are fine


def test_training_view_ignores_report_only_fields():
    a = spec_from_dict(base(evaluate={"metrics": ["accuracy"]}, description="one", tune={"trials": 3}))
    b = spec_from_dict(base(description="two"))
    assert a.training_view() == b.training_view()
    assert isinstance(a, PipelineSpec)
    # the primary metric stays: the fit measures its selection score (cross-validation) in it
    c = spec_from_dict(base(evaluate={"primary": "accuracy"}))
    assert c.training_view() != b.training_view() and c.training_view().evaluate.primary == "accuracy"


@pytest.mark.parametrize("data, task, model", [
    ({"loader": "csv", "path": "x.csv", "target": "y"}, "classification", "logistic_regression"),
    ({"loader": "csv", "path": "x.csv", "target": "y"}, "regression", "ridge"),
    ({"loader": "digits"}, "classification", "cnn"),
    ({"loader": "ts", "path": "x.ts"}, "classification", "minirocket"),
    ({"loader": "ts", "path": "x.ts"}, "regression", "gru"),
    ({"loader": "timeseries_csv", "path": "x.csv"}, "forecasting", "auto"),
])
def test_a_spec_without_a_model_gets_one_suited_to_its_data(data, task, model):
    spec = spec_from_dict({"name": "t", "task": task, "data": data})
    assert spec.model.name == model
    assert spec_from_dict(spec.model_dump(mode="json")).model.name == model


def test_an_unknown_model_name_lists_the_models_that_take_the_data():
    with pytest.raises(SpecError) as err:
        spec_from_dict(base(model={"name": "forest"}))
    message = str(err.value)
    assert "'model.name' must be one of" in message and "did you mean 'random_forest'" in message
    assert "'svm'" in message and "audio_cnn" not in message and "inception_time" not in message
