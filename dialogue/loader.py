"""Load talk tracks and personas from `scripts_zh/`, with file and line for every error.

Schema errors (pydantic) and graph errors (dialogue.validate) are reported the same way:
`file:line: node: message`, so ops people can jump straight to the broken node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.yamlio import Problem, ScriptError, SourceMap, read_yaml
from dialogue.schema import Persona, Track


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
    data, src = read_yaml(path)
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
        data, src = read_yaml(path)
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
