"""Classifiers of tabular records: `logreg` (multinomial logistic regression) and `tabular-mlp`.

Records come raw (numbers, and level indices for categorical columns); each model standardises every
column with a per-column mean and standard deviation stored with its weights, fitted on the training rows
before training (`fit_inputs`). These statistics are not covered by a DP-SGD epsilon.
"""

from __future__ import annotations

import torch
from torch import nn

from modelinv.models.layered import LayeredNet
from modelinv.models.mlp import _mlp
from modelinv.models.registry import MODELS


class TabularNet(LayeredNet):
    """A LayeredNet whose input normalisation is per column, persistent, and fitted to the training rows."""

    def __init__(self, stages: list[tuple[str, nn.Module]], input_shape: tuple[int, ...], embedding_layer: str):
        super().__init__(stages, embedding_layer=embedding_layer, mean=0.0, std=1.0)
        self.register_buffer("input_mean", torch.zeros(input_shape))
        self.register_buffer("input_std", torch.ones(input_shape))

    @torch.no_grad()
    def fit_inputs(self, x: torch.Tensor) -> None:
        """Standardise with the mean and standard deviation of `x` (a constant column keeps scale 1)."""
        std = x.std(0) if len(x) > 1 else torch.ones_like(x[0])
        self.input_mean.copy_(x.mean(0))
        self.input_std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))


def _tabular(input_shape, num_classes, hidden: tuple[int, ...], cls: type[TabularNet] = TabularNet) -> TabularNet:
    base = _mlp(input_shape, num_classes, hidden, default_cut=None)
    return cls(list(base.stages.items()), tuple(input_shape), embedding_layer=base.embedding_layer)


@MODELS.register("logreg", family="image-or-tabular")
def logreg(input_shape, num_classes) -> TabularNet:
    """Multinomial logistic regression on standardised columns: one linear layer, softmax output."""
    return _tabular(input_shape, num_classes, ())


@MODELS.register("tabular-mlp", family="image-or-tabular")
def tabular_mlp(input_shape, num_classes, hidden: tuple[int, ...] = (64, 64)) -> TabularNet:
    """Multilayer perceptron with ReLU on standardised columns (64-64 hidden units by default)."""
    return _tabular(input_shape, num_classes, tuple(hidden))
