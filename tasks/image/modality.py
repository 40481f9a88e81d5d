"""The image modality: store, validate, split, fit, evaluate, export and predict for images.

Pixels travel between tasks as ``.npz`` files in the cache (``[n, h, w, c]``, labels as class
indices, or for ``task: multilabel`` an ``[n, labels]`` 0/1 matrix). Fitting scales pixels to [0, 1] by the loader's nominal maximum, then (by default)
standardizes each channel with the mean and standard deviation of the training split; random
crops and flips, when enabled, apply to training batches only. The network is a registered
``model`` component (the default ``cnn``, the seed's network, is in ``networks.py``), trained and
saved by the neural base (:mod:`trainflow.tasks.common.neural`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.alerts import warn
from trainflow.cache_keys import cache_key
from trainflow.errors import DataError, SpecError
from trainflow.modality import Example
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, file_digest, load_npz, remember_npz, save_npz
from trainflow.registry import REGISTRY, component
from trainflow.tasks.common.assess import assess
from trainflow.tasks.common import holdout
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import neural, plots
from trainflow.tasks.common.neural import NeuralModality
from trainflow.tasks.common.validate import Check, run_expectations
from trainflow.tasks.common.manifest import read_new_manifest, saved_columns
from trainflow.tasks.image.loaders import (IMAGE_SUFFIXES, Images, ImageOptions, match_channels, read_images, read_npz,
                                           stack, to_nhwc)
from trainflow.tasks.common.examples import two_class_images
from trainflow.tasks.common.networks import cnn_shape, pooled_first
from trainflow.tasks.common import multilabel as ML
from trainflow.tasks.common.batch_reads import read_once

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec


# ---------------------------------------------------------------- store & validate


def store(images: Images, cache_dir: str, digest: str, config: Any) -> DataRef:
    """Save loaded images as ``.npz`` in the cache, named by the source's digest."""
    path = Path(cache_dir) / "data" / f"{digest}.npz"
    extra = {"is_test": images.is_test} if images.is_test is not None else {}
    if images.keys is not None:
        extra["keys"] = np.asarray(images.keys, dtype=str)
    if images.files is not None:
        extra["files"] = np.asarray(images.files)
    save_npz(path, x=images.x, y=images.y, **extra)  # rewritten on each load: see refs.store_parquet
    remember_npz(path, {"x": images.x, "y": images.y, **extra})  # split, next in this process, need not read it
    n, h, w, c = images.x.shape
    notes = [f"skipped unreadable image: {s}" for s in images.skipped]
    return DataRef(path=str(path), digest=digest, modality="image", meta={
        "rows": int(n), "shape": [int(h), int(w), int(c)], "classes": images.classes, "max_value": images.max_value,
        # files the loader left out (data.skip_unreadable), counted apart; validation bounds their share
        **({"rows_skipped": len(images.skipped), "skipped": list(images.skipped)} if images.skipped else {}),
        **({"labels": images.classes} if images.y.ndim == 2 else {}),
        "source": images.source, "predefined_test": images.is_test is not None, "notes": notes,
        "loader_options": config.model_dump(mode="json")})


#: skipped files named in the warning (all are in the validation summary and the report's notes)
SKIPPED_SHOWN = 5


class ImageValidation(BaseModel):
    """What the image checks tolerate."""

    model_config = ConfigDict(extra="forbid")
    # a few broken or stray files in a real corpus should not block it (text and audio allow the same share)
    max_unreadable_share: float = Field(0.005, ge=0, le=1, description="Largest share of image files left out as "
                                                                       "unreadable or of an odd size "
                                                                       "(data.skip_unreadable)")


def skipped_check(ref: DataRef, share: float) -> list[Check]:
    """The images read must be at least ``1 - share`` of the files found (none when none was left out)."""
    import math

    skipped = int(ref.meta.get("rows_skipped", 0))
    if not skipped:
        return []
    total = int(ref.meta["rows"]) + skipped
    shown = ", ".join(s.split(": ", 1)[0] for s in ref.meta["skipped"][:SKIPPED_SHOWN])
    warn(f"validate: {skipped} of {total} image file(s) left out of training and testing (unreadable or of an odd "
         f"size): {shown}{', ...' if skipped > SKIPPED_SHOWN else ''}")
    need = math.ceil(round((1 - share) * total, 9))
    return [Check("ExpectTableRowCountToBeBetween", {"min_value": need},
                  f"{skipped} of {total} image files were left out as unreadable or of an odd size, e.g. "
                  f"{ref.meta['skipped'][0]!r}; image_validation.max_unreadable_share allows {share:.1%} (raise it, or fix or remove the files)")]


