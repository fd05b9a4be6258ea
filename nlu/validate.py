"""`huashu validate` for NLU data: every file under scripts_zh/nlu/ and the rules' intent names."""

from __future__ import annotations

from pathlib import Path

from core.yamlio import ScriptError
from nlu.data import NluDataError, file_problems, nlu_files
from nlu.rules import load_rules


def validate_nlu_dir(directory: str | Path) -> None:
    """`huashu validate` hook: every NLU file under `directory` (and the rules' intent names);
    raises core.yamlio.ScriptError listing `file:line: node: message` problems."""
    directory = Path(directory)
    problems = file_problems(nlu_files(directory))
    rules = directory / "rules.yml"
    if rules.exists() and not problems:
        try:
            load_rules(rules)
        except NluDataError as exc:
            problems.append(exc.problem)
    if problems:
        raise ScriptError(problems)
