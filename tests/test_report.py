"""`modelinv report`: one self-contained HTML page, checked by parsing it and by rendering it in headless Chromium."""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from PIL import Image

from helpers import assert_one_line_error, cli
from modelinv.experiment.grid import GridConfig
from modelinv.experiment.sweep import run_grid
from modelinv.validation import validate

GRID = {
    "data": {"source": "mnist5k"},
    "target": {"arch": "lenet", "train": {"epochs": 1}},
    "evaluator": {"arch": "eval-cnn", "train": {"epochs": 1}},
    "access": {"observe": "features", "layer": "conv1", "white_box": "client"},
    "num_targets": 8,
    "metrics": ["psnr", "ssim", "attack_acc_top1"],
    "attacks": [{"name": "rmle", "params": {"iterations": 30}}, {"name": "inverse-net", "params": {"epochs": 1}}],
    "defenses": [None, {"name": "laplace-noise", "params": {"scale": 0.5}}],
}


class Page(HTMLParser):
    """The tags of interest in a page: images (src), links, table rows and cells, headings."""

    def __init__(self):
        super().__init__()
        self.images, self.links, self.cells, self.headings, self.rows = [], [], [], [], 0
        self._text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        self.links += [v for k, v in attrs.items() if k in ("href", "src") and v and v.startswith(("http:", "https:"))]
        self.rows += tag == "tr"
        if tag in ("td", "h2"):
            self._text = []

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "h2") and self._text is not None:
            (self.cells if tag == "td" else self.headings).append("".join(self._text))
            self._text = None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report on a sweep of tests/test_sweep.py's models, with two workers as there: the same threads per worker,
    so the models in the session's cache have the same bits whichever module trains them first."""
    out = tmp_path_factory.mktemp("results")
    run_grid(validate(GridConfig, GRID), out, workers=2, command="modelinv sweep grid.yaml --out results")
    from modelinv.report.html import write_report

    return write_report(out, title="test report")


def test_report_is_self_contained_with_leaderboard_runs_and_plots(report):
    page = Page()
    page.feed(report.read_text())
    assert page.headings == ["Verdict", "Defenses: privacy-utility front and the cheapest protection", "Leaderboard", "Privacy-utility", "Runs", "Environment and reproduction"]
    assert {"rmle", "inverse-net"} <= set(page.cells) and "laplace-noise(scale=0.5, train=True)" in " ".join(page.cells)
    assert len(page.images) == 4 * 8 * 2 + 1  # each run's 8 targets, original and reconstruction; one privacy-utility figure
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size[0] >= 28
    assert max(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size[0] for src in page.images) == 1100
    assert page.links == []
    assert "modelinv sweep grid.yaml --out results" in report.read_text()


def test_report_command_and_its_errors(report, capsys, tmp_path):
    code, out, _ = cli(capsys, "report", report.parent, "--title", "again")
    assert code == 0 and str(report) in out and "<title>again</title>" in report.read_text()
    code, _, err = cli(capsys, "report", tmp_path / "nothing")
    assert_one_line_error(code, err, "no results in")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None and os.environ.get("CI") != "true", reason="Chromium not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    assert chromium(), "CI must have Chromium: .ci/run installs it"
    shot = tmp_path / "shot.png"  # kept by pytest under its basetemp, for looking at
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars"]
    subprocess.run([chromium(), *flags, "--window-size=1200,2400", f"--screenshot={shot}", report.as_uri()], timeout=120, capture_output=True)
    dom = subprocess.run([chromium(), *flags, "--dump-dom", report.as_uri()], timeout=120, capture_output=True, text=True).stdout
    assert dom.count("<img") == 4 * 8 * 2 + 1 and "<table>" in dom and "Leaderboard" in dom
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2400)
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 50, "the screenshot is blank"
    # the rendered images (grey digits, coloured plot lines) put non-white, non-text pixels on the page
    assert sum(n for n, (r, g, b) in colours if (r, g, b) != (255, 255, 255)) > 0.05 * image.size[0] * image.size[1]
