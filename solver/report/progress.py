"""Progress on stderr for commands that take seconds: a spinner with the elapsed time, or a bar
when the work is counted in steps.

Shown only to a person watching: never under ``--json`` or ``--quiet``, and never when stderr
is not a terminal (a log file or a pipe would collect the frames as noise). It is transient --
erased when the work ends -- so what stays on the screen is the command's output alone, and
stdout is never touched (``--json`` output stays one valid document).

The lower layers (engines, studies) never import this module: a study that can report steps
takes a plain ``Callable[[int], None]`` and the command passes :func:`bar`'s ``advance``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def shown(quiet: bool = False) -> bool:
    """Whether progress is drawn: not asked to be quiet, and stderr is a terminal."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def spinner(label: str, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """A spinner, ``label`` and the elapsed time on stderr while the block runs. Yields a
    function that replaces the label (a stage: "solving", "re-solving for sensitivities")."""
    if not shown(quiet):
        yield lambda text: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(file=sys.stderr), transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda text: progress.update(task, description=text)


@contextmanager
def bar(label: str, total: int, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """A bar of ``total`` steps with the elapsed and remaining time on stderr. Yields
    ``advance(n)``: n more steps are done."""
    if not shown(quiet):
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(),
                  console=Console(file=sys.stderr), transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)
