"""Importing skops and Great Expectations without the optional integrations they would drag in.

Both libraries import, at their own import, packages a run never uses: ``import skops.io`` lists
scikit-learn's estimators with ``all_estimators()``, whose package walk imports scikit-learn's vendored
array-API adapters for PyTorch, Dask and CuPy (so PyTorch and Dask themselves: ~1.7 s of a 2.2 s import);
``import great_expectations`` tries its SQL and cloud integrations (SQLAlchemy's 150 modules, the Google
Cloud SDK, ...) and keeps a stand-in for each one that fails. :func:`leaving_out` makes exactly those
imports fail, only in the importing thread and only while the import runs, so each library takes its own
"not installed" path. Nothing the libraries need is left out, and the lists below say why each name is
safe to leave out. :func:`deferring` is the milder hook for modules a library imports at its top but uses
only inside the functions of a few features: their import is deferred until first use (``scipy.stats``
and Altair, ~1 s of Great Expectations' 2.5 s import, for its distribution-test expectations).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

#: The vendored array-API adapters that ``all_estimators()``'s package walk imports (and with them
#: PyTorch, Dask, CuPy). They live under ``sklearn.externals``, which ``all_estimators()`` skips, so
#: the estimator list skops trusts by default is the same without them (tests/test_imports.py checks).
SKOPS_LEFT_OUT = (
    "sklearn.externals.array_api_compat.torch",
    "sklearn.externals.array_api_compat.dask",
    "sklearn.externals.array_api_compat.cupy",
)

#: Great Expectations' SQL and cloud integrations: each is imported only in a
#: ``great_expectations.compatibility`` module, inside ``try: ... except ImportError`` with a stand-in;
#: validating a pandas DataFrame in an ephemeral context and writing file-system Data Docs use none.
GX_LEFT_OUT = (
    "sqlalchemy", "sqlalchemy_bigquery", "sqlalchemy_redshift", "snowflake", "databricks", "trino",
    "pyathena", "pyspark", "py4j", "pyodbc", "pypd", "boto3", "botocore", "azure",
    "google.cloud", "google.api_core", "google.auth", "google.oauth2",
)


#: What ``import great_expectations`` imports at its top for a few expectations only: ``scipy.stats``
#: (KL divergence, KS tests) and Altair (the KL divergence's chart), each used inside functions alone
#: (tests/test_imports.py checks a validation and its Data Docs leave them unloaded).
GX_DEFERRED = ("scipy.stats", "altair")


class _PerThread(MetaPathFinder):
    """A finder for the names the importing thread gave it (``local.names``); other threads pass."""

    def __init__(self) -> None:
        self.local = threading.local()


class _LeaveOut(_PerThread):
    """Fails the import of the names this thread leaves out; other threads import as usual."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        for name in getattr(self.local, "names", ()):
            if fullname == name or fullname.startswith(name + "."):
                raise ModuleNotFoundError(f"No module named {fullname!r} (left out by trainflow.imports)",
                                          name=fullname)
        return None


class _Defer(_PerThread):
    """Gives the modules this thread defers a lazy loader: the module object is made at once, its code
    runs at the first use of one of its attributes. Other threads import as usual."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if fullname not in getattr(self.local, "names", ()):
            return None
        for finder in sys.meta_path:  # the spec the rest of the path would find
            if isinstance(finder, _PerThread) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if isinstance(spec.loader, Loader) and hasattr(spec.loader, "exec_module"):
                    spec.loader = importlib.util.LazyLoader(spec.loader)
                return spec
        return None


_FINDER, _DEFER = _LeaveOut(), _Defer()
_LOCK = threading.Lock()
_USERS = {_FINDER: 0, _DEFER: 0}


@contextmanager
def _active(finder: _PerThread, names: Iterable[str]) -> Iterator[None]:
    """``finder`` first on ``sys.meta_path`` with ``names`` (those not imported yet) added for this
    thread, while the block runs."""
    names = tuple(n for n in names if n not in sys.modules)
    before = getattr(finder.local, "names", ())
    finder.local.names = before + names
    with _LOCK:
        if _USERS[finder] == 0:
            sys.meta_path.insert(0, finder)
        _USERS[finder] += 1
    try:
        yield
    finally:
        with _LOCK:
            _USERS[finder] -= 1
            if _USERS[finder] == 0:
                sys.meta_path.remove(finder)
        finder.local.names = before


def leaving_out(names: Iterable[str]) -> AbstractContextManager[None]:
    """While the block runs, importing any of ``names`` (or a submodule of one) in this thread raises
    ModuleNotFoundError (so does ``importlib.util.find_spec`` of one). A name already imported is left
    alone; ``sys.modules`` is never written, so nothing is left behind (unlike a ``None`` entry there),
    and an import of the same name in another thread, e.g. a task running beside validation, is not
    affected."""
    return _active(_FINDER, names)


def deferring(names: Iterable[str]) -> AbstractContextManager[None]:
    """While the block runs, a module of ``names`` (exact names) that this thread imports for the first
    time is made lazy (``importlib.util.LazyLoader``): its code runs at the first use of one of its
    attributes. For a process with one thread only: on Python 3.11 two threads' first use of a lazy
    module can race (the validation child is such a process)."""
    return _active(_DEFER, names)


def skops_io() -> ModuleType:
    """``skops.io``, imported without PyTorch, Dask and CuPy (see :data:`SKOPS_LEFT_OUT`)."""
    with leaving_out(SKOPS_LEFT_OUT):
        return importlib.import_module("skops.io")


def great_expectations(defer: bool = False) -> ModuleType:
    """``great_expectations``, imported without its SQL and cloud integrations (see :data:`GX_LEFT_OUT`);
    ``defer``: with :data:`GX_DEFERRED` loaded at first use (see :func:`deferring`: one thread only)."""
    with leaving_out(GX_LEFT_OUT), deferring(GX_DEFERRED if defer else ()):
        return importlib.import_module("great_expectations")
