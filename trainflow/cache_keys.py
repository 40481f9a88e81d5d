"""Cache keys that cover the data, the spec and the code.

Every cached thing (the ``split`` and ``fit`` task results, the content-addressed split and model
folders in ``<out>/.cache``, neural checkpoints) is keyed by :func:`cache_key`, which adds the
:func:`code_fingerprint` of the spec to the caller's data digests and spec sections.

Why a fingerprint of our own: Prefect's ``TASK_SOURCE`` policy hashes only the source of the task
function itself, a few lines that call into the modality module, so editing the body of a model
builder (or the training loop, or a plug-in component) used to leave the key unchanged and a stale
model was published. The fingerprint covers:

- the trainflow version;
- every module file of the trainflow packages and their subpackages (``trainflow``, ``trainflow.flows``,
  ``trainflow.tasks``): the modality modules, the shared training loop, preprocessing, networks,
  references and built-in components. Hashing all of them rather than tracing imports is the
  simple, robust choice: a helper module that a component calls can never be missed, at the cost
  of retraining after any edit to the package;
- for every component the spec names whose module lives outside trainflow (a plug-in), every
  module file of that module's top-level package (so helper modules of the plug-in count too);
- the content of the local files that spec options besides the data name (fields marked
  ``json_schema_extra={"input_file": True}``, e.g. word vectors): not code, but read by the same
  training code, so an edited file must retrain like an edited module (:func:`input_files`);
- for a spec that leaves torch's CPU thread count to the run (``train.num_threads: 0``, anywhere in
  the spec), the count torch then runs at: ``resources.threads``, or every core the process may use
  (:func:`default_threads`). Not code, but results depend on it: torch splits a convolution's or a
  matrix product's sums by thread, so 1, 2 and 4 threads give different weights (a small CNN after 5
  Adam steps differs by up to 3e-6; the same count repeats bit for bit). An explicit count is already
  part of the spec sections keyed. scikit-learn's models give the same model whatever their n_jobs
  or BLAS threads (forests seed each tree ahead; tests/test_resources.py checks it), so
  ``resources`` is no part of a key otherwise (:meth:`~trainflow.spec.PipelineSpec.training_view`);
- likewise for a spec that leaves the training device to ``train.device: auto``, the device that
  resolves to here (``cpu`` or ``cuda``, :func:`auto_device`): CUDA's kernels sum in another order
  than the CPU's, so a model fitted on one is not the model the other would fit. An explicit
  ``cpu`` or ``cuda`` is keyed as written.

Files are read and hashed once per process and then re-hashed only when their size or
modification time changes, so computing a key costs a few ``stat`` calls (~1 ms).
"""

from __future__ import annotations

import functools
import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainflow.refs import SplitRef, json_digest

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

#: the packages whose every module file counts as "trainflow's code"
OWN_PACKAGES = ("trainflow", "trainflow.flows", "trainflow.tasks")

_file_digests: dict[str, tuple[int, int, str]] = {}  # path -> (size, mtime_ns, sha256)


def _file_digest(path: Path) -> str:
    st = path.stat()
    known = _file_digests.get(str(path))
    if known and known[:2] == (st.st_size, st.st_mtime_ns):
        return known[2]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _file_digests[str(path)] = (st.st_size, st.st_mtime_ns, digest)
    return digest


def _package_files(package: str, recursive: bool) -> list[Path]:
    """The ``.py`` files of an imported module or package (the module file alone for a plain module)."""
    import importlib

    module = sys.modules.get(package) or importlib.import_module(package)
    folders = list(getattr(module, "__path__", []))
    if not folders:
        return [Path(module.__file__)] if getattr(module, "__file__", None) else []
    pattern = "**/*.py" if recursive else "*.py"
    return sorted(p for folder in folders for p in Path(folder).glob(pattern) if p.is_file())


def _relative(path: Path, package: str) -> str:
    """``path`` relative to the package folder it lies in (``subpackage/module.py``), for the digest."""
    import importlib

    module = sys.modules.get(package) or importlib.import_module(package)
    for folder in getattr(module, "__path__", []):
        if path.is_relative_to(folder):
            return path.relative_to(folder).as_posix()
    return path.name


def source_digest(packages: list[str] | tuple[str, ...], recursive: bool = True) -> str:
    """SHA-256 over the names and content of every ``.py`` file of ``packages``."""
    h = hashlib.sha256()
    for package in sorted(set(packages)):
        for path in _package_files(package, recursive):
            h.update(f"{package}:{_relative(path, package)}:".encode())
            h.update(_file_digest(path).encode())
    return h.hexdigest()


def used_modules(spec: PipelineSpec) -> set[str]:
    """Modules of the components a spec names: its loader, model, preprocessing choices, stages and
    metrics (walked generically, so a new component slot in the spec is covered too)."""
    from pydantic import BaseModel

    from trainflow.registry import REGISTRY

    modules: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, BaseModel):
            kind, selector = getattr(type(value), "kind", None), getattr(type(value), "selector", None)
            if kind and selector and getattr(value, selector, None):
                modules.add(REGISTRY.get(kind, getattr(value, selector)).module)
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(spec)
    modality = getattr(spec, "modality", None)
    if modality:  # the modality's stage code, which may come from a plug-in
        modules.add(REGISTRY.get("modality", modality).module)
    evaluate = getattr(spec, "evaluate", None)
    for name in [*(getattr(evaluate, "metrics", None) or []), getattr(evaluate, "primary", None)]:
        if name:
            modules.add(REGISTRY.get("metric", name).module)
    return modules


