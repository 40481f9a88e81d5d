"""The docs say what the code does: every option block and option table in README.md and docs/*.md is
checked against the spec models' defaults and the component registry (what `trainflow components` lists)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from tests.conftest import REPO
from trainflow.errors import SpecError
from trainflow.spec import Choice, spec_from_dict, spec_model
from trainflow.registry import REGISTRY

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: table header -> component kind its first column names
TABLE_KINDS = {"loader": "loader", "name": "model"}


def yaml_blocks() -> list[tuple[str, str]]:
    return [(f"{p.name}:{p.read_text()[: m.start()].count(chr(10)) + 1}", m.group(1))
            for p in DOCS for m in re.finditer(r"```yaml\n(.*?)```", p.read_text(), re.S)]


def option_tables() -> list[tuple[str, str, list[list[str]]]]:
    """(where, header of the first column, rows) of every markdown table naming components."""
    found = []
    for p in DOCS:
        for m in re.finditer(r"((?:^\|.*\|\n)+)", p.read_text(), re.M):
            rows = [[c.strip() for c in line.strip("|").split("|")] for line in m.group(1).splitlines()]
            if rows[0][0] in TABLE_KINDS and any("option" in h for h in rows[0]):
                found.append((f"{p.name}:{p.read_text()[: m.start()].count(chr(10)) + 1}", rows[0], rows[2:]))
    return found


def _default(model: type[BaseModel] | BaseModel, key: str) -> Any:
    field = type(model).model_fields[key] if isinstance(model, BaseModel) else model.model_fields[key]
    value = field.get_default(call_default_factory=True)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def default_mismatches(node: dict, model: BaseModel, where: str, comments: dict[str, str]) -> list[str]:
    """Leaves of a documented section whose value differs from the model's default (components: their
    config's), unless the line's comment names the true default (``# default 12; ...``)."""
    problems = []
    config = None
    if isinstance(model, Choice):
        comp, config = model.resolve(where)
    for key, value in node.items():
        if isinstance(model, Choice) and key == model.selector:
            continue
        owner = config if config is not None and key in type(config).model_fields else model
        if key not in type(owner).model_fields:
            problems.append(f"{where}.{key} is not an option")
        elif isinstance(value, dict) and isinstance(getattr(owner, key), BaseModel):
            problems += default_mismatches(value, getattr(owner, key), f"{where}.{key}", comments)
        elif _default(owner, key) != value and not (isinstance(value, list) and _default(owner, key) == tuple(value)):
            said = re.search(r"\bdefault:? ([^;,)\s]+)", comments.get(key, ""))
            if not said:
                problems.append(f"{where}.{key}: the docs show {value!r} as if it were the default "
                                f"{_default(owner, key)!r} (say '# default ...' in its comment when showing another value)")
            elif yaml.safe_load(said.group(1)) != _default(owner, key):
                problems.append(f"{where}.{key}: its comment says default {said.group(1)}, "
                                f"the default is {_default(owner, key)!r}")
    return problems


@pytest.mark.parametrize("where, text", yaml_blocks(), ids=[w for w, _ in yaml_blocks()])
def test_yaml_blocks_match_the_spec(where, text):
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict) or not set(raw) <= set(spec_model().model_fields):
        pytest.skip("not a spec block (a deployment or other file)")
    loader = (raw.get("data") or {}).get("loader")
    if loader and loader not in REGISTRY.names("loader"):
        pytest.skip("a plug-in example: its loader comes from the example package (run by its own test)")
    if "name" in raw:  # a whole example spec: it must be valid, options may differ from the defaults
        try:
            spec_from_dict(raw)
        except SpecError as exc:
            pytest.fail(f"{where}: {exc}")
        return
    if "stages" in raw:
        pytest.skip("a plugin example: its components come from the example package")
    # a section block documents the defaults of the sections it shows
    spec = spec_from_dict({"name": "docs", "data": {"loader": "csv", "path": "x.csv"}})
    comments = dict(re.findall(r"^\s*(\w+):[^#\n]*#(.*)$", text, re.M))
    problems = []
    for section, node in raw.items():
        problems += default_mismatches(node, getattr(spec, section), section, comments)
    assert not problems, f"{where}: " + "; ".join(problems)


@pytest.mark.parametrize("where, header, rows", option_tables(), ids=[w for w, _, _ in option_tables()])
def test_option_tables_match_the_registry(where, header, rows):
    kind = TABLE_KINDS[header[0]]
    col = next(i for i, h in enumerate(header) if "option" in h)
    problems = []
    for row in rows:
        for name in re.findall(r"`(\w+)`", row[0]):
            comp = REGISTRY.get(kind, name)
            fields = comp.config.model_fields
            for option, value in re.findall(r"`(\w+)`:? ?(\[[^\]]*\]|[^,()`|]*)", row[col]):
                if option not in fields:
                    problems.append(f"{name}: '{option}' is not an option (options: {', '.join(fields)})")
                    continue
                shown = value.strip()
                if "default" in header[col] and shown:
                    got = yaml.safe_load(shown)
                    default = _default(comp.config, option)
                    if got != default and [got] != [list(default) if isinstance(default, tuple) else default]:
                        problems.append(f"{name}: '{option}' shown as {shown!r}, the default is {default!r}")
    assert not problems, f"{where}: " + "; ".join(problems)


def test_component_lists_in_comments_name_every_registered_choice():
    """Comments such as ``# drop_rows | mean | median`` beside a component choice list exactly the registry's names."""
    readme = (REPO / "README.md").read_text()
    for slot, kind in [("impute", "imputer"), ("encode", "encoder"), ("scale", "scaler"), ("resample", "sampler")]:
        line = re.search(rf"^\s*{slot}: \{{method: \w+.*#\s*(.*)$", readme, re.M)
        assert line, f"README.md lost the {slot} line"
        shown = {w.split(" ")[0] for w in line.group(1).split(" | ")}
        assert shown == set(REGISTRY.names(kind, "classification")), f"README.md preprocess.{slot}: {shown}"
