"""Bad tabular input: a clear message naming the file/column/field, a non-zero exit, nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import assert_fails_clearly, run_cli, write_spec

pytestmark = pytest.mark.usefixtures("prefect_server")

GOOD = "a,b,c,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{'xy'[i % 2]},{'pq'[i % 3 == 0]}\n" for i in range(40))


def spec_for(tmp_path: Path, csv_text: str | None, **data) -> Path:
    data_file = tmp_path / "data.csv"
    if csv_text is not None:
        data_file.write_text(csv_text)
    raw = {"name": "bad", "data": {"loader": "csv", "path": str(data_file), "target": "label", **data},
           "validation": {"min_rows": 5}, "split": {"test_size": 0.3}}
    return write_spec(tmp_path / "spec.yaml", raw)


CASES = {
    "missing file": (None, {}, 3, ["data.csv", "does not exist"]),
    "empty file": ("", {}, 3, ["data.csv", "is empty"]),
    "header only": ("a,b,c,label\n", {}, 3, ["data.csv", "header but no data rows"]),
    "wrong delimiter": (GOOD, {"delimiter": ";"}, 3, ["data.csv", "single column", "data.delimiter: ','"]),
    "target missing": (GOOD.replace("label", "lable"), {}, 3, ["target column 'label'", "data.csv"]),
    "one class only": ("a,b,label\n" + "1,2,x\n" * 20, {}, 4, ["expect_column_unique_value_count_to_be_between",
                                                                "label", "at least two classes"]),
    "all-NaN column": ("a,b,label\n" + "".join(f"{i},NA,{'xy'[i % 2]}\n" for i in range(20)), {}, 4,
                       ["column 'b'", "no values at all"]),
    "text in numeric column": ("a,b,label\n" + "".join(f"{'oops' if i == 3 else i},{i % 3},{'xy'[i % 2]}\n"
                                                        for i in range(20)), {}, 4,
                               ["expect_column_values_to_match_regex on column 'a'", "1 of 20", "'oops'"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_clearly(case, tmp_path, capsys):
    text, data, code, phrases = CASES[case]
    assert_fails_clearly(spec_for(tmp_path, text, **data), tmp_path / "runs", "bad", code, phrases, capsys)


def test_failed_validation_keeps_data_docs_with_the_failed_run(tmp_path, capsys):
    spec = spec_for(tmp_path, CASES["text in numeric column"][0])
    out = tmp_path / "runs"
    rc, err = run_cli("run", spec, "--out", out, capsys=capsys)
    assert rc == 4
    failed = list((out / "bad").glob("*.failed"))
    assert len(failed) == 1
    assert (failed[0] / "validation" / "index.html").is_file()
    assert "ValidationFailed" in (failed[0] / "error.txt").read_text()
    assert not (failed[0] / "metrics.json").exists()


@pytest.mark.parametrize("spec_patch, phrase", [
    ({"modle": {"name": "svm"}}, "'modle' is not a known option"),
    ({"model": {"name": "random_forrest"}}, "did you mean 'random_forest'?"),
    ({"preprocess": {"reduce": {"method": "pca", "n_components": 1.5}}}, "'preprocess.reduce.n_components'"),
])
def test_bad_spec_exits_2_before_any_run(spec_patch, phrase, tmp_path, capsys):
    spec = spec_for(tmp_path, GOOD)
    import yaml

    raw = yaml.safe_load(spec.read_text())
    raw.update(spec_patch)
    write_spec(spec, raw)
    out = tmp_path / "runs"
    rc, err = run_cli("run", spec, "--out", out, capsys=capsys)
    assert rc == 2
    assert phrase in err
    assert not out.exists()


def test_validate_command_reports_and_exits_nonzero(tmp_path, capsys):
    spec = spec_for(tmp_path, CASES["text in numeric column"][0])
    rc, err = run_cli("validate", spec, "--out", tmp_path / "runs", capsys=capsys)
    assert rc == 4
    assert "expectations failed" in err and "'oops'" in err


ID_ONLY = "sample,site,label\n" + "".join(f"S{i:04d},north,{'xy'[i % 2]}\n" for i in range(30))


@pytest.mark.parametrize("extra, code, phrases", [
    ({}, 3, ["No usable feature is left in", "data.csv", "'sample': identifier", "'site': constant",
             "features.keep"]),
    ({"features": {"keep": ["sampel"]}}, 3, ["column 'sampel' of features.keep", "did you mean 'sample'"]),
    ({"data": {"features": ["sample", "label"]}}, 2, ["the target 'label' is also listed in 'data.features'"]),
    ({"features": {"auto_exclude": "error"}}, 3, ["features.auto_exclude is 'error'", "'sample': identifier"]),
], ids=["id-only table", "unknown features.keep column", "target listed as a feature", "auto_exclude error"])
def test_feature_choice_fails_clearly(extra, code, phrases, tmp_path, capsys):
    spec = spec_for(tmp_path, ID_ONLY, **extra.get("data", {}))
    if "features" in extra:
        import yaml

        raw = yaml.safe_load(spec.read_text())
        write_spec(spec, {**raw, "features": extra["features"]})
    assert_fails_clearly(spec, tmp_path / "runs", "bad", code, phrases, capsys)


def test_a_class_too_small_for_smote_exits_3_naming_it(tmp_path, capsys):
    # was a ValueError from scikit-learn's neighbours, with a traceback through the flow engine (exit 1)
    (tmp_path / "data.csv").write_text(GOOD + "".join(f"{i},{i},x,r\n" for i in range(4)))
    spec = write_spec(tmp_path / "spec.yaml", {
        "name": "bad", "data": {"loader": "csv", "path": str(tmp_path / "data.csv"), "target": "label"},
        "split": {"test_size": 0.25, "stratify": True}, "preprocess": {"resample": {"method": "smote"}}})
    assert_fails_clearly(spec, tmp_path / "runs", "bad", 3, [
        "SMOTE (preprocess.resample.method) needs at least 6 rows", "class 'r' has 3 rows",
        "set preprocess.resample.k_neighbors to at most 2"], capsys)
