"""Progress bars for long commands: drawn on a terminal, silent in scripts and logs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as Bar


class Progress(Protocol):
    """Told how much more is done (from any thread), and the whole amount when it is known."""

    def __call__(self, advance: int = 0, *, total: int | None = None) -> None: ...


def quiet(advance: int = 0, *, total: int | None = None) -> None:
    """Progress nobody watches."""


@contextmanager
def progress_bar(description: str) -> Iterator[Progress]:
    """A bar on standard error while it is a terminal; `quiet` otherwise."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield quiet
        return
    with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
             TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task(description, total=None)

        def advance(advance: int = 0, *, total: int | None = None) -> None:
            if total is not None:
                bar.update(task, total=total)
            bar.advance(task, advance)

        yield advance
