"""A 2-d convolution whose input gradient is fast on CPU when the input has a single channel.

White-box inversion (rMLE, MI-Face, GMI's latent search) differentiates a frozen model with respect to its
input, thousands of times. For a grayscale image the first convolution has one input channel, and there
PyTorch's CPU kernel for the input gradient (oneDNN's backward-data) is slower than computing it directly:
the gradient of y = conv(x, W) with respect to x is the "fold" (col2im) of W^T dY, one matrix product and one
scatter-add. `benchmarks/speed.py` (part `floors`) times a forward and backward pass to the input, one thread,
32 images of 28x28, both ways; on the development machine (`benchmarks/results/speed.md`) this path is 1.25x
faster for LeNet's conv1 (1 -> 8 channels, 5x5), 1.6x for the 1 -> 32 3x3 conv1 of `cnn-split` and 1.46x for
the DCGAN critic's 4x4 stride-2 conv1. With three or more input channels oneDNN is faster, so this path is used
only for one input channel.

`Conv2d` is `torch.nn.Conv2d` (same parameters, state-dict keys and forward values) that takes this path only
when it applies: on CPU, one input channel, no groups, zero padding, the input requiring a gradient while the
weights do not (an attack on a frozen model; training is untouched), and outside TorchScript and tracing (the
module stays scriptable and exportable).
The gradient is the same up to floating-point rounding (a test compares it with PyTorch's, and checks that it
is itself differentiable, as gradient penalties need).
"""

import torch
import torch.nn.functional as F
from torch import nn


class _SingleChannelConv(torch.autograd.Function):
    """y = conv2d(x, W, b) for frozen W and b, with dL/dx = fold(W^T dL/dy) (im2col's adjoint)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation):
        ctx.save_for_backward(weight)
        ctx.geometry = (tuple(x.shape[-2:]), stride, padding, dilation)
        return F.conv2d(x, weight, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx, grad_out):
        (weight,) = ctx.saved_tensors
        size, stride, padding, dilation = ctx.geometry
        n, c_out = grad_out.shape[:2]
        columns = torch.matmul(weight.reshape(c_out, -1).t(), grad_out.reshape(n, c_out, -1))  # (N, k*k, L)
        grad_x = F.fold(columns, size, weight.shape[-2:], dilation=dilation, padding=padding, stride=stride)
        return grad_x, None, None, None, None, None


class Conv2d(nn.Conv2d):
    """`torch.nn.Conv2d` with a fast input gradient for single-channel inputs on CPU (see the module docstring).

    Shape: (N, C_in, H, W) -> (N, C_out, H_out, W_out), as `torch.nn.Conv2d`.

    Example:
        >>> conv = Conv2d(1, 8, 5).requires_grad_(False)
        >>> x = torch.rand(2, 1, 28, 28, requires_grad=True)
        >>> conv(x).sum().backward()
        >>> x.grad.shape
        torch.Size([2, 1, 28, 28])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and self._input_gradient_only(x):
            return self._fast(x)
        return self._conv_forward(x, self.weight, self.bias)

    @torch.jit.unused
    def _input_gradient_only(self, x: torch.Tensor) -> bool:
        return (
            self.in_channels == 1
            and self.groups == 1
            and self.padding_mode == "zeros"
            and isinstance(self.padding, tuple)
            and x.device.type == "cpu"
            and x.dim() == 4
            and x.requires_grad
            and torch.is_grad_enabled()
            and not self.weight.requires_grad
            and (self.bias is None or not self.bias.requires_grad)
            and not torch.jit.is_tracing()
        )

    @torch.jit.unused
    def _fast(self, x: torch.Tensor) -> torch.Tensor:
        return _SingleChannelConv.apply(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
