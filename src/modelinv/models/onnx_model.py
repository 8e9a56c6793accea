"""ONNX models: the safe way to bring one's own model. An ONNX file is a graph of standard operators and
weights (protobuf data, no code), converted here by onnx2torch into an ordinary, differentiable torch module,
so white-box attacks (rMLE, MI-Face, the GAN attacks) work on it as on any model.

Cut layers are the converted graph's modules, named after the ONNX nodes (a LeNet exported by
`torch.onnx.export` has `conv1/Conv`, `relu2/Relu`, ...), read through forward hooks (`HookedNet`).
Needs onnx and onnx2torch (`pip install 'modelinv[onnx]'`, then `pip install --no-deps onnx2torch`). onnx2torch imports torchvision
only for two detection operators (NonMaxSuppression, RoiAlign); where torchvision is absent or cannot be
imported (its CPU and CUDA builds must match torch's), modelinv loads onnx2torch without it and those two
operators fail with a one-line error.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

from modelinv.errors import ModelinvError
from modelinv.models.hooks import HookedNet, Normalize

INSTALL = "ONNX models need onnx and onnx2torch: pip install 'modelinv[onnx]' && pip install --no-deps onnx2torch"

ONNX = "onnx"
SUPPORTED_OPSET = 17
"""Opsets above this are converted down first (onnx2torch 1.5 lacks some newer operator versions, e.g. Constant-19)."""


def _no_torchvision(*args: Any, **kwargs: Any) -> Any:
    raise ModelinvError("this ONNX model uses a detection operator (NonMaxSuppression or RoiAlign) that needs a working torchvision")


def import_onnx2torch() -> tuple[Any, Any]:
    """(onnx, onnx2torch), imported; a missing package is a one-line error."""
    try:
        onnx = importlib.import_module("onnx")
    except ImportError:
        raise ModelinvError(INSTALL) from None
    if "onnx2torch" in sys.modules:
        return onnx, sys.modules["onnx2torch"]
    try:
        importlib.import_module("torchvision")
        broken = False
    except Exception:  # absent, or a build that does not match torch's (its C operators fail to register)
        broken = True
    saved = {name: sys.modules.pop(name) for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]} if broken else {}
    if broken:  # onnx2torch imports torchvision at import time for two detection operators only
        stub, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.nms = ops.roi_align = ops.box_convert = _no_torchvision
        stub.ops = ops
        sys.modules.update({"torchvision": stub, "torchvision.ops": ops})
    try:
        onnx2torch = importlib.import_module("onnx2torch")
    except ImportError:
        raise ModelinvError(INSTALL + " (onnx2torch is missing)") from None
    finally:
        if broken:  # the stub served onnx2torch's import only; the rest of the process sees torchvision as before
            sys.modules.pop("torchvision", None)
            sys.modules.pop("torchvision.ops", None)
            sys.modules.update(saved)
    return onnx, onnx2torch


def load_onnx(path: Path, input_shape: tuple[int, ...], num_classes: int, normalize: Normalize = None) -> HookedNet:
    """An ONNX file as a differentiable model with cut layers named after its nodes.

    Shape: inputs (N, *input_shape) in [0, 1], normalised by `normalize` if given (else as they are: the graph
    must hold its own normalisation) -> logits (N, num_classes).

    Example:
        >>> net = load_onnx(Path("lenet.onnx"), (1, 28, 28), 10)  # doctest: +SKIP
        >>> net.cut_layers[:3]  # doctest: +SKIP
        ['Constant', 'Sub', 'Constant_1']
    """
    path = Path(path)
    if not path.is_file():
        raise ModelinvError(f"ONNX file not found: {path}")
    onnx, onnx2torch = import_onnx2torch()
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as err:  # protobuf DecodeError, onnx ValidationError, ...
        raise ModelinvError(f"not a valid ONNX file: {path} ({' '.join(str(err).split())[:160]})") from None
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=SUPPORTED_OPSET)
    try:
        if opset > SUPPORTED_OPSET:
            proto = onnx.version_converter.convert_version(proto, SUPPORTED_OPSET)
        module = onnx2torch.convert(proto)
    except ModelinvError:
        raise
    except Exception as err:  # an operator onnx2torch does not convert, or an opset it cannot convert down
        raise ModelinvError(f"cannot convert ONNX file {path} (opset {opset}) to torch: {' '.join(str(err).split())[:200]}") from None
    return HookedNet(module, input_shape, num_classes, normalize=normalize, arch=ONNX)
