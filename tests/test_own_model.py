"""Bringing one's own model: a plain PyTorch class through the Python API (layers by module path, hooks), the
same numbers as modelinv's own architecture with the same weights; ONNX audited with white-box attacks;
explicit input normalisation and the warning when it is probably wrong; `module:factory` architectures."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import modelinv
from modelinv.api import audit_config, run_audit
from modelinv.data import load
from modelinv.errors import ModelinvError
from modelinv.models import build_model
from modelinv.models.hooks import HookedNet
from modelinv.models.user import load_user_model, normalisation_warnings

pytestmark = pytest.mark.usefixtures("one_thread")

RMLE = {"rmle": {"iterations": 20}}
LENET_KEYS = {"features.0": "stages.conv1", "features.3": "stages.conv2", "classifier.1": "stages.fc1.1", "classifier.3": "stages.fc2", "classifier.5": "stages.fc3"}


class PlainLeNet(nn.Module):
    """A user's LeNet with its own module names (the layers of modelinv's `lenet`), normalising nothing itself."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@pytest.fixture(scope="module")
def plain_lenet():
    """Trained in a plain loop for one pass over 1,500 images, on inputs normalised with (x - 0.5) / 0.5 (seconds)."""
    torch.manual_seed(0)
    data = load("mnist5k")
    model = PlainLeNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for batch in torch.randperm(len(data.x))[:1500].split(50):
        optimiser.zero_grad()
        F.cross_entropy(model((data.x[batch] - 0.5) / 0.5), data.y[batch]).backward()
        optimiser.step()
    return model.eval()


def test_python_api_on_a_plain_module_gives_modelinvs_numbers(plain_lenet, tmp_path):
    common = dict(data="mnist5k", white_box="client", attacks=["rmle"], params=RMLE, num_targets=8, evaluator_epochs=1, defenses=[])
    ours = modelinv.audit(plain_lenet, access="features", layers=["features.4"], normalize=(0.5, 0.5), out=tmp_path / "api", **common)
    (row,) = ours.rows
    assert row["layer"] == "features.4" and row["attack"] == "rmle"
    assert ours.report.is_file() and "input normalisation (0.5, 0.5)" in ours.verdict[0]
    assert "input normalisation (0.5, 0.5)" in ours.report.read_text()
    assert set(ours.images()[row["run_id"]]) >= {"originals", "reconstructions", "labels"}
    assert ours.table()[0]["ssim"] == row["ssim"]

    # the same weights under modelinv's own LeNet (which normalises with (0.5, 0.5) inside), cut at the same layer
    renamed = {}
    for key, tensor in plain_lenet.state_dict().items():
        module, _, leaf = key.rpartition(".")
        renamed[f"{LENET_KEYS[module]}.{leaf}"] = tensor.contiguous()
    save_file(renamed, str(tmp_path / "lenet.safetensors"))
    cfg = audit_config(str(tmp_path / "lenet.safetensors"), "lenet", "mnist5k", "features:relu2", white_box="client", attacks=["rmle"], params=RMLE, num_targets=8, evaluator_epochs=1, defenses=[])
    (theirs,) = run_audit([cfg], tmp_path / "registered").rows
    # modelinv's LeNet takes the input gradient of its single-channel conv1 by its own kernel (models/conv.py), the plain
    # module by torch's: the same gradient up to float rounding, so rMLE's 20 steps end about 2e-6 dB apart (1e-5 relative allowed)
    for metric in ("target_test_acc", "psnr", "ssim", "attack_acc_top1", "evaluator_test_acc"):
        assert row[metric] == pytest.approx(theirs[metric], rel=1e-5, abs=1e-6), metric

    single = modelinv.run(plain_lenet, "rmle", access="features:features.4", white_box="client", normalize=(0.5, 0.5), params=RMLE["rmle"], num_targets=8, evaluator_epochs=1, out=tmp_path / "run")
    assert single.rows[0]["ssim"] == pytest.approx(row["ssim"], abs=1e-6)


def test_a_wrong_normalisation_is_named(plain_lenet):
    data = load("mnist5k")
    test = data.subset(torch.randperm(len(data.x), generator=torch.Generator().manual_seed(1))[:1000])
    right = HookedNet(plain_lenet, (1, 28, 28), 10, normalize=(0.5, 0.5))
    wrong = HookedNet(plain_lenet, (1, 28, 28), 10, normalize=None)
    acc = lambda net: float((net(test.x).argmax(1) == test.y).float().mean())  # noqa: E731
    assert acc(right) > acc(wrong) + 0.05
    (warning,) = normalisation_warnings(wrong, test, acc(wrong))
    assert "normalize=(0.5, 0.5)" in warning and f"{acc(right):.3g}" in warning
    assert normalisation_warnings(right, test, acc(right)) == []
    (low,) = normalisation_warnings(right, test, acc(right), expected=min(1.0, acc(right) + 0.2))
    assert "below its expected" in low and "normalisation" in low


