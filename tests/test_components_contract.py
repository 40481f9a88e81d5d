"""One contract, every registered component (cf. imbalanced-learn's test_common).

Each component: a docstring summary; its config round-trips and rejects unknown options with a
message naming the option; and it runs on tiny data, giving the same output for the same seed:
table components on a small array, networks on a small batch, loaders on small files written here.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from pydantic import ValidationError

from trainflow.errors import SpecError
from trainflow.registry import KINDS, REGISTRY

COMPONENTS = REGISTRY.all()
IDS = [f"{c.kind}:{c.name}" for c in COMPONENTS]


def tiny_xy(seed: int = 0, n: int = 40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.array([0] * (n * 3 // 4) + [1] * (n - n * 3 // 4))
    X[y == 1] += 1.5
    return X, y


def default_config(comp):
    try:
        return comp.config()
    except ValidationError:
        return None  # required options (a loader's path): covered by its own tests


@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_has_summary_and_known_kind(comp):
    assert comp.summary, f"{comp.kind} '{comp.name}' needs a docstring (shown by `trainflow components`)"
    assert comp.kind in KINDS
    assert comp.module in sys.modules, f"registered by '{comp.module}', which discovery did not import"
    if comp.kind in ("loader", "model") and comp.modality is not None:
        assert comp.modality in REGISTRY.names("modality"), f"{comp.name}: unknown modality {comp.modality!r}"


def invalid_value(annotation) -> object | None:
    """A value no field of this type accepts (None for free-form fields, which accept anything)."""
    import typing

    if annotation in (typing.Any, dict) or typing.get_origin(annotation) is dict:
        return None
    return {"not": "a valid value"}


@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_invalid_option_value_is_refused_with_the_field_named(comp):
    fields = {n: f for n, f in comp.config.model_fields.items() if invalid_value(f.annotation) is not None}
    if not fields:
        pytest.skip("no options, or only free-form ones")
    for name, field in fields.items():
        with pytest.raises(SpecError) as err:
            comp.parse({name: invalid_value(field.annotation)}, where=comp.kind)
        assert any(p.startswith(f"'{comp.kind}.{name}'") for p in err.value.problems), err.value.problems


@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_config_round_trip(comp, tmp_path):
    config = default_config(comp)
    if config is None:  # required options: a loader's path, given a real file
        options = write_example(comp.name, tmp_path) if comp.kind == "loader" else None
        config = comp.config.model_validate(options or {"path": str(tmp_path)})
    again = comp.config.model_validate(config.model_dump(mode="json"))
    assert again == config


@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_unknown_option_is_rejected_by_name(comp):
    with pytest.raises(SpecError) as err:
        comp.parse({"no_such_option": 1}, where=f"{comp.kind}")
    assert f"'{comp.kind}.no_such_option' is not a known option" in str(err.value)


def write_example(name: str, folder) -> dict | None:
    """A tiny input file for loader ``name``; returns the loader's options."""
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(0)
    if name in ("csv", "parquet"):
        df = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "b": ["x", "y", "x", "y"], "t": ["p", "q", "p", "q"]})
        path = folder / f"d.{name}"
        df.to_csv(path, index=False) if name == "csv" else df.to_parquet(path)
        return {"path": str(path), "target": "t"}
    if name == "arff":
        rows = "\n".join(f"{v:.3f},{i % 2},{(i // 2) % 2}" for i, v in enumerate(rng.normal(size=6)))
        (folder / "d.arff").write_text("@relation 't: -C -2'\n@attribute x numeric\n@attribute l1 {0,1}\n"
                                       f"@attribute l2 {{0,1}}\n@data\n{rows}\n")
        return {"path": str(folder / "d.arff")}
    if name == "npz":
        np.savez(folder / "img.npz", x=rng.integers(0, 255, (6, 8, 8), dtype=np.uint8), y=np.array([0, 1] * 3))
        return {"path": str(folder / "img.npz")}
    if name == "image_folder":
        for label in ("cat", "dog"):
            (folder / "imgs" / label).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(folder / "imgs" / label / f"{i}.png")
        return {"path": str(folder / "imgs")}
    if name == "digits":
        return {}  # shipped with scikit-learn
    if name == "cifar10":
        return None  # pickled batch files: written and read in tests/test_image.py
    if name == "npz_series":
        np.savez(folder / "s.npz", x=rng.normal(size=(4, 10, 2)), y=np.array(["a", "b", "a", "b"]))
        return {"path": str(folder / "s.npz")}
    if name == "ts":
        rows = "\n".join(f"{','.join(str(v) for v in rng.normal(size=5).round(3))}:{'ab'[i % 2]}" for i in range(4))
        (folder / "s.ts").write_text(f"@problemName t\n@univariate true\n@equalLength true\n@seriesLength 5\n"
                                     f"@classLabel true a b\n@data\n{rows}\n")
        return {"path": str(folder / "s.ts")}
    if name == "wide_csv":
        (folder / "w.csv").write_text("label,t0,t1,t2\na,1,2,3\nb,3,2,1\n")
        return {"path": str(folder / "w.csv")}
    if name == "long_csv":
        (folder / "l.csv").write_text("series_id,time,v,label\ns1,0,1,a\ns1,1,2,a\ns2,0,3,b\ns2,1,1,b\n")
        return {"path": str(folder / "l.csv")}
    if name == "multimodal":
        pd.DataFrame({"a": rng.normal(size=6), "t": ["p", "q"] * 3}).to_csv(folder / "m.csv", index=False)
        return {"inputs": {"image": {"loader": "npz", **write_example("npz", folder)},
                           "table": {"loader": "csv", "path": str(folder / "m.csv")}}}
    if name in ("audio_folder", "audio_pattern", "audio_manifest"):
        from trainflow.tasks.audio.modality import write_tones

        files = write_tones(folder / "clips", {"lo": 300.0, "hi": 900.0}, per_class=2, seconds=0.1,
                            flat=name != "audio_folder")
        if name == "audio_manifest":
            (folder / "m.csv").write_text("file,label\n" + "".join(f"clips/{f.name},{f.name[:2]}\n" for f in files))
            return {"path": str(folder / "m.csv"), "sample_rate": 8000}
        return {"path": str(folder / "clips"), "sample_rate": 8000,
                **({"pattern": r"(?P<label>[a-z]+)_\d+\.wav"} if name == "audio_pattern" else {})}
    if name == "timeseries_csv":
        (folder / "ts.csv").write_text("date,v\n" + "".join(f"2020-{m:02d}-01,{m * 3}\n" for m in range(1, 13)))
        return {"path": str(folder / "ts.csv")}
    return None


