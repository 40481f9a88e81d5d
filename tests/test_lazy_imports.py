"""A run's start is not the sum of every library's import: discovering the components and importing the
flow must not import the heavy libraries that only some modalities or models use."""

import subprocess
import sys

HEAVY = ("torch", "librosa", "soundfile", "sktime", "numba", "statsmodels")

PROBE = f"""
import sys
from trainflow.registry import REGISTRY, discover
discover()
import trainflow.flows.pipeline
from trainflow.flows.spec import load_spec
assert REGISTRY.names("modality"), "no modality registered"
print(",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_discovery_and_flow_import_leave_heavy_libraries_unimported():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    imported = [m for m in out.stdout.strip().split(",") if m]
    assert imported == [], f"imported at start: {imported} (import them inside the functions that use them)"
