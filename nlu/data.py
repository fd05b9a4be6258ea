"""Rasa 3 NLU training-data files (`version: "3.1"`, `nlu:` list) → typed examples.

Reads what Rasa reads: `intent` blocks (examples as a `|` block of `- text` lines, or a list of
`{text, metadata}`), `regex`, `lookup` and `synonym` entries, `[text](entity)` annotations.
Errors name `file:line`, so `huashu validate` can print them as is.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from core.vocab import INTENT_SET
from core.yamlio import Problem, compose_yaml_text, load_yaml_text

# Files under scripts_zh/nlu/ that do not feed the model: editing them never forces a retrain.
NON_TRAINING_FILES = frozenset({"rules.yml"})
# Bumped whenever training code changes in a way that invalidates saved models.
TRAINER_VERSION = "8"  # 8: n-gram min_df 3, transformer weight ≤ 0.2; 7: n-gram refit, C 0.5, more noise, 20 epochs

_ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<entity>[^)]+)\)|(?P<json>\{[^}]+\}))")
_KINDS = ("intent", "regex", "lookup", "synonym")


class NluDataError(ValueError):
    """A training-data file is not valid Rasa 3 NLU data; `problem` says where (file, line, node)
    and what, and the message is `file:line: node: message`."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        where = f"{problem.file}:{problem.line}"
        super().__init__(f"{where}: {problem.node}: {problem.message}" if problem.node else
                         f"{where}: {problem.message}")


def problem_at(origin: str, node: str, message: str) -> Problem:
    """A problem at an `origin` this module wrote (`file:line`, as on Example and NamedList)."""
    file, _, line = origin.rpartition(":")
    return Problem(file, int(line), node, message)


@dataclass(frozen=True, slots=True)
class Annotation:
    entity: str
    start: int
    end: int
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    intent: str
    annotations: tuple[Annotation, ...] = ()
    expected_intents: tuple[str, ...] = ()  # from metadata: the node's expected intents
    origin: str = ""  # file:line


@dataclass(frozen=True, slots=True)
class NamedList:
    """A `regex`, `lookup` or `synonym` entry: a name and its example lines."""

    name: str
    items: tuple[str, ...]
    origin: str = ""


@dataclass(frozen=True, slots=True)
class NluData:
    examples: tuple[Example, ...] = ()
    regexes: tuple[NamedList, ...] = ()
    lookups: tuple[NamedList, ...] = ()
    synonyms: tuple[NamedList, ...] = ()
    files: tuple[Path, ...] = field(default_factory=tuple)

    def __add__(self, other: NluData) -> NluData:
        return NluData(self.examples + other.examples, self.regexes + other.regexes,
                       self.lookups + other.lookups, self.synonyms + other.synonyms,
                       self.files + other.files)

    def intents(self) -> tuple[str, ...]:
        seen = dict.fromkeys(e.intent for e in self.examples)
        return tuple(seen)

    def lookup(self, name: str) -> tuple[str, ...]:
        return tuple(i for entry in self.lookups if entry.name == name for i in entry.items)


def parse_annotated(raw: str) -> tuple[str, tuple[Annotation, ...]]:
    """`明天[下午三点](time)付` → ("明天下午三点付", (Annotation("time", 2, 6),))."""
    out: list[str] = []
    spans: list[Annotation] = []
    pos = 0
    length = 0
    for m in _ANNOTATION.finditer(raw):
        before = raw[pos:m.start()]
        out.append(before)
        length += len(before)
        text = m.group("text")
        value: str | None = None
        if m.group("entity") is not None:
            entity, _, val = m.group("entity").partition(":")
            value = val or None
        else:
            spec = json.loads(m.group("json"))
            entity, value = str(spec["entity"]), (str(spec["value"]) if "value" in spec else None)
        spans.append(Annotation(entity.strip(), length, length + len(text), value))
        out.append(text)
        length += len(text)
        pos = m.end()
    out.append(raw[pos:])
    return "".join(out), tuple(spans)


