"""The multimodal modality: several inputs of different modalities, fused into one classifier.

Each input is a *branch*: its modality's own stored format, preprocessing, model, ``fit`` and
``evaluate`` (see :mod:`.branches`), trained on the training rows only. The spec's ``model`` is the
fusion (:mod:`.fusion`). A run therefore trains every unimodal branch and the fused model on one
split, and the report puts each branch's test score next to the fused one.

Stored data (``<cache>/data/<digest>/``): ``index.npz`` (row keys, labels, presence flags, a
predefined test split) and one file per input in its adapter's format, aligned on the rows. The
model folder holds ``model.json`` (the fusion, classes, inputs), the fusion's weights
(``fusion.safetensors`` or ``fusion.skops``) and one sub-folder per branch with that modality's
model files; everything is loaded through :mod:`trainflow.trust` (never pickle).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow import modalities
from trainflow import trust
from trainflow.cache_keys import cache_key, model_key
from trainflow.errors import DataError, SpecError, TrainflowError
from trainflow.files import folder_member
from trainflow.modality import Example
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, file_digest, json_digest, load_npz, save_npz
from trainflow.registry import REGISTRY, component
from trainflow.tasks.common.assess import assess
from trainflow.tasks.common import holdout
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import neural, plots
from trainflow.tasks.common.neural import NeuralModality
from trainflow.tasks.multimodal import fusion as F
from trainflow.tasks.multimodal.branches import branch, supported
from trainflow.tasks.multimodal.loaders import Joined, MultimodalConfig, align, input_modality

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

CONFIG_FILE = "model.json"
INDEX = "index.npz"


def config_of(spec: PipelineSpec) -> MultimodalConfig:
    """The spec's ``data`` section as the multimodal loader's options."""
    return MultimodalConfig.model_validate(spec.data.options())


def class_order(labels: Any) -> list[str]:
    """Classes sorted numerically where they are numbers ('2' before '10'), else as text."""
    def key(v: str) -> tuple[int, Any]:
        try:
            return (0, float(v), "")
        except ValueError:
            return (1, 0.0, v)

    return sorted({str(v) for v in labels}, key=key)


def branch_spec(spec: PipelineSpec, name: str) -> PipelineSpec:
    """The unimodal spec of input ``name``: its loader and model, the pipeline's sections with the
    input's ``preprocess`` and ``train`` overrides (SpecError naming the input)."""
    from trainflow.spec import spec_from_dict

    inp = config_of(spec).inputs[name]
    preprocess = spec.preprocess.model_dump(mode="json")
    for section, values in inp.preprocess.items():
        preprocess[section] = {**preprocess.get(section, {}), **values} if isinstance(values, dict) else values
    raw = {"name": f"{spec.name}-{name}", "task": "classification", "seed": spec.seed,
           "data": {"loader": inp.loader, **inp.options()}, "model": dict(inp.model), "preprocess": preprocess,
           "split": spec.split.model_dump(mode="json"), "features": spec.features.model_dump(mode="json"),
           "train": {**spec.train.model_dump(mode="json"), **inp.train}}
    try:
        return spec_from_dict(raw)
    except SpecError as exc:
        raise SpecError([f"data.inputs.{name}: {p}" for p in exc.problems]) from None


# ---------------------------------------------------------------- store & validate


def store(joined: Joined, cache_dir: str, digest: str, config: MultimodalConfig) -> DataRef:
    """Write the aligned inputs and the index into the cache; the digest covers every input's files."""
    from trainflow.tasks.common.load import loader_fingerprint

    parts = {n: loader_fingerprint(REGISTRY.get("loader", s.loader),
                                   REGISTRY.get("loader", s.loader).parse(s.options(), where=f"data.inputs.{n}"))
             for n, s in config.inputs.items()}
    digest = json_digest([digest, parts])
    folder = Path(cache_dir) / "data" / digest[:32]
    folder.mkdir(parents=True, exist_ok=True)
    names = list(joined.inputs)
    present = np.column_stack([joined.present[n] for n in names])
    index = {"keys": np.asarray(joined.keys, dtype=str), "labels": joined.labels, "present": present}
    if joined.is_test is not None:
        index["is_test"] = joined.is_test
    if joined.split_keys is not None:
        index["split_keys"] = joined.split_keys
    save_npz(folder / INDEX, **index)
    inputs = {}
    for n in names:
        path = branch(joined.modalities[n]).save(joined.inputs[n].data, folder / n)
        inputs[n] = {"modality": joined.modalities[n], "file": path.name, "meta": joined.inputs[n].meta,
                     "options": config.inputs[n].options()}
    return DataRef(path=str(folder), digest=digest, modality="multimodal", meta={
        "rows": len(joined.keys), "inputs": inputs, "classes": class_order(joined.labels), "notes": joined.notes,
        "source": ", ".join(f"{n}: {s.options().get('path', s.loader)}" for n, s in config.inputs.items()),
        "predefined_test": joined.is_test is not None, "join": config.join})


