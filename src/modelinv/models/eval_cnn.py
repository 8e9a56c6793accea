"""The evaluation classifier ("the judge"): an architecture distinct from every target in the zoo.

Attack accuracy, knn_dist and fid_eval are measured with a separately trained classifier, as in
GMI (Zhang et al., CVPR 2020), so that an attack is not scored by the model it attacked.
"""

from __future__ import annotations

from torch import nn

from modelinv.models.conv import Conv2d
from modelinv.models.layered import LayeredNet, flat_size
from modelinv.models.registry import MODELS


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))


@MODELS.register("eval-cnn", family="image")
def eval_cnn(input_shape, num_classes, width: int = 32, embedding: int = 256) -> LayeredNet:
    """Two conv-BN-ReLU-pool blocks (w, 2w channels), a 256-d embedding with dropout, a linear head."""
    conv = [("block1", _block(input_shape[0], width)), ("block2", _block(width, 2 * width))]
    dense = [
        ("fc1", nn.Sequential(nn.Flatten(), nn.Linear(flat_size(conv, input_shape), embedding))),
        ("embedding", nn.Sequential(nn.ReLU(), nn.Dropout(0.3))),
        ("fc2", nn.Linear(embedding, num_classes)),
    ]
    return LayeredNet(conv + dense, embedding_layer="embedding")
