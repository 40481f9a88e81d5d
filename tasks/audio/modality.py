"""The audio modality: classification of clips by networks on log-mel or MFCC features.

Multi-label (``task: multilabel``: a manifest's 0/1 label columns or one delimited label column) is a
spec change: the neural base trains one sigmoid output per label and saves the thresholds.

Clips travel between tasks as ``.npz`` files in the cache: every waveform (mono, at the loader's
``sample_rate``) concatenated in ``audio`` with ``offsets``, plus file names, labels, what each file
held (rate, channels, duration, readable) and the fixed test split when the loader gives one.
Fitting computes the spec's features (:mod:`trainflow.tasks.audio.features`), fits the
per-frequency normalisation on the training clips only, masks training batches (SpecAugment) and
trains the spec's network with the shared loop; the model is safetensors weights plus a JSON config
holding everything prediction needs (feature options, normalisation statistics, classes, rate).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainflow.alerts import warn
from trainflow.cache_keys import cache_key
from trainflow.errors import DataError, SpecError
from trainflow.modality import Example
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, file_digest, load_npz, save_npz
from trainflow.registry import component
from trainflow.tasks.audio.features import (AudioFeatures, FrequencyNormalizer, fit_normalization, frame_mask,
                                            frames_of, normalized, per_clip, wave_features)
from trainflow.tasks.audio import perturb
from trainflow.tasks.audio.loaders import AUDIO_SUFFIXES, Clips, audio_files, clip_problem, read_clips
from trainflow.tasks.common.assess import assess
from trainflow.tasks.common import holdout
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import neural, plots
from trainflow.tasks.common.manifest import read_new_manifest, saved_columns
from trainflow.tasks.common.neural import NeuralModality
from trainflow.tasks.common.validate import Check, run_expectations
from trainflow.tasks.common import multilabel as ML
from trainflow.tasks.common.batch_reads import read_once

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

SILENT_SHOWN = 10  # silent clips named in the report
NORMALIZATION_STEPS = {"per_clip": "per-clip normalisation of each bin (voiced frames), then per-frequency "
                                   "normalisation (training clips)",
                       "per_frequency": "per-frequency normalisation (training clips)", "none": "no normalisation"}


class AudioValidation(BaseModel):
    """Checks of the per-clip table (``audio_validation``)."""

    model_config = ConfigDict(extra="forbid")
    min_duration: float = Field(0.05, ge=0, description="Shortest clip (seconds, as stored in the file)")
    max_duration: float | None = Field(None, gt=0, description="Longest clip (seconds)")
    sample_rates: list[int] = Field([], description="Sample rates the files may have (empty: any; all are resampled)")
    max_channels: int = Field(2, ge=1, description="Most channels a file may have (all are mixed to mono)")
    # -60 dBFS RMS is far below speech at any recording level, and above dither noise.
    silence_db: float = Field(-60.0, le=0, description="A clip whose RMS level is below this (dBFS) is silent")
    max_silent_share: float = Field(0.05, ge=0, le=1, description="Largest share of silent clips (each is reported)")
    # a few broken files in a real corpus should not block it (text's length checks allow the same share)
    max_unreadable_share: float = Field(0.005, ge=0, le=1, description="Largest share of files skipped as unreadable "
                                                                       "(data.unreadable: skip)")

    @model_validator(mode="after")
    def _min_not_above_max(self) -> AudioValidation:
        # every clip would fail the duration check, found only after reading every file
        if self.max_duration is not None and self.min_duration > self.max_duration:
            raise ValueError(f"min_duration ({self.min_duration:g}) is above max_duration ({self.max_duration:g}), "
                             "so no clip can pass; expected min_duration <= max_duration")
        return self


# ---------------------------------------------------------------- store & validate


def pack_waves(waves: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Waveforms as two arrays: ``audio`` (all of them concatenated) and ``offsets`` (n + 1 bounds)."""
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    return {"audio": np.concatenate(waves) if len(waves) else np.zeros(0, np.float32),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)}