def load_input(ref: DataRef, name: str) -> Any:
    """One input's aligned data, as stored."""
    info = ref.meta["inputs"][name]
    return branch(info["modality"]).load(Path(ref.path) / info["file"])


def validate(ref: DataRef, spec: PipelineSpec, docs_dir: str | None) -> dict[str, Any]:
    """Great Expectations on the joined rows: row count, labels, classes, rows per class and per input."""
    import pandas as pd

    from trainflow.tasks.common.validate import Check, run_expectations

    index = load_npz(Path(ref.path) / INDEX)
    names = list(ref.meta["inputs"])
    labels = index["labels"]
    counts = pd.Series(labels).value_counts()
    table = pd.DataFrame({"label": labels, "class_count": counts.reindex(labels).to_numpy(),
                          **{f"has_{n}": index["present"][:, i] for i, n in enumerate(names)}})
    v = spec.validation
    checks = [
        Check("ExpectTableRowCountToBeBetween", {"min_value": v.min_rows}, f"validation.min_rows is {v.min_rows}"),
        Check("ExpectColumnValuesToNotBeNull", {"column": "label"}, "every row needs a label"),
        Check("ExpectColumnUniqueValueCountToBeBetween", {"column": "label", "min_value": 2},
              "a classifier needs at least two classes"),
        Check("ExpectColumnValuesToBeBetween", {"column": "class_count", "min_value": 2},
              "each class needs at least two rows (one to train on, one to test)"),
    ]
    checks += [Check("ExpectColumnValuesToBeInSet", {"column": f"has_{n}", "value_set": [True]},
                     f"data.missing is 'drop', so every row has input '{n}'")
               for n in names if config_of(spec).missing == "drop"]
    if v.labels:
        checks.append(Check("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": [str(x) for x in v.labels]},
                            "validation.labels"))
    checks += [Check(e.type, dict(e.kwargs), "validation.expectations") for e in v.expectations]
    summary = run_expectations(table, checks, docs_dir, suite=spec.name).as_dict()
    summary["class_counts"] = {str(k): int(n) for k, n in counts.sort_index().items()}
    return summary


# ---------------------------------------------------------------- split


