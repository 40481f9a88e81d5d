"""Contract checks for components and modalities, shipped so plug-in authors run what the suite runs
(like scikit-learn's ``check_estimator``).

- :func:`check_component` (``kind``, ``name``): a docstring summary and a known kind; the config
  round-trips; an unknown option, and a value of the wrong type for each option, are refused with a
  message naming the option; on tiny data the component gives the same output for the same seed,
  and a component registered ``random=True`` a different one for another seed.
- :func:`check_modality` (``name`` or instance): every stage is implemented and its loaders and default
  models are consistent; then its :meth:`~trainflow.modality.Modality.example` runs store -> validate
  -> profile -> split -> fit -> evaluate -> export -> predict, checking what the flow relies on.

Both raise :class:`ContractError` (an AssertionError) naming the component and what failed, and
return the names of the checks they ran (a check that does not apply, e.g. tiny data for a kind it
cannot build, is left out). This module sits beside the flows above the modalities (it feeds every
built-in kind its tiny data), and nothing but tests imports it.
"""

from __future__ import annotations

import math
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from trainflow.errors import SpecError
from trainflow.registry import KINDS, REGISTRY, Component


class ContractError(AssertionError):
    """A component or modality broke the contract; the message names it and the check."""


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise ContractError(message)


@contextmanager
def _folder(folder: str | Path | None):
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        yield Path(folder)
        return
    with tempfile.TemporaryDirectory(prefix="trainflow-contract-") as tmp:
        yield Path(tmp)


# ---------------------------------------------------------------- components


def check_component(kind: str, name: str, folder: str | Path | None = None) -> list[str]:
    """Run every component check on the registered component ``kind``/``name`` (tiny files go to
    ``folder``, a temporary one by default); returns the names of the checks run."""
    comp = REGISTRY.get(kind, name)
    ran = []
    with _folder(folder) as where:
        for check in (check_summary, check_config_round_trip, check_unknown_option_refused,
                      check_invalid_values_refused, check_same_seed, check_different_seed):
            sub = where / check.__name__
            sub.mkdir(exist_ok=True)
            if check(comp, sub) is not False:
                ran.append(check.__name__)
    return ran


def check_summary(comp: Component, folder: Path | None = None) -> None:
    """A docstring summary (``trainflow components`` shows it), a known kind, a module discovery imported."""
    where = f"{comp.kind} '{comp.name}'"
    _require(comp.summary, f"{where} needs a docstring (shown by `trainflow components`)")
    _require(comp.kind in KINDS, f"{where}: unknown kind")
    _require(comp.module in sys.modules, f"{where}: registered by '{comp.module}', which discovery did not import")
    if comp.kind in ("loader", "model") and comp.modality is not None:
        _require(comp.modality in REGISTRY.names("modality"), f"{where}: unknown modality {comp.modality!r}")


def invalid_value(annotation) -> object | None:
    """A value no field of this type accepts (None for free-form fields, which accept anything)."""
    import typing

    if annotation in (typing.Any, dict) or typing.get_origin(annotation) is dict:
        return None
    return {"not": "a valid value"}


def check_invalid_values_refused(comp: Component, folder: Path | None = None) -> bool:
    """A value of the wrong type for each (typed) option is refused, the option named; False when
    the component has no such option."""
    fields = {n: f for n, f in comp.config.model_fields.items() if invalid_value(f.annotation) is not None}
    for name, field in fields.items():
        try:
            comp.parse({name: invalid_value(field.annotation)}, where=comp.kind)
        except SpecError as err:
            _require(any(p.startswith(f"'{comp.kind}.{name}'") for p in err.problems),
                     f"{comp.kind} '{comp.name}': the refusal of a bad '{name}' does not name it: {err.problems}")
        else:
            raise ContractError(f"{comp.kind} '{comp.name}' accepts {invalid_value(field.annotation)!r} for '{name}'")
    return bool(fields)


