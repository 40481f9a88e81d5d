"""``preprocess.audio.select``: the audio recipe chosen by grouped cross-validation on the training clips.

Each candidate changes the normalisation or the augmentation of ``preprocess.audio``. The training
clips are cut into folds by a group (the speaker): every fold's network is trained on the other
groups' clips for ``select.epochs`` epochs and scored on the fold's, so what ranks the candidates is
the accuracy on voices the fold never heard, pooled over the folds. The test split plays no part.
The features are computed once; each fold fits its own normalisation on its training clips.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow.errors import DataError
from trainflow.tasks.audio.features import AudioFeatures, FrequencyNormalizer, frame_mask, per_clip, spec_augmenter
from trainflow.tasks.audio.perturb import bank_augmenter, perturbed_features, perturbs, tta_grid, voiced_at

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec


def group_name(pre: AudioFeatures, spec: PipelineSpec) -> str | None:
    """The group the folds keep together: ``select.group``, else ``split.group``."""
    return pre.select.group or spec.split.group


def groups_of(arrays: dict[str, np.ndarray], name: str | None, source: str) -> np.ndarray:
    """Each training clip's group (``group_<name>`` of the stored clips); DataError when none is stored."""
    if name is None:
        raise DataError("preprocess.audio.select needs groups to cut folds by: set select.group to a named group of "
                        "data.pattern (e.g. speaker) or use split.group.")
    if f"group_{name}" not in arrays:
        have = sorted(k.removeprefix("group_") for k in arrays if k.startswith("group_"))
        raise DataError(f"preprocess.audio.select.group is {name!r}, which the clips of '{source}' do not carry; "
                        f"expected a named group of data.pattern or split.group ({', '.join(have) or 'none here'}).")
    return arrays[f"group_{name}"]