def _block_lines(node: yaml.Node) -> list[tuple[int, str]]:
    """(1-based line, text) for each `- item` line of a `|` block scalar."""
    assert isinstance(node, yaml.ScalarNode)
    first = node.start_mark.line + 2 if node.style in ("|", ">") else node.start_mark.line + 1
    items = []
    for i, line in enumerate(str(node.value).splitlines()):
        stripped = line.strip()
        if stripped:
            items.append((first + i, stripped))
    return items


def _load(path: Path) -> NluData:
    name = str(path)
    try:
        root = compose_yaml_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise NluDataError(Problem(name, 1, "cannot read", str(exc))) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 1
        raise NluDataError(Problem(name, line, "invalid YAML", str(getattr(exc, "problem", exc)))) from None

    def err(node: yaml.Node | None, where: str, msg: str) -> NluDataError:
        line = node.start_mark.line + 1 if node is not None else 1
        return NluDataError(Problem(name, line, where, msg))

    if not isinstance(root, yaml.MappingNode):
        raise err(root, "file", "expected a mapping with `version` and `nlu`")
    top = {k.value: v for k, v in root.value}
    version = top.get("version")
    if not isinstance(version, yaml.ScalarNode) or not str(version.value).startswith("3"):
        raise err(version or root, "version", 'expected version: "3.1" (Rasa 3 format)')
    nlu = top.get("nlu")
    if nlu is None:
        return NluData(files=(path,))
    if not isinstance(nlu, yaml.SequenceNode):
        raise err(nlu, "nlu", "expected a list of intent/regex/lookup/synonym entries")

    examples: list[Example] = []
    lists: dict[str, list[NamedList]] = {"regex": [], "lookup": [], "synonym": []}
    for entry in nlu.value:
        if not isinstance(entry, yaml.MappingNode):
            raise err(entry, "nlu", "each entry must be a mapping")
        fields = {k.value: (k, v) for k, v in entry.value}
        kinds = [k for k in _KINDS if k in fields]
        if len(kinds) != 1:
            raise err(entry, "nlu", f"entry needs exactly one of {', '.join(_KINDS)}")
        kind = kinds[0]
        label = str(fields[kind][1].value).strip()
        where = f"{kind} {label}"
        if "examples" not in fields:
            raise err(entry, where, "missing `examples`")
        ex_node = fields["examples"][1]
        if kind == "intent":
            if label not in INTENT_SET:
                raise err(fields[kind][1], where, "unknown intent (see core/vocab.py INTENTS)")
            examples.extend(_intent_examples(ex_node, label, name, err))
            continue
        if not isinstance(ex_node, yaml.ScalarNode):
            raise err(ex_node, where, "examples must be a `|` block of `- item` lines")
        items = []
        for line, text in _block_lines(ex_node):
            if not text.startswith("- "):
                raise NluDataError(Problem(name, line, where, "item must start with '- '"))
            item = text[2:].strip()
            if kind == "regex":
                try:
                    re.compile(item)
                except re.error as exc:
                    raise NluDataError(Problem(name, line, where, f"bad regex: {exc}")) from None
            items.append(item)
        if not items:
            raise err(ex_node, where, "no examples")
        lists[kind].append(NamedList(label, tuple(items), f"{name}:{ex_node.start_mark.line + 1}"))
    return NluData(tuple(examples), tuple(lists["regex"]), tuple(lists["lookup"]),
                   tuple(lists["synonym"]), (path,))


