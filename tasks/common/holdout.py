"""The hold-out split every modality uses: which rows are trained on, validated on and tested on.

:func:`assign` decides the parts from the spec's ``split`` section and what the loader carried:

- **fixed by a column**: ``split: {column: split, test: [test], validation: [val]}``; the loader
  carries the column's value per row (``keys``);
- **by group**: ``split: {group: speaker}`` keeps each group on one side (a share ``test_size`` of
  the groups is held out), ``split: {group: speaker, test: [theo]}`` names the test groups;
- **fixed by files**: the loader read ``data.train`` + ``data.test`` (or a dataset's own test set)
  and marks the test rows (``fixed_test``);
- **random**: stratified by class (iterative stratification over the labels for multi-label).

A ``validation`` part is taken by values (column or groups) or as a share of the training rows
(``split.validation: 0.1``, drawn as the test was: stratified, or by group). Modalities write the
parts with their own formats (one file per part) and record them in the :class:`SplitRef`;
:func:`validation_part` is what early stopping, threshold tuning and model selection read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow.errors import DataError, shown

if TYPE_CHECKING:
    from trainflow.refs import DataRef, SplitRef
    from trainflow.spec import PipelineSpec

#: the parts a split writes, in order; "validation" only when the spec asks for one
PARTS = ("train", "validation", "test")
#: the column (or array) in which a loader carries the values of ``split.column``/``split.group``
KEY = "__split_key__"


@dataclass
class Parts:
    """Row indices of each part (``validation`` empty when there is none) and notes on how they were drawn."""

    train: np.ndarray
    test: np.ndarray
    validation: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    notes: list[str] = field(default_factory=list)

    def items(self) -> list[tuple[str, np.ndarray]]:
        """``(name, indices)`` of each part that has rows or must exist (train and test always)."""
        return [(n, getattr(self, n)) for n in PARTS if n != "validation" or len(self.validation)]


def assign(n: int, spec: PipelineSpec, source: str, *, y: Any = None, Y: np.ndarray | None = None,
           keys: Any = None, fixed_test: Any = None, usable: np.ndarray | None = None, sort: bool = True,
           what: str = "rows") -> Parts:
    """The parts of ``n`` rows under ``spec.split``.

    ``y``: class labels (stratification; None or a regression target when ``spec.task`` is not
    classification), ``Y``: a multi-label 0/1 matrix (iterative stratification), ``keys``: the value
    of ``split.column``/``split.group`` per row, ``fixed_test``: the loader's own test rows (files),
    ``usable``: the rows that may be used at all (default: every row). ``sort``: indices in row order
    (else in the order the random split draws them, as a table's split has always kept them).
    ``what`` names the rows in the notes (clips, images, series). Raises DataError when the spec
    names a value no row has, or a part comes out empty.
    """
    s = spec.split
    rows = np.arange(n) if usable is None else np.asarray(usable)
    if s.key is not None:
        if keys is None:
            raise DataError(f"'split.{'column' if s.column else 'group'}' is {s.key!r}, but the loader carried "
                            f"no such values for '{source}'.")
        keys = np.asarray(keys).astype(str)
        if s.column:  # a validation share is drawn from the column's training rows
            parts = _validation_share(_by_column(rows, keys, s, source, what), y, Y, spec)
        else:
            parts = _by_group(rows, keys, spec, source, what, y=y)
    elif fixed_test is not None:
        test = np.asarray(fixed_test, bool)[rows]
        if test.all() or not test.any():  # a split column or a test file can mark every row or none
            raise DataError(f"The fixed split of '{source}' marks {'every' if test.all() else 'no'} row as a test "
                            f"row, leaving the {'train' if test.all() else 'test'} part empty (the loader's test "
                            "file or split column).")
        parts = Parts(rows[~test], rows[test], notes=[f"fixed split from the loader: {int((~test).sum())} "
                                                      f"train / {int(test.sum())} test {what}"])
        parts = _validation_share(parts, y, Y, spec)
    else:
        tr, te, note = _random(rows, y, Y, spec, s.test_size)
        parts = _validation_share(Parts(tr, te, notes=[note] if note else []), y, Y, spec)
    if spec.task == "classification" and y is not None:
        parts.notes += _look_alike_labels(y, source)
    if sort:
        parts.train, parts.test, parts.validation = (np.sort(parts.train), np.sort(parts.test),
                                                     np.sort(parts.validation))
    for name, idx in parts.items():
        if not len(idx):
            raise DataError(f"The {name} part of '{source}' is empty; change split.test_size or the split's "
                            f"test/validation values.")
    return parts


def _look_alike_labels(y: Any, source: str) -> list[str]:
    """A warning (and a note for the report) for class labels that differ only by case or spaces."""
    from trainflow.alerts import warn
    from trainflow.tasks.common.labels import look_alike

    groups = look_alike(y)
    if not groups:
        return []
    named = "; ".join(" / ".join(repr(v) for v in g) for g in groups[:5])
    note = (f"class labels of '{source}' that differ only by case or spaces are separate classes: {named}"
            f"{' ...' if len(groups) > 5 else ''}; clean the column, or list the classes in validation.labels "
            f"to refuse the others")
    warn(note)
    return [note]


def option(split: Any) -> str:
    """``split.column`` or ``split.group``: the option naming the key, for messages."""
    return "split.column" if split.column else "split.group"


def key_values(table: Any, split: Any, path: Any) -> np.ndarray:
    """The values of the split's column in a loaded ``table`` as text (a gap is ''); DataError naming
    the option and the file when the table has no such column."""
    from trainflow.errors import did_you_mean

    if split.key not in table.columns:
        columns = [str(c) for c in table.columns]
        raise DataError(f"'{option(split)}' is {split.key!r}, which is not a column of '{path}'"
                        f"{did_you_mean(split.key, columns)}. Its columns are: {', '.join(columns)}.")
    return table[split.key].astype(object).where(table[split.key].notna(), "").astype(str).to_numpy()


def _by_column(rows: np.ndarray, keys: np.ndarray, s: Any, source: str, what: str) -> Parts:
    """Each row's part from its value in ``split.column``."""
    values = keys[rows]
    validation = s.validation if isinstance(s.validation, list) else []
    _require_values(values, s.test, "split.test", s.column, source)
    _require_values(values, validation, "split.validation", s.column, source)
    test, val = np.isin(values, s.test), np.isin(values, validation)
    parts = Parts(rows[~test & ~val], rows[test], rows[val],
                  [f"fixed split by column '{s.column}': {int((~test & ~val).sum())} train / "
                   + (f"{int(val.sum())} validation / " if val.any() else "") + f"{int(test.sum())} test {what}"])
    return parts


def _by_group(rows: np.ndarray, keys: np.ndarray, spec: PipelineSpec, source: str, what: str,
              y: Any = None) -> Parts:
    """Whole groups of ``split.group`` to each part: the named ones, else a share ``test_size`` of them
    (for classification with ``split.stratify``, groups whose rows together keep the class shares)."""
    s = spec.split
    groups = keys[rows]
    labels = np.asarray(y)[rows] if y is not None and spec.task == "classification" and s.stratify else None
    names = sorted(set(groups.tolist()))
    if s.test:
        _require_values(groups, s.test, "split.test", s.group, source)
        test_groups = list(s.test)
    else:
        if len(names) < 2:
            raise DataError(f"'split.group' is {s.group!r}, but '{source}' has a single group ({names[0]!r}); "
                            "a group split needs at least two.")
        test_groups = _draw_groups(names, s.test_size, s.seed, groups, labels)
    if isinstance(s.validation, list):
        _require_values(groups, s.validation, "split.validation", s.group, source)
        val_groups = list(s.validation)
    elif s.validation:
        rest = [g for g in names if g not in test_groups]
        left = ~np.isin(groups, test_groups)
        val_groups = (_draw_groups(rest, s.validation, s.seed + 1, groups[left],
                                   None if labels is None else labels[left]) if len(rest) > 1 else [])
    else:
        val_groups = []
    test, val = np.isin(groups, test_groups), np.isin(groups, val_groups)
    parts = Parts(rows[~test & ~val], rows[test], rows[val])
    require_disjoint_groups(keys, parts, s.group)
    val_text = f"{len(val_groups)} groups ({len(parts.validation)} {what}) validation / " if val_groups else ""
    parts.notes.append(f"split by group '{s.group}': {len(names) - len(test_groups) - len(val_groups)} groups "
                       f"({len(parts.train)} {what}) train / {val_text}{len(test_groups)} groups "
                       f"({len(parts.test)} {what}) test: {', '.join(sorted(test_groups))}")
    return parts


def _draw_groups(names: list[str], share: float, seed: int, groups: np.ndarray | None = None,
                 labels: np.ndarray | None = None) -> list[str]:
    """A seeded share of the groups (at least one, never all). With ``labels`` (one per row of
    ``groups``), scikit-learn's ``StratifiedGroupKFold`` picks them: one fold of ``1 / share`` folds,
    whose rows keep the class shares as closely as whole groups allow (a random draw of a few
    patients or sites can leave a class out of the test part)."""
    k = min(len(names) - 1, max(1, int(round(share * len(names)))))
    folds = min(len(names), max(2, int(round(1 / share))))
    if labels is not None and len(names) > 2:
        import warnings

        from sklearn.model_selection import StratifiedGroupKFold

        with warnings.catch_warnings():  # a class with fewer groups than folds: a warning, not a problem
            warnings.simplefilter("ignore", UserWarning)
            splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
            _, held = next(splitter.split(np.zeros(len(labels)), np.asarray(labels).astype(str), groups))
        drawn = sorted(set(np.asarray(groups)[held].tolist()))
        if 0 < len(drawn) < len(names):
            return drawn
    order = np.random.default_rng(seed).permutation(len(names))
    return sorted(names[i] for i in order[:k])


def require_disjoint_groups(keys: np.ndarray, parts: Parts, group: str) -> None:
    """DataError when a group has rows in two parts (the guarantee of a group split)."""
    seen: dict[str, str] = {}
    for name, idx in parts.items():
        for g in set(np.asarray(keys)[idx].tolist()):
            if g in seen:
                raise DataError(f"the group {shown(g)} of '{group}' has rows in both the {seen[g]} and {name} parts.")
            seen[g] = name


def _require_values(values: np.ndarray, wanted: list[str], option: str, column: str, source: str) -> None:
    present = set(values.tolist())
    missing = [v for v in wanted if v not in present]
    if missing:
        shown = sorted(present)[:12]
        raise DataError(f"'{option}' names {missing}, which no row of '{source}' has in '{column}'; expected "
                        f"values of '{column}' such as {shown}" + (" ..." if len(present) > 12 else "") + ".")


def _random(rows: np.ndarray, y: Any, Y: np.ndarray | None, spec: PipelineSpec,
            share: float, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, str | None]:
    """A random hold-out of ``share`` of ``rows``: iterative stratification over ``Y``, stratified by
    ``y`` (classification, every class with two rows), else plain; returns (kept, held, note)."""
    from sklearn.model_selection import train_test_split

    from trainflow.tasks.common import multilabel as ML

    s = spec.split
    seed = s.seed if seed is None else seed
    if Y is not None:
        if s.stratify:
            kept, held = ML.holdout_indices(np.asarray(Y)[rows].astype(np.int64), share, seed)
            return rows[kept], rows[held], "split by iterative stratification over the labels"
        order = np.random.default_rng(seed).permutation(len(rows))
        n_held = max(1, int(round(share * len(rows))))
        return (np.sort(rows[order[n_held:]]), np.sort(rows[order[:n_held]]),
                "split by shuffling (split.stratify is false)")
    stratify, note = None, None
    if y is not None and spec.task == "classification" and s.stratify:
        labels = np.asarray(y)[rows]
        # class codes in sorted order, as np.unique numbers them: scikit-learn stratifies the same rows
        # on them, but hashes instead of sorting a million strings twice (0.9 -> 0.1 s at 1M rows)
        from pandas import factorize

        codes, values = factorize(labels, sort=True)
        if (codes < 0).any():  # a missing label: numbered as before
            values, codes = np.unique(labels.astype(str), return_inverse=True)
        counts = np.bincount(codes, minlength=len(values))
        if counts.min() >= 2:
            stratify = codes
        else:
            note = f"not stratified: class {shown(values[np.argmin(counts)])} has a single row"
    kept, held = train_test_split(rows, test_size=share, random_state=seed, stratify=stratify)
    return kept, held, note


def _validation_share(parts: Parts, y: Any, Y: np.ndarray | None, spec: PipelineSpec) -> Parts:
    """A share ``split.validation`` of the training rows, drawn as the test was (stratified)."""
    share = spec.split.validation
    if not isinstance(share, float | int) or not share:
        return parts
    # another seed than the test's, so the validation rows are not the test's draw repeated
    kept, held, _ = _random(parts.train, y, Y, spec, float(share), seed=spec.split.seed + 1)
    parts.train, parts.validation = kept, held
    parts.notes.append(f"validation: {len(held)} of the training rows (split.validation: {share})")
    return parts


# ---------------------------------------------------------------- checks and records


def require_scorable(y: Any, parts: Parts, where: str) -> None:
    """DataError when no test (or validation) label was seen in training (see ``metrics.require_scorable_test``)."""
    from trainflow.tasks.common.metrics import require_scorable_test

    y = np.asarray(y)
    for _, idx in parts.items()[1:]:
        require_scorable_test(y[parts.train], y[idx], where)


def class_counts(y: Any, parts: Parts, classes: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Rows per class in each part (``y`` as class indices into ``classes``, or the labels themselves)."""
    y = np.asarray(y)
    out = {}
    for name, idx in parts.items():
        if classes is not None:
            out[name] = {classes[i]: int(c) for i, c in enumerate(np.bincount(y[idx], minlength=len(classes)))}
        else:
            out[name] = {str(k): int(c) for k, c in zip(*np.unique(y[idx], return_counts=True))}
    return out


def label_counts(Y: np.ndarray, labels: list[str], parts: Parts) -> dict[str, dict[str, int]]:
    """Positive rows per label in each part (multi-label)."""
    Y = np.asarray(Y)
    return {name: {lab: int(Y[idx, j].sum()) for j, lab in enumerate(labels)} for name, idx in parts.items()}


def take_rows(a: Any, idx: np.ndarray) -> Any:
    """``a[idx]``; a view of ``a`` (no copy) when ``idx`` is one ascending run of rows, as a loader's
    own test set usually is (CIFAR's last 10,000 images): copying a 50,000-image part costs its 150 MB
    of fresh memory for bytes that are only written to a file and handed on."""
    if len(idx) and int(idx[-1]) - int(idx[0]) == len(idx) - 1 and bool((np.diff(idx) == 1).all()):
        return a[int(idx[0]):int(idx[-1]) + 1]
    return a[idx]


def leakage_notes(digest_of: Any, parts: Parts, what: str, spec: PipelineSpec) -> list[str]:
    """The duplicate alarm between training and each held-out part (``digest_of(indices)``: one digest per item)."""
    from trainflow.tasks.common import leakage

    train = digest_of(parts.train)
    alarms = []
    for name, idx in parts.items()[1:]:
        alarms += [a if name == "test" else f"{a} (validation part)"
                   for a in leakage.duplicate_alarm(train, digest_of(idx), what)]
    return leakage.raise_or_warn(alarms, spec)


def cache_inputs(spec: PipelineSpec, **more: Any) -> dict[str, Any]:
    """What a split's cache key depends on beside the data: the split section (and ``more``)."""
    return {"split": spec.split.model_dump(mode="json"), **more}


def split_ref(refs: dict[str, DataRef], meta: dict[str, Any]) -> SplitRef:
    """The :class:`SplitRef` of the written parts (``refs`` by part name; validation when present)."""
    from trainflow.refs import SplitRef

    return SplitRef(train=refs["train"], test=refs["test"], validation=refs.get("validation"), meta=meta)


def validation_part(split: SplitRef) -> DataRef | None:
    """The split's validation part when the spec gave one (by values or as a share), else None: what
    early stopping, threshold tuning and model selection use before carving from the training rows."""
    return split.validation


def counts(split: SplitRef) -> dict[str, int]:
    """Rows per part of a split (``train``, ``validation`` when present, ``test``)."""
    refs = {"train": split.train, "validation": split.validation, "test": split.test}
    return {n: int(r.meta.get("rows", 0)) for n, r in refs.items() if r is not None}
