"""Progress bars for long loops (rich), silent when output is not a terminal or MODELINV_QUIET is set."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def _enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("MODELINV_QUIET")


@contextmanager
def progress_bar(description: str, total: int):
    """Yield `advance(n=1, **fields)`; shows a bar on an interactive terminal, does nothing otherwise."""
    if not _enabled():
        yield lambda n=1, **fields: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(description, total=total, status="")

        def advance(n: int = 1, **fields) -> None:
            status = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
            bar.update(task, advance=n, status=status)

        yield advance
