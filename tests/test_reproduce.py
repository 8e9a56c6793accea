"""Reproducible outputs (issue 19, Deliver 5): paths in configs are relative to the config file and written
absolute, so a report's "Reproduce" command reruns from any working directory with the same numbers; a Ray
Client address without ray[client] is a one-line error."""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import sys

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from helpers import cli
from modelinv.data import load
from modelinv.errors import ModelinvError
from modelinv.experiment.config import DataConfig, ExperimentConfig, ModelConfig, load_config
from modelinv.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = """\
data: {source: "npz:digits.npz"}
target: {arch: lenet, weights: lenet.safetensors}
evaluator: {arch: eval-cnn, train: {epochs: 1}}
access: {observe: features, layer: conv1, white_box: client}
attack: {name: rmle, params: {iterations: 10}}
num_targets: 4
"""


def project(folder):
    """A user's folder: 600 MNIST digits of every class as digits.npz, a LeNet's weights, and a config naming both relatively."""
    folder.mkdir()
    data = load("mnist5k")
    pick = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(0))[:600]
    np.savez(folder / "digits.npz", x=(data.x[pick, 0] * 255).round().to(torch.uint8).numpy(), y=data.y[pick].numpy())
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in build_model("lenet", (1, 28, 28), 10).state_dict().items()}, str(folder / "lenet.safetensors"))
    (folder / "experiment.yaml").write_text(CONFIG)
    return folder


def test_paths_in_a_config_are_relative_to_its_file_and_loaded_absolute(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "w.safetensors").write_bytes(b"")
    (folder / "a.idx").write_bytes(b"")
    (tmp_path / "cwd-only.npz").write_bytes(b"")
    raw = {
        "data": {"source": "idx:a.idx,b.idx", "public_source": "npz:../cwd-only.npz"},
        "target": {"arch": "lenet", "weights": "w.safetensors"},
        "access": {"key_file": "~/key"},
        "attack": {"name": "rmle", "params": {"source": "npz:not-a-path"}},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir("/")
    cfg = load_config(folder / "c.yaml")
    assert cfg.target.weights == str(folder / "w.safetensors")
    assert cfg.data.source == f"idx:{folder / 'a.idx'},{folder / 'b.idx'}"  # b.idx exists nowhere: from the config's folder too
    assert cfg.data.public_source == f"npz:{tmp_path / 'cwd-only.npz'}"
    assert cfg.access.key_file == os.path.expanduser("~/key")
    assert cfg.attack.params == {"source": "npz:not-a-path"}  # attack parameters are not paths
    # a config written before paths were resolved named them from where it ran: found there when not beside the file
    monkeypatch.chdir(tmp_path)
    (folder / "old.yaml").write_text(yaml.safe_dump({"data": {"source": "npz:cwd-only.npz"}, "attack": {"name": "rmle"}}))
    assert load_config(folder / "old.yaml").data.source == f"npz:{tmp_path / 'cwd-only.npz'}"
    # configs built in Python (modelinv.audit, modelinv audit) hold absolute paths too, from the working directory
    assert DataConfig(source="csv:t.csv").source == f"csv:{tmp_path / 't.csv'}"
    assert DataConfig(source="mnist5k").source == "mnist5k" and DataConfig(source="records:50").source == "records:50"
    assert ModelConfig(arch="lenet", weights="m.safetensors").weights == str(tmp_path / "m.safetensors")
    dumped = ExperimentConfig(data={"source": "text:t.txt"}, attack={"name": "rmle"}).model_dump(mode="json")
    assert dumped["data"]["source"] == f"text:{tmp_path / 't.txt'}"


def test_the_reports_reproduce_command_works_from_the_root_directory(tmp_path, monkeypatch, capsys):
    here = project(tmp_path / "project")
    monkeypatch.chdir(here)
    code, _, err = cli(capsys, "run", "experiment.yaml", "--out", "out")
    assert code == 0, err
    (run_dir,) = (here / "out" / "runs").iterdir()
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["target"]["weights"] == str(here / "lenet.safetensors")
    assert written["data"]["source"] == f"npz:{here / 'digits.npz'}"
    assert cli(capsys, "report", "out")[0] == 0

    (command,) = re.findall(r"Reproduce: <code>(.*?)</code>", (here / "out" / "report.html").read_text())
    args = shlex.split(html.unescape(command))
    assert args[:2] == ["modelinv", "run"] and args[-2] == "--out"
    assert os.path.isabs(args[2]) and os.path.isabs(args[-1])  # nothing depends on the directory it is run from
    monkeypatch.chdir("/")  # literally from the root: nothing is found from here by accident
    code, _, err = cli(capsys, *args[1:])
    assert code == 0, err
    first = json.loads((run_dir / "results.json").read_text())
    (again,) = (here / "out" / f"rerun-{run_dir.name}" / "runs").iterdir()
    second = json.loads((again / "results.json").read_text())
    assert again.name == run_dir.name  # the same experiment
    for metric in ("target_test_acc", "evaluator_test_acc", "mse", "psnr", "ssim", "attack_acc_top1"):
        assert second[metric] == first[metric], metric


def test_a_ray_client_address_without_ray_client_is_one_line(monkeypatch):
    pytest.importorskip("ray")
    from modelinv.experiment.sweep import RayExecutor, ray_client_installed

    monkeypatch.setitem(sys.modules, "grpc", None)  # as with plain `pip install ray`: no grpc
    assert not ray_client_installed()
    with pytest.raises(ModelinvError) as err:
        RayExecutor(None, "ray://head.example:10001", None)
    message = str(err.value)
    assert "\n" not in message and "ray[client]" in message and "modelinv[ray]" in message


def test_the_one_line_error_reaches_the_command_line(monkeypatch, capsys, tmp_path):
    pytest.importorskip("ray")
    from helpers import assert_one_line_error

    monkeypatch.setitem(sys.modules, "grpc", None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "grid.yaml").write_text("attacks: [{name: rmle, params: {iterations: 5}}]\naccess: {layer: conv1, white_box: client}\nnum_targets: 4\n")
    code, _, err = cli(capsys, "sweep", "grid.yaml", "--out", "out", "--executor", "ray", "--address", "ray://head.example:10001")
    assert_one_line_error(code, err, "ray[client]")
