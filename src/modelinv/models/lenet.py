"""LeNet as used by He, Zhang & Lee, "Model Inversion Attacks Against Collaborative Inference" (ACSAC 2019)."""

from __future__ import annotations

from torch import nn

from modelinv.models.conv import Conv2d
from modelinv.models.layered import LayeredNet, flat_size
from modelinv.models.registry import MODELS


@MODELS.register("lenet", family="image")
def lenet(input_shape, num_classes) -> LayeredNet:
    """LeNet: conv1 8@5x5, ReLU, pool, conv2 16@5x5, ReLU, pool, fc 120, 84, classes."""
    channels = input_shape[0]
    conv = [
        ("conv1", Conv2d(channels, 8, 5)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", Conv2d(8, 16, 5)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
    ]
    dense = [
        ("fc1", nn.Sequential(nn.Flatten(), nn.Linear(flat_size(conv, input_shape), 120))),
        ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(120, 84)),
        ("relu4", nn.ReLU()),
        ("fc3", nn.Linear(84, num_classes)),
    ]
    return LayeredNet(conv + dense, embedding_layer="relu4")