def image_table(x: np.ndarray, y: np.ndarray, classes: list[str], files: np.ndarray | None = None) -> Any:
    """One row per image: label and its class count (multi-label: one ``label <name>`` column per
    label), height, width, channels, pixel min and max."""
    import pandas as pd

    flat = x.reshape(len(x), -1)
    if y.ndim == 2:
        labels = neural.label_columns(y, classes)
    else:
        labels = {"label": np.asarray(classes, dtype=object)[y], "class_count": np.bincount(y, minlength=len(classes))[y]}
    table = pd.DataFrame({**labels, "height": x.shape[1], "width": x.shape[2],
                          "channels": x.shape[3], "min": flat.min(1).astype(float), "max": flat.max(1).astype(float)})
    if files is not None:
        table.insert(0, "file", files)
    return table


def validate(ref: DataRef, spec: PipelineSpec, docs_dir: str | None) -> dict[str, Any]:
    """Great Expectations on the per-image table: labels and counts, shape, channels, pixel range."""
    arrays = load_npz(ref.path, mapped=True)  # in the validation child: the stored file, mapped
    y = arrays["y"]
    neural.check_label_shape(y, spec.task, f"'{ref.meta.get('source')}'")
    df = image_table(arrays["x"], y, ref.meta["classes"], arrays.get("files"))
    h, w, c = ref.meta["shape"]
    v = spec.validation
    checks = [Check("ExpectTableRowCountToBeBetween", {"min_value": v.min_rows}, f"validation.min_rows is {v.min_rows}"),
              *skipped_check(ref, spec.image_validation.max_unreadable_share)]
    if y.ndim == 2:
        checks += neural.label_value_checks(ref.meta["classes"])
    else:
        checks += [
            Check("ExpectColumnValuesToNotBeNull", {"column": "label"}, "every image needs a label"),
            Check("ExpectColumnUniqueValueCountToBeBetween", {"column": "label", "min_value": 2},
                  "a classifier needs at least two classes"),
            Check("ExpectColumnValuesToBeBetween", {"column": "class_count", "min_value": 2},
                  "each class needs at least two images (one to train on, one to test)")]
    checks += [
        Check("ExpectColumnValuesToBeInSet", {"column": "height", "value_set": [h]}, "all images share one size"),
        Check("ExpectColumnValuesToBeInSet", {"column": "width", "value_set": [w]}, "all images share one size"),
        Check("ExpectColumnValuesToBeInSet", {"column": "channels", "value_set": [1, 3]}, "gray or RGB images"),
        Check("ExpectColumnValuesToBeBetween", {"column": "min", "min_value": 0},
              "pixel values are not negative"),
        Check("ExpectColumnValuesToBeBetween", {"column": "max", "max_value": ref.meta["max_value"]},
              f"pixel values are at most the loader's maximum {ref.meta['max_value']:g}"),
    ]
    if v.labels and y.ndim == 1:
        checks.append(Check("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": [str(x) for x in v.labels]},
                            "validation.labels"))
    checks += [Check(e.type, dict(e.kwargs), "validation.expectations") for e in v.expectations]
    summary = run_expectations(df, checks, docs_dir, suite=spec.name).as_dict()
    summary["skipped_files"] = ref.meta.get("skipped", [])
    if y.ndim == 1:
        summary["class_counts"] = {k: int(n) for k, n in df["label"].value_counts().sort_index().items()}
    return summary


# ---------------------------------------------------------------- split


