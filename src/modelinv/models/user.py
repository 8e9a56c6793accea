"""A user's own trained model, for auditing. `target.arch` (or `--arch`) says what the weights file holds:

- a registered architecture (`lenet`, ...): safetensors weights with modelinv's key names;
- `module:path.to.factory`: the user's own class or factory, imported from `module` and called (with
  `input_shape` and `num_classes` when it takes them, plus `target.args`); safetensors weights with the
  user's own key names, loaded into it unchanged; cut layers named by module path (`features.3`), read
  through forward hooks. Importing a module runs its code: a config naming one needs `trust_code: true`
  (the CLI's `--arch module:factory` is that consent, given on the command line);
- `onnx`: an ONNX file (data, not code), converted to a differentiable torch module (`models.onnx_model`);
- `torchscript`: a TorchScript file. TorchScript is code that runs when the model runs (a scripted `forward`
  may write or read files), so it is loaded only with `trust_code: true` (`--trust-model-code`), and then in a
  confined worker process, never in this one (`models.contained`, which says what the containment stops and
  what it does not);
- `python:<key>`: a module object handed to the Python API in this process (`modelinv.audit(model, ...)`).

Input normalisation is explicit: `normalize=(mean, std)` is applied to the [0, 1] inputs before the user's
model (None: the model gets them as they are); a registered architecture normalises with its own (mean, std),
(0.5, 0.5), unless `normalize` replaces it. Either way it is in the model's `spec["normalize"]`.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from modelinv.data.types import Dataset
from modelinv.devices import device_of
from modelinv.errors import ModelinvError
from modelinv.models.contained import ContainedNet
from modelinv.models.hooks import HookedNet, Normalize, check_normalize
from modelinv.models.layered import LayeredNet
from modelinv.models.onnx_model import ONNX, load_onnx
from modelinv.models.registry import MODELS, build_model
from modelinv.models.store import load_weights
from modelinv.models.trainer import predict_logits

TORCHSCRIPT = "torchscript"
LIVE = "python:"
_LIVE: dict[str, nn.Module] = {}


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def is_factory(arch: str) -> bool:
    """True for `module:path.to.factory` (a user's own architecture), False for registered names and the file formats."""
    return ":" in arch and not arch.startswith(LIVE)


def register_live(model: nn.Module) -> str:
    """Keep a copy of `model`'s architecture for `load_user_model` in this process; returns its arch name, `python:<key>`.

    Example:
        >>> arch = register_live(nn.Linear(4, 2))
        >>> arch.startswith("python:")
        True
    """
    key = f"{type(model).__qualname__}-{id(model):x}"
    _LIVE[key] = copy.deepcopy(model).cpu().eval()
    return LIVE + key


def refuse_untrusted(path: Path, what: str) -> None:
    raise ModelinvError(
        f"{path} is {what}, code that runs when the model is loaded or run: pass --trust-model-code (config target.trust_code: true) "
        "to run it in a confined worker process, or export the model to ONNX (--model m.onnx), which is data"
    )


def load_torchscript(path: Path, input_shape: tuple[int, ...], num_classes: int, trust_code: bool = False, normalize: Normalize = None) -> LayeredNet:
    """A TorchScript file run in a confined worker (stages: the children of a scripted Sequential, else `output`).

    Shape: inputs (N, *input_shape) in [0, 1] -> logits (N, num_classes).

    Example:
        >>> net = load_torchscript(Path("model.pt"), (1, 28, 28), 10, trust_code=True)  # doctest: +SKIP
        >>> net.spec["contained"]  # doctest: +SKIP
        ['own-process', 'empty-cwd', 'no-inherited-fds', 'fsize-64MiB', 'landlock-abi7', 'uid-nobody', 'seccomp']
    """
    path = Path(path)
    if not path.is_file():
        raise ModelinvError(f"TorchScript file not found: {path}")
    if not trust_code:
        refuse_untrusted(path, "a TorchScript file")
    net = ContainedNet(path, input_shape, num_classes)
    try:
        set_normalize(net, check_normalize(normalize, input_shape[0] if len(input_shape) == 3 else 1), len(input_shape))
        with torch.no_grad():
            try:
                out = net(torch.zeros(2, *input_shape))  # cpu: at loading, before any move
            except ModelinvError as err:
                raise ModelinvError(f"TorchScript model {path} fails on inputs of shape {tuple(input_shape)}: {str(err)[:200]}") from None
        if out.shape != (2, num_classes):
            raise ModelinvError(f"TorchScript model {path} returns shape {tuple(out.shape[1:])} per input; the data has {num_classes} classes")
    except BaseException:
        net.close()
        raise
    net.spec = {"arch": TORCHSCRIPT, "args": {}, "input_shape": list(input_shape), "num_classes": int(num_classes), "normalize": net_normalize(net), "contained": net.contained}
    return net.eval()


def set_normalize(net: LayeredNet, normalize: tuple[list[float], list[float]] | None, dims: int) -> None:
    """Replace a LayeredNet's input normalisation buffers (None: identity)."""
    mean, std = normalize or ([0.0], [1.0])
    shape = (1, -1, 1, 1) if dims == 3 else (1, -1)
    device = device_of(net)
    net.input_mean = torch.tensor(mean, device=device).reshape(shape)
    net.input_std = torch.tensor(std, device=device).reshape(shape)


def net_normalize(net: LayeredNet) -> tuple[list[float], list[float]] | None:
    """A LayeredNet's normalisation as ([mean per channel], [std per channel]), None when it is the identity."""
    if isinstance(net, HookedNet):
        return net.normalize
    mean, std = net.input_mean.flatten().tolist(), net.input_std.flatten().tolist()
    return None if all(m == 0 for m in mean) and all(s == 1 for s in std) else (mean, std)


def resolve_factory(arch: str) -> Callable[..., Any]:
    """The callable `module:path.to.factory` names; one-line errors for a missing module or attribute."""
    module_name, _, attribute = arch.partition(":")
    if not module_name or not attribute:
        raise ModelinvError(f"invalid architecture '{arch}': use a registered name or module:path.to.factory")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelinvError(f"cannot import module '{module_name}' of architecture '{arch}': {' '.join(str(err).split())[:160]}") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ModelinvError(f"module '{module_name}' has no '{attribute}' (architecture '{arch}')")
        target = getattr(target, part)
    if not callable(target):
        raise ModelinvError(f"'{arch}' is not a class or function")
    return target


def build_factory(arch: str, input_shape: tuple[int, ...], num_classes: int, args: dict[str, Any]) -> nn.Module:
    """Call the user's factory: `input_shape` and `num_classes` are passed when its signature takes them."""
    factory = resolve_factory(arch)
    try:
        accepted = set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        accepted = set()
    extra = {k: v for k, v in (("input_shape", tuple(input_shape)), ("num_classes", int(num_classes))) if k in accepted}
    try:
        model = factory(**extra, **args)
    except TypeError as err:
        raise ModelinvError(f"architecture '{arch}' cannot be built with arguments {sorted({**extra, **args})}: {' '.join(str(err).split())[:160]}") from None
    if not isinstance(model, nn.Module):
        raise ModelinvError(f"architecture '{arch}' returned {type(model).__name__}, not a torch nn.Module")
    return model


def load_state(path: Path, model: nn.Module, arch: str) -> None:
    """Load a safetensors state dict with the user's own key names into the user's module (strict)."""
    path = Path(path)
    if not path.is_file():
        raise ModelinvError(f"weights file not found: {path}")
    try:
        state = load_file(str(path))
    except Exception as err:  # safetensors reports corruption with several exception types
        raise ModelinvError(f"corrupted weights file {path}: {str(err).splitlines()[0][:160]}") from None
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelinvError(
            f"weights {path} do not fit architecture '{arch}': "
            + "; ".join(p for p in (missing and f"missing {', '.join(missing[:3])}", unexpected and f"unexpected {', '.join(unexpected[:3])}") if p)
        )
    wrong = [k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
    if wrong:
        raise ModelinvError(f"weights {path} do not fit architecture '{arch}': '{wrong[0]}' has shape {tuple(state[wrong[0]].shape)}, the model's {tuple(expected[wrong[0]].shape)}")
    model.load_state_dict(state, strict=True)


def check_registered_keys(path: Path, model: nn.Module, arch: str) -> None:
    """A clear error when a file's key names are not the registered architecture's at all (the user's own class)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())
    except Exception:
        return  # load_weights reports the corruption
    expected = set(model.state_dict())
    if keys and not keys & expected:
        raise ModelinvError(
            f"weights {path} have key names ({', '.join(sorted(keys)[:2])}, ...) of another class than modelinv's '{arch}' ({', '.join(sorted(expected)[:2])}, ...): "
            "give your own class with --arch your_module:YourClass (config target.arch), layers are then named by module path"
        )


def load_user_model(
    path: Path,
    arch: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    args: dict[str, Any],
    trust_code: bool = False,
    normalize: Normalize = None,
) -> LayeredNet:
    """The model in `path`, as `arch` says (see the module docstring), with its input normalisation in `spec`.

    Shape: inputs (N, *input_shape) in [0, 1] -> logits (N, num_classes).

    Example:
        >>> net = load_user_model(Path("lenet.safetensors"), "lenet", (1, 28, 28), 10, {})  # doctest: +SKIP
        >>> net.spec["normalize"]  # doctest: +SKIP
        ([0.5], [0.5])
    """
    path = Path(path)
    if arch == TORCHSCRIPT:
        return load_torchscript(path, input_shape, num_classes, trust_code, normalize)
    if arch == ONNX:
        return load_onnx(path, input_shape, num_classes, normalize).eval()
    if arch.startswith(LIVE):
        if arch[len(LIVE) :] not in _LIVE:
            raise ModelinvError(f"architecture '{arch}' is a model object given to the Python API in another process; give module:factory to rerun it")
        model = copy.deepcopy(_LIVE[arch[len(LIVE) :]])
        load_state(path, model, arch)
        return HookedNet(model, input_shape, num_classes, normalize=normalize, arch=arch).eval()
    if is_factory(arch):
        if not trust_code:
            raise ModelinvError(
                f"architecture '{arch}' imports and runs Python code from module '{arch.partition(':')[0]}': "
                "set target.trust_code: true (or pass --arch on the command line) if it is your own"
            )
        model = build_factory(arch, input_shape, num_classes, args)
        load_state(path, model, arch)
        return HookedNet(model, input_shape, num_classes, normalize=normalize, arch=arch).eval()
    MODELS.get(arch)  # an unknown name: the registry's one-line error
    model = build_model(arch, input_shape, num_classes, **args)
    check_registered_keys(path, model, arch)
    load_weights(path, model, arch)
    if normalize is not None:
        set_normalize(model, check_normalize(normalize, input_shape[0] if len(input_shape) == 3 else 1), len(input_shape))
    model.spec = {**model.spec, "normalize": net_normalize(model)}
    return model.eval()


def accuracy_with(net: LayeredNet, data: Dataset, normalize: tuple[list[float], list[float]] | None) -> float:
    """`net`'s accuracy on `data` with its input normalisation replaced by `normalize` (restored afterwards)."""
    hooked = isinstance(net, HookedNet)
    saved = (net.normalize, net.input_mean, net.input_std) if hooked else (None, net.input_mean, net.input_std)
    try:
        if hooked:
            net.normalize = normalize
        set_normalize(net, normalize, len(data.input_shape))
        with torch.no_grad():
            return float((predict_logits(net, data.x).argmax(1) == data.y).float().mean())
    finally:
        if hooked:
            net.normalize = saved[0]
        net.input_mean, net.input_std = saved[1], saved[2]


def normalisation_warnings(net: LayeredNet, data: Dataset, accuracy: float, expected: float | None = None, margin: float = 0.05) -> list[str]:
    """Warnings when `net`'s `accuracy` on the audit data looks wrong, naming the likely cause (input normalisation).

    Tries the common alternatives (none, (0.5, 0.5), the data's own per-channel mean and std) and names one that
    does clearly better; warns too when `accuracy` is `margin` below the `expected` (recorded) accuracy, or
    near chance.

    Example:
        >>> normalisation_warnings(net, test_data, 0.87, expected=0.965)  # doctest: +SKIP
        ['target accuracy 0.87 on the audit data is below its expected 0.965; with normalize=(0.5, 0.5) it is 0.965: ...']
    """
    if data.x.dim() < 2 or not data.x.is_floating_point():
        return []
    current = net_normalize(net)
    channels = data.input_shape[0] if len(data.input_shape) == 3 else 1
    dims = [0, 2, 3] if data.x.dim() == 4 else [0]
    stats = data.x.mean(dims).flatten().tolist(), data.x.std(dims).clamp_min(1e-6).flatten().tolist()
    if len(stats[0]) != channels:
        stats = [sum(stats[0]) / len(stats[0])] * channels, [sum(stats[1]) / len(stats[1])] * channels
    candidates = {"None": None, "(0.5, 0.5)": ([0.5] * channels, [0.5] * channels), f"{describe(stats)} (the data's mean and std)": stats}
    chance = 1.0 / max(2, int(getattr(data, "num_classes", 0) or int(data.y.max()) + 1))
    warnings = []
    low = (expected is not None and accuracy < expected - margin) or accuracy < 2 * chance
    best_name, best_acc = None, accuracy
    if low or expected is None:
        for name, option in candidates.items():
            if option == current or (option is not None and current is not None and all(abs(a - b) < 1e-6 for a, b in zip(option[0] + option[1], current[0] + current[1]))):
                continue
            acc = accuracy_with(net, data, option)
            if acc > best_acc + margin:
                best_name, best_acc = name, acc
    reason = (
        f"below its expected {expected:.3g}" if expected is not None and accuracy < expected - margin else "near chance" if accuracy < 2 * chance else "lower than it could be"
    )
    if best_name is not None:
        warnings.append(
            f"Warning: target accuracy {accuracy:.3g} on the audit data is {reason}; with normalize={best_name} it would be {best_acc:.3g}: "
            f"the model was probably trained with that input normalisation (it has {describe(current)}), so the audit measured a mis-fed model"
        )
    elif low:
        warnings.append(
            f"Warning: target accuracy {accuracy:.3g} on the audit data is {reason}: check the input normalisation ({describe(current)}) "
            "and that the audit data is preprocessed (size, channels, scale [0, 1]) as the training data was"
        )
    return warnings


def describe(normalize: tuple[list[float], list[float]] | None) -> str:
    if normalize is None:
        return "no normalisation"
    mean, std = ([round(v, 4) for v in part] for part in normalize)
    mean, std = (v[0] if len(set(v)) == 1 else tuple(v) for v in (mean, std))
    return f"({mean}, {std})"
