"""YAML read as plain data with no aliases and no repeated keys: a spec or an input list is small
and written by hand.

PyYAML shares an aliased node rather than copying it, so a 2 KB "billion laughs" document loads
fast but becomes 10^9 values for whoever walks it (validation, an error message's ``repr``).
Aliases (``*name``) are refused where they are met, naming the file and line; anchors alone are
harmless and allowed.

PyYAML also keeps the last of two equal keys in a mapping without a word, so a second
``target:`` pasted under ``data:`` would quietly change what is trained. YAML itself requires keys
to be unique; :class:`UniqueKeyLoader` refuses a repeated one, naming it, its section and both lines.
"""

from __future__ import annotations

from typing import Any

import yaml

_MERGE = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names one key twice; ``problems`` has one line per repeated key."""

    def __init__(self, problems: list[str]):
        super().__init__(None, None, "; ".join(problems), None)
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(self.problems)


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises :class:`DuplicateKeyError` for a key repeated in a mapping.

    A key a merge (``<<: *base``) brings in and the mapping then sets again is an override, not a
    repeat: that is what merges are for (Prefect's ``prefect.yaml`` uses them).
    """

    def construct_document(self, node: Any) -> Any:  # noqa: D102 (PyYAML's hook)
        problems: list[str] = []
        self._find_repeats(node, "", problems, set())
        if problems:
            raise DuplicateKeyError(problems)
        return super().construct_document(node)

    def _find_repeats(self, node: Any, path: str, problems: list[str], seen: set[int]) -> None:
        if id(node) in seen:  # an aliased node is checked once, however often it is used
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._find_repeats(item, f"{path}[{i}]", problems, seen)
        elif isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE:
                    key = self.construct_object(key_node)
                    line = key_node.start_mark.line + 1
                    try:
                        earlier = first.get(key)
                        first.setdefault(key, line)
                    except TypeError:  # an unhashable key: PyYAML refuses it with its own message
                        earlier = None
                    if earlier is not None:
                        where = f"in section '{path}'" if path else "at the top level"
                        lines = f"lines {earlier} and {line}" if earlier != line else f"line {line}"
                        problems.append(f"the key '{key}' is given twice {where} ({lines}); YAML would keep "
                                        f"only the last one without a word: remove one")
                    name = str(key)
                else:
                    name = "?"
                self._find_repeats(value_node, f"{path}.{name}" if path else name, problems, seen)


class NoAliasLoader(UniqueKeyLoader):
    """:class:`UniqueKeyLoader` that also raises a ``ComposerError`` at the first alias."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 (PyYAML's hook)
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"found an alias (*{str(event.anchor)[:40]}); trainflow reads YAML without aliases "
                "(they can expand a small file into billions of values): write the values out",
                event.start_mark)
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """``text`` parsed as YAML plain data (safe types, no aliases, no repeated keys); ``yaml.YAMLError``
    (:class:`DuplicateKeyError` for a repeated key) otherwise."""
    return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)


def load_yaml_with_aliases(text: str) -> Any:
    """``text`` parsed as YAML plain data where aliases and merges are part of the format (Prefect's
    ``prefect.yaml``); a repeated key still raises :class:`DuplicateKeyError`."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
