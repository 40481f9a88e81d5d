"""The ``multimodal`` loader: several named inputs, each read by its own registered loader, joined.

Inputs are joined by position (row i of each), by ``id`` (a table's ``id`` column, a file's relative
path, a series id) or by file ``stem``. A row that one input lacks is dropped (and reported) or,
with ``missing: mask``, kept with that input blank and a mask flag. Errors name the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.errors import DataError, TrainflowError
from trainflow.registry import REGISTRY, component
from trainflow.tasks.multimodal.branches import Items, branch


class InputSpec(BaseModel):
    """One input: a loader and its options, plus the branch's own model and section overrides."""

    model_config = ConfigDict(extra="allow")
    loader: str = Field(..., description="A registered loader (its modality decides the branch)")
    model: dict[str, Any] = Field({}, description="The branch's model and options; default: its modality's")
    preprocess: dict[str, Any] = Field({}, description="preprocess sections for this branch only")
    train: dict[str, Any] = Field({}, description="train options for this branch's network only")

    def options(self) -> dict[str, Any]:
        """The loader's options."""
        return dict(self.model_extra or {})


class MultimodalConfig(BaseModel):
    """Options of the ``multimodal`` loader."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, InputSpec] = Field(..., min_length=2, description="Input name -> loader and options")
    join: Literal["position", "id", "stem"] = Field(
        "position", description="position: row i of each input; id: a table's id column, a file's path or a "
                                "series id; stem: file names without folder and suffix")
    missing: Literal["drop", "mask"] = Field(
        "drop", description="Rows one input lacks: drop (reported) | mask (kept, that branch zeroed, a mask flag)")
    labels: str | None = Field(None, description="The input whose labels are the target; default: every input "
                                                 "that has labels (they must agree)")


@dataclass
class Joined:
    """The inputs aligned on one list of rows: each input's items (blank where ``present`` is false)."""

    inputs: dict[str, Items]
    modalities: dict[str, str]
    present: dict[str, np.ndarray]
    labels: np.ndarray
    keys: list[str]
    is_test: np.ndarray | None
    notes: list[str] = field(default_factory=list)
    split_keys: np.ndarray | None = None  # the values of the spec's split column or group per row


def input_modality(name: str, spec: InputSpec) -> str:
    """The modality of input ``name``'s loader (DataError naming the input otherwise)."""
    try:
        return REGISTRY.get("loader", spec.loader, where=f"data.inputs.{name}.loader").modality
    except TrainflowError as exc:
        raise DataError(f"input '{name}': {exc}") from None


def read_input(name: str, spec: InputSpec, split: Any = None) -> tuple[Items, str]:
    """Read one input with its loader (carrying the spec's split column or group where the loader
    can: ``split``); any error names the input."""
    from trainflow.tasks.common.load import refuse_special_files

    modality = input_modality(name, spec)
    try:
        comp = REGISTRY.get("loader", spec.loader)
        config = comp.parse(spec.options(), where=f"data.inputs.{name}")
        refuse_special_files(config)
        carries = split is not None and split.key and comp.extra.get("split_key")
        loaded = comp.build(config, split=split) if carries else comp.build(config)
        return branch(modality, f"input '{name}'").items(loaded, config.model_dump(mode="json")), modality
    except TrainflowError as exc:
        raise DataError(f"input '{name}' (loader '{spec.loader}'): {exc}") from None


def _keys(name: str, items: Items, join: str) -> list[str]:
    if join == "position":
        return [str(i) for i in range(len(items))]
    if join not in items.keys:
        hint = "give the table an 'id' column option" if join == "id" else "read it from files"
        raise DataError(f"input '{name}' has no {join} for its items to be joined by ({hint}), or set "
                        "data.join: position.")
    keys = items.keys[join]
    seen, repeated = set(), []
    for k in keys:
        (repeated.append(k) if k in seen else seen.add(k))
    if repeated:
        raise DataError(f"input '{name}' repeats the {join} {repeated[0]!r} ({len(repeated)} repeated); "
                        "each item needs its own.")
    return list(keys)