def split(ref: DataRef, spec: PipelineSpec, cache_dir: str) -> SplitRef:
    """The hold-out split (``tasks/common/holdout.py``): the loader's own test set (CIFAR's
    test_batch), the spec's column or groups (manifests), or a stratified holdout by ``split.seed``
    (multi-label: iterative stratification over the labels); one ``.npz`` per part."""
    from trainflow.tasks.common import leakage

    arrays = load_npz(ref.path, keep=False, mapped=True)  # the validation child reads the file itself
    x, y = arrays["x"], arrays["y"]
    source = f"'{ref.meta.get('source')}'"
    neural.check_label_shape(y, spec.task, source)  # also when validation is off
    multilabel = y.ndim == 2
    parts = holdout.assign(len(y), spec, str(ref.meta.get("source")), y=None if multilabel else y,
                           Y=y if multilabel else None, keys=arrays.get("keys"),
                           fixed_test=arrays["is_test"].astype(bool) if "is_test" in arrays else None,
                           what="images")
    notes = list(ref.meta.get("notes", []))
    notes += ["test split: the dataset's own test set"] if "is_test" in arrays and not spec.split.key else parts.notes
    digests = np.asarray(leakage.item_digests(x))  # once per image, in place: no copy of a part's pixels
    notes += holdout.leakage_notes(lambda idx: digests[idx], parts, "images", spec)
    if not multilabel:
        holdout.require_scorable(y, parts, source)
    key = cache_key(spec, data=ref.digest, split=spec.split.model_dump())
    folder = Path(cache_dir) / "splits" / key[:16]
    refs = {}
    for name, idx in parts.items():
        path = folder / f"{name}.npz"
        part = {"x": holdout.take_rows(x, idx), "y": y[idx]}  # a view where idx is one run of rows
        save_npz(path, **part)
        if name in ("train", "test"):  # fit and evaluate, next in this process, need not read them back
            remember_npz(path, part)
        refs[name] = DataRef(path=str(path), digest=file_digest(path), modality="image",
                             meta={**ref.meta, "rows": int(len(idx))})
    counts = ({"label_counts": holdout.label_counts(y, ref.meta["classes"], parts)} if multilabel
              else {"class_counts": holdout.class_counts(y, parts, ref.meta["classes"])})
    return holdout.split_ref(refs, {**counts, "notes": notes})


# ---------------------------------------------------------------- fit


class ImagePreprocess(BaseModel):
    """The spec's ``preprocess.image`` section."""

    model_config = ConfigDict(extra="forbid")
    # Standardizing each channel with training statistics speeds up and steadies training.
    normalize: Literal["per_channel", "scale", "none"] = Field(
        "per_channel", description="per_channel: scale to [0,1] then standardize with training mean/std; "
                                   "scale: [0,1] only; none: raw pixel values")
    # Augmentation is off by default: it helps natural photos (CIFAR) but flips turn digits into other shapes.
    flip: bool = Field(False, description="Random horizontal flips of training images")
    crop_padding: int = Field(0, ge=0, description="Random crops after padding by this many pixels (0 = off)")


def scale_stats(x: np.ndarray, max_value: float, normalize: str) -> tuple[float, list[float], list[float]]:
    """Divisor, per-channel mean and std (from training images) for :func:`to_tensor`."""
    c = x.shape[-1]
    if normalize == "none":
        return 1.0, [0.0] * c, [1.0] * c
    if normalize == "scale":
        return float(max_value), [0.0] * c, [1.0] * c
    flat = x.reshape(-1, c).astype(np.float64) / max_value
    std = flat.std(0)
    return float(max_value), flat.mean(0).tolist(), np.where(std > 0, std, 1.0).tolist()