def _intent_examples(node: yaml.Node, intent: str, name: str,
                     err: Callable[[yaml.Node | None, str, str], NluDataError]) -> list[Example]:
    where = f"intent {intent}"
    out: list[Example] = []
    if isinstance(node, yaml.ScalarNode):
        for line, text in _block_lines(node):
            if not text.startswith("- "):
                raise NluDataError(Problem(name, line, where, "example must start with '- '"))
            raw = text[2:].strip()
            clean, spans = parse_annotated(raw)
            if not clean.strip():
                raise NluDataError(Problem(name, line, where, "empty example"))
            out.append(Example(clean, intent, spans, (), f"{name}:{line}"))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if not isinstance(item, yaml.MappingNode):
                raise err(item, where, "list examples must be mappings with `text`")
            fields = {k.value: v for k, v in item.value}
            text_node = fields.get("text")
            if not isinstance(text_node, yaml.ScalarNode) or not str(text_node.value).strip():
                raise err(item, where, "example needs a non-empty `text`")
            clean, spans = parse_annotated(str(text_node.value).strip())
            expected: tuple[str, ...] = ()
            meta = fields.get("metadata")
            if meta is not None:
                data = load_yaml_text(yaml.serialize(meta)) or {}
                raw_exp = data.get("expected_intents", []) if isinstance(data, dict) else []
                if not isinstance(raw_exp, list) or not all(isinstance(x, str) for x in raw_exp):
                    raise err(meta, where, "metadata.expected_intents must be a list of intents")
                bad = [x for x in raw_exp if x not in INTENT_SET]
                if bad:
                    raise err(meta, where, f"metadata.expected_intents: unknown intent {bad[0]}")
                expected = tuple(raw_exp)
            out.append(Example(clean, intent, spans, expected, f"{name}:{text_node.start_mark.line + 1}"))
    else:
        raise err(node, where, "examples must be a `|` block or a list")
    if not out:
        raise err(node, where, "no examples")
    return out


def load_file(path: str | Path) -> NluData:
    """Parse one Rasa NLU file; raises NluDataError (its `problem`: file, line, node, message)."""
    return _load(Path(path))


def nlu_files(directory: Path, *, training_only: bool = False) -> list[Path]:
    files = sorted(p for p in directory.glob("*.yml") if p.is_file())
    if training_only:
        files = [p for p in files if p.name not in NON_TRAINING_FILES]
    return files


def load_dir(directory: str | Path, *, training_only: bool = False) -> NluData:
    """All `*.yml` files of a directory (scripts_zh/nlu), merged."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NluDataError(Problem(str(directory), 1, "", "NLU data directory not found"))
    data = NluData()
    for path in nlu_files(directory, training_only=training_only):
        data = data + _load(path)
    return data


def validate_paths(paths: Iterable[str | Path]) -> list[str]:
    """`file:line: node: message` for every problem in the given NLU files (empty: all valid)."""
    return [str(p) for p in file_problems(paths)]


def file_problems(paths: Iterable[str | Path]) -> list[Problem]:
    """Every problem in the given NLU files (empty: all valid)."""
    problems: list[Problem] = []
    for p in paths:
        try:
            data = _load(Path(p))
        except NluDataError as exc:
            problems.append(exc.problem)
            continue
        problems.extend(_conflicts(data.examples))
    return problems


def _conflicts(examples: Sequence[Example]) -> list[Problem]:
    """The same text labelled with two intents (context-tagged examples excepted)."""
    from nlu.text import normalize

    first: dict[str, Example] = {}
    out: list[Problem] = []
    for ex in examples:
        if ex.expected_intents:
            continue
        key = normalize(ex.text)
        prev = first.setdefault(key, ex)
        if prev.intent != ex.intent:
            out.append(problem_at(ex.origin, f"intent {ex.intent}",
                                  f"{ex.text!r} is also labelled {prev.intent} at {prev.origin}"))
    return out


def data_hash(directory: str | Path) -> str:
    """Hash of the training files (names + bytes) and TRAINER_VERSION: the model's cache key."""
    h = hashlib.sha256(f"huashu-nlu:{TRAINER_VERSION}\n".encode())
    for path in nlu_files(Path(directory), training_only=True):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
