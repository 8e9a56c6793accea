"""The provenance printed above every benchmark table: thread counts never mixed, and the machine load the runs
themselves recorded (not the load when the table is rendered later from the store)."""

from pathlib import Path

import pytest

from modelinv.errors import ModelinvError
from modelinv.report.benchmark import Parser, Run, parser, provenance


def row(seed: int, threads: int = 1, load: list | None = None, cpu: str = "x86_64 AVX512") -> dict:
    out = {"seed": seed, "threads": threads, "seconds": 10.0, "timings": {"metrics": 2.0}, "versions": {"cpu": cpu}}
    if load is not None:
        out["machine"] = {"cores": 2, "load_1min": load}
    return out


def rendered(rows: list[dict]) -> Run:
    return Run(rows, None, 0.1, {"1min": 9.99}, {"1min": 9.99}, ["python benchmarks/x.py"])


def test_rows_at_different_thread_counts_cannot_share_a_table():
    rows = [row(0, threads=1), row(1, threads=2)]
    with pytest.raises(ModelinvError, match="different torch thread counts"):
        provenance([rendered(rows)], rows)


def test_a_rendered_table_reports_the_load_its_runs_recorded_not_the_load_now():
    rows = [row(0, load=[0.5, 1.1]), row(1, load=[2.02, 1.9]), row(2, cpu="")]
    text = provenance([rendered(rows)], rows)
    assert "machine: x86_64 AVX512 (1 of 3 runs predate the CPU record)" in text
    assert "load average (1 min) at the runs' start and end 0.5-2.02 (2 of 3 runs recorded it)" in text
    assert "1 runs stored before the load was recorded per run" in text
    assert "9.99" not in text  # the load while rendering says nothing about the runs
    assert "3 runs, 1 minutes of run time" in text


def test_a_table_computed_now_also_gives_the_load_around_the_invocation():
    rows = [row(0, load=[1.0, 1.0])]
    run = Run(rows, "python benchmarks/x.py", 12.0, {"1min": 0.25}, {"1min": 1.75}, [])
    text = provenance([run], rows)
    assert "(1 of 1 runs recorded it)" in text and "before/after 0.25 / 1.75" in text and "stored before" not in text


def test_quick_check_writes_under_results_quick_never_into_the_real_stores(tmp_path):
    script = tmp_path / "benchmarks" / "he2019.py"
    p = parser(str(script), "doc")
    results = tmp_path / "benchmarks" / "results"
    assert p.parse_args([]).out == results / "he2019"
    assert p.parse_args(["--quick"]).out == results / "quick" / "he2019"
    assert p.parse_args(["--quick", "--out", str(tmp_path / "mine")]).out == tmp_path / "mine"
    markdown = Parser(results / "speed.md")  # speed.py and peers.py write one Markdown file
    markdown.add_argument("--out", type=Path, default=None)
    markdown.add_argument("--quick", action="store_true")
    assert markdown.parse_args(["--quick"]).out == results / "quick" / "speed.md"
    assert markdown.parse_args([]).out == results / "speed.md"
