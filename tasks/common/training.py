"""The one PyTorch training loop, shared by every neural model (images, sequences, ...).

    train_model(model, train, val, config, seed=..., checkpoint_dir=...) -> TrainResult

``train`` and ``val`` are tuples of tensors ``(*inputs, target)`` (the model is called as
``model(*inputs)``), or any ``torch.utils.data.Dataset`` whose items are such tuples. One epoch:
shuffle (or draw with ``sampler_weights``), optional ``augment`` of each training batch, forward,
loss (+ L1), backward, step; then validation loss/accuracy, the scheduler step, early stopping, a
log line, the Prefect progress artifact, and a checkpoint written atomically. The checkpoint holds
model, optimizer, scheduler, RNG states, history and early-stopping state, saved with
``torch.save`` of plain state dicts and loaded with ``weights_only=True`` (no pickled objects).
A run that finds a checkpoint in ``checkpoint_dir`` resumes after its last epoch, so a retried or
re-run training reaches the same weights as an uninterrupted one (bit for bit on CPU). Inside
:func:`fresh_start` (``--refresh-cache``) checkpoints are ignored and training starts at epoch 1; a
checkpoint that cannot be read is reported and training starts over (the cache is disposable).

On a GPU, tensor data that fits in device memory is moved there once and batches are indexed on
the device (no copy per batch); larger data and ``Dataset`` inputs go through a pinned-memory
``DataLoader`` (with worker processes for datasets). ``precision: bf16`` runs forward passes
under bfloat16 autocast and ``channels_last`` stores 4-d inputs and conv weights NHWC; both are
off by default because the small default networks are overhead-bound, not compute-bound.

Torch is imported inside functions: this module is imported by the spec, which must stay light.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainflow.devices import resolve_device
from trainflow.errors import TrainflowError
from trainflow.refs import json_digest
from trainflow.tasks.common.selection import listener

CHECKPOINT = "checkpoint.pt"

# A context variable, not a train_model argument: the modality modules call train_model, and a
# refresh is decided by the flow's fit task, which calls them through their fixed fit() interface.
_FRESH_START: ContextVar[bool] = ContextVar("trainflow_fresh_start", default=False)


@contextlib.contextmanager
def fresh_start(on: bool = True) -> Iterator[None]:
    """Within this block, :func:`train_model` ignores (and overwrites) existing checkpoints."""
    token = _FRESH_START.set(on)
    try:
        yield
    finally:
        _FRESH_START.reset(token)


class TrainConfig(BaseModel):
    """How a network is trained (the spec's ``train`` section)."""

    model_config = ConfigDict(extra="forbid")
    # Adam with lr 1e-3 works for small CNNs and RNNs without tuning (the seed's recipe).
    optimizer: Literal["sgd", "adam", "adamw"] = Field("adam", description="sgd | adam | adamw")
    lr: float = Field(1e-3, gt=0, description="Learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (0.9 is the usual choice)")
    nesterov: bool = Field(False, description="Nesterov momentum (SGD only)")
    # No schedule by default: short runs gain little, and a schedule is one more thing to explain.
    schedule: Literal["none", "step", "cosine"] = Field("none", description="Learning-rate schedule, stepped per epoch")
    step_size: int = Field(10, ge=1, description="Epochs between decays (schedule: step)")
    gamma: float = Field(0.1, gt=0, le=1, description="Decay factor (schedule: step)")
    # Regularization is off by default so the seed's recipe is reproduced exactly.
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty (decoupled for adamw)")
    l1: float = Field(0.0, ge=0, description="L1 penalty on all parameters, added to the loss")
    loss: Literal["auto", "cross_entropy", "mse", "binary_cross_entropy"] = Field(
        "auto", description="auto: cross_entropy for classification, binary_cross_entropy (one sigmoid output per "
                            "label) for multilabel, mse for regression/forecasting")
    # softer targets keep a network from growing over-confident on the voices (or styles) it trained on;
    # an ensemble's averaged probabilities gain most (FSDD, one speaker held out: docs/untuned.md)
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="classification with cross_entropy: the target puts "
                                                                "1 - this on the true class and spreads this over all "
                                                                "classes (0: off)")
    epochs: int = Field(10, ge=1, description="Maximum number of epochs")
    batch_size: int = Field(128, ge=1, description="Examples per gradient step")
    # Early stopping needs a validation split; both off by default (the test split is never used).
    patience: int = Field(0, ge=0, description="Stop after this many epochs without a better val loss; 0 = off")
    val_fraction: float = Field(0.0, ge=0, lt=1, description="Share of training data held out for validation")
    restore_best: bool = Field(True, description="Keep the weights of the best epoch (by 'monitor')")
    # InceptionTime's recipe: no carve-out, keep the epoch of the lowest training loss; a 10-series
    # carve-out of a small UCR set is too noisy to pick an epoch (and costs 20% of the data).
    monitor: Literal["val_loss", "train_loss"] = Field(
        "val_loss", description="The loss that picks the best epoch and drives early stopping: val_loss (needs a "
                                "validation split; without one the last epoch is kept) or train_loss")
    # Imbalance: weight the loss by inverse class frequency, or draw examples with those weights.
    # Multi-label: class_weight balances each label's 1s and 0s; oversample has no per-label meaning
    # (an example carries several labels at once), so the spec refuses it there.
    imbalance: Literal["none", "class_weight", "oversample"] = Field(
        "none", description="none | class_weight (weighted loss; multilabel: each label's 1s and 0s weighted "
                            "to balance) | oversample (weighted sampler; single-label tasks only)")
    # Off by default: weighting positives raises recall of rare labels at the cost of precision.
    pos_weight: Literal["none", "balanced"] = Field(
        "none", description="multilabel: balanced weights each label's positive examples by its negatives/positives "
                            "ratio in the training split (BCEWithLogits pos_weight)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto picks CUDA when present")
    num_threads: int = Field(0, ge=0, description="CPU threads for torch; 0 = the run's resources.threads")
    checkpoint: bool = Field(True, description="Checkpoint every epoch and resume from it after a crash")
    # Measured on an H200 with the seed's CNN: neither helps a network this small (see benchmarks/RESULTS.md).
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: bfloat16 autocast for forward passes")
    channels_last: bool = Field(False, description="NHWC memory layout for image batches and conv weights")
    # A network may declare a recipe scaled to the data (deep conv nets underfit small sets at the
    # defaults above); it fills only the fields a spec leaves at their defaults, and the report says so.
    recipe: bool = Field(True, description="Let the network's training recipe (if it has one) fill the fields "
                                           "left at their defaults: epochs, batch size, schedule, early stopping")