def folds_of(groups: np.ndarray, folds: int, source: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped folds (scikit-learn's GroupKFold), at most one per group; DataError under two groups."""
    from sklearn.model_selection import GroupKFold

    n = len(np.unique(groups))
    if n < 2:
        raise DataError(f"preprocess.audio.select: the training clips of '{source}' hold {n} group(s); grouped "
                        "cross-validation needs at least two.")
    return list(GroupKFold(n_splits=min(folds, n)).split(np.zeros(len(groups)), groups=groups))


#: fields that change only how a trained network predicts: candidates differing in these alone share fold networks
PREDICTION_ONLY = ("tta_speed", "tta_vtlp", "tta_tempo")


def _fold_network(x: np.ndarray, frames: np.ndarray, y: np.ndarray, tr: np.ndarray, cfg: AudioFeatures,
                  spec: PipelineSpec, n_classes: int, bank: np.ndarray | None = None) -> tuple[Any, FrequencyNormalizer]:
    """The network trained on the fold's training clips ``tr`` (``select.epochs``) and the normaliser
    fitted on them; ``bank``: the perturbed copies of every clip [copies, n, bins, T] (after per-clip
    normalisation where ``cfg`` asks for it), drawn from for ``tr`` only."""
    import torch

    from trainflow.tasks.common.training import train_model

    norm = FrequencyNormalizer(cfg.normalize).fit(x[tr], frames[tr])
    augment = spec_augmenter(cfg)
    if bank is not None:
        augment = bank_augmenter(np.stack([norm.transform(copy[tr]) for copy in bank]), augment)
    mask = torch.from_numpy(frame_mask(frames[tr], x.shape[2]))
    comp, options = spec.model.resolve("model", task=spec.task)
    if getattr(options, "members", 1) > 1:  # one network ranks a recipe; the final fit trains the ensemble
        options = options.model_copy(update={"members": 1})
    torch.manual_seed(spec.seed)
    model = comp.build(options, bins=int(x.shape[1]), frames=int(x.shape[2]), n_classes=n_classes)
    train = spec.train.model_copy(update={"epochs": spec.preprocess.audio.select.epochs, "checkpoint": False,
                                          "val_fraction": 0.0, "patience": 0})
    train_model(model, (torch.from_numpy(norm.transform(x[tr])), mask, torch.from_numpy(y[tr])), None, train,
                seed=spec.seed, task="classification", augment=augment, log=lambda _: None)
    return model, norm


def _fold_correct(network: tuple[Any, FrequencyNormalizer], tests: list[np.ndarray], frames: np.ndarray,
                  y: np.ndarray, te: np.ndarray) -> int:
    """Clips ``te`` (the fold's held-out groups) that the fold's network gets right, its class
    probabilities averaged over ``tests``: the features of every clip at each (speed, VTLP factor) of
    the candidate's test-time augmentation (one: no augmentation)."""
    import torch

    from trainflow.tasks.common.training import predict

    model, norm = network
    mask = torch.from_numpy(frame_mask(frames[te], tests[0].shape[2]))
    proba = sum(predict(model, (torch.from_numpy(norm.transform(t[te])), mask), device="cpu").softmax(1)
                for t in tests)
    return int((proba.argmax(1).numpy() == y[te]).sum())


def _bank(waves: list[np.ndarray], rate: int, frames: np.ndarray, cfg: AudioFeatures, seed: int) -> np.ndarray:
    """The perturbed copies of ``cfg`` for every clip, per-clip normalised where ``cfg`` asks for it."""
    raw = perturbed_features(waves, rate, cfg, seed)
    return np.stack([per_clip(copy, frames) for copy in raw]) if cfg.normalize == "per_clip" else raw


def _voiced(waves: list[np.ndarray], rate: int, frames: np.ndarray, cfg: AudioFeatures, voice: tuple[float, float],
            x: np.ndarray) -> np.ndarray:
    """The features of every clip at ``voice`` (speed, VTLP factor; ``x`` itself at (1, 1)), per-clip
    normalised where ``cfg`` asks for it."""
    if voice == (1.0, 1.0):
        return x
    raw = voiced_at(waves, rate, cfg, *voice)
    return per_clip(raw, np.full(len(raw), raw.shape[2])) if cfg.normalize == "per_clip" else raw


def choose(x: np.ndarray, frames: np.ndarray, y: np.ndarray, groups: np.ndarray, spec: PipelineSpec,
           n_classes: int, source: str, waves: list[np.ndarray] | None = None,
           rate: int | None = None) -> tuple[AudioFeatures, dict[str, Any]]:
    """Score every candidate of ``spec.preprocess.audio.select`` by grouped cross-validation on the
    training features ``x`` (before normalisation) [n, bins, T] and targets ``y``; ``waves`` and their
    ``rate``: the clips themselves, for candidates that perturb them (:mod:`~trainflow.tasks.audio.perturb`).
    Returns the winner (ties: the first) and the record for the report: the group, folds, epochs and a
    row per candidate."""
    pre = spec.preprocess.audio
    sel = pre.select
    parts = folds_of(groups, sel.folds, source)
    clipped, networks = None, {}
    table = []
    for i in range(len(sel.candidates)):
        cfg = pre.candidate(i)
        if cfg.normalize == "per_clip" and clipped is None:
            clipped = per_clip(x, frames)
        xc = clipped if cfg.normalize == "per_clip" else x
        recipe = cfg.model_dump_json(exclude=set(PREDICTION_ONLY))  # the fold networks of a training recipe, once
        if recipe not in networks:
            bank = _bank(waves, rate, frames, cfg, spec.seed) if perturbs(cfg) else None
            networks[recipe] = [_fold_network(xc, frames, y, tr, cfg, spec, n_classes, bank) for tr, _ in parts]
        tests = [_voiced(waves, rate, frames, cfg, v, xc) for v in tta_grid(cfg)]
        correct = [_fold_correct(net, tests, frames, y, te) for net, (_, te) in zip(networks[recipe], parts)]
        per_fold = [c / len(te) for c, (_, te) in zip(correct, parts)]
        table.append({"candidate": i, "changes": describe_changes(sel.candidates[i]),
                      "accuracy": round(sum(correct) / len(y), 4),
                      "lowest fold": round(min(per_fold), 4)})
    best = max(range(len(table)), key=lambda i: (table[i]["accuracy"], -i))
    record = {"group": group_name(pre, spec), "groups": int(len(np.unique(groups))), "folds": len(parts),
              "epochs": sel.epochs, "chosen": best, "metric": "accuracy", "value": table[best]["accuracy"],
              "table": table}
    return pre.candidate(best), record


def describe_changes(changes: dict[str, Any]) -> str:
    """A candidate's changes as ``key=value, ...`` (``as written`` for none)."""
    return ", ".join(f"{k}={v}" for k, v in changes.items()) or "as written"


def describe(record: dict[str, Any]) -> str:
    """One line for the report: which recipe won, by how much, over which folds."""
    row = record["table"][record["chosen"]]
    return (f"preprocess.audio.select chose candidate {row['candidate']} ({row['changes']}): accuracy "
            f"{row['accuracy']:.4f} on held-out {record['group']} groups in {record['folds']}-fold grouped "
            f"cross-validation over the {record['groups']} groups of the training split ({record['epochs']} epochs "
            f"a fold; {len(record['table'])} candidates)")
