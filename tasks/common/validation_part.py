"""The one validation part of a network run: what early stopping, tuned multi-label thresholds and
temperature scaling choose on.

When the split has a validation part (the spec's ``split.validation``: a share, the values of
``split.column`` or groups) and the modality can prepare it (``Prepared.part``), that part is used.
Otherwise the training loop carves it once from the training rows (``train.val_fraction``; seeded by
the training seed; stratified by class, or by iterative stratification over the labels, where every
class has two rows), and every choice reads that same carve-out. :func:`of_run` gives its tensors
and the record that metrics.json keeps as ``validation_part``.

``train.val_fraction`` is ignored when the split has a validation part (a warning says so when the
spec sets it): the spec's part is the one that chooses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainflow.refs import SplitRef
    from trainflow.spec import PipelineSpec
    from trainflow.tasks.common.training import TrainConfig

#: the share carved when something needs a validation part and ``train.val_fraction`` is 0
#: (temperature scaling, tuned thresholds of a spec whose split part the modality cannot prepare)
CARVE_FRACTION = 0.1


def given(part: Any, split: SplitRef) -> tuple[Any, ...] | None:
    """The tensors of the split's validation part (``part(ref)``: the modality's preparation of a
    part), or None when the split has none or the modality cannot prepare one."""
    from trainflow.tasks.common.holdout import validation_part

    ref = validation_part(split)
    return part(ref) if ref is not None and part is not None else None


def needs(spec: PipelineSpec, task: str) -> list[str]:
    """What chooses on the validation part in this run besides the epoch (the record's ``used_for``)."""
    uses = []
    if task == "multilabel" and spec.multilabel.threshold == "tuned":
        uses.append("multi-label thresholds")
    if task == "classification" and spec.evaluate.calibrate == "temperature":
        uses.append("temperature scaling")
    return uses


def carve_size(train: TrainConfig, val: Any, spec: PipelineSpec, task: str) -> tuple[TrainConfig, list[str]]:
    """``train`` with the share to carve (``val_fraction``), and the report's notes: 0 when the split's
    validation part is used (a spec's own ``train.val_fraction`` is then ignored, with a warning),
    :data:`CARVE_FRACTION` when thresholds or a temperature need a part and nothing carves one."""
    from trainflow.alerts import warn

    if val is not None:
        notes = []
        if "val_fraction" in spec.train.model_fields_set and spec.train.val_fraction > 0:
            notes.append(f"train.val_fraction ({spec.train.val_fraction}) is ignored: the split's validation part "
                         "(split.validation) is the one that chooses")
            warn(notes[-1])
        return train.model_copy(update={"val_fraction": 0.0}), notes
    if train.val_fraction == 0 and needs(spec, task):
        what = " and ".join(needs(spec, task))
        return train.model_copy(update={"val_fraction": CARVE_FRACTION}), [
            f"{what}: {CARVE_FRACTION:.0%} of the training examples held out as the validation part "
            "(train.val_fraction was 0 and the split has no validation part)"]
    return train, []


def of_run(inputs: tuple[Any, ...], val: tuple[Any, ...] | None, carved: Any, train: TrainConfig,
           spec: PipelineSpec, task: str) -> tuple[tuple[Any, ...] | None, dict[str, Any]]:
    """The validation part's tensors ``(*inputs, target)`` (None without one) and its record:
    ``source`` (``split`` | ``carved`` | ``none``), ``rows``, ``used_for``, and for a carve-out its
    ``share``, ``seed`` and whether it was drawn stratified."""
    uses = (["early stopping epoch"] if train.patience or train.monitor == "val_loss" else []) + needs(spec, task)
    if val is not None:
        return val, {"source": "split", "rows": int(len(val[-1])), "used_for": uses}
    if carved is None:
        return None, {"source": "none", "rows": 0, "used_for": []}
    held = tuple(t[carved.to(t.device)] for t in inputs)
    return held, {"source": "carved", "rows": int(len(carved)), "share": train.val_fraction, "seed": spec.seed,
                  "stratified": task in ("classification", "multilabel"), "used_for": uses}


def method(record: dict[str, Any] | None) -> str:
    """How a network's selection score was measured, in words, from its ``validation_part`` record."""
    if record and record.get("source") == "split":
        return "the split's validation part"
    return "validation part of the training split"