#: the fields a model's training recipe may fill
RECIPE_FIELDS = ("epochs", "batch_size", "schedule", "val_fraction", "patience", "monitor")
#: a recipe field left alone when the spec sets one of these (a spec that asks for a validation
#: split or early stopping means the validation loss, whatever the recipe prefers)
RECIPE_TIES = {"monitor": ("val_fraction", "patience")}


def apply_recipe(config: TrainConfig, recipe: Callable[[int], dict[str, Any]] | None,
                 n: int, has_validation: bool = False) -> tuple[TrainConfig, list[str]]:
    """``config`` with the fields of ``recipe(n)`` (``n``: training examples) that the spec does not set,
    and a note saying what was filled; unchanged without a recipe or with ``recipe: false``. A field the
    spec sets is kept even when it equals the default (``epochs: 10`` means 10), and so is a field
    tied to one the spec sets (:data:`RECIPE_TIES`). ``has_validation``: the split gives a validation
    part, which counts as the spec setting ``val_fraction`` (the recipe's carve-out and monitor stay out)."""
    if recipe is None or not config.recipe:
        return config, []
    chosen = config.model_fields_set | ({"val_fraction"} if has_validation else set())
    filled = {k: v for k, v in recipe(n).items()
              if k in RECIPE_FIELDS and k not in chosen and not chosen.intersection(RECIPE_TIES.get(k, ()))
              and v != getattr(config, k)}
    if not filled:
        return config, []
    return config.model_copy(update=filled), [
        "training recipe for " + f"{n} training examples: " + ", ".join(f"{k} {v}" for k, v in filled.items())
        + " (fields the spec does not set; set them in 'train', or train.recipe: false, to choose)"]


