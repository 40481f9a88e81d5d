"""The one hold-out split (tasks/common/holdout.py): by column, by group, by files, with a validation
part, for every modality; bad split specs are spec or data errors naming the field."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainflow import modalities
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


def test_the_stratified_split_is_scikit_learns_on_the_raw_labels():
    """The split stratifies on class codes numbered as np.unique numbers the labels (hashing, not
    sorting a million strings): the same rows as train_test_split stratified on the labels themselves,
    whatever order the classes first appear in; a class of one row leaves the split unstratified."""
    from sklearn.model_selection import train_test_split

    y = np.random.default_rng(3).choice(np.array(["zebra", "ant", "moth"], dtype=object), 500, p=[0.6, 0.3, 0.1])
    parts = holdout.assign(500, _spec(), "data", y=y, sort=False)
    kept, held = train_test_split(np.arange(500), test_size=0.2, random_state=42, stratify=y)
    assert np.array_equal(parts.train, kept) and np.array_equal(parts.test, held)
    lone = holdout.assign(60, _spec(), "data", y=np.array(["a"] * 59 + ["b"], dtype=object))
    assert any("not stratified: class" in n and "b" in n for n in lone.notes)


def test_labels_that_differ_only_by_case_or_spaces_are_named(capsys):
    y = np.array(["Adelie"] * 30 + ["adelie "] * 5 + ["Gentoo"] * 25, dtype=object)
    notes = holdout.assign(60, _spec(), "penguins.csv", y=y).notes
    said = "class labels of 'penguins.csv' that differ only by case or spaces are separate classes: 'Adelie' / 'adelie '"
    assert any(said in n for n in notes) and said in capsys.readouterr().err
    clean = np.array(["Adelie"] * 35 + ["Gentoo"] * 25, dtype=object)
    assert not any("case or spaces" in n for n in holdout.assign(60, _spec(), "penguins.csv", y=clean).notes)


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


def test_tabular_fixed_files_single_label(tmp_path):
    """data.train + data.test (arff) fix the split for a single-label target too."""
    header = "@relation r\n@attribute x numeric\n@attribute z numeric\n@attribute y {a,b}\n@data\n"
    rng = np.random.default_rng(0)
    for name, n in (("train", 30), ("test", 10)):
        rows = [f"{v:.3f},{w:.3f},{'a' if v > 0 else 'b'}" for v, w in rng.normal(size=(n, 2))]
        (tmp_path / f"{name}.arff").write_text(header + "\n".join(rows) + "\n")
    _, split = run_split({"data": {"loader": "arff", "train": str(tmp_path / "train.arff"),
                                   "test": str(tmp_path / "test.arff"), "target": "y"}}, tmp_path)
    assert holdout.counts(split) == {"train": 30, "test": 10}


# ---------------------------------------------------------------- text


def texts(n: int = 60) -> pd.DataFrame:
    words = {"a": "good great fine", "b": "bad awful poor"}
    labels = ["a", "b"] * (n // 2)
    return pd.DataFrame({"text": [f"{words[l]} item {i}" for i, l in enumerate(labels)], "label": labels,
                         "split": ["train", "train", "train", "val", "test", "train"] * (n // 6),
                         "author": [f"u{i % 5}" for i in range(n)]})


@pytest.mark.parametrize("split, counts", [
    ({"column": "split", "test": ["test"], "validation": ["val"]}, {"train": 40, "validation": 10, "test": 10}),
    ({"group": "author", "test": ["u0"], "validation": ["u1"]}, {"train": 36, "validation": 12, "test": 12}),
])
def test_text_split_by_column_and_by_group(tmp_path, split, counts):
    texts().to_csv(tmp_path / "t.csv", index=False)
    _, ref = run_split({"data": {"loader": "text_table", "path": str(tmp_path / "t.csv"), "target": "label"},
                        "split": split}, tmp_path)
    assert holdout.counts(ref) == counts
    test = rows_of(ref.test.path)
    assert list(test.columns) == ["text", "label"]  # the split column is neither text nor a kept column
    if "group" in split:
        train_items = {t.rsplit(" ", 1)[1] for t in rows_of(ref.train.path)["text"]}
        assert not any(int(t.rsplit(" ", 1)[1]) % 5 in (0, 1) for t in rows_of(ref.train.path)["text"])
        assert train_items.isdisjoint(t.rsplit(" ", 1)[1] for t in test["text"])


def test_the_tweeteval_spec_keeps_the_official_split(tmp_path):
    from trainflow.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[1] / "flows/specs/tweeteval_stance.yaml")
    mod = modalities.get(spec.modality)
    ref = mod.profile(loading.load(spec.data, str(tmp_path), spec.modality, spec.split), spec)
    split = mod.split(ref, spec, str(tmp_path))
    assert holdout.counts(split) == {"train": 587, "validation": 66, "test": 280}  # as data/README.md says


# ---------------------------------------------------------------- image


def image_manifest(folder: Path, n: int = 40) -> Path:
    """``n`` 8x8 gray PNGs, bright or dark, listed with a split column and a site column."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True)
    rows = []
    for i in range(n):
        label = "bright" if i % 2 else "dark"
        x = rng.integers(0, 60, (8, 8)).astype(np.uint8) + (150 if label == "bright" else 0)
        Image.fromarray(x.astype(np.uint8), mode="L").save(folder / f"img/{i:03d}.png")
        rows.append({"file": f"img/{i:03d}.png", "label": label, "part": ["train", "train", "val", "test"][(i // 2) % 4],
                     "site": f"s{i % 5}", "fold": "holdout" if i % 4 == 3 else "fit"})
    pd.DataFrame(rows).to_csv(folder / "images.csv", index=False)
    return folder / "images.csv"


@pytest.mark.parametrize("split, counts", [
    ({"column": "part", "test": ["test"], "validation": ["val"]}, {"train": 20, "validation": 10, "test": 10}),
    ({"group": "site", "test": ["s0"]}, {"train": 32, "test": 8}),
])
def test_image_manifest_split_by_column_and_by_group(tmp_path, split, counts):
    manifest = image_manifest(tmp_path / "data")
    _, ref = run_split({"data": {"loader": "image_manifest", "path": str(manifest)}, "split": split}, tmp_path)
    assert holdout.counts(ref) == counts
    assert set(load_npz(ref.test.path)) == {"x", "y"}  # one npz per part, the key not among its arrays


def test_image_manifest_old_split_spelling_still_works_with_a_deprecation_warning(tmp_path, capsys):
    manifest = image_manifest(tmp_path / "data")
    _, ref = run_split({"data": {"loader": "image_manifest", "path": str(manifest), "split": "fold",
                                 "test_value": "holdout"}}, tmp_path)
    err = capsys.readouterr().err
    assert "deprecated" in err and "'split: {column: fold, test: [holdout]}'" in err
    assert holdout.counts(ref) == {"train": 30, "test": 10}


# ---------------------------------------------------------------- audio


def tone_folder(folder: Path) -> Path:
    """``{label}_{speaker}_{take}.wav`` tones: two labels x three speakers x four takes."""
    import soundfile as sf

    folder.mkdir(parents=True)
    t = np.arange(2000) / 8000
    for label, hz in (("low", 300.0), ("high", 1200.0)):
        for speaker in ("ann", "bob", "theo"):
            for take in range(4):
                wave = 0.5 * np.sin(2 * np.pi * (hz + 10 * take) * t)
                sf.write(folder / f"{label}_{speaker}_{take}.wav", wave.astype(np.float32), 8000, subtype="PCM_16")
    return folder


AUDIO = {"loader": "audio_pattern", "sample_rate": 8000,
         "pattern": r"(?P<label>[a-z]+)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav"}


def test_audio_split_by_speaker_keeps_each_speaker_on_one_side(tmp_path):
    root = tone_folder(tmp_path / "clips")
    _, ref = run_split({"data": {**AUDIO, "path": str(root)}, "split": {"group": "speaker", "test": ["theo"]}},
                       tmp_path)
    files = {p: set(str(f).split("_")[1] for f in load_npz(getattr(ref, p).path)["files"]) for p in ("train", "test")}
    assert files == {"train": {"ann", "bob"}, "test": {"theo"}}
    # by a share of the speakers: still no speaker on both sides
    _, ref = run_split({"data": {**AUDIO, "path": str(root)}, "split": {"group": "speaker", "test_size": 0.3}},
                       tmp_path / "share")
    sides = [set(str(f).split("_")[1] for f in load_npz(getattr(ref, p).path)["files"]) for p in ("train", "test")]
    assert sides[0].isdisjoint(sides[1]) and len(sides[1]) == 1


def test_audio_split_by_a_pattern_group_as_a_column_and_the_old_spelling(tmp_path, capsys):
    root = tone_folder(tmp_path / "clips")
    _, ref = run_split({"data": {**AUDIO, "path": str(root)}, "split": {"column": "take", "test": [0]}}, tmp_path)
    assert holdout.counts(ref) == {"train": 18, "test": 6}
    capsys.readouterr()
    _, old = run_split({"data": {**AUDIO, "path": str(root), "test_group": "take", "test_values": [0]}},
                       tmp_path / "old")
    assert "'split: {column: take, test: [0]}'" in capsys.readouterr().err
    assert sorted(load_npz(old.test.path)["files"]) == sorted(load_npz(ref.test.path)["files"])
    with pytest.raises(DataError, match="'split.column' is 'speakr', which is not a named group of data.pattern"):
        run_split({"data": {**AUDIO, "path": str(root)}, "split": {"column": "speakr", "test": ["x"]}},
                  tmp_path / "bad")


# ---------------------------------------------------------------- sequence


def wide_series(path: Path, key: str, n: int = 40) -> Path:
    """One row per series: label, the split column ``key`` (part or subject) and 12 time steps."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        label = i % 2
        rows.append({"label": label, key: f"p{i % 4}" if key == "subject" else ("test" if i % 5 == 0 else "train"),
                     **{f"t{j}": float(np.sin(j / (2 + label)) + 0.1 * rng.normal()) for j in range(12)}})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("split, counts", [
    ({"column": "part", "test": ["test"], "validation": 0.25}, {"train": 24, "validation": 8, "test": 8}),
    ({"group": "subject", "test": ["p3"]}, {"train": 30, "test": 10}),
])
def test_sequence_wide_csv_split_by_column_and_by_group(tmp_path, split, counts):
    path = wide_series(tmp_path / "s.csv", split.get("column") or split["group"])
    _, ref = run_split({"data": {"loader": "wide_csv", "path": str(path)}, "split": split}, tmp_path)
    assert holdout.counts(ref) == counts
    assert load_npz(ref.train.path)["x"].shape[1] == 12  # the split column is no time step


def test_sequence_long_csv_group_constant_per_series_and_fixed_files(tmp_path):
    rows = [{"series_id": f"s{i}", "time": t, "value": float(t * (i % 2) + i / 100), "label": i % 2,
             "site": f"w{i % 3}"} for i in range(18) for t in range(6)]
    pd.DataFrame(rows).to_csv(tmp_path / "long.csv", index=False)
    _, ref = run_split({"data": {"loader": "long_csv", "path": str(tmp_path / "long.csv")},
                        "split": {"group": "site", "test": ["w0"]}}, tmp_path)
    assert sorted(load_npz(ref.test.path)["ids"]) == sorted(f"s{i}" for i in range(0, 18, 3))
    rows[0]["site"] = "w9"  # series s0 now in two sites
    pd.DataFrame(rows).to_csv(tmp_path / "long.csv", index=False)
    with pytest.raises(DataError, match="series 's0' has 2 values of 'site'"):
        run_split({"data": {"loader": "long_csv", "path": str(tmp_path / "long.csv")},
                   "split": {"group": "site", "test": ["w0"]}}, tmp_path / "bad")
    # fixed by files: data.train + data.test
    frame = pd.DataFrame(rows).drop(columns=["site"])
    frame[:60].to_csv(tmp_path / "train.csv", index=False)
    frame[60:].to_csv(tmp_path / "test.csv", index=False)
    _, ref = run_split({"data": {"loader": "long_csv", "train": str(tmp_path / "train.csv"),
                                 "test": str(tmp_path / "test.csv")}}, tmp_path / "files")
    assert holdout.counts(ref) == {"train": 10, "test": 8}


# ---------------------------------------------------------------- multimodal


def image_and_table(tmp_path: Path) -> Path:
    """The image manifest of :func:`image_manifest` and ``table.csv`` beside it (a feature per image, its
    label and split ``part``, joined by ``file``); returns the manifest."""
    manifest = image_manifest(tmp_path / "data")
    images = pd.read_csv(manifest)
    rng = np.random.default_rng(1)
    pd.DataFrame({"file": images["file"], "label": images["label"], "part": images["part"],
                  "f1": rng.normal(size=len(images)) + (images["label"] == "bright")}).to_csv(
        tmp_path / "table.csv", index=False)
    return manifest


def test_multimodal_split_by_a_column_of_one_input_reaches_every_branch(tmp_path):
    manifest = image_and_table(tmp_path)
    raw = {"data": {"loader": "multimodal", "join": "id",
                    "inputs": {"img": {"loader": "image_manifest", "path": str(manifest)},
                               "tab": {"loader": "csv", "path": str(tmp_path / "table.csv"), "target": "label",
                                       "id": "file"}}},
           "split": {"column": "part", "test": ["test"], "validation": ["val"]}}
    _, ref = run_split(raw, tmp_path)
    assert ref.meta["class_counts"]["test"] == {"bright": 5, "dark": 5} and holdout.counts(ref)["validation"] == 10
    for name in ("img", "tab"):
        branch = ref.meta["branches"][name]
        assert (branch["train"]["meta"]["rows"], branch["test"]["meta"]["rows"]) == (20, 10)  # val rows kept out


def test_a_group_share_keeps_the_classes_in_the_test_part():
    """20 sites, the rare class only at 4 of them: a random fifth of the sites leaves it out of the
    test part for some seeds; the stratified draw (StratifiedGroupKFold) never does, and keeps every
    site on one side."""
    sites = np.repeat([f"s{i:02d}" for i in range(20)], 10)
    y = np.where(np.isin(sites, ["s03", "s07", "s11", "s16"]), "rare", "common")
    spec = spec_from_dict({"name": "h", "data": {"loader": "csv", "path": "x.csv", "target": "y"},
                           "split": {"group": "site", "test_size": 0.2}})
    plain = spec_from_dict({"name": "h", "data": {"loader": "csv", "path": "x.csv", "target": "y"},
                            "split": {"group": "site", "test_size": 0.2, "stratify": False}})
    missed = 0
    for seed in range(10):
        for s in (spec, plain):
            s.split.seed = seed
        parts = holdout.assign(len(y), spec, "x.csv", y=y, keys=sites)
        assert set(sites[parts.test]).isdisjoint(sites[parts.train])
        assert 1 <= (y[parts.test] == "rare").sum() // 10 <= 2 and 3 <= len(set(sites[parts.test])) <= 5
        unstratified = holdout.assign(len(y), plain, "x.csv", y=y, keys=sites)
        missed += int(not (y[unstratified.test] == "rare").any())
    assert missed > 0  # the draw the stratified one replaces