def split(ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
    """One holdout for every branch (``tasks/common/holdout.py``: an input's predefined test split, the
    spec's column or groups, else stratified by ``split.seed``). Late fusion with learned weights
    learns them on the validation part when the spec gives one, else holds ``tune_share`` of the
    training rows out of the branches (flagged ``tune`` in the training part); the validation part is
    its own file, never trained on (by the branches or the fusion). Each branch's parts are written in
    its own modality's format."""
    from sklearn.model_selection import train_test_split

    index = load_npz(Path(ref.path) / INDEX)
    labels, present = index["labels"], index["present"]
    n = len(labels)
    notes = list(ref.meta.get("notes", []))
    parts = holdout.assign(n, spec, str(ref.meta.get("source")), y=labels, keys=index.get("split_keys"),
                           fixed_test=index["is_test"].astype(bool) if "is_test" in index else None)
    notes += ["test split: an input's own test set"] if "is_test" in index and not spec.split.key else parts.notes
    test = np.zeros(n, bool)
    test[parts.test] = True
    tune = np.zeros(n, bool)
    tune[parts.validation] = True  # the validation part: never in a branch's training rows
    comp, options = spec.model.resolve("model", task=spec.task)
    if comp.name == "late_fusion" and options.weighting == "learned" and len(parts.validation):
        notes.append(f"late fusion: the {len(parts.validation)} rows of the validation part learn the branches' weights")
    elif comp.name == "late_fusion" and options.weighting == "learned":
        train_idx = parts.train
        counts = np.unique(labels[train_idx], return_counts=True)[1]
        _, tu = train_test_split(train_idx, test_size=options.tune_share, random_state=spec.split.seed,
                                 stratify=labels[train_idx] if counts.min() >= 2 else None)
        tune[tu] = True
        notes.append(f"late fusion: {len(tu)} training rows held out from the branches to learn their weights")
    M.require_scorable_test(labels[~test], labels[test], f"the joined inputs ({ref.meta.get('source')})")
    key = cache_key(spec, data=ref.digest, split=spec.split.model_dump(), tune=tune.tolist())
    folder = Path(cache_dir) / "splits" / key[:16]
    classes = ref.meta["classes"]
    refs = {}
    held = np.zeros(n, bool)
    held[parts.validation] = True  # the validation part: its own file, kept out of the training part
    for part, rows in (("train", np.flatnonzero(~test & ~held)), ("test", np.flatnonzero(test)),
                       *((("validation", parts.validation),) if len(parts.validation) else ())):
        path = folder / f"{part}.npz"
        save_npz(path, rows=rows, labels=labels[rows], present=present[rows], tune=tune[rows])
        refs[part] = DataRef(path=str(path), digest=file_digest(path), modality="multimodal",
                             meta={**ref.meta, "rows": len(rows), "data": ref.path})
    branches = {}
    for b, (name, info) in enumerate(ref.meta["inputs"].items()):
        rows = np.flatnonzero(present[:, b] & ~tune)
        if len(np.unique(labels[rows][~test[rows]])) < 2 or not test[rows].any():
            raise DataError(f"input '{name}' has too few rows for a branch of its own (training rows of two "
                            "classes and test rows needed); use data.missing: drop or give it more items.")
        adapter = branch(info["modality"])
        bsplit = adapter.write_split(adapter.take(load_input(ref, name), rows), labels[rows], test[rows], classes,
                                     info["meta"], folder / name)
        branches[name] = bsplit.model_dump(mode="json")
    counts = {p: {c: int((labels[m] == c).sum()) for c in classes} for p, m in (("train", ~test & ~held),
                                                                                   ("test", test))}
    if len(parts.validation):
        counts["validation"] = {c: int((labels[parts.validation] == c).sum()) for c in classes}
    return holdout.split_ref(refs, {"class_counts": counts, "notes": notes, "branches": branches})


# ---------------------------------------------------------------- fit


def _rows(split_ref: SplitRef, part: str) -> dict[str, np.ndarray]:
    return load_npz(getattr(split_ref, part).path)


def _inputs(split_ref: SplitRef, rows: np.ndarray) -> dict[str, Any]:
    ref = DataRef(path=split_ref.train.meta["data"], digest="", modality="multimodal", meta=split_ref.train.meta)
    return {n: branch(info["modality"]).take(load_input(ref, n), rows) for n, info in ref.meta["inputs"].items()}


def _tune_rows(split_ref: SplitRef, rows: dict[str, np.ndarray], data: dict[str, Any], y: np.ndarray,
               present: np.ndarray, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The rows that learn late fusion's weights: the split's validation part when it has one, else
    the training rows flagged ``tune`` (held out of the branches); their classes, presence and inputs."""
    if split_ref.validation is None:
        tune = np.flatnonzero(rows["tune"].astype(bool))
        return y[tune], present[tune], {n: branch(m).take(d, tune) for (n, d), m in
                                        zip(data.items(), _modalities(split_ref).values())}
    held = _rows(split_ref, "validation")
    return (np.asarray([index[v] for v in held["labels"]], dtype=np.int64), held["present"].astype(bool),
            _inputs(split_ref, held["rows"]))


def _modalities(split_ref: SplitRef) -> dict[str, str]:
    return {n: info["modality"] for n, info in split_ref.train.meta["inputs"].items()}


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """Train every branch with its own modality's ``fit`` (training rows only), then the fusion;
    save it all in one folder (JSON, safetensors, skops)."""
    names = list(split_ref.train.meta["inputs"])
    mods = {n: split_ref.train.meta["inputs"][n]["modality"] for n in names}
    classes = split_ref.train.meta["classes"]
    branch_refs = {}
    for n in names:
        sub = branch_spec(spec, n)
        print(f"fit: branch '{n}' ({mods[n]}, {sub.model.name})")
        branch_refs[n] = modalities.get(mods[n]).fit(SplitRef.model_validate(split_ref.meta["branches"][n]), sub,
                                                     cache_dir)
    key = model_key(split_ref, spec)
    folder = Path(cache_dir) / "models" / key[:16]
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for n in names:
        shutil.copytree(branch_refs[n].path, tmp / n)
    rows = _rows(split_ref, "train")
    data = _inputs(split_ref, rows["rows"])
    index = {c: i for i, c in enumerate(classes)}
    y = np.asarray([index[v] for v in rows["labels"]], dtype=np.int64)
    present = rows["present"].astype(bool)
    for b, n in enumerate(names):  # a placeholder item for an input missing at predict time
        adapter = branch(mods[n])
        adapter.save(adapter.blank(adapter.take(data[n], np.arange(1)), 1), tmp / n / "blank")
    comp, options = spec.model.resolve("model", task=spec.task)
    config: dict[str, Any] = {"fusion": comp.name, "options": options.model_dump(mode="json"), "classes": classes,
                              "inputs": {n: {"modality": mods[n], "loader": config_of(spec).inputs[n].loader,
                                             "options": config_of(spec).inputs[n].options(),
                                             "blank": next(p.name for p in (tmp / n).glob("blank.*"))}
                                         for n in names},
                              "join": config_of(spec).join, "missing": config_of(spec).missing}
    meta: dict[str, Any] = {"classes": classes, "branches": {n: r.model_dump(mode="json") for n, r in branch_refs.items()}}
    steps = [f"{n}: {' -> '.join(map(str, branch_refs[n].meta.get('steps', [])))}" for n in names]
    if comp.name == "late_fusion":
        weights = np.ones(len(names))
        if options.weighting == "learned":  # on the validation part, else the tune rows of the training part
            wy, wpresent, wdata = _tune_rows(split_ref, rows, data, y, present, index)
            probas = [branch(mods[n]).proba(tmp / n, wdata[n], classes) for n in names]
            weights = F.learn_weights(probas, wpresent, wy)
        config["weights"] = weights.tolist()
        steps.append("late fusion: " + ", ".join(f"{n} x {w:.2f}" for n, w in zip(names, weights)))
    elif comp.name == "early_fusion":
        sio = trust.skops_io()
        parts = [branch(mods[n]).features(tmp / n, data[n]) for n in names]
        config["widths"] = [int(p.shape[1]) for p in parts]
        est = comp.build(options, seed=spec.seed)
        est.fit(F.early_matrix(parts, present), y)
        config["fitted_classes"] = [int(c) for c in est.classes_]
        sio.dump(est, tmp / "fusion.skops")
        trust.check_skops(tmp / "fusion.skops", _classifier_types())  # predict must be able to load it
        steps.append(f"early fusion: {sum(config['widths'])} features -> {options.model}")
    else:
        history = _fit_intermediate(tmp, names, mods, data, present, y, classes, options, spec, split_ref, cache_dir,
                                    config)
        meta["history"] = history
        steps.append(f"intermediate fusion: encoders -> head ({options.hidden} units), trained end to end")
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    return ModelRef.of_folder(folder, CONFIG_FILE, "multimodal", {**meta, "steps": steps})


def _fusion_net(folder: Path, config: dict[str, Any], widths: list[int]) -> Any:
    """The intermediate-fusion network: each branch's encoder (with its trained weights) and a new head."""
    encoders = []
    for n, width in zip(config["inputs"], widths):
        adapter = branch(config["inputs"][n]["modality"])
        enc, dim = adapter.encoder(folder / n, config["options"]["hidden"], width)
        encoders.append((enc, adapter.n_tensors, dim))
    comp = REGISTRY.get("model", "intermediate_fusion")
    return comp.build(comp.config.model_validate(config["options"]), encoders=encoders, n_classes=len(config["classes"]))


def _fit_intermediate(tmp: Path, names: list[str], mods: dict[str, str], data: dict[str, Any], present: np.ndarray,
                      y: np.ndarray, classes: list[str], options: Any, spec: PipelineSpec, split_ref: SplitRef,
                      cache_dir: str, config: dict[str, Any]) -> list[dict[str, float]]:
    """Train the fusion network end to end with the shared loop; save its weights (safetensors)."""
    import torch
    from safetensors.torch import save_file

    from trainflow.tasks.common.training import checkpoint_dir, train_model

    tensors = [branch(mods[n]).tensors(tmp / n, data[n]) for n in names]
    config["widths"] = [int(t[0].reshape(len(t[0]), -1).shape[1]) for t in tensors]
    torch.manual_seed(spec.seed)
    net = _fusion_net(tmp, config, config["widths"])
    if not options.pretrained:
        for m in net.modules():
            if hasattr(m, "reset_parameters") and m is not net:
                m.reset_parameters()
    inputs = (*[t for ts in tensors for t in ts], torch.from_numpy(present.astype(np.float32)), torch.from_numpy(y))
    val, train = None, spec.train
    if split_ref.validation is not None:  # the split's validation part chooses the epoch (no carve-out)
        held = _rows(split_ref, "validation")
        vdata = _inputs(split_ref, held["rows"])
        index = {c: i for i, c in enumerate(classes)}
        val = (*[t for n in names for t in branch(mods[n]).tensors(tmp / n, vdata[n])],
               torch.from_numpy(held["present"].astype(np.float32)),
               torch.from_numpy(np.asarray([index[v] for v in held["labels"]], dtype=np.int64)))
        train = train.model_copy(update={"val_fraction": 0.0})
    result = train_model(net, inputs, val, train, seed=spec.seed,
                         checkpoint_dir=checkpoint_dir(cache_dir, model_key(split_ref, spec), "fusion"))
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp / "fusion.safetensors"))
    config["history"] = result.history
    return result.history