def to_tensor(x: np.ndarray, divisor: float, mean: list[float], std: list[float], device: Any = "cpu",
              channels_last: bool = False) -> Any:
    """``[n,h,w,c]`` pixels -> normalized float32 ``[n,c,h,w]`` tensor on ``device``.

    On a GPU the raw pixels are copied (a quarter of the float size for 8-bit images) and converted
    there when the float tensor fits in its memory; the arithmetic is the same, element by element.
    ``channels_last`` (CPU): the tensor keeps the pixels' NHWC memory order (channels-last strides),
    as CPU prediction wants it: no NCHW copy that each batch would copy back.
    """
    import torch

    from trainflow.tasks.common.training import fits_on_device

    device = torch.device(device)
    if device.type == "cuda" and fits_on_device(x.size * 4, device):
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device).permute(0, 3, 1, 2).contiguous().float()
    elif channels_last and device.type == "cpu":  # the same values; the float copy keeps the view's strides
        t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).to(torch.float32, copy=True)
    else:  # a float copy of its own, in the same layout as before (``x`` itself is never changed)
        t = _float_nchw(x)
    # in place on that copy: one float array in memory instead of three (CIFAR's 50,000 images: 600 MB each)
    # (the layout is kept as well: a gray image's "contiguous" NCHW view keeps NHWC strides, and the
    # convolutions compute differently for another layout: digits trains to other weights)
    t.div_(divisor)
    # a pass over the whole array each (CIFAR: 600 MB); subtracting 0 and dividing by 1 change no value
    if any(m != 0 for m in mean):
        t.sub_(torch.tensor(mean, device=t.device).view(1, -1, 1, 1))
    if any(d != 1 for d in std):
        t.div_(torch.tensor(std, device=t.device).view(1, -1, 1, 1))
    return t


def _float_nchw(x: np.ndarray) -> Any:
    """``x`` ``[n,h,w,c]`` as a float32 ``[n,c,h,w]`` tensor with the strides of
    ``np.ascontiguousarray(x.transpose(0, 3, 1, 2))`` (its own view where that is C-contiguous: a gray
    image's keeps NHWC strides), converted and transposed in one pass: no transposed 8-bit copy
    (CIFAR's 50,000 training images: 150 MB of fresh memory, 0.2-0.3 s CPU here)."""
    import warnings

    import torch

    view = x.transpose(0, 3, 1, 2)
    if min(x.strides, default=0) < 0 or not x.flags.aligned:  # torch.from_numpy takes neither
        return torch.from_numpy(np.ascontiguousarray(view)).to(torch.float32, copy=True)
    if view.flags.c_contiguous:
        strides = [s // x.itemsize for s in view.strides]
    else:
        strides = list(np.cumprod([1, *view.shape[:0:-1]])[::-1])
    t = torch.empty_strided(view.shape, [int(s) for s in strides], dtype=torch.float32)
    with warnings.catch_warnings():  # a read-only array (a mapped file) is only read here, never written
        warnings.simplefilter("ignore", UserWarning)
        source = torch.from_numpy(x)
    return t.copy_(source.permute(0, 3, 1, 2))


def augmenter(pre: ImagePreprocess) -> Any:
    """A function of a training batch ``[b,c,h,w]``: random crop with padding, horizontal flip."""
    if not pre.flip and not pre.crop_padding:
        return None
    import torch
    import torch.nn.functional as F

    p = pre.crop_padding

    def augment(x: Any) -> Any:
        b, c, h, w = x.shape
        if p:
            padded = F.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (b,)).to(x.device)
            dx = torch.randint(0, 2 * p + 1, (b,)).to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(b, c, h, w + 2 * p)
            x = padded.gather(2, rows)
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(b, c, h, w)
            x = x.gather(3, cols)
        if pre.flip:
            x = torch.where((torch.rand(b) < 0.5).to(x.device)[:, None, None, None], x.flip(3), x)
        return x

    return augment


