"""A rich progress bar on stderr for training (stdout stays clean for --json output)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def stderr_progress() -> Iterator[Callable[[str, int, int], None]]:
    """Yields a callback progress(stage, done, total) driving one bar per stage."""
    console = Console(stderr=True)
    bars = Progress(TextColumn("[bold]NLU training[/] {task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

    with bars:
        yield update