def pack(clips: Clips) -> dict[str, np.ndarray]:
    """The arrays of the stored ``.npz``: concatenated audio with offsets, names, labels, file facts."""
    arrays = {**pack_waves(clips.waves),
              "files": np.asarray(clips.files, dtype=str),
              "readable": np.array([i["readable"] for i in clips.info], dtype=bool),
              "file_rate": np.array([i["sample_rate"] for i in clips.info], dtype=np.int64),
              "channels": np.array([i["channels"] for i in clips.info], dtype=np.int64),
              "duration": np.array([i["duration"] for i in clips.info], dtype=np.float64),
              "error": np.asarray([i["error"] for i in clips.info], dtype=str)}
    if clips.labels is not None:
        arrays["labels"] = np.asarray(clips.labels, dtype=str)
    if clips.label_matrix is not None:  # multi-label
        arrays["Y"], arrays["label_names"] = clips.label_matrix, np.asarray(clips.label_names, dtype=str)
    if clips.is_test is not None:
        arrays["is_test"] = np.asarray(clips.is_test, dtype=bool)
    if clips.keys is not None:
        arrays["keys"] = np.asarray(clips.keys, dtype=str)
    # every named group of the file pattern travels with its clip: preprocess.audio.select cuts folds by one
    arrays |= {f"group_{k}": np.asarray(v, dtype=str) for k, v in clips.groups.items()}
    return arrays


def waves_of(arrays: dict[str, np.ndarray], idx: Any = None) -> list[np.ndarray]:
    """The waveforms of the stored clips ``idx`` (all by default)."""
    off = arrays["offsets"]
    idx = range(len(off) - 1) if idx is None else idx
    return [arrays["audio"][off[i]: off[i + 1]] for i in idx]


