"""A small residual network (He et al., CVPR 2016) for 32-64 px images such as face crops."""

from __future__ import annotations

from torch import nn

from modelinv.models.conv import Conv2d
from modelinv.models.layered import LayeredNet
from modelinv.models.registry import MODELS


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


@MODELS.register("resnet", family="image")
def resnet(input_shape, num_classes, width: int = 16, blocks: int = 1) -> LayeredNet:
    """ResNet with three stages of `blocks` basic blocks (widths w, 2w, 4w); ResNet-8 by default."""
    stages: list[tuple[str, nn.Module]] = [
        ("stem", nn.Sequential(Conv2d(input_shape[0], width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()))
    ]
    cin = width
    for i, cout in enumerate((width, 2 * width, 4 * width), start=1):
        layers = [BasicBlock(cin if b == 0 else cout, cout, 1 if (i == 1 or b > 0) else 2) for b in range(blocks)]
        stages.append((f"layer{i}", nn.Sequential(*layers)))
        cin = cout
    stages.append(("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())))
    stages.append(("fc", nn.Linear(cin, num_classes)))
    return LayeredNet(stages, embedding_layer="pool")
