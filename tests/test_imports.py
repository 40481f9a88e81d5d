"""trainflow.imports: skops and Great Expectations import without the optional integrations they would
pull in, trust exactly the same types, validate and write Data Docs as before, and leave nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from trainflow.imports import leaving_out

# Every default trusted-type list skops builds at import: the one all_estimators() makes must not change.
# Then: no finder left on sys.meta_path, and a left-out module imports as usual (it imports dask).
SKOPS_TRUSTED = """
import json, sys
import sklearn
{how}
from skops.io import _trusted_types as T
lists = {{k: sorted(map(str, v)) for k, v in vars(T).items() if k.isupper() and isinstance(v, list)}}
imported = [m for m in ("torch", "dask") if m in sys.modules]
finders = [type(f).__name__ for f in sys.meta_path]
import sklearn.externals.array_api_compat.dask.array
print(json.dumps({{"lists": lists, "imported": imported, "finders": finders, "dask_after": "dask" in sys.modules}}))
"""


def _child(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_skops_imports_without_torch_trusts_the_same_types_and_leaves_nothing_behind():
    plain = _child(SKOPS_TRUSTED.format(how="import skops.io"))
    ours = _child(SKOPS_TRUSTED.format(how="from trainflow.trust import skops_io; skops_io()"))
    assert "torch" in plain["imported"], "skops no longer imports torch: the helper may be dropped"
    assert ours["imported"] == []
    assert len(ours["lists"]["SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 100
    assert ours["lists"] == plain["lists"]
    assert "_LeaveOut" not in ours["finders"] and ours["dask_after"] is True


def test_great_expectations_validates_and_writes_data_docs_without_sqlalchemy(tmp_path):
    code = f"""
import json, sys
from pathlib import Path
import pandas as pd
from trainflow.errors import ValidationFailed
from trainflow.tasks.common.validate import Check, run_expectations
df = pd.DataFrame({{"x": [1.0, 2.0, 3.0, None], "y": ["a", "b", "a", "c"]}})
ok = run_expectations(df, [Check("expect_column_values_to_be_between", {{"column": "x", "min_value": 0, "max_value": 5}})],
                      Path({str(tmp_path)!r}) / "ok", "ok")
try:
    run_expectations(df, [Check("expect_column_values_to_be_in_set", {{"column": "y", "value_set": ["a", "b"]}})],
                     Path({str(tmp_path)!r}) / "bad", "bad")
    failed = None
except ValidationFailed as exc:
    failed = exc.report
print(json.dumps({{"ok": ok.success, "docs": ok.docs_path, "failed": failed,
                  "sqlalchemy": "sqlalchemy" in sys.modules}}))
"""
    res = _child(code)
    assert res["ok"] is True and res["sqlalchemy"] is False
    assert res["docs"].endswith("index.html") and "<html" in open(res["docs"]).read().lower()
    assert "expect_column_values_to_be_in_set on column 'y'" in res["failed"]
    assert "1 of 4 values unexpected, e.g. 'c'" in res["failed"]
    assert (tmp_path / "bad" / "index.html").is_file()


def test_leaving_out_is_per_thread_and_leaves_nothing_behind(tmp_path, monkeypatch):
    for name in ("tf_probe_left_out", "tf_probe_other_thread"):
        (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    finders, other = list(sys.meta_path), {}

    def import_in_other_thread():
        import tf_probe_other_thread

        other["value"] = tf_probe_other_thread.VALUE

    try:
        with leaving_out(["tf_probe_left_out", "tf_probe_other_thread"]):
            with pytest.raises(ModuleNotFoundError, match="left out by trainflow"):
                import tf_probe_left_out  # noqa: F401
            thread = threading.Thread(target=import_in_other_thread)
            thread.start()
            thread.join()
        assert other == {"value": 1}
        assert sys.meta_path == finders and "tf_probe_left_out" not in sys.modules
        import tf_probe_left_out  # noqa: F401, F811

        assert tf_probe_left_out.VALUE == 1
    finally:
        for name in ("tf_probe_left_out", "tf_probe_other_thread"):
            sys.modules.pop(name, None)


def test_deferred_distribution_modules_load_only_for_the_expectations_that_use_them(tmp_path):
    """The validation child's import (``defer``): a common validation and its Data Docs never load
    scipy.stats or Altair; a KL divergence expectation loads them at its first use and passes."""
    code = f"""
import json, sys
from pathlib import Path
import pandas as pd
from trainflow.tasks.common.validate import Check, _gx, run_expectations
_gx(defer=True)
loaded = lambda: [m for m in ("scipy.stats._stats_py", "altair.vegalite") if m in sys.modules]
after_import = loaded()
df = pd.DataFrame({{"x": [1.0, 2.0, 3.0, 4.0] * 25, "y": ["a", "b"] * 50}})
ok = run_expectations(df, [Check("expect_column_values_to_be_between", {{"column": "x", "min_value": 0, "max_value": 5}}),
                           Check("expect_column_values_to_be_in_set", {{"column": "y", "value_set": ["a", "b"]}})],
                      Path({str(tmp_path)!r}) / "ok", "ok")
after_validation = loaded()
kl = run_expectations(df, [Check("ExpectColumnKLDivergenceToBeLessThan", {{"column": "y", "threshold": 0.1,
                           "partition_object": {{"values": ["a", "b"], "weights": [0.5, 0.5]}}}})],
                      Path({str(tmp_path)!r}) / "kl", "kl")
print(json.dumps({{"after_import": after_import, "after_validation": after_validation, "ok": ok.success,
                  "kl": kl.success, "after_kl": loaded(), "finders": [type(f).__name__ for f in sys.meta_path]}}))
"""
    res = _child(code)
    assert res["after_import"] == [] and res["after_validation"] == [] and res["ok"] is True
    assert res["kl"] is True and res["after_kl"] == ["scipy.stats._stats_py", "altair.vegalite"]
    assert "_Defer" not in res["finders"] and "_LeaveOut" not in res["finders"]
    assert (tmp_path / "ok" / "index.html").is_file() and (tmp_path / "kl" / "index.html").is_file()
