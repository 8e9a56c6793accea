"""Model zoo: architectures with named cut layers, a trainer, and a checkpoint store."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from modelinv.errors import ModelinvError
from modelinv.models import cnn_split, eval_cnn, gan, lenet, mlp, resnet, sklearn_adapter, tabular  # noqa: F401  (registration)
from modelinv.models.layered import ClientPart, LayeredNet, ServerPart
from modelinv.models.registry import MODELS

EVALUATOR_ARCH = "eval-cnn"
"""The default judge; `resnet` judges an `eval-cnn` target so the judge always differs from the target."""


def evaluator_arch_for(target_arch: str) -> str:
    return "resnet" if target_arch == EVALUATOR_ARCH else EVALUATOR_ARCH


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int, **args: Any) -> torch.nn.Module:
    """Instantiate architecture `arch` for inputs of `input_shape` and `num_classes` outputs."""
    factory = MODELS.get(arch)
    accepted = set(inspect.signature(factory).parameters) - {"input_shape", "num_classes"}
    unknown = sorted(set(args) - accepted)
    if unknown:
        raise ModelinvError(
            f"model '{arch}' has no argument '{unknown[0]}' (arguments: {', '.join(sorted(accepted)) or 'none'})"
        )
    if MODELS.info(arch)["family"] != "image-or-tabular" and len(input_shape) != 3:
        raise ModelinvError(f"model '{arch}' needs images (C, H, W); the data has shape {tuple(input_shape)}")
    try:
        net = factory(tuple(input_shape), int(num_classes), **args)
    except RuntimeError as err:  # e.g. an image too small for the architecture's convolutions
        raise ModelinvError(f"model '{arch}' cannot take inputs of shape {tuple(input_shape)}: {err}") from None
    net.spec = {"arch": arch, "args": dict(args), "input_shape": list(input_shape), "num_classes": int(num_classes)}
    return net


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