def _flat(obj) -> np.ndarray:
    """Every number in a loader's output, as one float array (for comparing two loads)."""
    import dataclasses

    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        return pd.get_dummies(obj).to_numpy(dtype=float, na_value=-1).ravel()
    if dataclasses.is_dataclass(obj):
        parts = [_flat(v) for v in dataclasses.asdict(obj).values() if v is not None]
        return np.concatenate([p for p in parts if p.size]) if parts else np.zeros(0)
    if isinstance(obj, (list, tuple)):
        parts = [_flat(v) for v in obj]
        return np.concatenate([p for p in parts if p.size]) if any(p.size for p in parts) else np.zeros(0)
    try:
        return np.nan_to_num(np.asarray(obj, dtype=float).ravel(), nan=-1)
    except (TypeError, ValueError):
        return np.zeros(0)  # text (labels, paths): compared through the numbers around them


def _network(comp, seed: int):
    import torch

    torch.manual_seed(seed)
    cfg = default_config(comp)
    if comp.modality == "image":
        net = comp.build(cfg, in_shape=(1, 8, 8), n_classes=3)
        inputs = (torch.linspace(0, 1, 4 * 64).reshape(4, 1, 8, 8),)
    elif comp.modality == "audio":  # features [batch, bins, frames] and the frame mask
        net = comp.build(cfg, bins=16, frames=20, n_classes=3)
        inputs = (torch.linspace(-1, 1, 4 * 16 * 20).reshape(4, 16, 20), torch.ones(4, 20))
    elif comp.modality == "text":  # token ids (0 = padding) and lengths
        net = comp.build(cfg, vocab_size=12, n_classes=3)
        inputs = (torch.arange(4 * 9).reshape(4, 9) % 11 + 1, torch.tensor([9, 5, 1, 7]))
    else:
        net = comp.build(cfg, in_channels=2, out_features=3, task="classification")
        inputs = (torch.linspace(-1, 1, 4 * 20 * 2).reshape(4, 20, 2), torch.ones(4, 20))
    net.eval()
    with torch.no_grad():
        out = net(*inputs)
    assert out.shape == (4, 3)
    return out.numpy()


def _classical(comp, seed: int):
    """A classical sequence classifier (MiniRocket, ROCKET, k-NN DTW) fitted on 12 tiny series."""
    rng = np.random.default_rng(0)
    y = np.arange(12) % 2
    series = [np.column_stack([np.linspace(0, 1, 16) * (1 if c else -1), rng.normal(size=16)]) + 0.1 * rng.normal(size=(16, 2))
              for c in y]
    options = {"num_kernels": 84} if "num_kernels" in comp.config.model_fields else {}
    model = comp.build(comp.config.model_validate(options), seed=seed).fit(series, y, 2)
    return model.proba([s + 0.3 for s in series[:4]])


