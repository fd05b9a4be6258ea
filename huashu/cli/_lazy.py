"""Names the command modules use, imported only when a command runs (not for `--help`).

`huashu --help` imports every command module; importing pydantic-settings, rich.table or
rich.progress there cost more than the whole help screen. Type checkers see the real classes;
at run time each name is a constructor that imports its module on first call.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console


def console(*, stderr: bool = False) -> Console:
    """A console that, when piped, does not wrap tables at 80 columns (a pipe has no width;
    `COLUMNS` still wins)."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=400 if wide else None)


def _constructor(module: str, name: str) -> Any:
    def make(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)
    make.__name__ = name
    return make


if TYPE_CHECKING:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from core.settings import Settings
else:
    Settings = _constructor("core.settings", "Settings")
    Table = _constructor("rich.table", "Table")
    Progress = _constructor("rich.progress", "Progress")
    BarColumn = _constructor("rich.progress", "BarColumn")
    MofNCompleteColumn = _constructor("rich.progress", "MofNCompleteColumn")
    TextColumn = _constructor("rich.progress", "TextColumn")
    TimeElapsedColumn = _constructor("rich.progress", "TimeElapsedColumn")
    TaskProgressColumn = _constructor("rich.progress", "TaskProgressColumn")

__all__ = ["BarColumn", "MofNCompleteColumn", "Progress", "Settings", "Table", "TaskProgressColumn", "TextColumn",
           "TimeElapsedColumn", "console"]
