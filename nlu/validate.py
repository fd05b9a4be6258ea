"""`huashu validate` for NLU data: every file under scripts_zh/nlu/ and the rules' intent names."""

from __future__ import annotations

import re
from pathlib import Path

from core.yamlio import Problem, ScriptError
from nlu.data import NluDataError, nlu_files, validate_paths
from nlu.rules import load_rules


def validate_nlu_dir(directory: str | Path) -> None:
    """`huashu validate` hook: every NLU file under `directory` (and the rules' intent names);
    raises core.yamlio.ScriptError listing `file:line: node: message` problems."""
    directory = Path(directory)
    problems = validate_paths(nlu_files(directory))
    rules = directory / "rules.yml"
    if rules.exists() and not problems:
        try:
            load_rules(rules)
        except NluDataError as exc:
            problems.append(str(exc))
    if problems:
        parsed = []
        for text in problems:
            m = re.match(r"^(.*?):(\d+): (.*?): (.*)$", text, re.S)
            parsed.append(Problem(m[1], int(m[2]), m[3], m[4]) if m else Problem(str(directory), 1, "nlu", text))
        raise ScriptError(parsed)
