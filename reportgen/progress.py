"""Progress for long builds: a bar on a terminal, plain lines otherwise (logs, CI)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
    # rich only for the bar: every build without a terminal (scripts, CI) starts sooner without it
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # Drawn at each step, not by a thread of rich's own: the build forks a helper to check
    # projects (validate.CheckCache.check_ahead), which a process with threads must not do.
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(file=sys.stderr), transient=True, auto_refresh=False,  # stdout stays for the results
    ) as bar:
        tasks: dict[str, int] = {}

        def draw(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total, refresh=True)

        yield draw