def prepare(split_ref: SplitRef, spec: PipelineSpec) -> neural.Prepared:
    """Pixel scaling and standardization from the training images, the augmenter, the CNN's shape."""
    import torch

    from trainflow.devices import resolve_device

    arrays = load_npz(split_ref.train.path, keep=False)
    x, y = arrays["x"], arrays["y"]
    meta = split_ref.train.meta
    pre = spec.preprocess.image
    divisor, mean, std = scale_stats(x, meta["max_value"], pre.normalize)
    loader_opts = meta.get("loader_options", {})
    steps = [f"scale 1/{divisor:g}" if divisor != 1 else "raw pixels"]
    steps += ["standardize per channel"] if pre.normalize == "per_channel" else []
    steps += [s for s, on in ((f"random crop (pad {pre.crop_padding})", pre.crop_padding), ("horizontal flip", pre.flip)) if on]
    multilabel = y.ndim == 2  # one sigmoid output per label; the target is the 0/1 matrix
    device = resolve_device(spec.train.device)

    def part(ref: DataRef) -> tuple[Any, ...]:  # the validation part, scaled with the training statistics
        other = load_npz(ref.path, keep=False)
        return (to_tensor(other["x"], divisor, mean, std, device),
                torch.from_numpy(other["y"].astype(np.float32) if multilabel else other["y"]))

    return neural.Prepared(
        inputs=(to_tensor(x, divisor, mean, std, device),
                torch.from_numpy(y.astype(np.float32) if multilabel else y)),
        build={"in_shape": [int(x.shape[3]), int(x.shape[1]), int(x.shape[2])], "n_classes": len(meta["classes"])},
        config={"classes": meta["classes"], "max_value": meta["max_value"], "divisor": divisor, "mean": mean,
                "std": std, "size": meta["shape"][:2], "channels": int(x.shape[3]),
                "convert": loader_opts.get("convert", True), "manifest": saved_columns(loader_opts),
                **({"labels": meta["classes"]} if multilabel else {})},
        steps=steps, task="multilabel" if multilabel else "classification", augment=augmenter(pre),
        meta={"classes": meta["classes"]}, part=part)


def fit(split_ref: SplitRef, spec: PipelineSpec, cache_dir: str) -> ModelRef:
    """Train the spec's network on the training split with the shared loop; save safetensors + JSON."""
    return neural.fit(prepare(split_ref, spec), split_ref, spec, cache_dir, "image")


# ---------------------------------------------------------------- evaluate, export, predict


class _Scaling(BaseModel):
    """The pixel scaling an image model's config keeps (checked: a shared folder's file is untrusted)."""

    model_config = ConfigDict(extra="allow", strict=True)
    divisor: float = Field(gt=0)
    mean: list[float] | float
    std: list[float] | float
    channels: int | None = Field(None, ge=1, le=64)


