"""The single-channel convolution's input gradient equals PyTorch's, is itself differentiable, and is used only
where it applies (a frozen model differentiated with respect to its input)."""

import pytest
import torch
from torch import nn

from modelinv.models import build_model
from modelinv.models.conv import Conv2d

GEOMETRIES = [dict(kernel_size=5), dict(kernel_size=3, padding=1), dict(kernel_size=4, stride=2, padding=1), dict(kernel_size=3, dilation=2, bias=False), dict(kernel_size=(3, 5), stride=(1, 2), padding=(2, 0))]


def pair(seed: int, **geometry) -> tuple[nn.Conv2d, Conv2d]:
    torch.manual_seed(seed)
    reference = nn.Conv2d(1, 6, **geometry).requires_grad_(False)
    ours = Conv2d(1, 6, **geometry).requires_grad_(False)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_input_gradient_matches_pytorch(geometry):
    reference, ours = pair(0, **geometry)
    x = torch.rand(3, 1, 13, 15)
    upstream = torch.randn_like(reference(x))
    grads = []
    for conv in (reference, ours):
        xi = x.clone().requires_grad_()
        y = conv(xi)
        (y * upstream).sum().backward()
        grads.append((y.detach(), xi.grad))
    assert ours(x.clone().requires_grad_()).grad_fn.name().endswith("_SingleChannelConvBackward")
    assert torch.equal(grads[0][0], grads[1][0])  # the forward is torch's own
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("geometry", GEOMETRIES[:3])
def test_gradient_is_exact_and_twice_differentiable_in_double(geometry):
    _, ours = pair(1, **geometry)
    ours = ours.double()
    x = torch.rand(2, 1, 9, 10, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(ours, (x,))
    assert torch.autograd.gradgradcheck(ours, (x,))


def test_the_fast_path_is_taken_only_for_a_frozen_single_channel_conv():
    x = torch.rand(2, 1, 12, 12, requires_grad=True)
    trainable = Conv2d(1, 4, 3)  # weights require gradients: torch's kernel, weight gradients as usual
    assert not trainable(x).grad_fn.name().endswith("_SingleChannelConvBackward")
    trainable(x).sum().backward()
    assert trainable.weight.grad is not None
    rgb = Conv2d(3, 4, 3).requires_grad_(False)
    assert not rgb(torch.rand(2, 3, 12, 12, requires_grad=True)).grad_fn.name().endswith("_SingleChannelConvBackward")
    frozen = Conv2d(1, 4, 3).requires_grad_(False)
    assert frozen(torch.rand(2, 1, 12, 12)).grad_fn is None  # no gradient wanted: plain forward
    assert isinstance(frozen, nn.Conv2d) and set(frozen.state_dict()) == {"weight", "bias"}


def test_lenet_input_gradient_and_exports_are_unchanged(tmp_path):
    torch.manual_seed(0)
    lenet = build_model("lenet", (1, 28, 28), 10).eval().requires_grad_(False)
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    lenet.features(x, "relu2").square().sum().backward()
    torch.backends.mkldnn.enabled, was = False, torch.backends.mkldnn.enabled
    try:  # torch's own kernel, on the same module without the fast path: trace it (the path is off when tracing)
        traced = torch.jit.trace(lambda t: lenet.features(t, "relu2"), torch.rand(1, 1, 28, 28))
    finally:
        torch.backends.mkldnn.enabled = was
    x2 = x.detach().clone().requires_grad_()
    traced(x2).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-5)
    torch.jit.script(lenet.stages["conv1"])  # scriptable: the fast path is skipped in TorchScript
