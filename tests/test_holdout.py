"""The one hold-out split (tasks/common/holdout.py): by column, by group, by files, with a validation
part, for every modality; bad split specs are spec or data errors naming the field."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainflow import modality as modalities
from trainflow.errors import DataError, SpecError
from trainflow.refs import load_npz, read_parquet
from trainflow.spec import spec_from_dict
from trainflow.tasks.common import holdout
from trainflow.tasks.common import load as loading


def run_split(raw: dict, tmp_path: Path):
    """load -> profile -> split in-process for the spec ``raw``; the spec and the SplitRef."""
    spec = spec_from_dict({"name": "holdout", **raw})
    cache = str(tmp_path / "cache")
    mod = modalities.get(spec.modality)
    ref = loading.load(spec.data, cache, spec.modality, spec.split)
    ref = mod.profile(ref, spec)
    return spec, mod.split(ref, spec, cache)


def table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A two-class table with a split column (train/val/test) and a group column (six sites)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "z": rng.normal(size=n), "y": np.where(x > 0, "a", "b"),
                         "part": np.array(["train", "train", "train", "val", "test"] * (n // 5)),
                         "site": np.array([f"s{i % 6}" for i in range(n)])})


def rows_of(path: str) -> pd.DataFrame:
    return read_parquet(path, keep=False)


# ---------------------------------------------------------------- the core, on arrays


def _spec(**split):
    return spec_from_dict({"name": "h", "data": {"loader": "csv", "path": "x.csv", "target": "y"}, "split": split})


def test_group_split_keeps_every_group_on_one_side():
    keys = np.array([f"g{i % 9}" for i in range(90)])
    y = np.array(["a", "b", "c"] * 30)
    parts = holdout.assign(90, _spec(group="g", validation=0.2), "data", y=y, keys=keys)
    sides = {name: set(keys[idx]) for name, idx in parts.items()}
    assert set(sides) == {"train", "validation", "test"}
    assert not (sides["train"] & sides["test"]) and not (sides["train"] & sides["validation"])
    assert not (sides["validation"] & sides["test"])
    assert sum(len(idx) for _, idx in parts.items()) == 90
    holdout.require_disjoint_groups(keys, parts, "g")  # the guard agrees


def test_group_split_names_the_test_groups_and_the_guard_catches_a_shared_group():
    keys = np.array(["ann", "bob", "theo"] * 10)
    parts = holdout.assign(30, _spec(group="speaker", test=["theo"]), "data", keys=keys)
    assert set(keys[parts.test]) == {"theo"} and "theo" not in set(keys[parts.train])
    parts.test = np.append(parts.test, parts.train[0])  # a row of a training group in the test part
    with pytest.raises(DataError, match="has rows in both the train and test parts"):
        holdout.require_disjoint_groups(keys, parts, "speaker")


def test_validation_share_is_drawn_from_the_training_rows_stratified():
    y = np.array(["a"] * 50 + ["b"] * 50)
    parts = holdout.assign(100, _spec(validation=0.1), "data", y=y)
    assert (len(parts.train), len(parts.validation), len(parts.test)) == (72, 8, 20)
    assert not set(parts.validation) & set(parts.test) and not set(parts.validation) & set(parts.train)
    assert (y[parts.validation] == "a").sum() == 4
    plain = holdout.assign(100, _spec(), "data", y=y)
    assert np.array_equal(plain.test, parts.test)  # the test part does not move when a validation part is asked


@pytest.mark.parametrize("split, match", [
    ({"column": "part", "group": "site", "test": ["test"]}, "both given"),
    ({"column": "part"}, "names no value"),
    ({"test": ["test"]}, "neither 'split.column' nor 'split.group'"),
    ({"column": "part", "test": ["test"], "validation": ["test"]}, "both name"),
])
def test_a_bad_split_spec_is_a_spec_error_naming_the_field(split, match):
    with pytest.raises(SpecError, match=match) as exc:
        _spec(**split)
    assert "split." in str(exc.value)


def test_a_loader_that_carries_no_column_is_refused_for_a_column_split():
    with pytest.raises(SpecError, match="'split.group' is 'speaker', but the loader 'digits' carries no column"):
        spec_from_dict({"name": "h", "data": {"loader": "digits"}, "split": {"group": "speaker"}})


# ---------------------------------------------------------------- tabular


def test_tabular_split_by_column_with_a_validation_part(tmp_path):
    table().to_csv(tmp_path / "t.csv", index=False)
    _, split = run_split({"data": {"loader": "csv", "path": str(tmp_path / "t.csv"), "target": "y"},
                          "split": {"column": "part", "test": ["test"], "validation": ["val"]}}, tmp_path)
    assert holdout.counts(split) == {"train": 36, "validation": 12, "test": 12}
    assert holdout.validation_part(split) is split.validation
    train = rows_of(split.train.path)
    assert "part" not in train.columns and holdout.KEY not in train.columns  # the split column is no feature
    assert set(split.meta["class_counts"]) == {"train", "validation", "test"}


def test_tabular_split_by_group(tmp_path):
    df = table()
    df.to_csv(tmp_path / "t.csv", index=False)
    _, split = run_split({"data": {"loader": "csv", "path": str(tmp_path / "t.csv"), "target": "y"},
                          "split": {"group": "site", "test": ["s0", "s1"]}}, tmp_path)
    test = rows_of(split.test.path)
    assert len(test) == 20 and np.allclose(np.sort(test["x"]), np.sort(df.x[df.site.isin(["s0", "s1"])]))
    assert "site" not in test.columns


@pytest.mark.parametrize("split, option, match", [
    ({"column": "parts", "test": ["test"]}, "split.column", "'parts', which is not a column"),
    ({"column": "part", "test": ["tset"]}, "split.test", "names ['tset'], which no row"),
    ({"group": "site", "test": ["s1"], "validation": ["s9"]}, "split.validation", "names ['s9'], which no row"),
])
def test_a_split_value_or_column_the_data_lacks_is_a_data_error(tmp_path, split, option, match):
    table().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=re.escape(match)) as exc:
        run_split({"data": {"loader": "csv", "path": str(tmp_path / "t.csv"), "target": "y"}, "split": split},
                  tmp_path)
    assert option in str(exc.value)
