"""The component registry: every named, swappable part a spec can choose.

A component is a builder function plus a pydantic config (``extra="forbid"``), registered under a
kind and a name with :func:`component`. Built-ins register when their module in ``tasks/`` is
imported; third-party packages expose modules through the ``trainflow.components`` entry-point
group. :func:`discover` imports both once, and fails loudly naming any module that breaks.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainflow.errors import ComponentError, SpecError, did_you_mean, expected, shown

ENTRY_POINT_GROUP = "trainflow.components"

#: What each kind of component is; the order is the order ``trainflow components`` lists them in.
KINDS: dict[str, str] = {
    "modality": "a kind of data and how each pipeline stage treats it (see trainflow.modality)",
    "loader": "reads a dataset from files into memory",
    "imputer": "fills or removes missing values (fitted on training data only)",
    "encoder": "turns categorical columns into numbers",
    "scaler": "rescales numeric features",
    "reducer": "reduces the number of features",
    "sampler": "handles class imbalance (applied to training data only)",
    "model": "the estimator or network that is trained",
    "metric": "scores predictions on held-out data",
    "stage": "an extra Prefect task that runs after a named stage",
}


class NoOptions(BaseModel):
    """Config for a component that takes no options."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Component:
    """A registered component: ``build(config, **context)`` makes the working object."""

    kind: str
    name: str
    build: Callable[..., Any]
    config: type[BaseModel] = NoOptions
    summary: str = ""
    tasks: tuple[str, ...] = ()  # pipeline tasks it serves; empty means all
    modality: str | None = None  # for loaders and models: the name of a registered modality
    module: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def parse(self, options: dict[str, Any], where: str) -> BaseModel:
        """Validate ``options`` against this component's config; raise SpecError naming ``where``."""
        try:
            return self.config.model_validate(options)
        except ValidationError as exc:
            raise SpecError(pydantic_problems(exc, prefix=where, model=self.config)) from None