# ---------------------------------------------------------------- fused probabilities (evaluate and predict)


def _classifier_types() -> frozenset[str]:
    """The types a saved early-fusion classifier (a tabular model) may hold: the tabular modality's."""
    return branch("tabular", "model.model").trusted_types()


def masking_rows(folder: Path, config: dict[str, Any], data: dict[str, Any], present: np.ndarray, y: np.ndarray,
                 pred: np.ndarray) -> list[dict[str, Any]]:
    """Per input: the fused model's test accuracy when that input is masked (marked absent, as a
    missing input is at predict time) on the rows that keep another input, beside its accuracy there
    with every input; the drop is what the model relies on that input for."""
    rows = []
    for j, name in enumerate(config["inputs"]):
        masked = present.copy()
        masked[:, j] = False
        keep = masked.any(axis=1)
        if not keep.any():
            continue
        proba = fused_proba(folder, config, data, masked)
        full, without = float(np.mean(pred[keep] == y[keep])), float(np.mean(proba.argmax(1)[keep] == y[keep]))
        rows.append({"input masked": name, "rows": int(keep.sum()), "accuracy, all inputs": round(full, 4),
                     "accuracy, masked": round(without, 4), "drop": round(full - without, 4)})
    return rows


def fused_proba(folder: Path, config: dict[str, Any], data: dict[str, Any], present: np.ndarray) -> np.ndarray:
    """Class probabilities of the fused model for aligned inputs ``data`` and presence flags [n, inputs]."""
    names, classes = list(config["inputs"]), config["classes"]
    adapters = [branch(config["inputs"][n]["modality"]) for n in names]
    if config["fusion"] == "late_fusion":
        probas = [a.proba(folder / n, data[n], classes) for a, n in zip(adapters, names)]
        pool = F.log_pool if config["options"]["weighting"] == "learned" else F.late_average
        return pool(probas, present, np.asarray(config["weights"]))
    if config["fusion"] == "early_fusion":
        parts = [F.fit_width(a.features(folder / n, data[n]), w) for a, n, w in zip(adapters, names, config["widths"])]
        est = trust.load_skops(folder / "fusion.skops", _classifier_types())
        out = np.zeros((len(present), len(classes)))
        out[:, config["fitted_classes"]] = est.predict_proba(F.early_matrix(parts, present))
        return out
    import torch

    from trainflow.tasks.common.training import predict as forward

    net = _fusion_net(folder, config, config["widths"])
    trust.load_weights(net, folder / "fusion.safetensors")
    tensors = [t for a, n in zip(adapters, names) for t in a.tensors(folder / n, data[n])]
    out = forward(net, (*tensors, torch.from_numpy(present.astype(np.float32))), device="cpu")
    return out.softmax(1).numpy()


