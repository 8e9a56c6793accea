"""Architectures: named cut layers, f = f2 . f1 at every cut, the layer shapes the papers describe."""

import pytest
import torch

from modelinv.errors import ModelinvError
from modelinv.models import MODELS, build_model, describe_models, evaluator_arch_for


@pytest.mark.parametrize("arch", ["mlp", "splitnn-mlp", "lenet", "cnn-split", "eval-cnn", "resnet"])
def test_forward_equals_client_then_server_at_every_cut(arch):
    torch.manual_seed(0)
    net = build_model(arch, (1, 28, 28), 10).eval()
    x = torch.rand(3, 1, 28, 28)
    logits = net(x)
    assert logits.shape == (3, 10)
    for layer in net.cut_layers:
        assert torch.allclose(net.forward_from(net.features(x, layer), layer), logits, atol=1e-5)


def test_paper_shapes():
    x = torch.rand(2, 1, 28, 28)
    lenet = build_model("lenet", (1, 28, 28), 10)
    assert lenet.features(x, "conv1").shape == (2, 8, 24, 24)
    assert lenet.features(x, "relu2").shape == (2, 16, 8, 8)
    split = build_model("splitnn-mlp", (1, 28, 28), 10)
    assert split.default_cut == "relu1" and split.features(x, "relu1").shape == (2, 500)
    titcombe = build_model("cnn-split", (1, 28, 28), 10)
    assert titcombe.default_cut == "tanh" and titcombe.features(x, "tanh").shape == (2, 500)
    assert titcombe.features(x, "tanh").abs().max() <= 1
    resnet = build_model("resnet", (3, 64, 64), 40)
    assert resnet(torch.rand(2, 3, 64, 64)).shape == (2, 40)


def test_evaluator_differs_from_every_target():
    for arch in MODELS.names():
        assert evaluator_arch_for(arch) != arch


def test_bad_layer_and_argument_are_one_line_errors():
    net = build_model("lenet", (1, 28, 28), 10)
    with pytest.raises(ModelinvError, match="no layer 'relu9'.*conv1"):
        net.features(torch.rand(1, 1, 28, 28), "relu9")
    with pytest.raises(ModelinvError, match="no argument 'depth'"):
        build_model("lenet", (1, 28, 28), 10, depth=3)
    with pytest.raises(ModelinvError, match="unknown model 'lenett'"):
        build_model("lenett", (1, 28, 28), 10)


def test_describe_lists_cut_layers():
    rows = {r["name"]: r for r in describe_models()}
    assert {"conv1", "relu2"} <= set(rows["lenet"]["cut_layers"])
    assert rows["splitnn-mlp"]["default_cut"] == "relu1"
