"""The model registry and `build_model`; kept apart so architecture files and the checkpoint store can import
them without cycles (the architectures register themselves when `modelinv.models` is imported)."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from modelinv.errors import ModelinvError
from modelinv.registry import Registry

MODELS: Registry = Registry("model")


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