def check_config_round_trip(comp: Component, folder: Path) -> bool:
    """The config dumped to JSON and read back is the same config; False when the contract cannot
    make one (required options it has no example for)."""
    config = default_config(comp)
    if config is None:  # required options: a loader's path, given a real file
        options = write_example(comp.name, folder) if comp.kind == "loader" else None
        try:
            config = comp.config.model_validate(options or {"path": str(folder)})
        except ValidationError:
            return False
    again = comp.config.model_validate(config.model_dump(mode="json"))
    _require(again == config, f"{comp.kind} '{comp.name}': the config does not round-trip: {config!r} -> {again!r}")
    return True


def check_unknown_option_refused(comp: Component, folder: Path | None = None) -> None:
    """An unknown option is refused by name."""
    try:
        comp.parse({"no_such_option": 1}, where=comp.kind)
    except SpecError as err:
        _require(f"'{comp.kind}.no_such_option' is not a known option" in str(err),
                 f"{comp.kind} '{comp.name}': the refusal of an unknown option does not name it: {err}")
    else:
        raise ContractError(f"{comp.kind} '{comp.name}' accepts an unknown option (its config needs extra='forbid')")


def check_same_seed(comp: Component, folder: Path) -> bool:
    """On tiny data, the same seed gives the same (finite) output; False when the contract has no
    tiny data for this component (a no-op, or inputs only its own tests write)."""
    first = run_tiny(comp, seed=3, folder=folder / "first")
    if first is None:
        return False
    _require(first.size and (np.all(np.isfinite(first)) or comp.kind == "metric"),
             f"{comp.kind} '{comp.name}': empty or non-finite output on tiny data")
    again = run_tiny(comp, seed=3, folder=folder / "again")
    _require(again is not None and np.array_equal(first, again),
             f"{comp.kind} '{comp.name}': the same seed gives different outputs")
    return True


def check_different_seed(comp: Component, folder: Path) -> bool:
    """A component registered ``random=True`` gives a different output for another seed; False for
    one that is not random."""
    if not comp.extra.get("random"):
        return False
    first = run_tiny(comp, seed=3, folder=folder / "seed3")
    _require(first is not None, f"{comp.kind} '{comp.name}' is marked random but the contract cannot run it")
    other = run_tiny(comp, seed=4, folder=folder / "seed4")
    _require(first.shape != other.shape or not np.array_equal(first, other),
             f"{comp.kind} '{comp.name}' is marked random=True but seeds 3 and 4 give the same output")
    return True


# ---------------------------------------------------------------- tiny data per kind


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


def run_tiny(comp: Component, seed: int, folder: Path) -> np.ndarray | None:
    """Run a component on tiny data (files it reads written to ``folder``); returns an array to compare,
    or None where the contract has none for it."""
    X, y = tiny_xy()
    cfg = default_config(comp)
    if comp.kind == "loader":
        folder.mkdir(parents=True, exist_ok=True)
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
        return None  # check_modality runs every modality on its own tiny data
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


# ---------------------------------------------------------------- modalities


def check_modality(modality: Any, folder: str | Path | None = None) -> list[str]:
    """Run the modality checks on ``modality`` (a registered name or a :class:`~trainflow.modality.Modality`);
    its example's files and the run's cache go to ``folder`` (a temporary one by default). Returns the
    names of the checks run."""
    from trainflow import modalities

    mod = modalities.get(modality) if isinstance(modality, str) else modality
    check_interface(mod)
    with _folder(folder) as where:
        check_round_trip(mod, where)
    return ["check_interface", "check_round_trip"]


