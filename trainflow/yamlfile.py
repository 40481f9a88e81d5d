"""YAML read as plain data with no aliases: a spec or an input list is small and written by hand.

PyYAML shares an aliased node rather than copying it, so a 2 KB "billion laughs" document loads
fast but becomes 10^9 values for whoever walks it (validation, an error message's ``repr``).
Aliases (``*name``) are refused where they are met, naming the file and line; anchors alone are
harmless and allowed.
"""

from __future__ import annotations

from typing import Any

import yaml


class NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises a ``ComposerError`` at the first alias."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 (PyYAML's hook)
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"found an alias (*{str(event.anchor)[:40]}); trainflow reads YAML without aliases "
                "(they can expand a small file into billions of values): write the values out",
                event.start_mark)
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """``text`` parsed as YAML plain data (safe types, no aliases); ``yaml.YAMLError`` otherwise."""
    return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
