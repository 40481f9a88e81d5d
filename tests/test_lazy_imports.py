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
from trainflow.spec import load_spec
assert REGISTRY.names("modality"), "no modality registered"
print(",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_discovery_and_flow_import_leave_heavy_libraries_unimported():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    imported = [m for m in out.stdout.strip().split(",") if m]
    assert imported == [], f"imported at start: {imported} (import them inside the functions that use them)"


SERIALIZE = """
import json, sys
from trainflow.flows.pipeline import run_pipeline
from trainflow.spec import load_spec
spec = load_spec(sys.argv[1], [])
print(json.dumps(["fastapi" in sys.modules, run_pipeline.serialize_parameters({"spec": spec, "out": "runs"}),
                  "fastapi" in sys.modules]))
"""


def test_the_pipeline_flow_sends_its_parameters_as_prefect_would_without_importing_fastapi():
    """Prefect serializes a flow run's parameters with FastAPI's ``jsonable_encoder`` (importing FastAPI:
    0.09 s CPU at every run's start); the pipeline flow sends the same JSON through pydantic."""
    import json
    from pathlib import Path

    from prefect.flows import Flow

    from trainflow.flows.pipeline import run_pipeline
    from trainflow.spec import load_spec

    specs = sorted(p for p in (Path(__file__).resolve().parents[1] / "flows" / "specs").glob("*.yaml")
                   if p.name != "demos.yaml")
    assert len(specs) >= 5
    for path in specs:
        params = {"spec": load_spec(path, []), "out": "runs"}
        assert run_pipeline.serialize_parameters(params) == Flow.serialize_parameters(run_pipeline, params), path
    out = subprocess.run([sys.executable, "-c", SERIALIZE, str(specs[0])], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, sent, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert (before, after) == (False, False) and sent["out"] == "runs" and sent["spec"]["name"]