def subset(arrays: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    """The stored arrays of the clips ``idx`` only (same layout)."""
    out = {k: v[idx] for k, v in arrays.items() if k not in ("audio", "offsets", "is_test", "keys", "label_names")}
    if "label_names" in arrays:
        out["label_names"] = arrays["label_names"]
    return {**out, **pack_waves(waves_of(arrays, idx))}


def store(clips: Clips, cache_dir: str, digest: str, config: Any) -> DataRef:
    """Save the decoded clips as ``.npz`` in the cache, named by the source's digest."""
    path = Path(cache_dir) / "data" / f"{digest}.npz"
    save_npz(path, **pack(clips))  # rewritten on each load: see refs.store_parquet
    skipped = [f"skipped unreadable audio file: {i['error']}" for i in clips.info if not i["readable"]]
    # rows: the clips that can be used; a skipped file (data.unreadable: skip) is counted apart
    return DataRef(path=str(path), digest=digest, modality="audio", meta={
        "rows": len(clips.waves) - len(skipped), "rows_skipped": len(skipped), "sample_rate": clips.sample_rate, "source": clips.source,
        "labelled": clips.labels is not None or clips.label_matrix is not None,
        **({"labels": clips.label_names} if clips.label_matrix is not None else {}),
        "predefined_test": clips.is_test is not None, "notes": skipped,
        "loader_options": config.model_dump(mode="json")})


def level_db(wave: np.ndarray) -> float:
    """RMS level in dBFS (-inf for an all-zero or empty clip)."""
    if not len(wave):
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def clip_table(arrays: dict[str, np.ndarray], silence_db: float) -> Any:
    """One row per clip: file, label and its class count (multi-label: a ``label <name>`` column per
    label), readable, the file's sample rate, channels
    and duration (empty for an unreadable file), RMS level and whether it is silent."""
    import pandas as pd

    ok = arrays["readable"]
    levels = np.array([level_db(w) for w in waves_of(arrays)])
    def known(values: Any, dtype: str) -> Any:  # empty where the file could not be read
        return pd.Series(values).astype(dtype).where(ok)

    table = pd.DataFrame({
        "file": arrays["files"], "readable": ok,
        "sample_rate": known(arrays["file_rate"], "Int64"), "channels": known(arrays["channels"], "Int64"),
        "duration": known(arrays["duration"], "float64"), "level_db": known(np.maximum(levels, -200.0), "float64"),
        "silent": known(levels < silence_db, "boolean")})
    if "labels" in arrays:
        table.insert(1, "label", arrays["labels"])
        # readable clips only: a skipped clip (data.unreadable: skip) is not trained or tested on
        readable = table.loc[table["readable"], "label"].value_counts()
        table.insert(2, "class_count", table["label"].map(readable).fillna(0).astype(int))
    if "Y" in arrays:
        table = table.assign(**neural.label_columns(arrays["Y"], arrays["label_names"].tolist()))
    return table


def silent_files(table: Any) -> list[str]:
    return table.loc[table["silent"].fillna(False).astype(bool), "file"].tolist()


def validate(ref: DataRef, spec: PipelineSpec, docs_dir: str | None) -> dict[str, Any]:
    """GX checks of the per-clip table; silent clips are reported (and fail validation only beyond
    ``audio_validation.max_silent_share``). Raises ValidationFailed listing the failures."""
    arrays = load_npz(ref.path)
    v, a = spec.validation, spec.audio_validation
    table = clip_table(arrays, a.silence_db)
    bad = [f"{f}: {e}" for f, e, ok in zip(arrays["files"], arrays["error"], arrays["readable"]) if not ok]
    if bad:
        warn(f"validate: {len(bad)} of {len(table)} audio file(s) left out of training and testing (unreadable): "
             f"{', '.join(b.split(': ', 1)[0] for b in bad[:SILENT_SHOWN])}{', ...' if len(bad) > SILENT_SHOWN else ''}")
    checks = [
        Check("ExpectTableRowCountToBeBetween", {"min_value": v.min_rows}, f"validation.min_rows is {v.min_rows}"),
        Check("ExpectColumnValuesToBeInSet", {"column": "readable", "value_set": [True],
                                              "mostly": 1 - a.max_unreadable_share},
              f"files soundfile cannot decode{f', e.g. {bad[0]!r}' if bad else ''} "
              f"(audio_validation.max_unreadable_share is {a.max_unreadable_share}; data.unreadable: error stops "
              "at the first)"),
        Check("ExpectColumnValuesToBeBetween", {"column": "channels", "min_value": 1, "max_value": a.max_channels},
              f"audio_validation.max_channels is {a.max_channels}"),
        Check("ExpectColumnValuesToBeBetween", {"column": "duration", "min_value": a.min_duration,
                                                "max_value": a.max_duration},
              "audio_validation.min_duration / max_duration (seconds)"),
        Check("ExpectColumnValuesToBeInSet", {"column": "silent", "value_set": [False], "mostly": 1 - a.max_silent_share},
              f"clips quieter than {a.silence_db:g} dBFS (audio_validation.silence_db, max_silent_share)"),
    ]
    if a.sample_rates:
        checks.append(Check("ExpectColumnValuesToBeInSet", {"column": "sample_rate", "value_set": a.sample_rates},
                            "audio_validation.sample_rates"))
    if "label" in table.columns:
        checks += [Check("ExpectColumnUniqueValueCountToBeBetween", {"column": "label", "min_value": 2},
                         "a classifier needs at least two classes"),
                   Check("ExpectColumnValuesToBeBetween", {"column": "class_count", "min_value": 2},
                         "each class needs at least two clips (one to train on, one to test)")]
        if v.labels:
            checks.append(Check("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": [str(x) for x in v.labels]},
                                "validation.labels"))
    elif "Y" in arrays:
        checks += neural.label_value_checks(ref.meta["labels"])
    elif spec.task in ("classification", "multilabel"):
        raise DataError(f"'{ref.meta.get('source')}' has no labels; a {spec.task} pipeline needs them for every clip.")
    checks += [Check(e.type, dict(e.kwargs), "validation.expectations") for e in v.expectations]
    silent = silent_files(table)
    if silent:
        warn(f"validate: {len(silent)} silent clip(s) (below {a.silence_db:g} dBFS): {', '.join(silent[:SILENT_SHOWN])}")
    summary = run_expectations(table, checks, docs_dir, suite=spec.name).as_dict()
    summary["silent_clips"] = silent
    summary["unreadable_files"] = {str(f): str(e) for f, e, ok in zip(arrays["files"], arrays["error"],
                                                                      arrays["readable"]) if not ok}
    if "label" in table.columns:
        summary["class_counts"] = {k: int(n) for k, n in
                                   table.loc[table["readable"], "label"].value_counts().sort_index().items()}
    return summary


# ---------------------------------------------------------------- split