def check_interface(mod: Any) -> None:
    """A registered :class:`~trainflow.modality.Modality` with every stage and ``example``; default models
    that exist and take its data; loaders that say they give it."""
    from trainflow import modalities
    from trainflow.modality import STAGES, Modality

    name = getattr(mod, "name", "")
    _require(isinstance(mod, Modality) and name in REGISTRY.names("modality"),
             f"{mod!r} is not a registered trainflow.modality.Modality")
    _require(mod.tasks, f"modality '{name}' declares no default model per task (default_models)")
    for stage in (*STAGES, "example"):
        _require(getattr(type(mod), stage) is not getattr(Modality, stage), f"modality '{name}' lacks {stage}()")
    for task, model in mod.default_models.items():
        comp = REGISTRY.get("model", model, task=task)
        _require(comp.modality in (None, name) or name in comp.extra.get("modalities", ()),
                 f"modality '{name}': its default {task} model '{model}' takes {comp.modality} data")
    for loader in [c for c in REGISTRY.all() if c.kind == "loader" and c.modality == name]:
        _require(modalities.modality_of_loader(loader.name) == name, f"loader '{loader.name}' does not give {name}")


def check_round_trip(mod: Any, folder: Path) -> None:
    """The modality's example through store -> validate -> profile -> split -> fit -> evaluate -> export
    -> predict, without Prefect: references point at files whose digest they carry, the model's
    files land in the run folder, the primary metric is a number, prediction gives rows without gaps."""
    from trainflow.refs import file_digest
    from trainflow.spec import spec_from_dict
    from trainflow.tasks.common import load, metrics

    name = mod.name
    example = mod.example(folder)
    spec = spec_from_dict({"name": f"contract-{name}", **example.spec})
    _require(spec.modality == name, f"modality '{name}': its example's loader gives {spec.modality} data")
    cache = str(folder / "cache")
    data = load.load(spec.data, cache, spec.modality)
    _require(data.digest and Path(data.path).exists(), f"modality '{name}': store() gave no stored file")
    summary = mod.validate(data, spec, str(folder / "docs"))
    _require(summary["rows"] > 0 and summary["evaluated"] > 0, f"modality '{name}': validate() checked nothing")
    data = mod.profile(data, spec)
    split = mod.split(data, spec.training_view(), cache)
    for part in (split.train, split.test):
        _require(part.meta.get("rows", 1) > 0 and file_digest(part.path) == part.digest,
                 f"modality '{name}': a split part is empty or its digest is not its file's")
    model = mod.fit(split, spec.training_view(), cache)
    _require(Path(model.path).exists() and model.digest, f"modality '{name}': fit() saved no model")
    evaluation = mod.evaluate(model, split, spec, str(folder / "plots"))
    primary = spec.evaluate.primary or metrics.PRIMARY[spec.task]
    value = evaluation.metrics.get(primary)
    _require(isinstance(value, float) and not math.isnan(value), f"modality '{name}': {primary} is {value!r}")
    for png in evaluation.plots.values():
        _require(Path(png).stat().st_size > 0, f"modality '{name}': an empty plot {png}")
    run_dir = folder / "run"
    run_dir.mkdir(exist_ok=True)
    files = mod.export(model, str(run_dir))
    _require(files and all((run_dir / f).is_file() for f in files), f"modality '{name}': export() copied {files!r}")
    frame = mod.predict(run_dir, example.predict_input)
    _require(len(frame) > 0 and not frame.isna().any().any(), f"modality '{name}': predict() gave no rows or gaps")
    _check_drift(mod, split, evaluation, spec, run_dir, example.predict_input, frame)


def _check_drift(mod: Any, split: Any, evaluation: Any, spec: Any, run_dir: Path, new: Path, frame: Any) -> None:
    """The reference profile is written at publish and read back; new data compares against it."""
    from trainflow.tasks.common import drift

    drift.profile_run(mod, split, evaluation.confusion, spec.task, run_dir, spec.seed)
    profile = drift.read_profile(run_dir)
    _require(profile is not None and profile.modality == mod.name, f"modality '{mod.name}': no reference profile")
    check = drift.check_batch(mod, run_dir, new, frame, run_dir / "drift")
    _require(check.line.startswith("drift: "), f"modality '{mod.name}': drift check said {check.line!r}")
