"""Fully connected classifiers: `mlp` (784-500-500-10 by default, the MI-Face target) and `splitnn-mlp`."""

from __future__ import annotations

import math

from torch import nn

from modelinv.models.layered import LayeredNet
from modelinv.models.registry import MODELS


def _mlp(input_shape, num_classes, hidden, default_cut):
    stages: list[tuple[str, nn.Module]] = []
    width = math.prod(input_shape)
    for i, size in enumerate(hidden, start=1):
        linear = nn.Linear(width, size)
        stages.append((f"fc{i}", nn.Sequential(nn.Flatten(), linear) if i == 1 else linear))
        stages.append((f"relu{i}", nn.ReLU()))
        width = size
    out = nn.Linear(width, num_classes)
    stages.append((f"fc{len(hidden) + 1}", nn.Sequential(nn.Flatten(), out) if not hidden else out))
    embedding = f"relu{len(hidden)}" if hidden else stages[-1][0]
    return LayeredNet(stages, embedding_layer=embedding, default_cut=default_cut)


@MODELS.register("mlp", family="image-or-tabular")
def mlp(input_shape, num_classes, hidden: tuple[int, ...] = (500, 500)) -> LayeredNet:
    """Multilayer perceptron with ReLU; Fredrikson et al. (CCS 2015) invert a network of this shape."""
    return _mlp(input_shape, num_classes, tuple(hidden), default_cut=None)


@MODELS.register("splitnn-mlp", family="image")
def splitnn_mlp(input_shape, num_classes, width: int = 500) -> LayeredNet:
    """Split MNIST classifier: client Linear 784->500 + ReLU | server Linear 500->500 + ReLU + Linear 500->10."""
    return _mlp(input_shape, num_classes, (width, width), default_cut="relu1")
