"""Load talk tracks and personas from `scripts_zh/`, with file and line for every error.

Schema errors (pydantic) and graph errors (dialogue.validate) are reported the same way:
`file:line: node: message`, so ops people can jump straight to the broken node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dialogue.schema import Persona, Track


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


def _read_yaml(path: Path) -> tuple[Any, SourceMap]:
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=YamlLoader)
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


def _schema_problems(exc: ValidationError, src: SourceMap) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"]]
        node = loc[1] if len(loc) > 1 and loc[0] in ("nodes", "clips") else ""
        where = ".".join(loc[2:] if node else loc)
        line = src.var_line(loc[1]) if len(loc) > 1 and loc[0] == "variables" else \
            src.line(node, loc[0] if loc else "")
        out.append(Problem(src.file, line, node, f"{where}: {err['msg']}" if where else err["msg"]))
    return out


def load_track(path: Path) -> tuple[Track, SourceMap]:
    """Parse and schema-check one track file (graph checks are dialogue.validate)."""
    data, src = _read_yaml(path)
    if not isinstance(data, dict):
        raise ScriptError([Problem(str(path), 1, "", "a track file must be a mapping")])
    try:
        track = Track.model_validate(data)
    except ValidationError as exc:
        raise ScriptError(_schema_problems(exc, src)) from None
    if track.id != path.stem:
        raise ScriptError([Problem(str(path), src.line(key="id"), "", f"track id {track.id!r} must match the file name {path.stem!r}")])
    return track, src


def load_persona(directory: Path) -> tuple[Persona, dict[str, SourceMap]]:
    """A persona is a folder: persona.yml (who) plus any *.yml adding clips and templates."""
    main = directory / "persona.yml"
    if not main.is_file():
        raise ScriptError([Problem(str(main), 1, "", "persona folder has no persona.yml")])
    merged: dict[str, Any] = {}
    sources: dict[str, SourceMap] = {}
    clip_files: dict[str, str] = {}
    for path in [main, *sorted(p for p in directory.glob("*.yml") if p.name != "persona.yml")]:
        data, src = _read_yaml(path)
        if not isinstance(data, dict):
            raise ScriptError([Problem(str(path), 1, "", "a persona file must be a mapping")])
        for clip_id in (data.get("clips") or {}):
            if clip_id in clip_files:
                raise ScriptError([Problem(str(path), src.line(clip_id), clip_id,
                                           f"clip defined twice (also in {clip_files[clip_id]})")])
            clip_files[clip_id] = str(path)
            sources[clip_id] = src
        for key, value in data.items():
            if key in ("clips", "templates", "variables"):
                merged.setdefault(key, {}).update(value or {})
            elif path == main:
                merged[key] = value
    try:
        persona = Persona.model_validate(merged)
    except ValidationError as exc:
        raise ScriptError(_schema_problems(exc, SourceMap(str(main)))) from None
    return persona, sources


@dataclass(frozen=True)
class Bundle:
    """Every track and persona of a scripts folder, schema-checked and graph-checked."""

    root: Path
    tracks: dict[str, Track]
    personas: dict[str, Persona]
    track_sources: dict[str, SourceMap]

    def track(self, track_id: str) -> Track:
        try:
            return self.tracks[track_id]
        except KeyError:
            known = ", ".join(sorted(self.tracks)) or "none"
            raise KeyError(f"unknown track {track_id!r} (known: {known})") from None

    def persona_for(self, track: Track) -> Persona:
        return self.personas[track.persona]

    def persona_dir(self, persona_id: str) -> Path:
        return self.root / "personas" / persona_id


def load_bundle(root: Path, known_actions: frozenset[str] | None = None) -> Bundle:
    """Load and validate everything under `root` (a scripts_zh folder). Raises ScriptError on
    the first broken file, listing all of its problems."""
    from dialogue.validate import check_track

    personas: dict[str, Persona] = {}
    persona_root = root / "personas"
    if persona_root.is_dir():
        for d in sorted(p for p in persona_root.iterdir() if p.is_dir() and (p / "persona.yml").exists()):
            persona, _ = load_persona(d)
            personas[persona.id] = persona
    tracks: dict[str, Track] = {}
    sources: dict[str, SourceMap] = {}
    for path in sorted((root / "tracks").glob("*.yml")):
        track, src = load_track(path)
        problems = check_track(track, src, personas, known_actions)
        if problems:
            raise ScriptError(problems)
        tracks[track.id] = track
        sources[track.id] = src
    return Bundle(root, tracks, personas, sources)
