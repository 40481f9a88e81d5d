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

from trainflow.archives import MODEL_ZIP_BYTES, check_zip
from trainflow.errors import DataError
from trainflow.files import folder_member, read_text_capped
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

#: a model folder's JSON (config, schema, vocabulary, metrics) larger than this is not one a run wrote
MAX_JSON_BYTES = 64 * 1024 * 1024

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


def _own_file(path: Path) -> None:
    """DataError unless ``path`` is a regular file of its folder (a link could point out of it)."""
    folder_member(path.parent, path.name, "model folder")


def damaged(path: Path | str, exc: BaseException | str) -> DataError:
    """The error for a saved file that cannot be read."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return DataError(f"The saved file '{path}' is damaged ({reason}); restore it or re-run the pipeline "
                     f"that wrote it.")


def read_json(path: Path | str, limit: int = MAX_JSON_BYTES) -> Any:
    """A JSON file written by a run (data only: nothing in it can run code); DataError when damaged,
    not a regular file (:func:`~trainflow.files.open_regular`) or larger than ``limit`` bytes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"The saved file '{path}' is missing.")
    try:
        return json.loads(read_text_capped(path, "saved file", limit=limit))
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged(path, exc) from None
    except RecursionError:  # e.g. 100,000 '[': small, valid-looking, and json.loads gives up on it
        raise damaged(path, "it is nested too deeply") from None


def read_shaped(path: Path | str, shape: Any, what: str) -> tuple[Any, Any]:
    """A saved JSON file (:func:`read_json`) and its value checked by :func:`shaped`."""
    raw = read_json(path)
    return raw, shaped(raw, shape, path, what)


def shaped(raw: Any, shape: Any, path: Path | str, what: str) -> Any:
    """``raw``, read from the saved file ``path``, checked by the pydantic model ``shape``; a value of
    another shape is a damaged file naming where it differs (``what``: the kind of file)."""
    from pydantic import ValidationError

    try:
        return shape.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the top level"
        raise damaged(path, f"not a trainflow {what}: {where}: {err['msg']}") from None


#: skops loaders that call what they name (construct an object through it, or store it as a function)
CALLING_LOADERS = frozenset({"ObjectNode", "ReduceNode", "ConstructorFromReduceNode", "FunctionNode",
                             "PartialNode", "MethodNode", "OperatorFuncNode"})


def _walk_schema(node: Any, found: set[str], called: set[str] | None = None) -> None:
    if isinstance(node, dict):
        if "__module__" in node and "__class__" in node:
            name = f"{node['__module__']}.{node['__class__']}"
            found.add(name)
            if called is not None and node.get("__loader__") in CALLING_LOADERS:
                called.add(name)
        for value in node.values():
            _walk_schema(value, found, called)
    elif isinstance(node, list):
        for value in node:
            _walk_schema(value, found, called)


def skops_types(path: Path) -> set[str]:
    """Every type and function a skops file names (read from its schema; nothing is imported)."""
    sio = skops_io()

    check_zip(path, MODEL_ZIP_BYTES, "model file")  # declared sizes, before anything is decompressed
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set()
    called: set[str] = set()
    _walk_schema(schema, found, called)
    # A plain value type is saved by its own node (JSON, bytes, arrays); reached through a constructor
    # or as a function it is a call with chosen arguments: bytes(10**12), or a type as a transformer's func.
    misused = sorted(called & VALUE_TYPES)
    if misused:
        raise DataError(f"Refusing to load the model file '{path}': it calls plain value types as constructors "
                        f"or functions ({', '.join(misused)}), which trainflow never saves.")
    return found | set(sio.get_untrusted_types(file=path))


