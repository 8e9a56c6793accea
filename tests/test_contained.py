"""Untrusted TorchScript: refused without --trust-model-code, and with it run in a confined worker that cannot
write outside its temporary directory; the contained model still gives features and input gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import assert_one_line_error, cli
from modelinv.errors import ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.models.user import load_user_model


class WritesAFile(torch.nn.Module):
    """A valid scripted model whose forward writes its input to `path` with torch.save."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.fc = torch.nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.path)
        return self.fc(x.flatten(1))


@pytest.fixture
def evil(tmp_path):
    """(the scripted model's file, the path its forward writes to); the write really happens when run in-process."""
    target = tmp_path / "private" / "stolen.pt"
    target.parent.mkdir()
    torch.jit.script(WritesAFile(str(target))).save(str(tmp_path / "evil.pt"))
    torch.jit.load(str(tmp_path / "evil.pt"))(torch.zeros(1, 1, 28, 28))  # the control: loaded in-process, it writes
    assert target.is_file()
    target.unlink()
    return tmp_path / "evil.pt", target


def test_torchscript_is_refused_without_trust(evil, tmp_path, capsys):
    path, target = evil
    with pytest.raises(ModelinvError, match="--trust-model-code"):
        load_user_model(path, "torchscript", (1, 28, 28), 10, {})
    code, _, err = cli(capsys, "audit", "--model", path, "--torchscript", "--data", "mnist5k", "--access", "probs", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "TorchScript", "--trust-model-code", "ONNX")
    cfg = ExperimentConfig(target={"arch": "torchscript", "weights": str(path)}, access={"observe": "probs"}, attack={"name": "mi-face"})
    code, _, err = cli(capsys, "run", write_config(tmp_path, cfg), "--out", tmp_path / "run")
    assert_one_line_error(code, err, "--trust-model-code")
    assert not target.exists()


def write_config(tmp_path, cfg):
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def test_trusted_torchscript_cannot_write_outside_its_temporary_directory(evil):
    path, target = evil
    net = load_user_model(path, "torchscript", (1, 28, 28), 10, {}, trust_code=True)
    try:
        out = net(torch.rand(3, 1, 28, 28))  # forward ran (torch.save inside it), in the worker
        assert out.shape == (3, 10)
        assert not target.exists()
        assert {"own-process", "empty-cwd", "no-inherited-fds"} <= set(net.spec["contained"])
        workdir = net.worker.workdir
        assert workdir.is_dir() and not any(workdir.iterdir())  # nothing written in its own folder either
    finally:
        net.close()
    assert not workdir.exists()  # the temporary directory is removed with the worker


def test_contained_model_gives_features_and_input_gradients(tmp_path):
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    torch.jit.script(seq).save(str(tmp_path / "seq.pt"))
    net = load_user_model(tmp_path / "seq.pt", "torchscript", (1, 28, 28), 10, {}, trust_code=True)
    try:
        assert net.cut_layers == ["0", "1", "2", "3"]
        x = torch.rand(4, 1, 28, 28, requires_grad=True)
        h = net.features(x, "2")
        assert torch.equal(h, seq[:3](x))
        (grad,) = torch.autograd.grad(h.square().sum(), x)
        (expected,) = torch.autograd.grad(seq[:3](x).square().sum(), x)
        assert torch.allclose(grad, expected, atol=1e-6)
        hidden = torch.rand(4, 32, requires_grad=True)
        assert torch.allclose(net.forward_from(hidden, "2"), seq[3](hidden))
        with pytest.raises(ModelinvError, match="input gradients only"):
            copy.deepcopy(net)  # the shadow attack's copy of the weights
        with pytest.raises(ModelinvError, match="returns shape \\(10,\\) per input; the data has 5 classes"):
            load_user_model(tmp_path / "seq.pt", "torchscript", (1, 28, 28), 5, {}, trust_code=True)
        (tmp_path / "junk.pt").write_bytes(b"not a model")
        with pytest.raises(ModelinvError, match="not a TorchScript file"):
            load_user_model(tmp_path / "junk.pt", "torchscript", (1, 28, 28), 10, {}, trust_code=True)
    finally:
        net.close()