def test_layers_by_module_path_and_split_points(plain_lenet):
    net = HookedNet(plain_lenet, (1, 28, 28), 10, normalize=(0.5, 0.5))
    assert "features.4" in net.cut_layers and "features" in net.cut_layers and "classifier.5" in net.cut_layers
    x = torch.rand(3, 1, 28, 28)
    h = net.features(x, "features.4")
    assert torch.equal(net.forward_from(h, "features.4"), net(x))
    assert net.client_stages("features.4") == ["features.0", "features.1", "features.2", "features.3", "features.4"]
    with pytest.raises(ModelinvError, match="has no layer 'features.9'"):
        net.features(x, "features.9")

    class Skip(nn.Module):  # the output bypasses `inner`: not a split point
        def __init__(self):
            super().__init__()
            self.inner, self.head = nn.Linear(784, 784), nn.Linear(784, 10)

        def forward(self, x):
            flat = x.flatten(1)
            return self.head(self.inner(flat) + flat)

    with pytest.raises(ModelinvError, match="not a split point"):
        HookedNet(Skip(), (1, 28, 28), 10).forward_from(torch.zeros(2, 784), "inner")


def test_own_architecture_by_module_factory(plain_lenet, tmp_path, monkeypatch):
    (tmp_path / "user_nets.py").write_text(
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, num_classes):\n"
        "        super().__init__()\n"
        "        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU())\n"
        "        self.head = nn.Linear(16, num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.body(x))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.manual_seed(0)
    weights = {"body.1.weight": torch.randn(16, 784), "body.1.bias": torch.zeros(16), "head.weight": torch.randn(10, 16), "head.bias": torch.zeros(10)}
    save_file(weights, str(tmp_path / "net.safetensors"))
    with pytest.raises(ModelinvError, match="imports and runs Python code"):
        load_user_model(tmp_path / "net.safetensors", "user_nets:Net", (1, 28, 28), 10, {})
    net = load_user_model(tmp_path / "net.safetensors", "user_nets:Net", (1, 28, 28), 10, {}, trust_code=True)
    assert net.spec["normalize"] is None and "body.2" in net.cut_layers
    assert torch.equal(net.model.head.weight, weights["head.weight"])
    with pytest.raises(ModelinvError, match="key names .* of another class than modelinv's 'lenet'.*--arch your_module:YourClass"):
        load_user_model(tmp_path / "net.safetensors", "lenet", (1, 28, 28), 10, {})
    with pytest.raises(ModelinvError, match="cannot import module 'no_such_module'"):
        load_user_model(tmp_path / "net.safetensors", "no_such_module:Net", (1, 28, 28), 10, {}, trust_code=True)


def onnx_installed() -> None:
    """Skip where the onnx extra is missing (onnx2torch cannot be imported plainly: modelinv imports it without torchvision)."""
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnx2torch") is None:
        pytest.skip("onnx and onnx2torch are not installed (make test installs them)")


def test_onnx_lenet_is_audited_with_white_box_attacks(tmp_path):
    onnx_installed()
    torch.manual_seed(0)
    data = load("mnist5k")
    lenet = build_model("lenet", data.input_shape, data.num_classes)
    optimiser = torch.optim.Adam(lenet.parameters(), lr=3e-3)
    for batch in torch.randperm(len(data.x))[:1500].split(50):
        optimiser.zero_grad()
        F.cross_entropy(lenet(data.x[batch]), data.y[batch]).backward()
        optimiser.step()
    lenet.eval()
    path = tmp_path / "lenet.onnx"
    torch.onnx.export(lenet, torch.zeros(1, 1, 28, 28), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    net = load_user_model(path, "onnx", (1, 28, 28), 10, {})
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    assert torch.allclose(net(x), lenet(x), atol=1e-5)
    assert "relu2/Relu" in net.cut_layers
    (grad,) = torch.autograd.grad(net.features(x, "relu2/Relu").sum(), x)  # differentiable: white-box attacks work
    assert grad.abs().sum() > 0

    params = {"rmle": {"iterations": 60, "lr": 0.05}, "inverse-net": {"epochs": 2}}
    results = modelinv.audit(
        path, data="mnist5k", access="features:relu2/Relu", white_box="client", attacks=["rmle", "inverse-net"], params=params,
        num_targets=8, evaluator_epochs=1, defenses=[], out=tmp_path / "audit",
    )
    rows = {r["attack"]: r for r in results.rows}
    assert set(rows) == {"rmle", "inverse-net"} and all(r["model"] == "onnx" for r in rows.values())
    assert rows["rmle"]["gradients"] > 0 and rows["rmle"]["psnr"] > rows["rmle"]["baselines"]["blank"]["psnr"]
    assert results.report.is_file()


def test_onnx_errors_are_one_line(tmp_path, monkeypatch):
    onnx_installed()
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelinvError, match="not a valid ONNX file"):
        load_user_model(tmp_path / "junk.onnx", "onnx", (1, 28, 28), 10, {})
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)  # the extra not installed
    with pytest.raises(ModelinvError, match=r"pip install 'modelinv\[onnx\]'"):
        load_user_model(tmp_path / "junk.onnx", "onnx", (1, 28, 28), 10, {})
