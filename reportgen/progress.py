"""Progress for long builds: a bar on a terminal, plain lines otherwise (logs, CI)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

Callback = Callable[[str, int, int], None]


@contextmanager
def progress_printer() -> Iterator[Callback]:
    """A callback (stage, done, total) that draws a bar per stage, or prints each stage's end."""
    if not sys.stderr.isatty():
        def plain(stage: str, done: int, total: int) -> None:
            if done == total:
                print(f"{stage}：{done}/{total}", file=sys.stderr, flush=True)

        yield plain
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        transient=True,
    ) as bar:
        tasks: dict[str, int] = {}

        def draw(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield draw
