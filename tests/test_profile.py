"""Role guesses of the data profile and the feature plan made from them (no Prefect needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainflow.errors import DataError
from trainflow.spec import spec_from_dict
from trainflow.tasks.tabular.profile import apply_plan, guess_role, plan_features, profile_table

N = 120


def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "row": np.arange(N),                                              # a running number
        "code": [f"K{i:05d}" for i in rng.permutation(N)],               # unique codes
        "const": 7,
        "when": pd.date_range("2020-01-01", periods=N, freq="D").strftime("%Y-%m-%d"),
        "note": [" ".join(rng.choice(["a", "bird", "seen", "near", "the", "nest", "at", "dawn"], 6)) for _ in range(N)],
        "city": [f"c{i % 80}" for i in range(N)],
        "size": rng.normal(size=N),                                        # unique floats: a measurement
        "count": rng.integers(0, 5, N),
        "color": rng.choice(["red", "blue"], N),
        "label": rng.choice(["p", "q"], N),
    })


def test_roles():
    df = table()
    roles = {c: guess_role(df[c])[0] for c in df.columns}
    assert roles == {"row": "identifier", "code": "identifier", "const": "constant", "when": "date/time",
                     "note": "free text", "city": "high-cardinality categorical", "size": "numeric",
                     "count": "numeric", "color": "categorical", "label": "categorical"}
    # sentences picked from a list of 25, on every row: free text, not 25 categories; short phrases stay categories
    rng = np.random.default_rng(2)
    picked = [" ".join(rng.choice(["bird", "seen", "near", "the", "nest", "at", "dawn"], 6)) + f" {k}" for k in range(25)]
    assert guess_role(pd.Series(rng.choice(picked, 300), name="field_obs"))[0] == "free text"
    phrases = [f"dream island {k}" for k in range(25)]
    assert guess_role(pd.Series(rng.choice(phrases, 300), name="place"))[0] == "categorical"


def test_long_float_columns_are_sampled_only_where_the_sample_settles_the_role(monkeypatch):
    """A float column whose sample shows two values, one not whole, is numeric whatever the other rows
    hold: its distinct count is reported as the sample's lower bound; every other column is counted
    exactly, and the roles are those of counting every column."""
    from trainflow.tasks.tabular import profile

    monkeypatch.setattr(profile, "SAMPLE_ROWS", 50)
    rng = np.random.default_rng(1)
    n = 400
    whole_head = np.arange(n, dtype=float)
    whole_head[-1] = 0.5  # a running number in the sample, a fraction only in a row it skips
    df = pd.DataFrame({
        "size": rng.normal(size=n),                       # settled by the sample
        "rownum": np.arange(n, dtype=float),              # whole floats counting through the rows: an identifier
        "whole_head": whole_head,                         # whole in the sample: counted on every row
        "const": np.full(n, 2.5),                         # one value: constant, counted
        "mostly_const": np.where(np.arange(n) == 3, 1.5, 2.5),  # a second value outside the sample
        "ints": rng.integers(0, 5, n),                    # not floats: counted
        "label": rng.choice(["p", "q"], n),
    })
    rows = {r["column"]: r for r in profile.profile_table(df, "label")}
    assert rows["size"]["distinct"] == ">= 50" and rows["size"]["role"] == "numeric"
    for col in ("rownum", "whole_head", "const", "mostly_const", "ints"):
        assert rows[col]["distinct"] == df[col].nunique(), col
        assert (rows[col]["role"], rows[col]["why"]) == guess_role(df[col]), col
    assert [rows[c]["role"] for c in ("rownum", "const", "mostly_const")] == ["identifier", "constant", "numeric"]


def spec(data=None, **features):
    return spec_from_dict({"name": "t", "data": {"loader": "csv", "path": "x.csv", "target": "label", **(data or {})},
                           "features": features})


def test_plan_drops_junk_expands_dates_on_request_and_keeps_listed_columns():
    profile = profile_table(table(), "label")
    plan = plan_features(profile, spec())
    assert plan["features"] == ["city", "size", "count", "color"]
    assert set(plan["excluded"]) == {"row", "code", "const", "when", "note"}
    plan = plan_features(profile, spec(dates="expand", keep=["count", "row"]))
    assert plan["features"] == ["row", "when_year", "when_month", "when_dayofweek", "city", "size", "count", "color"]
    out = apply_plan(table(), plan, "label")
    assert list(out.columns) == plan["features"] + ["label"]
    assert out.loc[0, ["when_year", "when_month", "when_dayofweek"]].tolist() == [2020, 1, 2]  # a Wednesday
    assert "code" in plan_features(profile, spec(auto_exclude="warn"))["features"]
    assert "code" not in plan_features(profile, spec(data={"id": "code"}))["features"]


def test_plan_at_predict_names_a_missing_raw_column_and_values_that_are_no_dates(capsys):
    plan = plan_features(profile_table(table(), "label"), spec(dates="expand"))
    with pytest.raises(DataError, match="lacks the feature column.*'when'"):
        apply_plan(table().drop(columns=["when"]), plan, source="new.csv")
    new = table().astype({"when": object})
    new.loc[[2, 5], "when"] = ["not a date", "2008-13-45"]
    out = apply_plan(new, plan, source="new.csv")
    assert out["when_year"].isna().sum() == 2
    assert ("'new.csv': 2 value(s) of the date column 'when' are not dates, read as missing (first: 'not a date' "
            "in row 3)") in capsys.readouterr().err
    apply_plan(table(), plan, source="new.csv")
    assert "not dates" not in capsys.readouterr().err