def read_config(folder: str | Path) -> dict[str, Any]:
    """The fusion's JSON config; DataError naming the folder when it is not a multimodal model."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise DataError(f"No saved multimodal model in '{folder}' (expected {CONFIG_FILE}).")
    config = trust.read_json(path)
    if not isinstance(config, dict) or not {"fusion", "inputs", "classes"} <= set(config):
        raise trust.damaged(path, ValueError("not a multimodal model config"))
    problem = config_problem(config)
    if problem:
        raise trust.damaged(path, problem)
    for n, info in config["inputs"].items():  # every name it gives stays in the folder (files.folder_member)
        folder_member(folder, n, "multimodal model folder", folder_ok=True)
        folder_member(Path(folder) / n, info["blank"], "multimodal model folder")
    return config


def config_problem(config: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a saved fusion config (each input a mapping with its modality,
    loader options and blank item; classes a list; ``missing`` and ``join`` as the spec allows), or None."""
    inputs = config["inputs"]
    if not isinstance(inputs, dict) or not inputs:
        return "'inputs' is not a mapping of input names"
    for n, info in inputs.items():
        if not isinstance(info, dict) or not isinstance(info.get("modality"), str) \
                or not isinstance(info.get("options"), dict) or not isinstance(info.get("blank"), str):
            return f"input {str(n)[:40]!r} lacks its modality, options or blank item"
        if info["modality"] not in supported():
            return f"input {str(n)[:40]!r} names the modality {info['modality'][:40]!r}, which cannot be an input"
    if not isinstance(config["classes"], list) or len(config["classes"]) < 2:
        return "'classes' is not a list of two or more classes"
    if config.get("missing") not in ("mask", "drop") or not isinstance(config.get("join"), str):
        return "'missing' or 'join' is not a value the spec allows"
    return None


