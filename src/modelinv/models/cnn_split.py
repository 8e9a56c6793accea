"""The split CNN of Titcombe et al., "Practical Defences Against Model Inversion Attacks for Split Neural Networks" (2021)."""

from __future__ import annotations

from torch import nn

from modelinv.models.conv import Conv2d
from modelinv.models.layered import LayeredNet, flat_size
from modelinv.models.registry import MODELS


@MODELS.register("cnn-split", family="image")
def cnn_split(input_shape, num_classes) -> LayeredNet:
    """Client: conv 32@3x3, ReLU, conv 64@3x3, ReLU, maxpool, Linear->500, Tanh | server: 500->128, ReLU, ->classes."""
    conv = [
        ("conv1", Conv2d(input_shape[0], 32, 3)),
        ("relu1", nn.ReLU()),
        ("conv2", Conv2d(32, 64, 3)),
        ("relu2", nn.ReLU()),
        ("pool", nn.MaxPool2d(2)),
    ]
    dense = [
        ("fc1", nn.Sequential(nn.Flatten(), nn.Linear(flat_size(conv, input_shape), 500))),
        ("tanh", nn.Tanh()),
        ("fc2", nn.Linear(500, 128)),
        ("relu3", nn.ReLU()),
        ("fc3", nn.Linear(128, num_classes)),
    ]
    return LayeredNet(conv + dense, embedding_layer="relu3", default_cut="tanh")