def input_files(spec: Any) -> dict[str, str]:
    """Content digests of the existing files named by spec fields marked ``input_file``, by field path."""
    from pydantic import BaseModel

    found: dict[str, str] = {}

    def walk(value: Any, where: str) -> None:
        if not isinstance(value, BaseModel):
            return
        for name, info in type(value).model_fields.items():
            item = getattr(value, name)
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if extra.get("input_file") and isinstance(item, str) and Path(item).is_file():
                found[f"{where}{name}"] = _file_digest(Path(item))
            walk(item, f"{where}{name}.")

    walk(spec, "")
    return found


def _leaves_to_torch(spec: Any, field: str, value: Any) -> bool:
    """Whether the spec's modality trains networks (has a ``train`` section) and some section of
    ``spec`` (fields, a component's or loader's extra options, a multimodal input's own train
    options) has ``field: value``."""
    from pydantic import BaseModel

    from trainflow import modalities

    def has(item: Any) -> bool:
        if isinstance(item, BaseModel):
            fields = type(item).model_fields
            return (field in fields and getattr(item, field) == value) or any(
                has(getattr(item, name)) for name in fields) or has(item.model_extra or {})
        if isinstance(item, dict):
            return item.get(field) == value or any(has(v) for v in item.values())
        return isinstance(item, (list, tuple)) and any(has(v) for v in item)

    name = getattr(spec, "modality", None)
    return bool(name) and "train" in modalities.get(name).sections and has(spec)


def default_threads(spec: Any, threads: int | None = None) -> dict[str, Any] | None:
    """``{"threads": n}``, the count torch runs at, when the spec trains networks and some section of
    ``spec`` has ``num_threads: 0`` (torch then follows the run's threads); else None. ``threads``:
    the run's count where the caller knows it (the fit task's input), else the spec's
    ``resources.threads``, else the count of the enclosing :func:`trainflow.resources.using` block
    (the fit itself: its spec is the training view, without ``resources``) or every usable core."""
    from trainflow import resources

    if not _leaves_to_torch(spec, "num_threads", 0):
        return None
    own = getattr(getattr(spec, "resources", None), "threads", 0)
    return {"threads": threads or own or resources.current()}


@functools.cache
def auto_device() -> str:
    """The device ``train.device: auto`` resolves to in this process: ``cuda`` where torch sees a
    CUDA device, else ``cpu`` (the rule of :func:`~trainflow.devices.resolve_device`).
    A torch built without CUDA or ROCm says so in its ``version.py``: then the answer is ``cpu``
    without importing torch (~1 s), so keys stay cheap on CPU-only machines such as CI."""
    import importlib.util
    import re

    found = importlib.util.find_spec("torch")
    if found is None or not found.origin:
        return "cpu"  # no torch: no network is trained here
    version = Path(found.origin).with_name("version.py")
    text = version.read_text(encoding="utf-8") if version.is_file() else ""
    if all(re.search(rf"^{name}\s*(:[^=]*)?=\s*None\s*$", text, re.M) for name in ("cuda", "hip")):
        return "cpu"
    from trainflow.devices import resolve_device

    return resolve_device("auto").type


def default_device(spec: Any) -> str | None:
    """:func:`auto_device` when the spec trains networks and some section has ``device: auto``; else None."""
    return auto_device() if _leaves_to_torch(spec, "device", "auto") else None


def code_fingerprint(spec: PipelineSpec, threads: int | None = None) -> str:
    """Digest of the code that turns ``spec`` into results: trainflow's version and module files,
    plus the packages of the plug-in components the spec uses, the input files its options name,
    the thread count (``threads``, see :func:`default_threads`) and the device ``auto`` picks when the
    spec leaves them to the run (see the module docstring)."""
    from trainflow import __version__

    plugins = sorted({m.split(".")[0] for m in used_modules(spec)
                      if m and m != "trainflow" and not m.startswith("trainflow.")})
    parts = {"trainflow": __version__, "own": source_digest(OWN_PACKAGES),
             "plugins": {p: source_digest([p]) for p in plugins}, "files": input_files(spec)}
    threads, device = default_threads(spec, threads), default_device(spec)
    return json_digest({**parts, **({"threads": threads} if threads else {}), **({"device": device} if device else {})})


def cache_key(spec: PipelineSpec, /, **parts: Any) -> str:
    """Key for a cached result made from ``parts`` (data digests, spec sections) by the code of ``spec``."""
    return json_digest({**parts, "code": code_fingerprint(spec)})


def model_key(split_ref: SplitRef, spec: PipelineSpec) -> str:
    """Key of a model trained on a split's training part with a spec (its training view)."""
    # the validation part chooses the epoch (and thresholds): another part, another model
    held = {"validation": split_ref.validation.digest} if split_ref.validation is not None else {}
    return cache_key(spec, split=split_ref.train.digest, spec=spec.training_view().key_dump(), **held)
