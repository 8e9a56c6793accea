"""Progress when output is not a terminal: plain lines at a bounded rate (a fake clock, no sleeping)."""

import io
import re
import subprocess
import sys

import pytest

from modelinv.progress import progress_bar

LINE = re.compile(r"^progress: training target lenet (\d+)/40 \((\d+)%\) elapsed (\d+:\d\d)( eta (\d+:\d\d))?( done| stopped)?( loss=\S+)?$")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def not_quiet(monkeypatch):
    monkeypatch.delenv("MODELINV_QUIET", raising=False)
    monkeypatch.delenv("MODELINV_PROGRESS", raising=False)
    monkeypatch.delenv("MODELINV_PROGRESS_INTERVAL", raising=False)


def test_lines_on_a_non_tty_stream_at_most_one_per_interval_plus_first_and_last(not_quiet):
    out, clock = io.StringIO(), FakeClock()
    with progress_bar("training target lenet", 40, stream=out, clock=clock) as advance:
        for _ in range(40):  # 3 s per step: 120 s in all
            clock.now += 3.0
            advance(loss=0.5)
    lines = out.getvalue().splitlines()
    assert all(LINE.match(line) for line in lines), lines
    steps = [int(LINE.match(line).group(1)) for line in lines]
    # first at 0, then every 4th step (12 s >= 10 s since the last line), and the last at 40
    assert steps == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 40]
    assert lines[0] == "progress: training target lenet 0/40 (0%) elapsed 0:00"
    assert lines[1] == "progress: training target lenet 4/40 (10%) elapsed 0:12 eta 1:48 loss=0.5"
    assert lines[-1] == "progress: training target lenet 40/40 (100%) elapsed 2:00 done loss=0.5"


def test_rate_is_bounded_however_fast_the_steps(not_quiet):
    out, clock = io.StringIO(), FakeClock()
    with progress_bar("training target lenet", 40, stream=out, clock=clock) as advance:
        for _ in range(40):
            clock.now += 0.01
            advance()
    assert len(out.getvalue().splitlines()) == 2  # the first and the last only


def test_a_loop_that_stops_early_says_so(not_quiet):
    out, clock = io.StringIO(), FakeClock()
    with progress_bar("training target lenet", 40, stream=out, clock=clock, interval=5) as advance:
        for _ in range(12):
            clock.now += 2.0
            advance()
    lines = out.getvalue().splitlines()
    assert [int(LINE.match(line).group(1)) for line in lines] == [0, 3, 6, 9, 12, 12]
    assert lines[-1].endswith("12/40 (30%) elapsed 0:24 stopped")


def test_quiet_and_off_print_nothing(not_quiet, monkeypatch):
    for var, value in (("MODELINV_QUIET", "1"), ("MODELINV_PROGRESS", "off")):
        monkeypatch.setenv(var, value)
        out = io.StringIO()
        with progress_bar("x", 3, stream=out, clock=FakeClock()) as advance:
            advance()
        assert out.getvalue() == ""
        monkeypatch.delenv(var)


def test_progress_lines_reach_a_redirected_stdout(tmp_path):
    """As `modelinv demo > log.txt` does: a loop in a process whose standard output is a file writes lines there."""
    log = tmp_path / "log.txt"
    code = (
        "from modelinv.progress import progress_bar\n"
        "with progress_bar('stage', 3) as advance:\n"
        "    for _ in range(3): advance()\n"
    )
    env = {"PATH": "/usr/bin:/bin", "MODELINV_PROGRESS_INTERVAL": "0"}
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-c", code], stdout=f, env=env, check=True, timeout=120)
    lines = log.read_text().splitlines()
    assert [line.split()[2] for line in lines] == ["0/3", "1/3", "2/3", "3/3", "3/3"]
    assert lines[-1].split()[-1] == "done"