def pydantic_problems(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> list[str]:
    """Turn a pydantic ValidationError into our one-line-per-problem messages.

    With ``model`` (the class that was validated), an unknown key gets a did-you-mean hint from the
    keys known at its place. The value the user wrote is quoted as given. The errors of the members
    of a union type (``int | float``) become one message for the field.
    """
    problems: list[str] = []
    union: dict[str, list[str]] = {}  # field -> what each member of a union type expected
    for err in exc.errors():
        parts = [str(p) for p in err["loc"] if not str(p).startswith("function-after")]
        member = len(parts) > 1 and UNION_MEMBER.match(parts[-1]) is not None
        loc = ".".join(parts[:-1] if member else parts)
        field_name = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        if member and err["type"] not in ("extra_forbidden", "missing"):
            union.setdefault(field_name, []).append(err["msg"].removeprefix("Input should be "))
            union[field_name + "\0got"] = [shown(err.get("input"))]
            continue
        if err["type"] == "extra_forbidden":
            known = known_fields(model, err["loc"][:-1]) if model else []
            problems.append(f"'{field_name}' is not a known option{did_you_mean(err['loc'][-1], known)}.")
        elif err["type"] in ("literal_error", "enum"):
            allowed = err.get("ctx", {}).get("expected", "")
            hint = did_you_mean(err["input"], re.findall(r"'([^']*)'", allowed))
            problems.append(f"'{field_name}' must be {allowed}. Got {shown(err['input'])}{hint}.")
        else:
            got = err.get("input")
            got_text = f" Got {shown(got)}." if got is not None and not isinstance(got, dict) else ""
            msg = err["msg"].removeprefix("Value error, ").rstrip(".")
            problems.append(f"'{field_name}': {msg}.{got_text}")
    for field_name, expected_each in union.items():
        if not field_name.endswith("\0got"):
            got = union[field_name + "\0got"][0]
            problems.append(f"'{field_name}' should be {' or '.join(dict.fromkeys(expected_each))}. Got {got}.")
    return problems


#: the last part of an error location that names a member of a union type (``n_components.int``)
UNION_MEMBER = re.compile(r"^(int|float|str|bool|bytes|none|(list|tuple|dict|set|literal|function-\w+|"
                          r"is-instance|nullable|constrained-\w+)\[.*\])$")


def known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the pydantic ``model`` accepts at ``loc`` (list indexes and dict keys are stepped over)."""
    models = [model]
    for part in loc:
        inner = [m for c in models if part in c.model_fields for m in _models_in(c.model_fields[part].annotation)]
        if inner:
            models = inner
        elif any(part in c.model_fields for c in models):
            return []  # a field that holds no model: nothing to suggest
        # else a list index or a dict key: the container's models stay
    return sorted({name for m in models for name in m.model_fields})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``X | None``, ``list[X]``, ``dict[str, X]`` ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


class Registry:
    """Components by (kind, name)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Component] = {}

    def add(self, comp: Component) -> None:
        """Register ``comp``; a second component with the same kind and name is an error."""
        if comp.kind not in KINDS:
            raise ComponentError(expected(f"The kind of component '{comp.name}'", KINDS, comp.kind))
        if comp.kind == "loader" and not comp.modality:
            raise ComponentError(f"The loader '{comp.name}' (module '{comp.module}') must name the modality of "
                                 f"the data it gives: component('loader', '{comp.name}', ..., modality=...).")
        if comp.kind == "modality":
            from trainflow.modality import Modality

            if not (isinstance(comp.build, type) and issubclass(comp.build, Modality)):
                raise ComponentError(f"The modality '{comp.name}' (module '{comp.module}') must be a subclass "
                                     "of trainflow.modality.Modality.")
        key = (comp.kind, comp.name)
        old = self._items.get(key)
        if old is not None and old.module != comp.module:
            raise ComponentError(
                f"{comp.kind} '{comp.name}' from module '{comp.module}' clashes with the one "
                f"already registered by '{old.module}'."
            )
        self._items[key] = comp

    def get(self, kind: str, name: str, task: str | None = None, where: str | None = None) -> Component:
        """Return the component, or raise ComponentError listing the valid names."""
        discover()
        comp = self._items.get((kind, name))
        if comp is None or (task and comp.tasks and task not in comp.tasks):
            label = where or kind
            raise ComponentError(expected(f"'{label}'", self.names(kind, task), name))
        return comp

    def names(self, kind: str, task: str | None = None) -> list[str]:
        """Names of the registered components of ``kind`` usable for ``task``."""
        discover()
        return sorted(
            n for (k, n), c in self._items.items() if k == kind and (not task or not c.tasks or task in c.tasks)
        )

    def all(self) -> list[Component]:
        """Every registered component, by kind order then name."""
        discover()
        order = list(KINDS)
        return sorted(self._items.values(), key=lambda c: (order.index(c.kind), c.name))


REGISTRY = Registry()


class Choice(BaseModel):
    """A spec section that picks a component by name (the ``selector`` field) plus its options."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str]
    selector: ClassVar[str]

    @property
    def choice(self) -> str:
        return getattr(self, self.selector)

    def options(self) -> dict[str, Any]:
        """The options given beside the name."""
        return dict(self.model_extra or {})

    def resolve(self, where: str, task: str | None = None) -> tuple[Component, BaseModel]:
        """Find the component and validate its options; errors name ``where``."""
        comp = REGISTRY.get(self.kind, self.choice, task=task, where=f"{where}.{self.selector}")
        return comp, comp.parse(self.options(), where=f"{where}")

    def problems(self, where: str, task: str | None = None) -> list[str]:
        """What :meth:`resolve` would refuse, as messages (empty when the choice is valid)."""
        try:
            self.resolve(where, task)
        except SpecError as exc:
            return list(exc.problems)
        return []


def choice(name: str, kind: str, selector: str, default: str | None, description: str, doc: str) -> type[Choice]:
    """A :class:`Choice` section class: the ``kind`` of component named by its ``selector`` field
    (default ``default``), plus that component's options."""
    from pydantic import create_model

    section = create_model(name, __base__=Choice, __doc__=doc,
                           **{selector: (str | None if default is None else str, Field(default, description=description))})
    section.kind, section.selector = kind, selector
    return section