def load_model(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild the network from its JSON config and load its safetensors weights."""
    from trainflow import trust

    model, config = neural.load_network(folder, "image",
                                        lambda c: {"in_shape": c["in_shape"], "n_classes": len(c["classes"])})
    trust.shaped(config, _Scaling, Path(folder) / neural.CONFIG_FILE, "image model config")  # (read once)
    return model, config


def probabilities(model: Any, config: dict[str, Any], x: np.ndarray, device: str = "auto") -> np.ndarray:
    """Class probabilities (multi-label: one per label) for ``[n,h,w,c]`` pixels, preprocessed as
    in training, computed on ``device`` (auto: the GPU when there is one)."""
    from trainflow.tasks.common.training import predict as forward
    from trainflow.devices import resolve_device

    device = resolve_device(device)
    # on a CPU the batches run channels-last (training.predict): the pixels are laid out so once
    inputs = to_tensor(x, config["divisor"], config["mean"], config["std"], device, channels_last=device.type == "cpu")
    logits = forward(pooled_first(model), inputs, batch_size=512, device=device)
    return neural.probabilities(logits, config)


def evaluate(model_ref: ModelRef, split_ref: SplitRef, spec: PipelineSpec, plots_dir: str) -> Evaluation:
    """Accuracy, per-class P/R/F1, confusion matrix and top-k on the test split; learning curves."""
    model, config = load_model(model_ref.path)
    arrays = load_npz(split_ref.test.path, keep=False)
    y = arrays["y"]
    proba = probabilities(model, config, arrays["x"], spec.train.device)
    if config.get("task") == "multilabel":
        return neural.label_evaluation(model_ref, config, y.astype(np.int64), proba, split_ref, spec, plots_dir)
    pred = proba.argmax(1)
    classes = config["classes"]
    names = spec.evaluate.metrics or (M.DEFAULTS["classification"] + ["top_2_accuracy"]
                                      + (["top_5_accuracy"] if len(classes) > 5 else []))
    metrics = M.score(names, y, pred, proba, classes)
    per_class, confusion = M.classification_details(y, pred, classes)
    charts, tables = neural.history_report(model_ref, config, plots_dir)
    charts = {"Confusion matrix": plots.confusion_matrix_png(confusion, Path(plots_dir) / "confusion_matrix.png"),
              **charts}
    return assess(Evaluation(metrics=metrics, per_class=per_class, confusion=confusion, plots=charts, tables=tables,
                             notes=list(split_ref.meta.get("notes", []))), spec, y, pred, proba, classes, plots_dir)


def readable_images(files: list[Path], opts: ImageOptions, source: Path) -> tuple[list[np.ndarray], list[int]]:
    """The images of ``files`` that can be read and their positions: each one that cannot is named in a
    warning and has no prediction (one corrupt file must not cost a batch its predictions), unless none
    can be read (DataError naming the first)."""
    arrays, kept, bad = read_images(files, opts, skip=True)
    neural.leave_out_unreadable(bad, len(files), source, "image file")
    return arrays, kept


@read_once
def read_new_images(path: Path, config: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Images to predict: a folder of image files (searched recursively), a CSV manifest naming image
    files (relative to its folder) in the file column of the training manifest ('file' by default),
    one image file, or an .npz with 'x' (and optionally 'names': each image's id, which a multimodal
    join by id or stem reads; else their positions). Multi-label: labels the input names that training never saw
    are warned about (:func:`neural.warn_unseen_labels`)."""
    h, w = config["size"]
    if path.is_file() and path.suffix.lower() == ".csv":
        m = read_new_manifest(path, config.get("manifest"), "image file")
        neural.warn_unseen_labels(config, path, table=m.table)
        opts = ImageOptions(path=str(path), size=(h, w), channels=config["channels"], convert=config["convert"])
        warn_adapted(m.files, config)
        arrays, kept = readable_images(m.files, opts, path)
        return stack(arrays, [m.files[i] for i in kept], str(path)), [m.names[i] for i in kept]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"The folder '{path}' holds no images (expected {', '.join(IMAGE_SUFFIXES)} files).")
        opts = ImageOptions(path=str(path), size=(h, w), channels=config["channels"], convert=config["convert"])
        warn_adapted(files, config)
        arrays, kept = readable_images(files, opts, path)
        return stack(arrays, [files[i] for i in kept], str(path)), [str(files[i].relative_to(path)) for i in kept]
    if path.suffix.lower() == ".npz":
        arrays = read_npz(path)
        if "x" not in arrays:
            raise DataError(f"'{path}' must hold an array 'x' of images; it holds {sorted(arrays)}.")
        x = to_nhwc(arrays["x"], str(path))
        if x.shape[-1] != config["channels"] and config["convert"]:
            warn(f"predict: converted {len(x)} image(s) of '{path}' from {x.shape[-1]} to {config['channels']} "
                 "channel(s), the training images' channels")
        x = match_channels(x, config["channels"], config["convert"], str(path))
        if tuple(x.shape[1:3]) != (h, w):
            raise DataError(f"'{path}' holds {x.shape[1]}x{x.shape[2]} images; the model expects {h}x{w}.")
        if "labels" in arrays:
            neural.warn_unseen_labels(config, path, names=[str(v) for v in arrays["labels"].reshape(-1).tolist()])
        names = arrays["names"].reshape(-1) if "names" in arrays else np.arange(len(x))
        if len(names) != len(x):
            raise DataError(f"'{path}' holds {len(x)} images in 'x' and {len(names)} ids in 'names'; give one per image.")
        return x, [str(v) for v in names.tolist()]
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        opts = ImageOptions(path=str(path), size=(h, w), channels=config["channels"], convert=config["convert"])
        warn_adapted([path], config)
        arrays, _, _ = read_images([path], opts, skip=False)
        return np.stack(arrays), [path.name]
    raise DataError(f"'{path}' is neither a folder of images, a CSV manifest of image files, an image file nor "
                    "an .npz file.")


def warn_adapted(files: list[Path], config: dict[str, Any]) -> None:
    """Warn, with the counts, when image files differ from the training images in size or channels
    (prediction resizes and converts them, which can cost accuracy)."""
    from PIL import Image, UnidentifiedImageError

    h, w = config["size"]
    resized = converted = 0
    for f in files:
        try:
            with Image.open(f) as im:  # reads the header only
                resized += im.size != (w, h)
                gray = im.mode in ("1", "L", "LA", "I", "I;16", "F")
                converted += (1 if gray else 3) != config["channels"]
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            pass  # read_images reports the unreadable file
    if resized:
        warn(f"predict: resized {resized} of {len(files)} image(s) to {h}x{w}, the training images' size")
    if converted:
        warn(f"predict: converted {converted} of {len(files)} image(s) to {config['channels']} channel(s), "
             "the training images' channels")


