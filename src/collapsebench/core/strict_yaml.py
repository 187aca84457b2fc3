"""YAML as untrusted input: a mapping key given twice is an error, not a silent override.

PyYAML keeps the last of two equal keys, so a `runner: local` appended to a
reviewed model.yaml would quietly replace `runner: docker` above it. Files
that people submit (model.yaml) are read with this loader instead.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys."""


def _mapping(loader: StrictLoader, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:  # an unhashable key: let the base constructor report it
            continue
        if first != key_node.start_mark.line + 1:
            raise ConstructorError(None, None, f"duplicate key {key!r} (first given on line {first})",
                                   key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(text: str) -> Any:
    """Parse `text`; raises yaml.YAMLError (duplicate keys included) or ValueError/OverflowError for values
    PyYAML cannot build (a date like 2026-13-45, an integer of thousands of digits)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