# ---------------------------------------------------------------- evaluate


def evaluate(model_ref: ModelRef, split_ref: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """The fused model's test scores, and each branch's own evaluation on its test rows beside them."""
    folder = Path(model_ref.path)
    config = read_config(folder)
    rows = _rows(split_ref, "test")
    classes = config["classes"]
    index = {c: i for i, c in enumerate(classes)}
    y = np.asarray([index[v] for v in rows["labels"]])
    present = rows["present"].astype(bool)
    inputs = _inputs(split_ref, rows["rows"])
    proba = fused_proba(folder, config, inputs, present)
    proba = proba / proba.sum(1, keepdims=True)  # float32 branch outputs sum to 1 only within ~1e-7
    pred = proba.argmax(1)
    names = spec.evaluate.metrics or M.DEFAULTS["classification"]
    metrics = M.score(names, y, pred, proba, classes)
    per_class, confusion = M.classification_details(y, pred, classes)
    charts = {"Confusion matrix": plots.confusion_matrix_png(confusion, Path(plots_dir) / "confusion_matrix.png")}
    notes = list(split_ref.meta.get("notes", []))
    table = [{"model": f"fused ({config['fusion']})", "test rows": len(y),
              **{k: round(metrics[k], 4) for k in ("accuracy", "balanced_accuracy") if k in metrics}}]
    for n in config["inputs"]:
        sub = branch_spec(spec, n)
        bdir = Path(plots_dir) / f"branch-{n}"
        bdir.mkdir(parents=True, exist_ok=True)
        ev = modalities.get(config["inputs"][n]["modality"]).evaluate(
            ModelRef.model_validate(model_ref.meta["branches"][n]), SplitRef.model_validate(split_ref.meta["branches"][n]),
            sub, str(bdir))
        table.append({"model": f"{n} alone ({config['inputs'][n]['modality']}, {sub.model.name})",
                      "test rows": SplitRef.model_validate(split_ref.meta["branches"][n]).test.meta.get("rows"),
                      **{k: round(ev.metrics[k], 4) for k in ("accuracy", "balanced_accuracy") if k in ev.metrics}})
        for k in ("accuracy", "balanced_accuracy"):
            if k in ev.metrics:
                metrics[f"branch_{n}_{k}"] = ev.metrics[k]
    best = max((r.get("accuracy", 0) for r in table[1:]), default=0)
    notes.append(f"fusion gain: test accuracy {metrics.get('accuracy', 0):.4f} fused vs {best:.4f} for the best "
                 "single input")
    if not present.all():
        notes.append(f"{int((~present.all(1)).sum())} test rows lack an input (masked); the branch scores count "
                     "only rows that have it")
    tables = {"Fusion vs each input alone (same split)": table,
              "Masking each input (test split)": masking_rows(folder, config, inputs, present, y, pred)}
    if config.get("history"):  # intermediate fusion: the joint network's training
        curves, history = neural.history_report(model_ref, config, plots_dir)
        charts.update(curves)
        tables.update(history)
    return assess(Evaluation(metrics=metrics, per_class=per_class, confusion=confusion, plots=charts, tables=tables,
                             notes=notes), spec, y, pred, proba, classes, plots_dir)


# ---------------------------------------------------------------- export & predict


def export(model: ModelRef, run_dir: str) -> list[str]:
    """Copy the model folder (config, fusion weights, one folder per branch) into the run folder;
    returns the files' paths relative to it."""
    src = Path(model.path)
    shutil.copytree(src, run_dir, dirs_exist_ok=True)
    return sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())