def check_declared(names: Iterable[str], where: str) -> tuple[str, ...]:
    """Validate a component's ``trusted_types``: whole dotted names, never a module prefix."""
    names = tuple(names)
    bad = [n for n in names if not isinstance(n, str) or "." not in n.strip(".") or n.endswith(".")
           or "*" in n or n != n.strip()]
    if bad:
        raise ComponentError(f"{where}: trusted_types must be fully qualified type or function names such as "
                             f"'sklearn.tree._tree.Tree', never a module prefix. Got {bad!r}.")
    return names


def component(
    kind: str,
    name: str,
    config: type[BaseModel] = NoOptions,
    *,
    tasks: tuple[str, ...] = (),
    modality: str | None = None,
    summary: str | None = None,
    **extra: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn`` as the builder of component ``kind``/``name``.

    ``summary`` defaults to the first line of the builder's docstring. ``extra`` holds facts other
    code asks about, e.g. ``class_weight`` (a model takes class weights), ``modalities`` (a model
    takes data of these modalities too), ``random=True`` (the output depends on the seed: the
    contract test checks that a different seed gives a different result), ``trusted_types`` (the
    exact types and functions, beyond the estimators it builds, that a saved model made with the
    component may hold; see :mod:`trainflow.trust`).
    """
    if "trusted_types" in extra:
        extra["trusted_types"] = check_declared(extra["trusted_types"], f"{kind} '{name}'")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if kind == "modality":
            fn.name = name  # a Modality subclass knows its registered name
        doc = (fn.__doc__ or "").strip().splitlines()
        REGISTRY.add(
            Component(
                kind=kind,
                name=name,
                build=fn,
                config=config,
                summary=summary or (doc[0] if doc else ""),
                tasks=tasks,
                modality=modality,
                module=fn.__module__,
                extra=extra,
            )
        )
        return fn

    return register


_discovered = False


#: the package of the built-in components, found by name as plug-ins are through their entry points:
#: the core imports no module of it, so the layers above it stay above (README, "Architecture")
BUILTIN_PACKAGE = "trainflow.tasks"


def discover(force: bool = False) -> None:
    """Import every built-in module of :data:`BUILTIN_PACKAGE` that registers components (subpackages
    included) and every entry-point module, once."""
    global _discovered
    if _discovered and not force:
        return
    _discovered = True  # set first: the imports below call back into the registry
    builtin = importlib.import_module(BUILTIN_PACKAGE)

    # walk_packages imports each subpackage to look inside it, so a broken one is named too
    for info in pkgutil.walk_packages(builtin.__path__, prefix=f"{BUILTIN_PACKAGE}.", onerror=_failed_package):
        if info.ispkg or _registers(info.name):
            _import(info.name, origin="built-in module")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plug-in must say which one it is
            raise ComponentError(
                f"The plug-in module '{ep.value}' (entry point '{ep.name}' in group "
                f"'{ENTRY_POINT_GROUP}') failed to import: {type(exc).__name__}: {exc}"
            ) from exc


def _registers(module: str) -> bool:
    """Whether the module's source uses ``@component``. Only those are imported at discovery: a module of
    networks or helpers is imported by the component that needs it, so its heavy imports (torch, audio
    or time-series libraries) are not paid by a run that never uses it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return True  # not a plain source file: import it and let the import say what it is
    try:
        return "component(" in Path(spec.origin).read_text(encoding="utf-8")
    except OSError:
        return True


def _failed_package(name: str) -> None:
    _import(name, origin="built-in package")


def _import(module: str, origin: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as exc:
        raise ComponentError(f"The {origin} '{module}' failed to import: {type(exc).__name__}: {exc}") from exc
