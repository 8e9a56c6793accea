"""The example notebook runs offline, top to bottom, under a kernel of this Python, and shows a table and an image grid.

It trains a tiny plain-PyTorch CNN and audits it through `modelinv.audit` at a named inner layer; its outputs must
include the results table (text/html with a <table>, from `Results._repr_html_`) and an image (image/png)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from modelinv.errors import ModelinvError

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "audit_your_model.ipynb"
KERNEL = "modelinv-test"


@pytest.fixture
def this_python_kernel(tmp_path, monkeypatch):
    """A kernelspec running this interpreter (the venv's), found first on JUPYTER_PATH; one torch thread."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "modelinv test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.delenv("MODELINV_QUIET", raising=False)  # the notebook shows its progress
    return KERNEL


def outputs(nb, output_type: str | None = None) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if output_type is None or o.output_type == output_type]


def test_example_notebook_runs_and_shows_a_table_and_an_image(this_python_kernel, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    nbclient.NotebookClient(nb, kernel_name=this_python_kernel, timeout=240, resources={"metadata": {"path": str(work)}}).execute()

    assert not outputs(nb, "error")
    rich = [o for o in outputs(nb) if o.output_type in ("execute_result", "display_data")]
    tables = [o for o in rich if "<table" in o.data.get("text/html", "")]
    assert tables, "no results table among the outputs"
    assert "data:image/png;base64," in tables[0].data["text/html"]  # the reconstruction grid, inline
    assert any("image/png" in o.data for o in rich), "no image among the outputs"
    assert (work / "audit-out" / "report.html").is_file()
    printed = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    assert "audit-out/report.html" in printed
    inline = [o for o in rich if "<iframe" in o.data.get("text/html", "")]
    assert inline and "srcdoc=" in inline[-1].data["text/html"] and "&lt;h1" in inline[-1].data["text/html"]  # the report, inline
    assert "progress: rMLE 30/30" in printed  # progress shows in a notebook (plain lines without ipywidgets)


def test_results_display_inline_as_a_table_and_the_first_grid(tmp_path):
    from PIL import Image

    from modelinv.api import Results

    run = tmp_path / "runs" / "abc123"
    run.mkdir(parents=True)
    Image.new("L", (8, 4), 128).save(run / "reconstructions.png")
    rows = [
        {"run_id": "abc123", "attack": "rmle", "defense": None, "layer": "body.2", "psnr": 12.26170503, "ssim": 0.5377, "artifacts": str(run)},
        {"run_id": "def456", "attack": "inverse-net", "defense": None, "layer": "body.2", "psnr": 0.000234, "ssim": None, "artifacts": None},
    ]
    page = Results(rows=rows, out=tmp_path, report=tmp_path / "report.html", verdict=["Inputs <can> be reconstructed"])._repr_html_()
    assert page.count("<table") == 1 and page.count("<tr>") == 3  # the header and one row per run
    assert "<th>psnr</th>" in page and "12.3" in page and "2.34e-04" in page and "12.26170503" not in page  # significant digits
    assert "Inputs &lt;can&gt; be reconstructed" in page  # escaped
    assert page.count('src="data:image/png;base64,') == 1 and "abc123" in page
    assert str(tmp_path / "report.html") in page
    assert "(no runs)" in Results(rows=[], out=tmp_path)._repr_html_()
    (tmp_path / "report.html").write_text('<html><body><h1>Audit</h1><p class="v">"quoted" & <b>bold</b></p></body></html>')
    frame = Results(rows=rows, out=tmp_path, report=tmp_path / "report.html").show_report(height=400)._repr_html_()
    assert frame.startswith("<iframe") and "height: 400px" in frame
    assert 'srcdoc="&lt;html&gt;&lt;body&gt;&lt;h1&gt;Audit' in frame and "&quot;quoted&quot; &amp; " in frame  # the whole page, escaped once
    with pytest.raises(ModelinvError, match="no report"):
        Results(rows=rows, out=tmp_path).show_report()


def test_progress_in_jupyter_without_ipywidgets_is_plain_lines(monkeypatch):
    """rich draws its Jupyter bar through ipywidgets and nothing without it: then progress is plain lines."""
    import importlib.util
    import sys

    from modelinv import progress

    monkeypatch.delenv("MODELINV_QUIET", raising=False)
    monkeypatch.delenv("MODELINV_PROGRESS", raising=False)
    jupyter = progress.Console
    monkeypatch.setattr(progress, "Console", lambda *a, **k: jupyter(*a, force_jupyter=True, **k))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else real(name, *a))
    assert progress._mode(sys.stdout) == "lines"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "ipywidgets" else real(name, *a))
    assert progress._mode(sys.stdout) == "bar"
