"""A user's own trained model, for auditing: safetensors weights of a registered architecture, or TorchScript.

TorchScript files are loaded with `torch.jit.load`, which restores compiled TorchScript code and
tensors, not arbitrary pickled Python objects. A scripted `nn.Sequential` keeps its children, so each
becomes a named stage (cut layer); any other scripted module is one stage named `output`. The
scripted model gets the images as they are ([0, 1], shape (N, C, H, W)): it must do its own normalisation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from modelinv.errors import ModelinvError
from modelinv.models.layered import LayeredNet
from modelinv.models.registry import build_model
from modelinv.models.store import load_weights

TORCHSCRIPT = "torchscript"


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_torchscript(path: Path, input_shape: tuple[int, ...], num_classes: int) -> LayeredNet:
    """A TorchScript file as a LayeredNet (stages: the children of a scripted Sequential, else `output`)."""
    path = Path(path)
    if not path.is_file():
        raise ModelinvError(f"TorchScript file not found: {path}")
    try:
        scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # torch raises RuntimeError or ValueError variants for bad archives
        raise ModelinvError(f"not a TorchScript file: {path} ({str(err).splitlines()[0][:120]})") from None
    children = list(scripted.named_children()) if scripted.original_name == "Sequential" else []
    stages = children if len(children) > 1 else [("output", scripted)]
    net = LayeredNet(stages, embedding_layer=stages[-2][0] if len(stages) > 1 else stages[-1][0], mean=0.0, std=1.0)
    with torch.no_grad():
        try:
            out = net(torch.zeros(2, *input_shape))
        except Exception as err:
            raise ModelinvError(f"TorchScript model {path} fails on inputs of shape {tuple(input_shape)}: {str(err).splitlines()[0][:160]}") from None
    if out.shape != (2, num_classes):
        raise ModelinvError(f"TorchScript model {path} returns shape {tuple(out.shape[1:])} per input; the data has {num_classes} classes")
    net.spec = {"arch": TORCHSCRIPT, "args": {}, "input_shape": list(input_shape), "num_classes": int(num_classes)}
    return net.eval()


def load_user_model(path: Path, arch: str, input_shape: tuple[int, ...], num_classes: int, args: dict[str, Any]) -> LayeredNet:
    """The model in `path`: TorchScript when `arch` is 'torchscript', else safetensors weights of `arch`."""
    if arch == TORCHSCRIPT:
        return load_torchscript(path, input_shape, num_classes)
    model = build_model(arch, input_shape, num_classes, **args)
    load_weights(path, model, arch)
    return model.eval()
