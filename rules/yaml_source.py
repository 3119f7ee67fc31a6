"""YAML loading that remembers where every value came from.

Validation errors are only useful to the person editing the rules file if they
point at a line, so the composed node tree is kept next to the plain data and
pydantic error locations are walked back through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml


class RulesFileSyntaxError(ValueError):
    """The rules file is not valid YAML at all."""


@dataclass(frozen=True)
class YamlSource:
    """Parsed YAML data plus the node tree it was built from."""

    name: str
    data: Any
    root: yaml.Node | None

    def line_of(self, location: Sequence[int | str]) -> int | None:
        """The 1-based line of the deepest node along a pydantic error location."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in location:
            found = _child(node, part)
            if found is None:
                break
            node, line = found[0], found[1].start_mark.line + 1
        return line


def _child(node: yaml.Node | None, part: int | str) -> tuple[yaml.Node, yaml.Node] | None:
    """The child node and the node whose line names it (the key, for mappings)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if str(key_node.value) == str(part):
                return value_node, key_node
        return None
    if (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    ):
        return node.value[part], node.value[part]
    return None


def load_yaml(text: str, name: str) -> YamlSource:
    """Parse ``text`` once for data and once for marks; raise with a line on bad syntax."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise RulesFileSyntaxError(f"{where}: {problem}") from error
    return YamlSource(name=name, data=data, root=root)
