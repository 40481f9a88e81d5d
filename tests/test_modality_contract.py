"""One contract, every registered modality (built-in or plug-in), run without Prefect through the
checks plug-in authors run too (:func:`trainflow.testing.check_modality`): the interface is complete,
and the modality's tiny example goes load + store -> validate -> profile -> split -> fit -> evaluate
-> export -> predict, with what the flow relies on checked at each step."""

from __future__ import annotations

import pytest

from trainflow import modalities
from trainflow.registry import REGISTRY
from trainflow.testing import ContractError, check_interface, check_modality

NAMES = REGISTRY.names("modality")


def test_the_builtin_modalities_are_registered():
    assert {"tabular", "image", "sequence", "forecast", "text", "audio", "multimodal"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_contract(name, tmp_path):
    assert check_modality(name, tmp_path) == ["check_interface", "check_round_trip"]


def test_an_incomplete_modality_fails_the_interface_check(monkeypatch):
    tabular = modalities.get("tabular")
    monkeypatch.setattr(type(tabular), "default_models", {})
    with pytest.raises(ContractError, match="declares no default model"):
        check_interface(tabular)