def read_inputs_file(path: Path, names: list[str]) -> dict[str, Path]:
    """A predict input: a YAML file mapping input names to files or folders (relative to it)."""
    import yaml

    from trainflow.errors import did_you_mean
    from trainflow.files import read_text_capped
    from trainflow.yamlfile import load_yaml

    if path.is_dir() or path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise DataError(f"The input '{path}' must be a YAML file naming a file for each input "
                        f"({', '.join(f'{n}: ...' for n in names)}).")
    try:
        raw = load_yaml(read_text_capped(path, "input list", limit=1 << 20))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"The input '{path}' is not a readable YAML file: {exc}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise DataError(f"The input '{path}' must map input names to paths, e.g. {names[0]}: new/{names[0]}.npz.")
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise DataError(f"The input '{path}' names input '{unknown[0]}', which the model does not have"
                        f"{did_you_mean(unknown[0], names)}; its inputs are {', '.join(names)}.")
    return {k: (path.parent / v).resolve() if not Path(v).is_absolute() else Path(v) for k, v in raw.items()}


def read_batch(folder: Path, config: dict[str, Any], input_path: str | Path,
               quiet: bool = False) -> tuple[list[str], dict[str, Any], dict[str, np.ndarray]]:
    """New rows of every input (a YAML file: input name -> path), read by each branch's modality and
    joined as in training: the rows' keys, each input's aligned data and presence flags (an input
    left out, allowed with ``missing: mask``, is blank and absent on every row)."""
    names = list(config["inputs"])
    paths = read_inputs_file(Path(input_path), names)
    absent = [n for n in names if n not in paths]
    if absent and config["missing"] != "mask":
        raise DataError(f"The input '{input_path}' lacks input(s) {', '.join(map(repr, absent))}; this model needs "
                        f"every input ({', '.join(names)}) since it was trained with data.missing: drop.")
    if not paths:
        raise DataError(f"The input '{input_path}' names no input; give at least one of {', '.join(names)}.")
    items, mods = {}, {}
    for n, p in paths.items():
        info = config["inputs"][n]
        try:
            items[n] = branch(info["modality"]).read_new(p, folder / n, info["options"])
        except TrainflowError as exc:
            raise DataError(f"input '{n}' ('{p}'): {exc}") from None
        mods[n] = info["modality"]
    keys, aligned, present, notes = align(items, mods, config["join"], config["missing"])
    data = {n: it.data for n, it in aligned.items()}
    for n in absent:
        adapter = branch(config["inputs"][n]["modality"])
        blank = adapter.load(folder / n / config["inputs"][n]["blank"])
        data[n] = adapter.take(blank, np.zeros(len(keys), dtype=np.int64))
        present[n] = np.zeros(len(keys), bool)
    for note in notes if not quiet else ():
        print(f"predict: {note}")
    return keys, {n: data[n] for n in names}, {n: present[n] for n in names}


def predict(run_dir: str | Path, input_path: str | Path) -> Any:
    """Predictions for new rows of every input (a YAML file: input name -> path), joined as in
    training; with ``missing: mask`` an input may be left out (its branch is zeroed)."""
    import pandas as pd

    folder = Path(run_dir)
    config = read_config(folder)
    names = list(config["inputs"])
    keys, data, present = read_batch(folder, config, input_path)
    flags = np.column_stack([present[n] for n in names])
    proba = fused_proba(folder, config, data, flags)
    frame = pd.DataFrame({"item": keys, "prediction": [config["classes"][i] for i in proba.argmax(1)]})
    for i, c in enumerate(config["classes"]):
        frame[f"proba_{c}"] = proba[:, i]
    if config["missing"] == "mask":
        for n in names:
            frame[f"has_{n}"] = present[n]
    return frame


# ---------------------------------------------------------------- the modality