def check_skops(path: Path | str, trusted: frozenset[str]) -> set[str]:
    """The types a skops file names, once every one is in ``trusted``; DataError when the file is
    missing, damaged, or names any other type. Nothing in the file is imported or run."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No saved model at '{path}'.")
    _own_file(path)
    try:
        found = skops_types(path)
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError) as exc:
        raise damaged(path, exc) from None
    except RecursionError:
        raise damaged(path, "its schema is nested too deeply") from None
    refused = sorted(found - trusted)
    if refused:
        raise DataError(
            f"Refusing to load the model file '{path}': it names types trainflow does not trust, and a model "
            f"file could run code through them: {', '.join(refused)}. Only the exact types of the registered "
            f"components are loaded (a plug-in component lists the extra types its models hold with "
            f"@component(..., trusted_types=(...)).")
    return found


def load_skops(path: Path | str, trusted: frozenset[str]) -> Any:
    """Load a skops file whose every type is in ``trusted`` and whose estimators' parameters are
    values trainflow would save (:func:`check_params`); refuse it (DataError) otherwise."""
    sio = skops_io()

    found = check_skops(path, trusted)
    try:
        obj = sio.load(path, trusted=sorted(found))
    except Exception as exc:  # every type is trusted, so what fails is the file's content
        raise damaged(path, exc) from None
    check_params(obj, path)
    return obj


# ---------------------------------------------------------------- parameters of a loaded model

#: text vectorizer options that decide what is read and how it is cut: only what trainflow sets
#: (``input='filename'`` opens every text as a path; a pattern such as ``(?:a+)+c`` backtracks for ever)
TEXT_PARAMS: dict[str, frozenset[Any]] = {
    "input": frozenset({"content"}),
    "analyzer": frozenset({"word", "char", "char_wb"}),
    "token_pattern": frozenset({r"(?u)\b\w\w+\b", r"(?u)\b\w+\b", None}),
    "preprocessor": frozenset({None}),
    "tokenizer": frozenset({None}),
    "strip_accents": frozenset({None, "ascii", "unicode"}),
    "decode_error": frozenset({"strict", "ignore", "replace"}),
}

#: types a parameter may hold as a value (not call): NumPy scalar types as ``dtype``
_DTYPE_VALUES = frozenset({"numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32", "numpy.uint8",
                           "numpy.bool_", "numpy.bool", "builtins.float", "builtins.int", "builtins.bool"})


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def allowed_callables() -> frozenset[str]:
    """Functions a saved model may hold as a parameter: the ones the registered components build
    with (a score function) and the ones they declare in ``trusted_types``, never a type."""
    from trainflow.registry import REGISTRY

    names: set[str] = set()
    for comp in REGISTRY.all():
        names |= set(comp.extra.get("trusted_types", ()))
        names |= component_callables(comp)
    return frozenset(names - VALUE_TYPES)


_callables_cache: dict[tuple[Any, ...], set[str]] = {}


def component_callables(comp: Any) -> set[str]:
    """The callables the estimators a component builds (default options) hold as parameters."""
    key = (comp.kind, comp.name, comp.module, id(comp.build))
    if key not in _callables_cache:
        found: set[str] = set()
        contexts = SKOPS_KINDS.get(comp.kind) or ()
        try:
            config = comp.config()
            for context in contexts:
                try:
                    for est in _walk_estimators(comp.build(config, seed=0, **context)):
                        found |= {_qualname(v) for v in est.get_params(deep=False).values()
                                  if callable(v) and not hasattr(v, "get_params")}
                except Exception:  # a combination the component refuses
                    continue
        except Exception:  # required options
            pass
        _callables_cache[key] = found
    return _callables_cache[key]


def _walk_estimators(obj: Any, seen: set[int] | None = None) -> list[Any]:
    """Every estimator reachable from ``obj``: parameters, fitted attributes (``transformers_``,
    ``estimators_``...), lists, tuples and dicts."""
    seen = set() if seen is None else seen
    out: list[Any] = []
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (str, bytes, int, float, type)) or item is None:
            continue
        seen.add(id(item))
        if isinstance(item, (list, tuple, set)):
            stack += list(item)
        elif isinstance(item, dict):
            stack += list(item.values())
        elif hasattr(item, "get_params") and hasattr(item, "__dict__"):
            out.append(item)
            stack += list(vars(item).values())
    return out


def check_params(obj: Any, path: Path | str) -> None:
    """DataError naming ``path`` when an estimator in ``obj`` holds a parameter trainflow never
    saves: a text vectorizer option outside :data:`TEXT_PARAMS`, or a callable (a function or a
    type used as one) that no registered component builds with or declares."""
    allowed = None
    problems: list[str] = []
    for est in _walk_estimators(obj):
        try:
            params = est.get_params(deep=False)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{type_name(est)} has unreadable parameters ({type(exc).__name__})")
            continue
        vectorizer = hasattr(est, "build_analyzer")
        for name, value in params.items():
            if vectorizer and name in TEXT_PARAMS:
                ok = not callable(value) and (value in TEXT_PARAMS[name] if isinstance(value, (str, type(None)))
                                              else False)
                if not ok:
                    shown = repr(value)[:60] if isinstance(value, str) else type(value).__name__
                    problems.append(f"{type_name(est)}.{name} is {shown}, which trainflow never saves")
                continue
            if isinstance(value, type):
                if not (name == "dtype" and f"{value.__module__}.{value.__qualname__}" in _DTYPE_VALUES):
                    problems.append(f"{type_name(est)}.{name} is the type {value.__module__}.{value.__qualname__}")
            elif callable(value) and not hasattr(value, "get_params"):
                allowed = allowed_callables() if allowed is None else allowed
                if _qualname(value) not in allowed:
                    problems.append(f"{type_name(est)}.{name} is the function {_qualname(value)[:80]}")
    if problems:
        raise DataError(f"Refusing to use the model file '{path}': its estimators hold parameters trainflow never "
                        f"saves, and which could read files, hang or run code: {'; '.join(problems[:5])}.")


#: a safetensors header (names, dtypes, shapes, offsets) larger than this is not one a run wrote
MAX_HEADER_BYTES = 16 * 1024 * 1024


def weight_shapes(path: Path | str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes a safetensors file declares, from its header only (no tensor is read);
    DataError naming the file when the header is damaged or too large."""
    path = Path(path)
    _own_file(path)
    try:
        with open(path, "rb") as fh:  # a regular file of its folder (checked above)
            size = int.from_bytes(fh.read(8), "little")
            if not 2 <= size <= MAX_HEADER_BYTES:
                raise ValueError(f"a header of {size:,} bytes")
            header = json.loads(fh.read(size))
        return {k: tuple(int(d) for d in v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise damaged(path, exc) from None


def build_to_fit(make: Any, weights: Path | str, config: Path | str) -> Any:
    """``make()`` (a network built from ``config``'s sizes) once it fits ``weights``: the network is
    built first on PyTorch's meta device (shapes only, no memory), and its parameter shapes must be
    the ones the weights file declares, so a config asking for 20M classes or a huge width is refused
    (DataError naming ``config``) before anything is allocated."""
    import torch

    declared = weight_shapes(weights)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in make().state_dict().items()}
    if shapes != declared:
        diff = sorted(set(shapes.items()) ^ set(declared.items()))[:3]
        raise damaged(config, f"the sizes it gives do not match the weights file '{Path(weights).name}' "
                              f"(e.g. {', '.join(f'{k} {list(s)}' for k, s in diff)})")
    return make()


def load_weights(model: Any, path: Path | str) -> Any:
    """Load a safetensors file (a header and raw numbers: no code) into ``model``'s parameters;
    DataError when the file is damaged or does not fit the network."""
    from safetensors.torch import load_file

    path = Path(path)
    _own_file(path)
    try:
        model.load_state_dict(load_file(str(path)))
    except Exception as exc:
        raise damaged(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return model
