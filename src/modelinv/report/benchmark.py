"""What every benchmark shares: one command line (output directory, seeds, threads, workers, --quick), the
grid run by the one runner into `benchmarks/results/<name>/results.sqlite`, and the provenance a reviewer
needs printed above every table (command, wall time, seeds, n per seed, torch threads, machine load).

A benchmark script is then: build a grid, `run()` it, render its paper comparison from the returned rows
with report.aggregate and report.markdown. Rerunning the same command resumes: finished runs are kept.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from modelinv.errors import ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.sweep import available_cores, load, previous_runs, run_grid, run_id
from modelinv.results import ResultsStore

QUICK = "quick"
"""--quick without --out writes under results/quick/: a check that the benchmark runs never adds its short runs to the
real stores or rewrites the real tables (git ignores that folder)."""


def default_out(path: Path, quick: bool) -> Path:
    """The default output `path` (results/<name> or results/<name>.md), or its place under results/quick/ with --quick.

    Example: default_out(Path("benchmarks/results/he2019"), quick=True) -> Path("benchmarks/results/quick/he2019")."""
    return path.parent / QUICK / path.name if quick else path


class Parser(argparse.ArgumentParser):
    """An argument parser whose `--out`, when not given, is `default` (under results/quick/ with --quick)."""

    def __init__(self, default: Path, **kwargs: Any) -> None:
        super().__init__(formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
        self.default_output = default

    def parse_known_args(self, args=None, namespace=None):
        parsed, rest = super().parse_known_args(args, namespace)
        if getattr(parsed, "out", None) is None:
            parsed.out = default_out(self.default_output, getattr(parsed, "quick", False))
        return parsed, rest


def parser(script: str, doc: str, seeds: int = 3, seeds_of: str | None = None) -> argparse.ArgumentParser:
    """The shared flags of the benchmark at path `script` (its __file__): the default output is
    results/<script name>/ beside it (results/quick/<script name>/ with --quick), and the Markdown is written next
    to that directory as <name>.md. `--seeds` defaults to 0..seeds-1, or, where the script's parts have seeds of
    their own (`seeds_of` says which), to None: each part then takes its own unless --seeds names them."""
    here = Path(script).resolve()
    p = Parser(here.parent / "results" / here.stem, description=doc)
    p.add_argument("--out", type=Path, default=None,
                   help="results directory (results.sqlite, runs/); the Markdown goes beside it as <name>.md "
                        "(default: results/<name>/ beside the script, results/quick/<name>/ with --quick)")
    p.add_argument("--seeds", type=int, nargs="+", default=None if seeds_of else list(range(seeds)), help=f"seeds (default: {seeds_of or f'0..{seeds - 1}'})")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1; recorded, and never mixed in one table)")
    p.add_argument("--workers", type=int, default=1, help="runs at once (default 1)")
    p.add_argument("--quick", action="store_true", help="one seed and fewer images: checks that the benchmark runs, in minutes")
    p.add_argument("--render", action="store_true", help="only rewrite the Markdown from the stored runs")
    return p


def produced_by(start: float, before: dict[str, float]) -> str:
    """The provenance line of a benchmark that times itself rather than filling a results store (speed.py, peers.py):
    its command, the seconds since `start` (a time.perf_counter() value), the machine and the load average
    `before` (from `load()`) and now."""
    return (f"- Produced by: `{shlex.join(['python', *sys.argv])}` ({time.perf_counter() - start:.0f} s); machine {platform.machine()}, "
            f"{available_cores()} available cores, torch {torch.__version__}; load average before/after {before.get('1min', '-')} / "
            f"{load().get('1min', '-')} (1 min).")


@dataclass
class Run:
    """One benchmark invocation: its rows, the command that ran it (None with --render, or when every row was
    stored before: the store's recorded commands say what computed the rows), its wall time and the machine load around it."""

    rows: list[dict[str, Any]]
    command: str | None
    seconds: float
    load_before: dict[str, float]
    load_after: dict[str, float]
    recorded: list[str]


def run(grid: Sequence[ExperimentConfig], args: argparse.Namespace, out: Path | None = None) -> Run:
    """Run (or, with --render, only read) the grid into the store at `out` (default args.out)."""
    out = Path(out or args.out)
    command = shlex.join(["python", *sys.argv])
    before, start = load(), time.perf_counter()
    if args.render:
        wanted = {run_id(c) for c in grid}
        rows = [r for r in read(out) if r["run_id"] in wanted]
    else:
        if {run_id(c) for c in grid} <= previous_runs(out):
            command = None  # nothing left to compute: the table is rendered from the stored runs
        rows = run_grid(list(grid), out, workers=args.workers, threads=args.threads, command=command or "", log=print)
    store = ResultsStore(out, create=False)
    try:
        recorded = list(dict.fromkeys(s["command"] for s in store.sweeps() if s["command"]))
    finally:
        store.close()
    return Run(rows, None if args.render else command, time.perf_counter() - start, before, load(), recorded)


def read(out: Path) -> list[dict[str, Any]]:
    """Every stored row of the results directory `out`."""
    store = ResultsStore(out, create=False)
    try:
        return store.rows()
    finally:
        store.close()


def provenance(runs: Sequence[Run], rows: Sequence[dict[str, Any]] | None = None) -> str:
    """Markdown lines above a table: the commands, wall time, seeds, torch threads and machine load.

    Raises when the rows were computed at different thread counts: the same seed trains different bits
    at different thread counts, so such rows must not share a table."""
    rows = list(rows if rows is not None else [r for run in runs for r in run.rows])
    threads = sorted({r.get("threads") for r in rows}, key=str)
    if len(threads) > 1:
        raise ModelinvError(f"rows computed at different torch thread counts {threads} cannot share a table; rerun with one --threads")
    seeds = sorted({r["seed"] for r in rows})
    ran = [f"`{r.command}` ({r.seconds:.0f} s)" for r in runs if r.command]
    recorded = list(dict.fromkeys(c for r in runs for c in r.recorded))
    compute = [r.get("seconds", 0) + sum((r.get("timings") or {}).values()) for r in rows]
    lines = [
        f"- Produced by: {'; '.join(ran) or 'rendered from stored runs'}; commands recorded in the store: "
        f"{'; '.join(f'`{c}`' for c in recorded) or '-'}; {len(rows)} runs, {sum(compute) / 60:.0f} minutes of run time (data, training, attack, metrics; models loaded from the cache count as their load time).",
        f"- Seeds {seeds} ({len(seeds)} per row unless stated), torch threads {threads[0] if threads else '-'} per run; {machine(runs, rows)}",
        "- Cells: mean [95% t interval over seeds]. Two rows differ only where their intervals do not overlap; otherwise they are not distinguishable.",
    ]
    return "\n".join(lines) + "\n"


def machine(runs: Sequence[Run], rows: Sequence[dict[str, Any]]) -> str:
    """Where the rows were computed: the CPUs and cores the runs recorded and the range of their 1-minute load
    averages at start and end, how many runs predate that record, and the load around this invocation when it computed."""
    cpus = sorted({(r.get("versions") or {}).get("cpu") for r in rows} - {None, ""})
    recorded = [r["machine"] for r in rows if r.get("machine")]
    loads = [v for m in recorded for v in m.get("load_1min", []) if v is not None]
    cores = sorted({m.get("cores") for m in recorded} - {None})
    unrecorded = sum(1 for r in rows if not (r.get("versions") or {}).get("cpu"))
    parts = [f"machine: {'; '.join(cpus) or platform.machine()}" + (f" ({unrecorded} of {len(rows)} runs predate the CPU record)" if cpus and unrecorded else "")]
    if recorded:
        parts.append(f"{'/'.join(map(str, cores))} available cores, load average (1 min) at the runs' start and end {min(loads)}-{max(loads)} "
                     f"({len(recorded)} of {len(rows)} runs recorded it)" if loads else f"{'/'.join(map(str, cores))} available cores")
    if len(recorded) < len(rows):
        parts.append(f"{len(rows) - len(recorded)} runs stored before the load was recorded per run")
    if any(r.command for r in runs):
        parts.append(f"load average around this invocation before/after {runs[0].load_before.get('1min', '-')} / {runs[-1].load_after.get('1min', '-')} (1 min)")
    return "; ".join(parts) + "."