@component("modality", "multimodal")
class Multimodal(NeuralModality, stages_from=__name__):
    """Several inputs (image, table, series, ...) joined by id, position or file stem, each a branch
    of its own modality, fused early, intermediately (end to end) or late; every branch's score is
    reported beside the fused one."""

    calibrations = ()  # the fusion is not trained by the shared loop: no temperature to fit
    reads_other_sections = True  # each input is read by its own modality's stages, with their sections

    default_models = {"classification": "intermediate_fusion"}

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """Each input: a loader of a modality that can be a branch, a valid branch spec; the labels
        input exists; an early-fusion classifier that is a tabular one."""
        problems = super().spec_problems(spec)
        try:
            config = config_of(spec)
        except Exception:
            return problems  # reported with the data section's own problems
        for name in config.inputs:
            try:
                modality = input_modality(name, config.inputs[name])
            except TrainflowError as exc:
                problems.append(str(exc))
                continue
            if modality not in supported():
                problems.append(f"'data.inputs.{name}.loader' {config.inputs[name].loader!r} gives {modality} data, "
                                f"which cannot be a multimodal input; inputs can be {', '.join(supported())} data.")
                continue
            try:
                branch_spec(spec, name)
            except SpecError as exc:
                problems += exc.problems
        if config.labels and config.labels not in config.inputs:
            problems.append(f"'data.labels' names {config.labels!r}, which is not an input; the inputs are "
                            f"{', '.join(config.inputs)}.")
        if spec.model.name == "early_fusion" and not spec.model.problems("model", task=spec.task):
            inner = spec.model.resolve("model", task=spec.task)[1].model
            comp = REGISTRY.get("model", inner) if inner in REGISTRY.names("model") else None
            if comp is None or comp.modality != "tabular" or "classification" not in comp.tasks:
                from trainflow.spec import models_for

                problems.append(f"'model.model' {inner!r} must be a tabular classifier: "
                                f"{', '.join(models_for('tabular', 'classification'))}.")
        return problems

    def drift_frame(self, run_dir: str | Path, source: DataRef | str | Path) -> Any:
        """Each input's own summaries, prefixed with its name, one row per joined row
        (:mod:`trainflow.tasks.multimodal.drift`): of a stored split part, or of new rows read and
        joined as :func:`predict` reads them."""
        from trainflow.tasks.multimodal.drift import input_summaries

        folder = Path(run_dir)
        config = read_config(folder)
        if isinstance(source, DataRef):
            index = load_npz(source.path)
            rows, flags = index["rows"], index["present"].astype(bool)
            data = _inputs(SplitRef(train=source, test=source), rows)
            present = {n: flags[:, b] for b, n in enumerate(source.meta["inputs"])}  # the stored order
        else:
            _, data, present = read_batch(folder, config, source, quiet=True)
        return input_summaries(folder, config, data, present)

    def scoring_rows(self, split: SplitRef) -> tuple[Path, Any]:
        """Each input's test items as its own modality hands them over, named in a YAML input
        (:mod:`.scoring`), and the test rows' classes."""
        from trainflow.tasks.multimodal.scoring import scoring_rows

        return scoring_rows(split, INDEX)

    def example(self, folder: Path) -> Example:
        """40 rows: an 8x8 image (which half is bright tells the class) and a table of two columns."""
        import pandas as pd

        from trainflow.tasks.common.examples import two_class_images

        rng = np.random.default_rng(0)
        x, y = two_class_images(40)
        np.savez(folder / "images.npz", x=x, y=y)
        pd.DataFrame({"a": rng.normal(size=40) + y, "b": rng.normal(size=40)}).to_csv(folder / "extra.csv", index=False)
        np.savez(folder / "new.npz", x=x[:4])
        pd.DataFrame({"a": [0.0, 1.0, 0.5, 2.0], "b": [0.0] * 4}).to_csv(folder / "new.csv", index=False)
        (folder / "new.yaml").write_text("image: new.npz\nextra: new.csv\n")
        return Example(spec={"data": {"loader": "multimodal", "inputs": {
            "image": {"loader": "npz", "path": str(folder / "images.npz"), "model": {"width": 4, "dense": 8}},
            "extra": {"loader": "csv", "path": str(folder / "extra.csv")}}},
            "model": {"name": "late_fusion"}, "train": {"epochs": 2, "batch_size": 8}},
            predict_input=folder / "new.yaml")
