"""PipelineSpec is one declared class (statically visible), completed in place with the modalities'
sections: specs validate against it, the flow's parameter form shows every section, typos are refused."""

from __future__ import annotations

import pytest

from trainflow import spec as spec_module
from trainflow.errors import SpecError
from trainflow.spec import PipelineSpec, PreprocessSpec, spec_from_dict, spec_model


def test_the_spec_is_a_declared_class_completed_in_place():
    assert not hasattr(spec_module, "__getattr__")  # no module-level lookup: what a checker sees is what runs
    assert spec_model() is PipelineSpec and "train" in PipelineSpec.model_fields
    assert {"impute", "sequence", "text", "tokens"} <= set(PreprocessSpec.model_fields)
    assert PipelineSpec.model_fields["task"].annotation.__args__ == ("classification", "forecasting",
                                                                    "multilabel", "regression")
    spec = spec_from_dict({"name": "p", "data": {"loader": "csv", "path": "penguins.csv", "target": "species"},
                           "train": {"epochs": 3}})
    assert type(spec) is PipelineSpec and isinstance(spec.preprocess, PreprocessSpec) and spec.train.epochs == 3


def test_modality_sections_stay_strict():
    with pytest.raises(SpecError, match="train.epochz"):
        spec_from_dict({"name": "p", "data": {"loader": "csv", "path": "x.csv"}, "train": {"epochz": 3}})


def test_the_flow_parameter_form_shows_the_modality_sections():
    from trainflow.flows.pipeline import run_pipeline

    form = run_pipeline.parameters.model_dump()["definitions"]["PipelineSpec"]["properties"]
    assert {"train", "forecast", "preprocess", "data"} <= set(form)


KEY_PROBE = '''
import json
from pydantic import BaseModel, ConfigDict
from trainflow.modality import Modality
from trainflow.registry import component
from trainflow.spec import load_spec
from trainflow.tasks.common.tuning import study_name

def probe():
    spec = load_spec("flows/specs/penguins.yaml")
    return spec.training_view().key_dump(), study_name(spec, [])

before = probe()

class Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = 1

@component("modality", "probe_modality")
class Probe(Modality):
    """A plug-in's modality, imported after the first keys were made."""
    sections = {"probe": Opts, "preprocess.probe": Opts}
    default_models = {"classification": "logistic_regression"}

after = probe()
changed = load_spec("flows/specs/penguins.yaml", ["preprocess.probe.level=2"]).training_view().key_dump()
print(json.dumps({"same": before == after, "has_section": "probe" in load_spec("flows/specs/penguins.yaml").model_dump(),
                  "changed": changed != after[0]}))
'''


def test_a_plugin_modality_changes_no_cache_key_or_study_name():
    """Each registered modality adds its sections to every spec; left at their defaults they stay out of
    the model cache key and the tune study's name, so installing a plug-in reuses every cached model and
    resumes every study. A value the user sets in such a section does change the key. (A child process:
    the probe's sections would otherwise stay in this process's spec class.)"""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", KEY_PROBE], cwd=repo, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"same": True, "has_section": True, "changed": True}