def predict(run_dir: str | Path, input_path: str | Path) -> Any:
    """Predicted class and class probabilities for each new image (multi-label: a 0/1 column and a
    probability column per label, the saved thresholds applied)."""
    return neural.predict_new(run_dir, input_path, load_model, read_new_images, probabilities, "item")


# ---------------------------------------------------------------- the modality


@component("modality", "image")
class Image(NeuralModality, stages_from=__name__):
    """Images, classified (one class, or any number of labels: task multilabel) by a CNN trained with
    the shared loop (safetensors + JSON).

    Per-channel normalization and augmentation are fitted on, and applied to, the training split."""

    sections = {**NeuralModality.sections, "preprocess.image": ImagePreprocess, "image_validation": ImageValidation}
    default_models = {"classification": "cnn", "multilabel": "cnn"}

    def drift_frame(self, run_dir: str | Path, source: DataRef | str | Path) -> Any:
        """Channel means and spreads and a grid of brightness per image (:mod:`trainflow.tasks.image.drift`)
        of a stored split part (``.npz``; at most :data:`~trainflow.tasks.common.drift.REFERENCE_ITEMS`
        of its images, seeded) or of new images, read as :func:`predict` reads them."""
        from trainflow import trust
        from trainflow.tasks.common.drift import reference_items
        from trainflow.tasks.image.drift import image_summaries

        config = trust.read_json(Path(run_dir) / neural.CONFIG_FILE)
        if isinstance(source, DataRef):
            x = load_npz(source.path, mapped=True)["x"]  # 10,000 items read, not the file
            x = x[reference_items(len(x))]  # a training part of 50,000 images: a seeded 10,000 of them
        else:
            x = read_new_images(Path(source), config)[0]
        return image_summaries(x, config["max_value"])

    def branch(self) -> Any:
        """The adapter that makes image data one input of a multimodal pipeline (this module's functions)."""
        import sys

        from trainflow.tasks.image.branch import ImageBranch

        return ImageBranch(sys.modules[__name__])

    def spec_problems(self, spec: PipelineSpec) -> list[str]:
        """The device; a network that would shrink the images to nothing, where the loader's options
        (``size``) or the loader itself (digits 8x8, CIFAR 32x32) tell the image size."""
        problems = super().spec_problems(spec) + ML.label_source_problems(
            spec.data.options(), spec.task, builtin=spec.data.loader != "image_manifest", target="label",
            hint=" of the 'image_manifest' loader, or an .npz with a 2-D 'y'")
        size = spec.data.options().get("size") or REGISTRY.get("loader", spec.data.loader).extra.get("image_size")
        if spec.model.name == "cnn" and size and not spec.model.problems("model", task=spec.task):
            try:
                cnn_shape(spec.model.resolve("model", task=spec.task)[1], int(size[0]), int(size[1]))
            except SpecError as exc:
                problems += exc.problems
        return problems

    def scoring_rows(self, split: SplitRef) -> tuple[Path, Any]:
        """The test part's ``.npz`` (its array ``x`` is what ``predict`` reads) and its true classes
        (multi-label: a frame of 0/1 label columns)."""
        y = load_npz(split.test.path, keep=False)["y"]
        classes = split.test.meta["classes"]
        if y.ndim == 2:
            import pandas as pd

            return Path(split.test.path), pd.DataFrame(y.astype(np.int64), columns=classes)
        return Path(split.test.path), [classes[int(i)] for i in y]

    def example(self, folder: Path) -> Example:
        """24 gray 8x8 images of two classes (:func:`two_class_images`)."""
        x, y = two_class_images(24)
        np.savez(folder / "images.npz", x=x, y=y)
        np.savez(folder / "new.npz", x=x[:4])
        return Example(spec={"data": {"loader": "npz", "path": str(folder / "images.npz")},
                             "model": {"width": 4, "dense": 8}, "train": {"epochs": 2, "batch_size": 8}},
                       predict_input=folder / "new.npz")
