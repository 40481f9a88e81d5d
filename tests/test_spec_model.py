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
