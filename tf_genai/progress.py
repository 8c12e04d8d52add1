"""Progress bars for the long steps of a command: what is done of how much, and the time left.

Library functions that take long (``evaluate_model``'s sampling, feature extraction and NLL)
accept ``progress``: a callable ``progress(description, total)`` returning a bar with
``update(n)`` (``n`` more items done) and ``close()`` -- the shape of ``tqdm``'s bar, so a
notebook can pass ``lambda d, t: tqdm(desc=d, total=t)``. ``None`` (their default) draws
nothing. :func:`terminal_bars` is what the command line passes: bars drawn by ``rich``
(a Keras requirement) on stderr when stderr is a terminal, and nothing when it is a file or a
pipe, where a bar would be a stream of redrawn lines. Depends on nothing of ours.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator, Protocol, TextIO


class Bar(Protocol):
    """One step's bar: ``update(n)`` when n more items are done, ``close()`` at the end."""

    def update(self, n: int) -> Any: ...

    def close(self) -> Any: ...


ProgressFactory = Callable[[str, int], Bar]


@contextlib.contextmanager
def step(progress: ProgressFactory | None, description: str,
         total: int) -> Iterator[Callable[[int], Any]]:
    """A bar for one step of ``total`` items: yields ``advance(n)``, a no-op without
    ``progress``; the bar is closed however the step ends."""
    if progress is None:
        yield lambda n: None
        return
    bar = progress(description, int(total))
    try:
        yield bar.update
    finally:
        bar.close()


class _RichBar:
    def __init__(self, progress: Any, description: str, total: int) -> None:
        self._progress = progress
        self._task = progress.add_task(description, total=total)
        progress.start()

    def update(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()


def terminal_bars(stream: TextIO | None = None) -> ProgressFactory | None:
    """Bars on ``stream`` (default ``sys.stderr``) if it is a terminal, else None: a bar
    with the items done of the total, the time spent and the time left."""
    stream = sys.stderr if stream is None else stream
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    console = Console(file=stream)

    def bar(description: str, total: int) -> Bar:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("spent,"), TimeRemainingColumn(),
                   TextColumn("left"))
        return _RichBar(Progress(*columns, console=console), description, total)

    return bar
