"""Devices: which one a run uses (`device: auto|cpu|cuda|cuda:N|mps`), and where a module or tensor lives.

`resolve_device` turns a config's or option's device into a `torch.device`, or a one-line ModelinvError
(the CLI exits with code 2) for a string that names no device or a device this machine does not have;
`auto` is CUDA when available, else Apple's MPS when available, else the CPU.

The rest of modelinv follows the device of what it is given: the runner moves the target, the judge and
the attacker's inputs to the run's device, and attacks, GANs, oracles, defenses, metrics and the trainer
create their tensors on the device of the model or tensors they work with (`device_of`). Random draws
stay on the CPU: every seeded draw comes from a CPU `torch.Generator` and is then moved (`.to(device)`),
so the same seed draws the same numbers on every device.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from modelinv.errors import ModelinvError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
"""The device strings a config or `--device` accepts."""
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def check_device(spec: str) -> str:
    """`spec` if it is a device string modelinv accepts (`DEVICE_CHOICES`), else a one-line ModelinvError.
    Only the spelling is checked here; `resolve_device` checks that the device exists."""
    if not isinstance(spec, str) or not DEVICE_PATTERN.match(spec.strip().lower()):
        raise ModelinvError(f"device must be one of {DEVICE_CHOICES}, not {spec!r}")
    return spec.strip().lower()


def mps_available() -> bool:
    """Whether Apple's MPS backend is usable here."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The `torch.device` that `spec` names on this machine: auto (or None) is CUDA when available, else MPS
    when available, else the CPU; cpu, cuda, cuda:N and mps must be available, else a one-line ModelinvError
    saying why (so a run fails before any work)."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    name = check_device("auto" if spec is None else spec)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ModelinvError(f"device '{name}' is not available: {why}; use --device cpu (or auto)")
        index = int(name.split(":")[1]) if ":" in name else None
        if index is not None and index >= torch.cuda.device_count():
            raise ModelinvError(f"device '{name}' is not available: {torch.cuda.device_count()} CUDA device(s) visible (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    if name == "mps" and not mps_available():
        raise ModelinvError("device 'mps' is not available: Apple's MPS backend is missing here; use --device cpu (or auto)")
    return torch.device(name)


def device_of(thing: Any, default: torch.device | str = "cpu") -> torch.device:
    """Where a tensor or module lives: a tensor's device, a module's first parameter's (else first buffer's);
    `default` for a module without tensors or anything else."""
    if isinstance(thing, torch.Tensor):
        return thing.device
    if isinstance(thing, torch.nn.Module):
        for tensor in thing.parameters():
            return tensor.device
        for tensor in thing.buffers():
            return tensor.device
    return torch.device(default)


def device_type(device: torch.device | str) -> str:
    """The kind of a device, without its index ("cpu", "cuda", "mps"): what model caches are keyed by."""
    return torch.device(device).type


def run_device_type(spec: str) -> str:
    """The type of device a run given `spec` uses here ("cpu", "cuda", "mps"), without failing: `auto` as
    `resolve_device` picks it, an explicit device by its name even when it is missing here (for run ids,
    which must not fail before the one-line error about the device does)."""
    name = check_device(spec)
    return resolve_device("auto").type if name == "auto" else torch.device(name).type
