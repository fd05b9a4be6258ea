"""The one YAML reader for every file under `scripts_zh/`: YAML 1.2 booleans, line numbers.

Problems found in data files are `Problem`s (`file:line: node: message`); a file that cannot be
used raises `ScriptError` listing them, so `huashu validate` prints every area the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation finding, printable as `file:line: node: message`."""

    file: str
    line: int
    node: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.node or '-'}: {self.message}"


class ScriptError(Exception):
    """Talk-track / persona data is invalid. `problems` lists every finding of the file."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class SourceMap:
    """Where things are in a YAML file: line of each node (and of top-level keys)."""

    file: str
    node_lines: dict[str, int] = field(default_factory=dict)
    key_lines: dict[str, int] = field(default_factory=dict)
    var_lines: dict[str, int] = field(default_factory=dict)  # track variables (bindings)

    def line(self, node: str = "", key: str = "") -> int:
        if node and node in self.node_lines:
            return self.node_lines[node]
        return self.key_lines.get(key, 1)

    def var_line(self, name: str) -> int:
        return self.var_lines.get(name) or self.key_lines.get("variables", 1)


class YamlLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. In YAML 1.1 `on`, `yes`, `no` are booleans, which
    would silently turn a node's `on:` edges (or an answer 'no') into True/False."""


YamlLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml_text(text: str) -> Any:
    """Parse YAML the way every huashu data file is parsed (YAML 1.2 booleans)."""
    return yaml.load(text, Loader=YamlLoader)


def read_yaml(path: Path) -> tuple[Any, SourceMap]:
    """A data file's value and where its top-level keys and nodes/clips are (ScriptError if bad)."""
    text = path.read_text(encoding="utf-8")
    try:
        root = compose_yaml_text(text)
        data = load_yaml_text(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise ScriptError([Problem(str(path), line, "", f"not valid YAML: {exc}")]) from None
    node_lines: dict[str, int] = {}
    key_lines: dict[str, int] = {}
    var_lines: dict[str, int] = {}
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            key_lines[str(key.value)] = key.start_mark.line + 1
            if key.value in ("nodes", "clips", "variables") and isinstance(value, yaml.MappingNode):
                lines = var_lines if key.value == "variables" else node_lines
                for k, _ in value.value:
                    lines[str(k.value)] = k.start_mark.line + 1
    return data, SourceMap(str(path), node_lines, key_lines, var_lines)


def compose_yaml_text(text: str) -> yaml.Node | None:
    """The node tree (with line marks) of a document, resolved the same way as load_yaml_text."""
    return yaml.compose(text, Loader=YamlLoader)


def line_of(text: str, loc: Sequence[Any]) -> int:
    """The 1-based line of the YAML node at `loc` (the deepest one that exists)."""
    node: Any = compose_yaml_text(text)
    line = 1 if node is None else node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == key), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line