def _run(comp, seed: int, tmp_path=None):
    """Run a component on tiny data; returns an array to compare, or None if not applicable."""
    X, y = tiny_xy()
    cfg = default_config(comp)
    if comp.kind == "loader":
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        options = write_example(comp.name, folder)
        if options is None:
            return None
        loaded = comp.build(comp.parse(options, where="data"))
        return _flat(loaded)
    if comp.kind == "model" and comp.extra.get("classical"):
        return _classical(comp, seed)
    if comp.kind == "model" and (comp.modality in ("image", "sequence", "audio") or comp.extra.get("neural")):
        return _network(comp, seed)
    if comp.kind == "modality":
        return None  # tests/test_modality_contract.py runs every modality on its own tiny data
    if comp.kind == "imputer":
        est = comp.build(cfg, seed=seed)
        if est is None:
            return None
        Xn = X.copy()
        Xn[::5, 1] = np.nan
        return np.asarray(est.fit_transform(Xn))
    if comp.kind in ("scaler", "encoder"):
        est = comp.build(cfg, seed=seed)
        data = np.abs(np.round(X)) if comp.kind == "encoder" else X
        return data if est == "passthrough" else np.asarray(est.fit_transform(data))
    if comp.kind == "reducer":
        est = comp.build(cfg, seed=seed, n_features=X.shape[1], task="classification")
        return None if est is None else np.asarray(est.fit_transform(X, y))
    if comp.kind == "sampler":
        est = comp.build(cfg, seed=seed, categorical=None)
        if est is None:
            return None
        Xr, yr = est.fit_resample(X, y)
        return np.column_stack([Xr, yr])
    if comp.kind == "model" and comp.modality == "tabular" and comp.tasks == ("multilabel",):
        from trainflow.tasks.common.multilabel import positive_proba

        est = comp.build(cfg, seed=seed, task="multilabel")
        est.fit(X, np.column_stack([y, (X[:, 0] > 0).astype(int), (X[:, 1] > 0).astype(int)]))
        return positive_proba(est, X[:10] + 0.25)
    if comp.kind == "model" and comp.modality == "tabular":
        task = "classification" if "classification" in comp.tasks else "regression"
        target = y if task == "classification" else X[:, 0] * 2 + y
        est = comp.build(cfg, seed=seed, task=task)
        est.fit(X, target)
        probe = X[:10] + 0.25  # not the training points, where every seed may agree
        out = est.predict_proba(probe) if task == "classification" else est.predict(probe)
        return np.asarray(out, dtype=float)
    if comp.kind == "model" and comp.name == "tfidf_auto":
        return None  # chooses features and model from raw texts: tests/test_text_auto.py runs it
    if comp.kind == "model" and comp.modality == "text":
        from sklearn.feature_extraction.text import TfidfVectorizer

        docs = [" ".join(f"w{(i * 7 + k) % 13}" for k in range(4)) + (" win" if label else " see")
                for i, label in enumerate(y)]
        vectorizer = TfidfVectorizer().fit(docs)
        est = comp.build(cfg, seed=seed, task="classification").fit(vectorizer.transform(docs), y)
        return np.asarray(est.predict_proba(vectorizer.transform(["w1 w2 win", "w3 w4 see"])), dtype=float)
    if comp.kind == "metric":
        proba = np.column_stack([1 - y * 0.8 - 0.1, y * 0.8 + 0.1])
        if "classification" in comp.tasks:
            return np.array([comp.build(y, (proba[:, 1] > 0.5).astype(int), proba, ["a", "b"])])
        if "multilabel" in comp.tasks:
            Y = np.column_stack([y, 1 - y])
            return np.array([comp.build(Y, (np.column_stack([proba[:, 1], proba[:, 0]]) > 0.5).astype(int),
                                        np.column_stack([proba[:, 1], proba[:, 0]]), ["a", "b"])])
        return np.array([comp.build(X[:, 0] + 5, X[:, 0] + 5.1)])
    return None


@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_same_seed_same_output_on_tiny_data(comp, tmp_path):
    first = _run(comp, seed=3, tmp_path=tmp_path)
    if first is None:
        pytest.skip("a no-op component, or one whose inputs are written by its own module's tests")
    assert first.size and (np.all(np.isfinite(first)) or comp.kind == "metric")
    (tmp_path / "again").mkdir()
    np.testing.assert_array_equal(first, _run(comp, seed=3, tmp_path=tmp_path / "again"))


RANDOM = [c for c in COMPONENTS if c.extra.get("random")]


@pytest.mark.parametrize("comp", RANDOM, ids=[f"{c.kind}:{c.name}" for c in RANDOM])
def test_different_seed_gives_a_different_result(comp, tmp_path):
    first = _run(comp, seed=3, tmp_path=tmp_path)
    assert first is not None, f"{comp.kind} '{comp.name}' is marked random but the contract cannot run it"
    (tmp_path / "other").mkdir()
    other = _run(comp, seed=4, tmp_path=tmp_path / "other")
    assert first.shape != other.shape or not np.array_equal(first, other), \
        f"{comp.kind} '{comp.name}' is marked random=True but seeds 3 and 4 give the same output"


def test_random_components_are_declared():
    names = {(c.kind, c.name) for c in RANDOM}
    assert {("sampler", "smote"), ("model", "random_forest"), ("model", "cnn"), ("model", "gru")} <= names