def split(ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
    """The hold-out split (``tasks/common/holdout.py``): the spec's column or groups (a named group of
    the file pattern, a manifest column: speakers stay on one side with ``split.group``), the loader's
    fixed split, or a stratified holdout (``split.test_size``, ``split.seed``); unreadable clips are
    left out, silent ones named; one ``.npz`` per part."""
    from trainflow.tasks.common import leakage

    arrays = load_npz(ref.path)
    source = ref.meta.get("source")
    multilabel = "Y" in arrays
    if "labels" not in arrays and not multilabel:
        raise DataError(f"'{source}' has no labels; a {spec.task} pipeline needs them for every clip.")
    notes = list(ref.meta.get("notes", []))
    silent = silent_files(clip_table(arrays, spec.audio_validation.silence_db))
    if silent:
        shown = ", ".join(silent[:SILENT_SHOWN]) + (f" and {len(silent) - SILENT_SHOWN} more" if len(silent) > SILENT_SHOWN else "")
        notes.append(f"{len(silent)} silent clip(s) (below {spec.audio_validation.silence_db:g} dBFS), kept: {shown}")
    y = arrays["Y"] if multilabel else arrays["labels"]
    parts = holdout.assign(len(arrays["readable"]), spec, str(source), y=None if multilabel else y,
                           Y=y if multilabel else None, keys=arrays.get("keys"), fixed_test=arrays.get("is_test"),
                           usable=np.flatnonzero(arrays["readable"]), what="clips")
    notes += parts.notes
    notes += holdout.leakage_notes(lambda idx: leakage.item_digests(waves_of(arrays, idx)), parts, "clips", spec)
    if not multilabel:
        holdout.require_scorable(y, parts, f"'{source}'")
    key = cache_key(spec, data=ref.digest, split=spec.split.model_dump(), fixed="is_test" in arrays)
    folder = Path(cache_dir) / "splits" / key[:16]
    refs = {}
    if spec.split.group and "keys" in arrays:  # a manifest's group column, for preprocess.audio.select
        arrays[f"group_{spec.split.group}"] = arrays["keys"]
    for name, idx in parts.items():
        path = folder / f"{name}.npz"
        save_npz(path, **subset(arrays, idx))
        refs[name] = DataRef(path=str(path), digest=file_digest(path), modality="audio",
                             meta={**ref.meta, "rows": int(len(idx))})
    if multilabel:
        return holdout.split_ref(refs, {"label_counts": holdout.label_counts(y, ref.meta["labels"], parts),
                                        "notes": notes})
    return holdout.split_ref(refs, {"class_counts": holdout.class_counts(y, parts), "notes": notes})


# ---------------------------------------------------------------- fit


def to_frames(x: np.ndarray, frames: np.ndarray, total: int, quiet: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features ``[n, bins, T]`` padded (with the training floor ``quiet`` [bins]) or trimmed to ``total``
    frames, with the real frames of each clip capped at ``total``."""
    if x.shape[2] > total:
        x = x[:, :, :total]
    elif x.shape[2] < total:
        pad = np.zeros((x.shape[0], x.shape[1], total - x.shape[2]), np.float32)
        if quiet is not None:
            pad += np.asarray(quiet, np.float32)[None, :, None]
        x = np.concatenate([x, pad], axis=2)
    return x, np.minimum(frames, total)


def features_of(waves: list[np.ndarray], config: dict[str, Any],
                voice: tuple[float, float] = (1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Normalised features ``[n, bins, frames]`` and the frame mask, exactly as the model was trained
    (its JSON config: rate, feature options, training frames, normalisation); ``voice``: the clips
    played at a speed through a warped filterbank first (test-time augmentation, fixed duration)."""
    pre = AudioFeatures.model_validate(config["features"])
    if voice == (1.0, 1.0):
        x, frames = wave_features(waves, config["sample_rate"], pre)
    else:
        x = perturb.voiced_at(waves, config["sample_rate"], pre, *voice)
        frames = np.full(len(waves), x.shape[2])
    x, frames = to_frames(x, frames, config["frames"], config.get("quiet"))
    x = normalized(x, frames, FrequencyNormalizer.from_state(config["normalization"]))
    return x, frame_mask(frames, config["frames"])


def prepare(split_ref: SplitRef, spec: PipelineSpec) -> neural.Prepared:
    """Features of the training clips, the per-frequency normalisation fitted on them, SpecAugment
    for training batches, the network's shape."""
    import torch

    from trainflow.tasks.common.labels import targets

    arrays = load_npz(split_ref.train.path)
    meta = split_ref.train.meta
    pre = spec.preprocess.audio
    rate = int(meta["sample_rate"])
    waves = waves_of(arrays)
    x, frames = wave_features(waves, rate, pre)
    quiet = x[np.argmin(frames), :, -1].tolist() if x.shape[2] > frames.min() else None
    multilabel = "Y" in arrays  # one sigmoid output per label; the target is the 0/1 matrix
    if multilabel:
        y, classes = arrays["Y"].astype(np.float32), meta["labels"]
    else:
        y, classes = targets(arrays["labels"], "classification", meta.get("source", ""))
    selection = None
    if pre.select is not None:  # the recipe chosen by grouped CV on these clips; the rest as usual
        from trainflow.tasks.audio import select

        source = str(meta.get("source", ""))
        groups = select.groups_of(arrays, select.group_name(pre, spec), source)
        pre, selection = select.choose(x, frames, y, groups, spec, len(classes), source, waves=waves, rate=rate)
    if pre.normalize == "per_clip":
        x = per_clip(x, frames)
    norm = fit_normalization(x, frames, pre)
    x = norm.transform(x)
    mask = frame_mask(frames, x.shape[2])
    length = f"pad/trim to {pre.duration:g} s" if pre.duration else "lengths kept (padded with a mask)"
    steps = [f"mono, resampled to {rate} Hz", length,
             f"{pre.features} ({pre.bins} bins, window {pre.n_fft}, hop {pre.hop_length}: {x.shape[2]} frames)",
             NORMALIZATION_STEPS[pre.normalize]]
    augment = perturb.training_augmenter(waves, rate, frames, pre, norm, spec.seed)
    steps += [f"SpecAugment: {pre.freq_masks} frequency x{pre.freq_mask_width}, {pre.time_masks} time "
              f"x{pre.time_mask_width} masks (training batches)"] if pre.freq_masks or pre.time_masks else []
    steps += [f"warping of training batches: frequency warp +-{pre.freq_warp:g}, time stretch +-{pre.time_stretch:g}, "
              f"shift +-{pre.time_shift} frames"] if pre.freq_warp or pre.time_stretch or pre.time_shift else []
    steps += [f"mixing of training batches: another example at weight up to {pre.mix_clips:g}"] if pre.mix_clips else []
    steps += [perturb.describe(pre)] if perturb.perturbs(pre) else []
    steps += [f"prediction: class probabilities averaged over the clip at speeds {pre.tta_speed or [1.0]} and VTLP "
              f"factors {pre.tta_vtlp or [1.0]}" + (f", and at tempos {pre.tta_tempo} (formants kept)"
                                                    if pre.tta_tempo else "")] if (
        pre.tta_speed or pre.tta_vtlp or pre.tta_tempo) else []
    if selection is not None:
        from trainflow.tasks.audio.select import describe

        steps.insert(0, describe(selection))
    steps += [f"imbalance: {spec.train.imbalance}"] if spec.train.imbalance != "none" else []
    def part(ref: DataRef) -> tuple[Any, ...]:  # the validation part, featurised with the training statistics
        other = load_npz(ref.path)
        xv, mv = features_of(waves_of(other), {"features": pre.model_dump(mode="json"), "sample_rate": rate,
                                               "frames": int(x.shape[2]), "quiet": quiet, "normalization": norm.state()})
        yv = (other["Y"].astype(np.float32) if multilabel
              else targets(other["labels"], "classification", meta.get("source", ""), classes)[0])
        return torch.from_numpy(xv), torch.from_numpy(mv), torch.from_numpy(yv)

    return neural.Prepared(
        inputs=(torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(y)),
        build={"bins": int(x.shape[1]), "frames": int(x.shape[2]), "n_classes": len(classes)},
        config={"kind": "audio", "classes": classes, "sample_rate": rate, "features": pre.model_dump(mode="json"),
                "frames": int(x.shape[2]), "quiet": quiet, "normalization": norm.state(),
                "suffixes": meta.get("loader_options", {}).get("suffixes", list(AUDIO_SUFFIXES)),
                "manifest": saved_columns(meta.get("loader_options", {})),
                **({"labels": classes} if multilabel else {}), **({"recipe_selection": selection} if selection else {})},
        steps=steps, task="multilabel" if multilabel else "classification", augment=augment,
        meta={"classes": classes, **({"selection": {
            "method": f"{selection['folds']}-fold cross-validation grouped by {selection['group']} on the training split",
            "metric": "accuracy", "value": selection["value"], "greater_is_better": True}} if selection else {})},
        part=part)


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """Features and normalisation (fitted on training clips only) and the spec's network, trained
    with the shared loop; saved as safetensors + JSON."""
    return neural.fit(prepare(split_ref, spec), split_ref, spec, cache_dir, "audio")


# ---------------------------------------------------------------- evaluate, export, predict


def load_model(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild the network from its JSON config and load its safetensors weights (on CPU); the
    config's feature options are checked here too (a crafted test-time grid would run predict for
    hours): DataError naming the file."""
    from trainflow import trust

    model, config = neural.load_network(folder, "audio")
    trust.shaped(config, _SavedAudio, Path(folder) / neural.CONFIG_FILE, "audio model config")  # (read once)
    return model, config


class _Normalization(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    mean: list[float] | float | None = None
    std: list[float] | float | None = None


class _SavedAudio(BaseModel):
    """What predict reads of an audio model's config besides the shared keys (a shared folder's file
    is untrusted: a crafted frame count would allocate tens of GiB, a test-time grid run for hours)."""

    model_config = ConfigDict(extra="allow", strict=True)
    sample_rate: int = Field(gt=0, le=1_000_000)
    frames: int = Field(ge=1, le=100_000)
    features: AudioFeatures
    normalization: _Normalization | None = None
    suffixes: list[str] = []


def probabilities(model: Any, config: dict[str, Any], waves: list[np.ndarray], device: str = "auto") -> np.ndarray:
    """Class probabilities [n, k] (multi-label: per label) of decoded clips, computed on ``device``
    (auto: the GPU when there is one); averaged over the speeds of ``tta_speed`` where the model has one."""
    import torch

    from trainflow.tasks.common.training import predict as forward
    from trainflow.devices import resolve_device

    proba = []
    for voice in perturb.tta_grid(AudioFeatures.model_validate(config["features"])):  # test-time augmentation
        x, mask = features_of(waves, config, voice)
        out = forward(model, (torch.from_numpy(x), torch.from_numpy(mask)), batch_size=256, device=resolve_device(device))
        proba.append(neural.probabilities(out, config))
    return np.mean(proba, axis=0)


def evaluate(model_ref: ModelRef, split_ref: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """Accuracy, per-class P/R/F1, confusion matrix and top-2 accuracy on the test clips; learning curves."""
    from trainflow.tasks.common.labels import targets

    model, config = load_model(model_ref.path)
    arrays = load_npz(split_ref.test.path)
    if config.get("task") == "multilabel":
        proba = probabilities(model, config, waves_of(arrays), spec.train.device)
        return neural.label_evaluation(model_ref, config, arrays["Y"].astype(np.int64), proba, split_ref, spec,
                                       plots_dir)
    classes = config["classes"]
    notes = list(split_ref.meta.get("notes", []))
    y, _ = targets(arrays["labels"], "classification", "", classes)
    keep = y >= 0
    if not keep.all():
        notes.append(f"{int((~keep).sum())} test clips with classes unseen in training were skipped")
    proba = probabilities(model, config, waves_of(arrays, np.flatnonzero(keep)), spec.train.device)
    y = y[keep]
    pred = proba.argmax(1)
    names = spec.evaluate.metrics or (M.DEFAULTS["classification"] + (["top_2_accuracy"] if len(classes) > 2 else []))
    metrics = M.score(names, y, pred, proba, classes)
    per_class, confusion = M.classification_details(y, pred, classes)
    charts, tables = neural.history_report(model_ref, config, plots_dir)
    charts = {"Confusion matrix": plots.confusion_matrix_png(confusion, Path(plots_dir) / "confusion_matrix.png"),
              **charts}
    chosen = config.get("recipe_selection")
    if chosen:  # preprocess.audio.select: every candidate's grouped cross-validated accuracy
        from trainflow.tasks.audio.select import describe

        notes.append(describe(chosen))
        tables = {f"Recipe selection: {chosen['folds']}-fold cross-validation grouped by {chosen['group']} on the "
                  "training split": chosen["table"], **tables}
    return assess(Evaluation(metrics=metrics, per_class=per_class, confusion=confusion, plots=charts, tables=tables,
                             notes=notes), spec, y, pred, proba, classes, plots_dir)


@read_once
def new_clips(path: Path, config: dict[str, Any]) -> tuple[list[np.ndarray], list[str]]:
    """Clips to predict: a folder of audio files (searched recursively), a CSV manifest naming audio
    files (relative to its folder) in the file column of the training manifest ('file' by default),
    or one audio file, decoded like the training clips; DataError naming a file that cannot be read.
    Multi-label: labels a manifest names that training never saw are warned about."""
    from trainflow.files import path_problem

    suffixes = config.get("suffixes", list(AUDIO_SUFFIXES))
    if path.is_dir():
        files = audio_files(path, suffixes, recursive=True)
        if not files:
            raise DataError(f"The folder '{path}' holds no audio files (expected {', '.join(suffixes)} files).")
        names = [str(f.relative_to(path)) for f in files]
    elif path.is_file() and path.suffix.lower() == ".csv":
        m = read_new_manifest(path, config.get("manifest"), "audio file", clip_problem)
        neural.warn_unseen_labels(config, path, table=m.table)
        files, names = m.files, m.names
    else:
        problem = path_problem(path)
        if problem:
            raise DataError(f"The input '{path}' {problem}; expected an audio file, a CSV manifest or a folder of "
                            "audio files.")
        if not path.name.lower().endswith(tuple(s.lower() for s in suffixes)):
            raise DataError(f"'{path}' is neither a folder of audio files, a CSV manifest of them nor an audio file "
                            f"({', '.join(suffixes)}).")
        files, names = [path], [path.name]
    waves, names = readable_clips(path, files, names, config["sample_rate"])
    seconds = (config.get("features") or {}).get("duration")
    longer = [(n, len(w) / config["sample_rate"]) for n, w in zip(names, waves)
              if seconds and len(w) > 2 * seconds * config["sample_rate"]]  # most of the clip unheard
    if longer:
        warn(f"predict: {len(longer)} clip(s) are over twice the {seconds:g} s the model reads "
             f"(preprocess.audio.duration): only their first {seconds:g} s are predicted from, e.g. "
             + ", ".join(f"{n} ({d:.1f} s)" for n, d in longer[:3]))
    return waves, names


def readable_clips(source: Path, files: list[Path], names: list[str], rate: int) -> tuple[list[np.ndarray], list[str]]:
    """The decoded clips of ``files`` and their names, less those that cannot be decoded or hold no
    samples: each is named in a warning and has no prediction (:func:`neural.leave_out_unreadable`)."""
    waves, infos = read_clips(files, source, rate, unreadable="skip")
    for name, wave, info in zip(names, waves, infos):  # a header with no samples decodes, into nothing to hear
        if info["readable"] and not len(wave):
            info |= {"readable": False, "error": f"{name}: holds no samples"}
    ok = [i for i, info in enumerate(infos) if info["readable"]]
    neural.leave_out_unreadable([i["error"] for i in infos if not i["readable"]], len(files), source, "audio file")
    return [waves[i] for i in ok], [names[i] for i in ok]


def write_clips(folder: Path, waves: list[np.ndarray], rate: int) -> None:
    """``waves`` as float WAV files ``00000.wav``, ... in ``folder``, written in a temporary folder
    that replaces it whole (a reader sees every clip or none)."""
    import os
    import shutil

    import soundfile as sf

    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, w in enumerate(waves):
        sf.write(tmp / f"{i:05d}.wav", np.asarray(w, np.float32), rate, subtype="FLOAT")
    try:
        tmp.replace(folder)
    except OSError:  # another process wrote the same clips first
        shutil.rmtree(tmp, ignore_errors=True)


def predict(run_dir: str | Path, input_path: str | Path) -> Any:
    """The predicted class and class probabilities of each new clip (multi-label: a 0/1 column and a
    probability column per label, the saved thresholds applied)."""
    return neural.predict_new(run_dir, input_path, load_model, new_clips, probabilities, "file")


# ---------------------------------------------------------------- the modality


@component("modality", "audio")
class Audio(NeuralModality, stages_from=__name__):
    """Audio clips (a folder per class, labels in file names, or a manifest), classified by a CNN,
    GRU/LSTM or autoencoder-pretrained network on log-mel/MFCC features (shared loop).

    Features are normalised with training statistics; SpecAugment masks training batches only."""

    sections = {**NeuralModality.sections, "preprocess.audio": AudioFeatures, "audio_validation": AudioValidation}
    default_models = {"classification": "audio_cnn", "multilabel": "audio_cnn"}

    def scoring_rows(self, split: SplitRef) -> tuple[Path, Any]:
        """The test clips as a folder of float WAV files at the loader's rate (what ``predict`` reads),
        written once beside the test part, and their true classes (multi-label: the label columns)."""
        arrays = load_npz(split.test.path)
        folder = Path(split.test.path).with_name("scoring")
        if not folder.is_dir():
            write_clips(folder, waves_of(arrays), int(split.test.meta["sample_rate"]))
        if "Y" in arrays:
            import pandas as pd

            return folder, pd.DataFrame(arrays["Y"].astype(np.int64), columns=split.test.meta["labels"])
        return folder, [str(v) for v in arrays["labels"]]

    def drift_frame(self, run_dir: str | Path, source: DataRef | str | Path) -> Any:
        """Duration, RMS level (dBFS), spread and spectral centroid (Hz) of each clip
        (:func:`trainflow.tasks.common.drift.signal_summaries`), of a stored split part or of new clips
        decoded as :func:`predict` decodes them."""
        from trainflow import trust
        from trainflow.tasks.common.drift import signal_summaries

        config = trust.read_json(Path(run_dir) / neural.CONFIG_FILE)
        waves = waves_of(load_npz(source.path)) if isinstance(source, DataRef) else new_clips(Path(source), config)[0]
        return signal_summaries(waves, rate=config["sample_rate"])

    def branch(self) -> Any:
        """The adapter that makes audio data one input of a multimodal pipeline (this module's functions)."""
        import sys

        from trainflow.tasks.audio.branch import AudioBranch

        return AudioBranch(sys.modules[__name__])

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """The device; multi-label labels where the task wants them; a CNN that would shrink
    fixed-length spectrograms to nothing."""
        from trainflow.tasks.common.networks import cnn_shape

        problems = super().spec_problems(spec) + ML.label_source_problems(
            spec.data.options(), spec.task, target="label", hint=" of the 'audio_manifest' loader")
        pre = spec.preprocess.audio
        if pre.select is not None and spec.task != "classification":
            problems.append(f"preprocess.audio.select chooses by accuracy, for task 'classification'; got {spec.task!r}.")
        if pre.select is not None and not (pre.select.group or spec.split.group):
            problems.append("preprocess.audio.select needs groups to cut its folds by: set select.group to a named "
                            "group of data.pattern (e.g. speaker), or split.group.")
        if spec.model.name == "audio_cnn" and spec.task != "classification" and not spec.model.problems(
                "model", task=spec.task) and spec.model.resolve("model", task=spec.task)[1].members > 1:
            problems.append(f"model.members averages class probabilities, for task 'classification'; got {spec.task!r}.")
        rate = spec.data.options().get("sample_rate", 16000)
        if spec.model.name == "audio_cnn" and pre.duration and isinstance(rate, int) \
                and not spec.model.problems("model", task=spec.task):
            try:
                cnn_shape(spec.model.resolve("model", task=spec.task)[1], pre.bins,
                          frames_of(round(pre.duration * rate), pre))
            except SpecError as exc:
                problems += exc.problems
        return problems

    def example(self, folder: Path) -> Example:
        """16 clips of 0.25 s at 8 kHz in two class folders (a low and a high tone, with noise), and
        a folder of 3 new clips."""
        write_tones(folder / "clips", {"low": 300.0, "high": 1200.0}, per_class=8)
        write_tones(folder / "new", {"low": 300.0, "high": 1200.0}, per_class=2, flat=True)
        return Example(spec={"data": {"loader": "audio_folder", "path": str(folder / "clips"), "sample_rate": 8000},
                             "preprocess": {"audio": {"duration": 0.25, "n_mels": 16, "n_fft": 256, "hop_length": 64}},
                             "model": {"name": "audio_cnn", "width": 4, "dense": 8},
                             "train": {"epochs": 2, "batch_size": 8}},
                       predict_input=folder / "new")


def write_tones(folder: Path, tones: dict[str, float], per_class: int, rate: int = 8000, seconds: float = 0.25,
                flat: bool = False, seed: int = 0) -> list[Path]:
    """Write noisy sine clips (16-bit WAV) per class: ``folder/<class>/<class>_<i>.wav``, or all in
    ``folder`` with ``flat``. Used by the contract example and the tests."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    written = []
    for label, hz in tones.items():
        sub = folder if flat else folder / label
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            wave = 0.5 * np.sin(2 * np.pi * hz * (1 + 0.02 * i) * t) + 0.05 * rng.normal(size=len(t))
            path = sub / f"{label}_{i}.wav"
            sf.write(path, wave.astype(np.float32), rate, subtype="PCM_16")
            written.append(path)
    return written
