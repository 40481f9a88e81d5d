"""One contract, every registered component (cf. imbalanced-learn's test_common), run through the
checks plug-in authors run too (:func:`trainflow.testing.check_component`): a docstring summary; the
config round-trips and rejects unknown options and wrong values with a message naming the option;
and on tiny data the same seed gives the same output (a ``random`` component: another seed, another)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from trainflow.registry import REGISTRY, component
from trainflow.testing import ContractError, check_component

COMPONENTS = REGISTRY.all()
IDS = [f"{c.kind}:{c.name}" for c in COMPONENTS]


@pytest.mark.parametrize("comp", COMPONENTS, ids=IDS)
def test_contract(comp, tmp_path):
    ran = check_component(comp.kind, comp.name, tmp_path)
    assert {"check_summary", "check_unknown_option_refused"} <= set(ran)
    if comp.extra.get("random"):
        assert "check_different_seed" in ran


def test_random_components_are_declared():
    names = {(c.kind, c.name) for c in COMPONENTS if c.extra.get("random")}
    assert {("sampler", "smote"), ("model", "random_forest"), ("model", "cnn"), ("model", "gru")} <= names


class _Loose(BaseModel):  # no extra="forbid": unknown options pass silently
    model_config = ConfigDict(extra="ignore")
    width: int = 3


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 3


@pytest.fixture
def throwaway():
    """Components registered for one test, removed after it."""
    names = []

    def register(name, config, fn, **extra):
        component("metric", name, config, tasks=("regression",), **extra)(fn)
        names.append(name)

    yield register
    for name in names:
        REGISTRY._items.pop(("metric", name), None)


def test_the_checks_fail_a_broken_component(throwaway, tmp_path):
    def loose(y, pred, *_):
        """Mean difference, with a config that takes any option."""
        return float((pred - y).mean())

    throwaway("contract_loose", _Loose, loose)
    with pytest.raises(ContractError, match="accepts an unknown option"):
        check_component("metric", "contract_loose", tmp_path / "a")

    def undocumented(y, pred, *_):
        return float((pred - y).mean())

    throwaway("contract_undocumented", _Strict, undocumented)
    with pytest.raises(ContractError, match="needs a docstring"):
        check_component("metric", "contract_undocumented", tmp_path / "b")

    def fixed(y, pred, *_):
        """The same number whatever the seed, though registered as random."""
        return 1.0

    throwaway("contract_not_random", _Strict, fixed, random=True)
    with pytest.raises(ContractError, match="seeds 3 and 4 give the same output"):
        check_component("metric", "contract_not_random", tmp_path / "c")