def align(items: dict[str, Items], modalities: dict[str, str], how: str,
          missing: str) -> tuple[list[str], dict[str, Items], dict[str, np.ndarray], list[str]]:
    """The rows every input is aligned on, each input's items in that order (blank where it lacks
    the row), the presence flags, and notes."""
    notes: list[str] = []
    if how == "position":
        sizes = {n: len(it) for n, it in items.items()}
        if len(set(sizes.values())) > 1:
            listed = ", ".join(f"'{n}' {s}" for n, s in sizes.items())
            raise DataError(f"The inputs have different numbers of rows ({listed}) and data.join is 'position'; "
                            "join them by id or stem (data.join) or give inputs of equal length.")
    keys = {n: _keys(n, it, how) for n, it in items.items()}
    names = list(items)
    common = set(keys[names[0]]).intersection(*(set(keys[n]) for n in names[1:]))
    if not common:
        examples = "; ".join(f"'{n}': {', '.join(map(repr, keys[n][:3]))}" for n in names)
        raise DataError(f"No {how} is in every input, so no row can be joined ({examples}).")
    if missing == "drop":
        rows = [k for k in keys[names[0]] if k in common]
        for n in names:
            dropped = len(keys[n]) - len(rows)
            if dropped:
                notes.append(f"dropped {dropped} item(s) of input '{n}' with no match in every other input")
    else:
        rows = list(dict.fromkeys(k for n in names for k in keys[n]))
    present, aligned = {}, {}
    for n in names:
        where = {k: i for i, k in enumerate(keys[n])}
        have = np.asarray([k in where for k in rows])
        adapter = branch(modalities[n])
        idx = np.asarray([where[k] for k in rows if k in where], dtype=np.int64)
        data = adapter.take(items[n].data, idx)
        if not have.all():
            notes.append(f"input '{n}' lacks {int((~have).sum())} of {len(rows)} rows: zeroed, with a mask flag")
            order = np.concatenate([np.flatnonzero(have), np.flatnonzero(~have)])
            data = adapter.take(adapter.concat([data, adapter.blank(data, int((~have).sum()))]), np.argsort(order))
        present[n] = have
        labels = items[n].labels
        split_keys = items[n].split_keys
        aligned[n] = Items(data, None if labels is None else _spread(labels[idx], have), meta=items[n].meta,
                           is_test=None if items[n].is_test is None else _spread(items[n].is_test[idx], have),
                           split_keys=None if split_keys is None else _spread(np.asarray(split_keys)[idx], have))
    return rows, aligned, present, notes


def join(items: dict[str, Items], modalities: dict[str, str], config: MultimodalConfig) -> Joined:
    """Align the inputs on one list of rows (see the module docstring), with one label per row."""
    rows, aligned, present, notes = align(items, modalities, config.join, config.missing)
    labels = _labels(aligned, present, config, rows)
    is_test = next((it.is_test for it in aligned.values() if it.is_test is not None), None)
    if is_test is not None:
        is_test = np.asarray([bool(v) for v in is_test])
    return Joined(aligned, modalities, present, labels, rows, is_test, notes, _split_keys(aligned, rows))


def _split_keys(items: dict[str, Items], rows: list[str]) -> np.ndarray | None:
    """Each row's split key from the inputs that carry one (the first that has the row); a row none of
    them has is a DataError."""
    carrying = [it.split_keys for it in items.values() if it.split_keys is not None]
    if not carrying:
        return None
    keys = np.full(len(rows), None, dtype=object)
    for values in carrying:
        keys = np.where(np.asarray([k is None for k in keys]), values, keys)
    lacking = [rows[i] for i, k in enumerate(keys) if k is None]
    if lacking:
        raise DataError(f"{len(lacking)} row(s) (e.g. {lacking[0]!r}) lack the split column: no input that carries "
                        "it has them; use data.missing: drop.")
    return keys.astype(str)


def _spread(values: np.ndarray, have: np.ndarray) -> np.ndarray:
    out = np.full(len(have), None, dtype=object)
    out[have] = values
    return out


def _labels(items: dict[str, Items], present: dict[str, np.ndarray], config: MultimodalConfig,
            rows: list[str]) -> np.ndarray:
    """One label per row: from ``config.labels``'s input, else from every input with labels, which must agree."""
    named = [config.labels] if config.labels else [n for n, it in items.items() if it.labels is not None]
    if config.labels and items[config.labels].labels is None:
        raise DataError(f"data.labels names input '{config.labels}', whose loader gives no labels; give it a "
                        "target or name another input.")
    if not named:
        raise DataError("No input gives labels: give a table input a 'target' column, or an input whose loader "
                        "reads labels.")
    labels = np.full(len(rows), None, dtype=object)
    for n in named:
        got = items[n].labels
        clash = present[n] & np.asarray([a is not None and a != b for a, b in zip(labels, got)])
        if clash.any():
            i = int(np.flatnonzero(clash)[0])
            raise DataError(f"The inputs disagree on the label of {int(clash.sum())} row(s), e.g. row {rows[i]!r}: "
                            f"{labels[i]!r} vs {got[i]!r} (input '{n}'); set data.labels to the input to trust.")
        labels = np.where(present[n] & np.asarray([a is None for a in labels]), got, labels)
    missing = np.asarray([v is None for v in labels])
    if missing.any():
        raise DataError(f"{int(missing.sum())} row(s) have no label (e.g. {rows[int(np.flatnonzero(missing)[0])]!r}): "
                        f"the input(s) with labels ({', '.join(named)}) lack them; use data.missing: drop.")
    return labels.astype(str)


@component("loader", "multimodal", MultimodalConfig, modality="multimodal", split_key=True)
def load_multimodal(config: MultimodalConfig, split: Any = None) -> Joined:
    """Several named inputs, each read by its own loader, joined by position, id or file stem; the
    spec's split column or group comes from the inputs whose loaders carry it."""
    items, modalities = {}, {}
    for name, spec in config.inputs.items():
        items[name], modalities[name] = read_input(name, spec, split)
    if split is not None and split.key and all(it.split_keys is None for it in items.values()):
        from trainflow.tasks.common import holdout

        raise DataError(f"'{holdout.option(split)}' is {split.key!r}, but no input's loader carries it (loaders "
                        f"that can: table, text, manifest and pattern loaders); name it in an input of those.")
    return join(items, modalities, config)
