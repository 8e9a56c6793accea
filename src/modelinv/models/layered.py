"""A network as an ordered list of named stages, so that any stage is a cut layer.

Split learning and collaborative inference (He et al., ACSAC 2019; Vepakomma et al. 2018) divide a
network f = f2 . f1 at a layer: the client computes h = f1(x) and sends it, the server computes f2(h).
`features(x, layer)` is f1, `forward_from(h, layer)` is f2.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch
from torch import nn

from modelinv.errors import ModelinvError


class LayeredNet(nn.Module):
    """Sequential stages with names; inputs in [0, 1] are normalised inside the model."""

    def __init__(
        self,
        stages: Iterable[tuple[str, nn.Module]],
        *,
        embedding_layer: str,
        default_cut: str | None = None,
        mean: float = 0.5,
        std: float = 0.5,
    ):
        super().__init__()
        self.stages = nn.ModuleDict(dict(stages))
        self.embedding_layer = embedding_layer
        self.default_cut = default_cut
        self.register_buffer("input_mean", torch.tensor(float(mean)), persistent=False)
        self.register_buffer("input_std", torch.tensor(float(std)), persistent=False)
        self.spec: dict[str, Any] = {}
        self.check_layer(embedding_layer)
        if default_cut is not None:
            self.check_layer(default_cut)

    @property
    def arch(self) -> str:
        return self.spec.get("arch", type(self).__name__)

    @property
    def cut_layers(self) -> list[str]:
        return list(self.stages.keys())

    def check_layer(self, layer: str) -> str:
        if layer not in self.stages:
            raise ModelinvError(
                f"model '{self.arch}' has no layer '{layer}' (cut layers: {', '.join(self.cut_layers)})"
            )
        return layer

    def activations(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, output) of every stage in order, computed in one pass; the last output is the logits."""
        h = (x - self.input_mean) / self.input_std
        for name, stage in self.stages.items():
            h = stage(h)
            yield name, h

    def features(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """f1(x): the activation after stage `layer` (what a split-learning client sends)."""
        self.check_layer(layer)
        for name, h in self.activations(x):
            if name == layer:
                return h
        raise AssertionError("unreachable")

    def forward_from(self, h: torch.Tensor, layer: str) -> torch.Tensor:
        """f2(h): logits computed from the activation after stage `layer` (the server's part)."""
        self.check_layer(layer)
        names = self.cut_layers
        for name in names[names.index(layer) + 1 :]:
            h = self.stages[name](h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x, self.cut_layers[-1])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, flattened: the space of knn_dist and fid_eval."""
        return self.features(x, self.embedding_layer).flatten(1)

    def client_stages(self, layer: str) -> list[str]:
        """Names of the stages up to and including `layer` (f1's parameters)."""
        names = self.cut_layers
        return names[: names.index(self.check_layer(layer)) + 1]


class ClientPart(nn.Module):
    """f1 as a module: x -> features(x, layer)."""

    def __init__(self, net: LayeredNet, layer: str):
        super().__init__()
        self.net = net
        self.layer = net.check_layer(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x, self.layer)


class ServerPart(nn.Module):
    """f2 as a module: h -> forward_from(h, layer)."""

    def __init__(self, net: LayeredNet, layer: str):
        super().__init__()
        self.net = net
        self.layer = net.check_layer(layer)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net.forward_from(h, self.layer)


def flat_size(stages: Iterable[tuple[str, nn.Module]], input_shape: tuple[int, ...]) -> int:
    """Number of features after running `stages` on one normalised input of `input_shape`."""
    h = torch.zeros(1, *input_shape)  # cpu: at construction, before any move
    with torch.no_grad():
        for _, stage in stages:
            h = stage(h)
    return int(h[0].numel())
