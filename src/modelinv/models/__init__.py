"""Model zoo: architectures with named cut layers, a trainer, and a checkpoint store."""

from __future__ import annotations

from typing import Any

from modelinv.models import cnn_split, eval_cnn, gan, lenet, mlp, resnet, sklearn_adapter, tabular  # noqa: F401  (registration)
from modelinv.models.layered import ClientPart, LayeredNet, ServerPart
from modelinv.models.registry import MODELS, build_model

EVALUATOR_ARCH = "eval-cnn"
"""The default judge; `resnet` judges an `eval-cnn` target so the judge always differs from the target."""


def evaluator_arch_for(target_arch: str) -> str:
    return "resnet" if target_arch == EVALUATOR_ARCH else EVALUATOR_ARCH


def describe_models() -> list[dict[str, Any]]:
    """Name, summary and cut layers of every architecture (cut layers shown for 1x28x28 inputs)."""
    rows = []
    for name in MODELS.names():
        info = MODELS.info(name)
        net = build_model(name, (1, 28, 28), 10)
        if not isinstance(net, LayeredNet):  # GAN parts have no cut layers
            rows.append({**info, "parameters": sum(p.numel() for p in net.parameters())})
            continue
        rows.append(
            {
                **info,
                "cut_layers": net.cut_layers,
                "default_cut": net.default_cut,
                "embedding_layer": net.embedding_layer,
                "parameters": sum(p.numel() for p in net.parameters()),
            }
        )
    return rows


__all__ = [
    "MODELS",
    "LayeredNet",
    "ClientPart",
    "ServerPart",
    "build_model",
    "describe_models",
    "evaluator_arch_for",
]
