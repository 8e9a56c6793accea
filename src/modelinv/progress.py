"""Progress of long loops: a rich bar on a terminal, plain lines at a bounded rate when output is a file or pipe.

Where it goes (`MODELINV_PROGRESS`, default `auto`):
- `auto`: on an interactive terminal (standard output is a TTY) or in Jupyter with ipywidgets, a rich bar that
  disappears when the loop ends; otherwise (output redirected to a log file, CI, `nohup`; Jupyter without
  ipywidgets, where rich would draw nothing) plain lines on standard output, next to the command's own output:
  the first when the loop starts, then at most one every `MODELINV_PROGRESS_INTERVAL` seconds (default 10) per
  loop, and the last when it ends, each with the stage, step/total, elapsed time, an ETA and the loop's status
  fields (loss, accuracy). Example:
  `progress: training target lenet 12/40 (30%) elapsed 0:35 eta 1:22 loss=0.123`.
- `bar` or `lines`: that form, wherever output goes; `off`: nothing. `MODELINV_QUIET=1` is `off`.
A program whose standard output is data (JSON) sends the lines elsewhere with `set_stream(sys.stderr)`.

`progress_bar` takes the clock and stream as arguments, so its rate can be tested without sleeping.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

INTERVAL = 10.0
"""Default seconds between two plain progress lines of one loop (besides the first and the last)."""

_stream: IO[str] | None = None


def set_stream(stream: IO[str] | None) -> None:
    """Send progress (plain lines, or the bar when `stream` is a terminal) to `stream`; None: standard output."""
    global _stream
    _stream = stream


def _mode(stream: IO[str]) -> str:
    """`bar`, `lines` or `off` for a loop writing to `stream`."""
    if os.environ.get("MODELINV_QUIET"):
        return "off"
    mode = os.environ.get("MODELINV_PROGRESS", "auto").strip().lower()
    if mode in ("bar", "lines", "off"):
        return mode
    isatty = getattr(stream, "isatty", None)
    if stream is sys.stdout and Console().is_jupyter:  # rich draws its bar in Jupyter through ipywidgets, else nothing
        return "bar" if importlib.util.find_spec("ipywidgets") is not None else "lines"
    if isatty is not None and isatty():
        return "bar"
    return "lines"


def _interval() -> float:
    try:
        value = float(os.environ.get("MODELINV_PROGRESS_INTERVAL", INTERVAL))
    except ValueError:
        return INTERVAL
    return value if value >= 0 else INTERVAL


def _clock_text(seconds: float) -> str:
    seconds = int(max(seconds, 0) + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _status(fields: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())


class ProgressLines:
    """Plain progress lines for one loop of `total` steps: the first at the start, the last at `close`, and in
    between one on an `advance` only when `interval` seconds of `clock` have passed since the last line."""

    def __init__(self, description: str, total: int, stream: IO[str], clock: Callable[[], float] = time.monotonic, interval: float = INTERVAL):
        self.description, self.total, self.stream, self.clock, self.interval = description, total, stream, clock, interval
        self.start = self.last = clock()
        self.done, self.fields = 0, {}
        self._write()

    def advance(self, n: int = 1, **fields: Any) -> None:
        """Count `n` more steps and remember the status `fields`; write a line when one is due."""
        self.done += n
        self.fields = fields
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._write(now)

    def close(self) -> None:
        """Write the last line (the steps done, which may be fewer than `total` when the loop stopped early)."""
        self._write(self.clock(), final=True)

    def _write(self, now: float | None = None, final: bool = False) -> None:
        elapsed = (self.start if now is None else now) - self.start
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total > 0 else ""
        parts = [f"progress: {self.description} {self.done}/{self.total}{share}", f"elapsed {_clock_text(elapsed)}"]
        if final:
            parts.append("done" if self.done >= self.total else "stopped")
        elif 0 < self.done < self.total:
            parts.append(f"eta {_clock_text(elapsed / self.done * (self.total - self.done))}")
        if self.fields:
            parts.append(_status(self.fields))
        try:
            self.stream.write(" ".join(parts) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: progress is not worth failing the run for
            pass


@contextmanager
def progress_bar(
    description: str,
    total: int,
    *,
    stream: IO[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    interval: float | None = None,
) -> Iterator[Callable[..., None]]:
    """Yield `advance(n=1, **fields)` for a loop of `total` steps: a rich bar on a terminal, plain progress
    lines otherwise (see the module docstring), nothing when quiet.

    `stream` (default: `set_stream`'s, else standard output), `clock` (seconds) and `interval` (seconds
    between plain lines; default `MODELINV_PROGRESS_INTERVAL`, else 10) are for tests and special outputs.
    """
    out = stream if stream is not None else (_stream if _stream is not None else sys.stdout)
    mode = _mode(out)
    if mode == "off":
        yield lambda n=1, **fields: None
        return
    if mode == "lines":
        lines = ProgressLines(description, total, out, clock, _interval() if interval is None else interval)
        try:
            yield lines.advance
        finally:
            lines.close()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[status]}"))
    console = Console(file=out) if stream is not None or _stream is not None else None
    with Progress(*columns, transient=True, console=console) as bar:
        task = bar.add_task(description, total=total, status="")

        def advance(n: int = 1, **fields) -> None:
            bar.update(task, advance=n, status=_status(fields))

        yield advance
