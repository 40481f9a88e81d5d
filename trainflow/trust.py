"""Reading back what a run saved, trusting nothing because of where it came from.

A run folder is something people share, so every file read back is treated as untrusted input:

- skops model files load only if every type they name is on an exact list: the estimators the
  registered components build (found by building them), the types the components declare with
  ``@component(..., trusted_types=(...))`` (fitted internals, functions such as a score function),
  the fixed pieces of the pipeline that saved them, and plain values (containers, NumPy and SciPy arrays).
  A name is trusted only as a whole; there are no module prefixes, and no function unless listed.
- JSON files (model configs, schemas, metrics) and safetensors weights hold data only.
- A file that cannot be parsed is reported as damaged, naming it (a DataError, exit 3).
"""

from __future__ import annotations

import json
import typing
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainflow.errors import DataError
from trainflow.imports import skops_io  # the modalities save with trust.skops_io() too
from trainflow.registry import REGISTRY

#: Plain values inside a fitted pipeline: containers, scalars, NumPy/SciPy arrays, random states.
VALUE_TYPES = frozenset({
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.set", "builtins.slice", "builtins.str",
    "builtins.bytes", "builtins.int", "builtins.float", "builtins.bool", "builtins.complex",
    "collections.OrderedDict",
    "numpy.ndarray", "numpy.dtype", "numpy.bool", "numpy.bool_",
    "numpy.int8", "numpy.int16", "numpy.int32", "numpy.int64",
    "numpy.uint8", "numpy.uint16", "numpy.uint32", "numpy.uint64",
    "numpy.float16", "numpy.float32", "numpy.float64", "numpy.str_", "numpy.bytes_",
    "numpy.random.mtrand.RandomState", "numpy.random._generator.Generator",
    "scipy.sparse._csr.csr_matrix", "scipy.sparse._csc.csc_matrix",
    "scipy.sparse._csr.csr_array", "scipy.sparse._csc.csc_array",
})

#: Component kinds whose builders make scikit-learn / imbalanced-learn objects saved with skops,
#: and the keyword arguments each is built with (besides ``seed``) to find the types it makes.
SKOPS_KINDS: dict[str, tuple[dict[str, Any], ...]] = {
    "imputer": ({},),
    "encoder": ({},),
    "scaler": ({},),
    "reducer": tuple({"n_features": 4, "task": t} for t in ("classification", "regression")),
    "sampler": ({"categorical": None}, {"categorical": [0]}),
    "model": tuple({"class_weight": w, "task": t} for t in ("classification", "regression", "multilabel")
                   for w in (None, "balanced")),
}


def type_name(obj: Any) -> str:
    """The fully qualified name of ``obj``'s type, as skops writes it."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


# ---------------------------------------------------------------- the trusted set


def _option_variants(config: Any) -> list[Any]:
    """The default config plus one variant per value of each choice (Literal) or switch (bool) option."""
    variants = [config]
    for name, field in type(config).model_fields.items():
        values: list[Any] = []
        stack = [field.annotation]
        while stack:
            ann = stack.pop()
            if ann is bool:
                values += [True, False]
            elif typing.get_origin(ann) is typing.Literal:
                values += list(typing.get_args(ann))
            else:
                stack += list(typing.get_args(ann))
        variants += [config.model_copy(update={name: v}) for v in values if v != getattr(config, name)]
    return variants


def _estimators_in(obj: Any, found: set[str]) -> None:
    """Add the type of every estimator reachable from ``obj`` through its parameters."""
    if isinstance(obj, (list, tuple)):
        for item in obj:
            _estimators_in(item, found)
    elif hasattr(obj, "get_params") and not isinstance(obj, type):
        found.add(type_name(obj))
        for value in obj.get_params(deep=False).values():
            _estimators_in(value, found)


def component_types(comp: Any, modality: str | None = None) -> set[str]:
    """The exact types a component's saved models may hold: what it builds plus what it declares
    (for a model: built only when it serves ``modality``, the one whose models skops saves)."""
    found = set(comp.extra.get("trusted_types", ()))
    contexts = SKOPS_KINDS.get(comp.kind)
    if contexts is None or comp.kind == "model" and comp.modality != modality:
        return found
    try:
        default = comp.config()
    except Exception:  # required options: such a component declares its types instead
        return found
    for config in _option_variants(default):
        for context in contexts:
            if "task" in context and comp.tasks and context["task"] not in comp.tasks:
                continue
            try:
                _estimators_in(comp.build(config, seed=0, **context), found)
            except Exception:  # a combination the component refuses; the others still count
                continue
    return found


_cache: dict[tuple[Any, ...], frozenset[str]] = {}


def trusted_types(fixed: Iterable[str] = (), modality: str | None = None) -> frozenset[str]:
    """Every type a saved skops model of ``modality`` may contain: plain values, ``fixed`` (the
    pipeline's own pieces) and the types of every registered component (built-in and plug-in)."""
    comps = REGISTRY.all()
    key = (frozenset(fixed), modality, tuple((c.kind, c.name, c.module, id(c.build)) for c in comps))
    if key not in _cache:
        names = set(VALUE_TYPES) | set(fixed)
        for comp in comps:
            names |= component_types(comp, modality)
        _cache[key] = frozenset(names)
    return _cache[key]


# ---------------------------------------------------------------- reading files back


def damaged(path: Path | str, exc: BaseException | str) -> DataError:
    """The error for a saved file that cannot be read."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return DataError(f"The saved file '{path}' is damaged ({reason}); restore it or re-run the pipeline "
                     f"that wrote it.")


def read_json(path: Path | str) -> Any:
    """A JSON file written by a run (data only: nothing in it can run code); DataError when damaged."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"The saved file '{path}' is missing.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged(path, exc) from None


def _walk_schema(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        if "__module__" in node and "__class__" in node:
            found.add(f"{node['__module__']}.{node['__class__']}")
        for value in node.values():
            _walk_schema(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk_schema(value, found)


def skops_types(path: Path) -> set[str]:
    """Every type and function a skops file names (read from its schema; nothing is imported)."""
    sio = skops_io()

    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set()
    _walk_schema(schema, found)
    return found | set(sio.get_untrusted_types(file=path))


def check_skops(path: Path | str, trusted: frozenset[str]) -> set[str]:
    """The types a skops file names, once every one is in ``trusted``; DataError when the file is
    missing, damaged, or names any other type. Nothing in the file is imported or run."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No saved model at '{path}'.")
    try:
        found = skops_types(path)
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError) as exc:
        raise damaged(path, exc) from None
    refused = sorted(found - trusted)
    if refused:
        raise DataError(
            f"Refusing to load the model file '{path}': it names types trainflow does not trust, and a model "
            f"file could run code through them: {', '.join(refused)}. Only the exact types of the registered "
            f"components are loaded (a plug-in component lists the extra types its models hold with "
            f"@component(..., trusted_types=(...)).")
    return found


def load_skops(path: Path | str, trusted: frozenset[str]) -> Any:
    """Load a skops file whose every type is in ``trusted``; refuse it (DataError) otherwise."""
    sio = skops_io()

    found = check_skops(path, trusted)
    try:
        return sio.load(path, trusted=sorted(found))
    except Exception as exc:  # every type is trusted, so what fails is the file's content
        raise damaged(path, exc) from None


def load_weights(model: Any, path: Path | str) -> Any:
    """Load a safetensors file (a header and raw numbers: no code) into ``model``'s parameters;
    DataError when the file is damaged or does not fit the network."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        model.load_state_dict(load_file(str(path)))
    except Exception as exc:
        raise damaged(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return model
