"""Importing skops and Great Expectations without the optional integrations they would drag in.

Both libraries import, at their own import, packages a run never uses: ``import skops.io`` lists
scikit-learn's estimators with ``all_estimators()``, whose package walk imports scikit-learn's vendored
array-API adapters for PyTorch, Dask and CuPy (so PyTorch and Dask themselves: ~1.7 s of a 2.2 s import);
``import great_expectations`` tries its SQL and cloud integrations (SQLAlchemy's 150 modules, the Google
Cloud SDK, ...) and keeps a stand-in for each one that fails. :func:`leaving_out` makes exactly those
imports fail, only in the importing thread and only while the import runs, so each library takes its own
"not installed" path. Nothing the libraries need is left out, and the lists below say why each name is
safe to leave out.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.abc import MetaPathFinder
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


class _LeaveOut(MetaPathFinder):
    """Fails the import of the names this thread leaves out; other threads import as usual."""

    def __init__(self) -> None:
        self.local = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        for name in getattr(self.local, "names", ()):
            if fullname == name or fullname.startswith(name + "."):
                raise ModuleNotFoundError(f"No module named {fullname!r} (left out by trainflow.imports)",
                                          name=fullname)
        return None


_FINDER = _LeaveOut()
_LOCK = threading.Lock()
_USERS = 0


@contextmanager
def leaving_out(names: Iterable[str]) -> Iterator[None]:
    """While the block runs, importing any of ``names`` (or a submodule of one) in this thread raises
    ModuleNotFoundError (so does ``importlib.util.find_spec`` of one). A name already imported is left
    alone; ``sys.modules`` is never written, so nothing is left behind (unlike a ``None`` entry there),
    and an import of the same name in another thread, e.g. a task running beside validation, is not
    affected."""
    global _USERS
    names = tuple(n for n in names if n not in sys.modules)
    before = getattr(_FINDER.local, "names", ())
    _FINDER.local.names = before + names
    with _LOCK:
        if _USERS == 0:
            sys.meta_path.insert(0, _FINDER)
        _USERS += 1
    try:
        yield
    finally:
        with _LOCK:
            _USERS -= 1
            if _USERS == 0:
                sys.meta_path.remove(_FINDER)
        _FINDER.local.names = before


def skops_io() -> ModuleType:
    """``skops.io``, imported without PyTorch, Dask and CuPy (see :data:`SKOPS_LEFT_OUT`)."""
    with leaving_out(SKOPS_LEFT_OUT):
        return importlib.import_module("skops.io")


def great_expectations() -> ModuleType:
    """``great_expectations``, imported without its SQL and cloud integrations (see :data:`GX_LEFT_OUT`)."""
    with leaving_out(GX_LEFT_OUT):
        return importlib.import_module("great_expectations")