@dataclass
class TrainResult:
    """What training produced; the model itself is trained in place."""

    history: list[dict[str, float]]
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    device: str
    resumed_from: int = 0  # epoch of the checkpoint training resumed from (0 = fresh start)
    setup_seconds: float = 0.0  # from the call to the first epoch (device, data placement, optimizer, checkpoint)
    checkpoint: str | None = None
    notes: list[str] = field(default_factory=list)
    validation: Any = None  # indices of the training examples held out for validation (when carved here)

    def report_notes(self) -> list[str]:
        """Notes for the run report, including where training resumed."""
        resumed = [f"resumed from the checkpoint of epoch {self.resumed_from}"] if self.resumed_from else []
        return self.notes + resumed


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Within this block torch uses ``n`` CPU threads (0: the run's, :func:`trainflow.resources.current`);
    the previous count is restored after, so a spec's ``train.num_threads`` does not leak into later
    runs of the process (a sweep, the next demo, a notebook)."""
    import torch

    from trainflow import resources

    n = n or resources.current()

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def checkpoint_dir(cache_dir: str, *key: Any) -> str:
    """A checkpoint folder that is the same for the same inputs (split digest, spec, seed, ...),
    so a retried task or a re-run of a crashed run finds the checkpoint it left."""
    return str(Path(cache_dir) / "checkpoints" / json_digest(list(key))[:16])


# ---------------------------------------------------------------- data helpers


def _size(data: Any) -> int:
    return len(data[0]) if isinstance(data, tuple) else len(data)


def _batch(data: Any, idx: Any) -> tuple[Any, ...]:
    if isinstance(data, tuple):
        return tuple(t[idx] for t in data)
    from torch.utils.data import default_collate

    return tuple(default_collate([data[int(i)] for i in idx]))


def _subset(data: Any, idx: Any) -> Any:
    if isinstance(data, tuple):
        return tuple(t[idx] for t in data)
    from torch.utils.data import Subset

    return Subset(data, idx.tolist())


def _targets(data: Any) -> Any:
    return data[-1] if isinstance(data, tuple) else None


#: share of free device memory that training data may take when moved to the device whole
DEVICE_DATA_SHARE = 0.5


def fits_on_device(tensors: tuple[Any, ...] | int, device: Any) -> bool:
    """True when ``tensors`` (or that many bytes) may live on a CUDA ``device`` whole (at most
    :data:`DEVICE_DATA_SHARE` of its free memory); always False for the CPU."""
    import torch

    if device.type != "cuda":
        return False
    nbytes = tensors if isinstance(tensors, int) else sum(t.numel() * t.element_size() for t in tensors)
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_DATA_SHARE * free


def place(data: Any, device: Any, channels_last: bool = False) -> tuple[Any, bool]:
    """``data`` moved to ``device`` once when it is a tuple of tensors that fits there; ``(data, on_device)``.

    Inputs of 4 dimensions are made channels-last when asked (once, instead of per batch).
    """
    if not isinstance(data, tuple) or not fits_on_device(data, device):
        return data, device.type == "cpu"
    return tuple(_layout(t.to(device), channels_last) if i < len(data) - 1 else t.to(device)
                 for i, t in enumerate(data)), True


def _layout(t: Any, channels_last: bool) -> Any:
    import torch

    return t.contiguous(memory_format=torch.channels_last) if channels_last and t.dim() == 4 else t


class _Batches:
    """A map-style dataset whose item ``i`` is the ``i``-th batch (for a pinned-memory DataLoader)."""

    def __init__(self, data: Any, batches: list[Any]):
        self.data, self.batches = data, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        return _batch(self.data, self.batches[i])


def batches(data: Any, order: Any, batch_size: int, device: Any, on_device: bool) -> Any:
    """The batches of ``data`` in ``order``, ready on ``device``.

    Data already on the device (or a CPU run) is indexed directly; otherwise batches are gathered
    into pinned memory (by worker processes for a ``Dataset``, whose items may need I/O) and copied
    asynchronously, so the GPU does not wait for the host.
    """
    if on_device:
        order = order.to(device)
        for b in range(0, len(order), batch_size):
            yield _batch(data, order[b:b + batch_size])
        return
    from torch.utils.data import DataLoader

    chunks = list(order.split(batch_size))
    workers = 0 if isinstance(data, tuple) else min(4, max((os.cpu_count() or 1) - 1, 0))
    loader = DataLoader(_Batches(data, chunks), batch_size=None, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    for batch in loader:
        yield tuple(t.to(device, non_blocking=True) for t in batch)


def autocast(device: Any, precision: str) -> Any:
    """bfloat16 autocast for ``precision: bf16``, else a no-op context."""
    import contextlib

    import torch

    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def carve_validation(n: int, y: Any, fraction: float, seed: int, stratify: bool) -> tuple[Any, Any]:
    """Train and validation indices; stratified by ``y`` when asked and every class has 2+ rows. A
    2-D ``y`` (a multi-label 0/1 matrix) is stratified by iterative stratification over its labels."""
    import numpy as np
    import torch
    from sklearn.model_selection import train_test_split

    if stratify and y is not None and y.dim() == 2:
        from trainflow.tasks.common.multilabel import holdout_indices

        tr, va = holdout_indices(y.cpu().numpy().round().astype(np.int64), fraction, seed)
        return torch.as_tensor(tr), torch.as_tensor(va)
    labels = y.cpu().numpy() if stratify and y is not None else None
    if labels is not None and np.unique(labels, return_counts=True)[1].min() < 2:
        labels = None
    tr, va = train_test_split(np.arange(n), test_size=fraction, random_state=seed, stratify=labels)
    return torch.as_tensor(np.sort(tr)), torch.as_tensor(np.sort(va))


def balanced_weights(y: Any) -> Any:
    """Per-class weights ``n / (k * count)`` (scikit-learn's "balanced"); 0 for absent classes."""
    import torch

    y = torch.as_tensor(y).long().cpu()
    counts = torch.bincount(y).float()
    return torch.where(counts > 0, len(y) / (int((counts > 0).sum()) * counts.clamp(min=1)), torch.zeros_like(counts))


def label_weights(Y: Any) -> tuple[Any, Any]:
    """Per-label weights of the 1s and of the 0s of a 0/1 label matrix ``Y`` [n, labels], each
    ``n / (2 * count)`` (scikit-learn's "balanced", label by label); 1 for a label constant in ``Y``."""
    import torch

    Y = torch.as_tensor(Y).float().cpu()
    pos, n = Y.sum(0), float(len(Y))
    neg = n - pos
    both = (pos > 0) & (neg > 0)
    one = torch.ones_like(pos)
    return (torch.where(both, n / (2 * pos.clamp(min=1)), one), torch.where(both, n / (2 * neg.clamp(min=1)), one))


def positive_weights(Y: Any) -> Any:
    """BCEWithLogits ``pos_weight`` per label: negatives / positives of ``Y``; 1 for a constant label."""
    import torch

    Y = torch.as_tensor(Y).float().cpu()
    pos = Y.sum(0)
    neg = len(Y) - pos
    return torch.where((pos > 0) & (neg > 0), neg / pos.clamp(min=1), torch.ones_like(pos))


@dataclass
class _Loss:
    kind: str  # cross_entropy | mse | binary_cross_entropy
    weight: Any  # class weights (cross_entropy), (weights of 1s, weights of 0s) per label (bce), or None
    classify: bool  # targets are class indices
    pos_weight: Any = None  # per label (binary_cross_entropy)
    smoothing: float = 0.0  # label smoothing (cross_entropy)

    def __call__(self, out: Any, y: Any) -> Any:
        import torch.nn.functional as F

        if out.dim() == 3 and self.classify:  # an ensemble's members [members, batch, classes]: their sum, so
            return sum(self(o, y) for o in out)  # each member's gradient is its own, as if trained alone
        if self.kind == "binary_cross_entropy":  # one sigmoid output per label, y a 0/1 matrix
            y = y.to(out.dtype)
            weight = None if self.weight is None else y * self.weight[0] + (1 - y) * self.weight[1]
            return F.binary_cross_entropy_with_logits(out, y, weight=weight, pos_weight=self.pos_weight)
        if self.kind == "cross_entropy":
            return F.cross_entropy(out, y, weight=self.weight, label_smoothing=self.smoothing)
        if self.classify:  # mse between class probabilities and one-hot targets
            return F.mse_loss(out.softmax(1), F.one_hot(y.long(), out.shape[1]).to(out.dtype))
        return F.mse_loss(out.reshape(y.shape), y.to(out.dtype))


#: examples per forward pass when predicting on a GPU (inference holds no activations for backward)
GPU_PREDICT_BATCH = 4096


def predict(model: Any, inputs: Any, batch_size: int = 512, device: Any = None, precision: str = "fp32") -> Any:
    """Model outputs for ``inputs`` (a tensor or tuple of tensors), batched on ``device`` (default: the
    model's); the model is moved there. On a GPU the inputs go there whole when they fit, batches are
    at least :data:`GPU_PREDICT_BATCH` and outputs come back in one copy. Returns a CPU float tensor."""
    import torch

    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    model.eval()
    if device.type == "cuda":
        batch_size = max(batch_size, GPU_PREDICT_BATCH)
        if fits_on_device(inputs, device):
            inputs = tuple(t.to(device) for t in inputs)
    outs = []
    nhwc = device.type == "cpu" and _to_channels_last(model, inputs)
    try:
        with torch.inference_mode(), autocast(device, precision):
            for start in range(0, len(inputs[0]), batch_size):
                batch = (_layout(t[start:start + batch_size].to(device, non_blocking=True), nhwc) for t in inputs)
                outs.append(model(*batch).float())
    finally:
        if nhwc:  # the weights go back as they were: a saved model's tensors must be contiguous
            model.to(memory_format=torch.contiguous_format)
    return torch.cat(outs).cpu() if outs else torch.empty(0)


def _to_channels_last(model: Any, inputs: tuple[Any, ...]) -> bool:
    """Switch a CPU model with 4-d inputs and 4-d (conv) weights to channels-last for prediction; True
    when it did. On a CPU oneDNN's convolutions and pooling run about twice as fast NHWC (10,000
    CIFAR-sized images through the seed CNN: 4.7 s instead of 11.0 s); outputs agree to ~1e-7."""
    import torch

    if not any(t.dim() == 4 for t in inputs):
        return False
    convs = [p for p in model.parameters() if p.dim() == 4]
    if not convs or any(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs):
        return False  # no convolutions, or already channels-last (train.channels_last): left as it is
    model.to(memory_format=torch.channels_last)
    return True


def _evaluate(model: Any, data: Any, loss_fn: _Loss, batch_size: int, device: Any, on_device: bool,
              precision: str = "fp32") -> dict[str, float]:
    import torch

    model.eval()
    # Sums stay on the device: one synchronization per evaluation, not one per batch.
    # (float64, like the Python floats these sums were before: the same figures on CPU).
    total, correct, n = torch.zeros((), dtype=torch.float64, device=device), torch.zeros((), device=device), 0
    with torch.no_grad():
        for *x, y in batches(data, torch.arange(_size(data)), batch_size, device, on_device):
            with autocast(device, precision):
                out = model(*x)
            total += loss_fn(out.float(), y).double() * len(y)
            if loss_fn.classify:
                correct += (out.argmax(1) == y).sum()
            n += len(y)
    metrics = {"val_loss": float(total) / max(n, 1)}
    if loss_fn.classify:
        metrics["val_accuracy"] = float(correct) / max(n, 1)
    return metrics


# ---------------------------------------------------------------- checkpoints


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the checkpoint so that a reader (or a resume after a kill) sees a whole file or the old one.

    No fsync: a killed process's writes survive in the page cache, and the rename makes the new file
    appear whole or not at all. Only a crash of the machine itself could leave a damaged file, which
    :func:`_resume_state` reports before training from epoch 1 (a checkpoint is a disposable cache),
    whereas an fsync per epoch cost ~10 ms of disk wait (3% of a digits epoch, more on a busy disk)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, device: Any = "cpu") -> dict[str, Any] | None:
    """A checkpoint's state (tensors, numbers, lists, dicts only), or None when there is none."""
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated, or not a checkpoint of ours
        raise TrainflowError(f"The checkpoint '{path}' cannot be read ({type(exc).__name__}: {exc}).") from None


def _rng_state(gen: Any) -> dict[str, Any]:
    import torch

    state = {"torch": torch.get_rng_state(), "loader": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.stack([s for s in torch.cuda.get_rng_state_all()])
    return state


def _set_rng_state(state: dict[str, Any], gen: Any) -> None:
    import torch

    torch.set_rng_state(state["torch"].cpu())
    gen.set_state(state["loader"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _resume_state(ckpt: Path, device: Any, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None to start at epoch 1 (fresh start asked for, or the
    checkpoint is unreadable: both said in the log)."""
    if _FRESH_START.get():
        if ckpt.exists():
            log(f"refresh: ignoring the checkpoint in {ckpt.parent}; training from epoch 1")
        return None
    try:
        return load_checkpoint(ckpt, device)
    except TrainflowError as exc:
        log(f"{exc} Training from epoch 1 instead.")
        return None


# ---------------------------------------------------------------- progress


class _Progress:
    """A Prefect progress artifact, only when running inside a flow or task run."""

    def __init__(self, key: str | None, description: str):
        self.id, self.last = None, -math.inf
        try:
            from prefect.artifacts import create_progress_artifact
            from prefect.context import FlowRunContext, TaskRunContext

            if FlowRunContext.get() or TaskRunContext.get():
                self.id = create_progress_artifact(progress=0.0, key=key, description=description)
        except Exception:  # progress is cosmetic: never fail training for it
            self.id = None

    #: at most one update per this many seconds (each is an API call: ~50 ms on a busy machine), except the last one
    EVERY_S = 5.0

    def update(self, percent: float) -> None:
        if self.id is None or (percent < 100 and time.monotonic() - self.last < self.EVERY_S):
            return
        self.last = time.monotonic()
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self.id, progress=round(percent, 1))
        except Exception:
            pass


#: the progress artifact, for other long loops (a forecast panel's series)
Progress = _Progress


# ---------------------------------------------------------------- the loop


def train_model(model: Any, train: Any, val: Any, config: TrainConfig, **options: Any) -> TrainResult:
    """Train ``model`` in place with ``config``; resume from ``checkpoint_dir`` if it holds a checkpoint.

    ``val``: the validation part's tensors (the split's), or None: with ``config.val_fraction > 0`` one is then carved from
    ``train`` (stratified for classification, by iterative stratification for multilabel; its
    indices are returned in ``TrainResult.validation``). ``task: multilabel`` takes a 0/1 target
    matrix and trains one sigmoid output per label (binary cross-entropy). ``class_weights`` (one per class) weight the loss;
    ``sampler_weights`` (one per training example) draw each epoch's examples with replacement.
    ``augment(x_batch)`` transforms the inputs of training batches only (using torch's RNG); an
    ``augment`` whose attribute ``rows`` is true is called ``augment(x_batch, rows)`` with the batch's
    row indices into ``train`` (e.g. to draw precomputed variants of each example).
    After each epoch's checkpoint is written, the epoch's row (``epoch``, ``train_loss``, ``val_loss``...)
    goes to one listener: ``on_epoch(row)`` where given, else the listener of
    :func:`~trainflow.tasks.common.selection.reporting` (a tuner's pruner); when it answers true,
    training stops there, the best weights are restored as after early stopping, and the checkpoint
    records the stop. Raises TrainflowError for
    an unusable device or checkpoint. Torch runs at ``config.num_threads`` threads for the call only.

    ``options``: ``seed``, ``checkpoint_dir``, ``task``, ``class_weights``, ``sampler_weights``, ``augment``,
    ``progress_key``, ``on_epoch``, ``log`` (keywords of :func:`_train_model`).
    """
    with torch_threads(config.num_threads):
        return _train_model(model, train, val, config, **options)


def _train_model(
    model: Any,
    train: Any,
    val: Any,
    config: TrainConfig,
    *,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    task: str = "classification",
    class_weights: Any = None,
    sampler_weights: Any = None,
    augment: Callable[[Any], Any] | None = None,
    progress_key: str | None = None,
    on_epoch: Callable[[dict[str, float]], bool | None] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """The loop of :func:`train_model`, at the thread count it set: set-up, resume, epochs, the result."""
    import torch

    started = time.perf_counter()
    device = resolve_device(config.device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = _prepare_data(train, val, config, seed, task, class_weights, sampler_weights, device)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    data.place(device, config.channels_last)
    run = _Run(model, *_optimizer(model, config), _loss(config, task, data, device), gen, data, config, augment, device)
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir and config.checkpoint else None
    state = _resume(run, ckpt, device, log) if ckpt else _Stopping()
    resumed_from = state.epoch
    progress = _Progress(progress_key, f"training {type(model).__name__} for {config.epochs} epochs")
    progress.update(100.0 * state.epoch / config.epochs)
    setup_seconds = time.perf_counter() - started
    # the one listener of the epochs' scores, which may stop training: the caller's, else the one of
    # selection.reporting (a tuner's pruner)
    listen = (lambda _, row: on_epoch(row)) if on_epoch is not None else listener()
    for epoch in range(state.epoch + 1, config.epochs + 1):
        if state.stopped:
            break
        row = run.epoch(epoch)
        state.track(row, config, model)
        _log_epoch(log, row, config.epochs, state.stopped)
        if ckpt is not None:
            _save_checkpoint(ckpt, run.checkpoint(state))
        progress.update(100.0 * (config.epochs if state.stopped else epoch) / config.epochs)
        if listen is not None and listen(epoch, row) and not state.stopped:
            state.stopped = state.asked_to_stop = True  # e.g. an Optuna trial pruned: the checkpoint says so
            if ckpt is not None:
                _save_checkpoint(ckpt, run.checkpoint(state))
    notes = data.notes + state.finish(model, config)
    progress.update(100.0)
    trained = sum(h["seconds"] for h in state.history[resumed_from:])
    log(f"training: {len(state.history) - resumed_from} epochs in {trained:.2f} s on {device} "
        f"(set-up {setup_seconds:.2f} s, whole call {time.perf_counter() - started:.2f} s)")
    return TrainResult(history=state.history, best_epoch=state.best_epoch, epochs_run=len(state.history),
                       stopped_early=state.stopped, device=str(device), resumed_from=resumed_from,
                       checkpoint=str(ckpt) if ckpt else None, notes=notes, setup_seconds=setup_seconds,
                       validation=data.carved)


# ---------------------------------------------------------------- set-up: data, weights, optimizer, loss


@dataclass
class _Data:
    """The training and validation parts as the loop uses them, with the weights chosen for them."""

    train: Any
    val: Any
    class_weights: Any = None
    sampler_weights: Any = None
    label_targets: Any = None  # multi-label: the training part's 0/1 matrix (per-label weights)
    carved: Any = None  # indices held out for validation, when carved here
    rows: Any = None  # the rows of the caller's ``train`` that ``train`` holds, when a validation part was carved
    notes: list[str] = field(default_factory=list)
    train_on_device: bool = True
    val_on_device: bool = True

    def place(self, device: Any, channels_last: bool) -> None:
        """Move the parts to ``device`` where they fit (see :func:`place`)."""
        self.train, self.train_on_device = place(self.train, device, channels_last)
        if self.val is not None:
            self.val, self.val_on_device = place(self.val, device, channels_last)
        if device.type == "cuda":
            self.notes.append("data on the GPU" if self.train_on_device else "data fed from pinned host memory")


def _prepare_data(train: Any, val: Any, config: TrainConfig, seed: int, task: str, class_weights: Any,
                  sampler_weights: Any, device: Any) -> _Data:
    """The validation part (carved from ``train`` when none is given and ``val_fraction`` asks for
    one) and the class, label or sampling weights ``train.imbalance`` asks for."""
    import torch

    data = _Data(train, val, class_weights, sampler_weights)
    if val is None and config.val_fraction > 0:
        tr, va = carve_validation(_size(train), _targets(train), config.val_fraction, seed,
                                  stratify=task in ("classification", "multilabel"))
        data.carved, data.train, data.val, data.rows = va, _subset(train, tr), _subset(train, va), tr
        if sampler_weights is not None:
            data.sampler_weights = torch.as_tensor(sampler_weights)[tr]
        data.notes.append(f"validation: {len(va)} of {len(tr) + len(va)} training examples held out for early stopping")
    if task == "multilabel" and config.imbalance == "oversample":
        raise TrainflowError("train.imbalance 'oversample' has no multi-label meaning; use 'class_weight' or "
                             "train.pos_weight 'balanced'.")
    train = data.train
    if task == "multilabel":
        data.label_targets = (_targets(train) if isinstance(train, tuple)
                              else torch.stack([torch.as_tensor(train[i][-1]) for i in range(len(train))]))
        if config.imbalance == "class_weight" and data.class_weights is None:
            data.class_weights = label_weights(data.label_targets)
    if (config.imbalance != "none" and task == "classification" and data.class_weights is None
            and data.sampler_weights is None):
        y = _targets(train) if isinstance(train, tuple) else torch.as_tensor([train[i][-1] for i in range(len(train))])
        per_class = balanced_weights(y)
        if config.imbalance == "class_weight":
            data.class_weights = per_class
        else:
            data.sampler_weights = per_class[y.long().cpu()]
    return data


def _optimizer(model: Any, config: TrainConfig) -> tuple[list[Any], Any, Any]:
    """The trained parameters, their optimizer and its learning-rate schedule (None: constant)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0,
                              weight_decay=config.weight_decay)
    elif config.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = None
    if config.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.step_size, gamma=config.gamma)
    elif config.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    return params, opt, sched


def _loss(config: TrainConfig, task: str, data: _Data, device: Any) -> _Loss:
    """The loss ``train.loss`` names (``auto``: by task), weighted as :func:`_prepare_data` chose."""
    import torch

    kind = config.loss if config.loss != "auto" else {"classification": "cross_entropy",
                                                      "multilabel": "binary_cross_entropy"}.get(task, "mse")
    if data.class_weights is None:
        weight = None
    elif kind == "binary_cross_entropy":
        weight = tuple(torch.as_tensor(w, dtype=torch.float32, device=device) for w in data.class_weights)
    else:
        weight = torch.as_tensor(data.class_weights, dtype=torch.float32, device=device)
    pos_weight = (positive_weights(data.label_targets).to(device)
                  if kind == "binary_cross_entropy" and config.pos_weight == "balanced" else None)
    return _Loss(kind, weight, classify=task == "classification", pos_weight=pos_weight,
                 smoothing=config.label_smoothing if kind == "cross_entropy" else 0.0)


# ---------------------------------------------------------------- the epochs


@dataclass
class _Stopping:
    """Where training stands: epochs done, their history, and the early-stopping state (the best
    weights are kept on CPU when a metric is monitored). A checkpoint holds it beside the weights."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    bad: int = 0
    best_state: dict[str, Any] | None = None
    stopped: bool = False
    asked_to_stop: bool = False  # stopped by the caller's on_epoch, not by patience

    def track(self, row: dict[str, float], config: TrainConfig, model: Any) -> None:
        """Record the epoch's row; update the best epoch and the patience count."""
        epoch = self.epoch = int(row["epoch"])
        if config.monitor in row:
            if row[config.monitor] < self.best_loss:
                self.best_loss, self.best_epoch, self.bad = row[config.monitor], epoch, 0
                if config.restore_best:
                    self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                self.bad += 1
            self.stopped = bool(config.patience and self.bad >= config.patience)
        else:
            self.best_epoch = epoch
        self.history.append(row)

    def finish(self, model: Any, config: TrainConfig) -> list[str]:
        """Restore the best weights where asked; the notes saying why training stopped and what was kept."""
        notes = []
        if self.asked_to_stop:
            notes.append(f"stopped after epoch {len(self.history)} by the caller (on_epoch)")
        elif self.stopped:
            what = "validation" if config.monitor == "val_loss" else "training"
            notes.append(f"early stopping after epoch {len(self.history)}: no better {what} loss for {config.patience} epochs")
        if self.best_state is not None and config.restore_best and self.best_epoch != len(self.history):
            model.load_state_dict(self.best_state)
            notes.append(f"weights of the best epoch ({self.best_epoch}, {config.monitor} {self.best_loss:.4g}) restored")
        return notes


@dataclass
class _Run:
    """What one epoch trains with: the model, its optimizer and schedule, the loss, the data and the
    generator that orders the examples (its state is in the checkpoint, so a resumed run draws the
    same batches)."""

    model: Any
    params: list[Any]
    opt: Any
    sched: Any
    loss_fn: _Loss
    gen: Any
    data: _Data
    config: TrainConfig
    augment: Callable[[Any], Any] | None
    device: Any

    def epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch; its row: training loss (and accuracy), learning rate, validation metrics, seconds."""
        t0 = time.perf_counter()
        row = {"epoch": epoch, **self._fit_once()}
        row["lr"] = self.opt.param_groups[0]["lr"]
        if self.sched is not None:
            self.sched.step()
        val, config = self.data.val, self.config
        if val is not None and _size(val):
            row.update(_evaluate(self.model, val, self.loss_fn, max(config.batch_size, 256), self.device,
                                 self.data.val_on_device, config.precision))
        row["seconds"] = time.perf_counter() - t0
        return row

    def _fit_once(self) -> dict[str, float]:
        import torch

        config, data, loss_fn = self.config, self.data, self.loss_fn
        device, n = self.device, _size(data.train)
        self.model.train()
        order = (torch.multinomial(torch.as_tensor(data.sampler_weights, dtype=torch.float), n, replacement=True,
                                   generator=self.gen)
                 if data.sampler_weights is not None else torch.randperm(n, generator=self.gen))
        total, correct = torch.zeros((), device=device), torch.zeros((), device=device)
        chunks = order.split(config.batch_size)  # the rows of each batch, in the order batches() yields them
        for idx, (*x, y) in zip(chunks, batches(data.train, order, config.batch_size, device, data.train_on_device)):
            if self.augment is not None:
                x[0] = self._augmented(x[0], idx)
            if config.channels_last:
                x[0] = _layout(x[0], True)
            with autocast(device, config.precision):
                out = self.model(*x)
            loss = loss_fn(out.float(), y)
            if config.l1:
                loss = loss + config.l1 * sum(p.abs().sum() for p in self.params)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            ensemble = loss_fn.classify and out.dim() == 3  # [members, batch, classes]: the members' mean loss,
            total += loss.detach() * len(y) / (len(out) if ensemble else 1)  # their averaged probabilities
            if loss_fn.classify:
                correct += ((out.detach().softmax(-1).mean(0) if ensemble else out.detach()).argmax(1) == y).sum()
        return {"train_loss": float(total) / n, **({"train_accuracy": float(correct) / n} if loss_fn.classify else {})}

    def _augmented(self, x: Any, idx: Any) -> Any:
        """The training batch ``x`` through ``augment``, given its rows of the caller's ``train`` when it asks."""
        if not getattr(self.augment, "rows", False):
            return self.augment(x)
        rows = idx if self.data.rows is None else self.data.rows[idx]
        return self.augment(x, rows)

    def checkpoint(self, state: _Stopping) -> dict[str, Any]:
        """Everything a resume needs after ``state.epoch``: weights, optimizer, schedule, generators, stopping state."""
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict() if self.sched is not None else {},
                "rng": _rng_state(self.gen), "epoch": state.epoch, "history": state.history,
                "best_loss": state.best_loss, "best_epoch": state.best_epoch, "bad_epochs": state.bad,
                "stopped": state.stopped, **({"best_model": state.best_state} if state.best_state is not None else {})}


def _resume(run: _Run, ckpt: Path, device: Any, log: Callable[[str], None]) -> _Stopping:
    """Load the checkpoint at ``ckpt`` into the run (weights, optimizer, schedule, generators) and
    return the state it was saved in; a fresh state when there is none to resume from."""
    saved = _resume_state(ckpt, device, log)
    if saved is None:
        return _Stopping()
    run.model.load_state_dict(saved["model"])
    run.opt.load_state_dict(saved["optimizer"])
    if run.sched is not None:
        run.sched.load_state_dict(saved["scheduler"])
    _set_rng_state(saved["rng"], run.gen)
    log(f"resuming from the checkpoint of epoch {int(saved['epoch'])} in {ckpt.parent}")
    return _Stopping(epoch=int(saved["epoch"]), history=list(saved["history"]), best_loss=float(saved["best_loss"]),
                     best_epoch=int(saved["best_epoch"]), bad=int(saved["bad_epochs"]),
                     best_state=saved.get("best_model"), stopped=bool(saved.get("stopped")))


def _log_epoch(log: Callable[[str], None], row: dict[str, float], epochs: int, stopped: bool) -> None:
    log(f"epoch {row['epoch']}/{epochs} " + " ".join(f"{k}={v:.4g}" for k, v in row.items()
                                                     if k not in ("epoch", "seconds"))
        + f" ({row['seconds']:.1f} s)" + (" early stop" if stopped else ""))
