"""Versions of everything that can change a result, recorded with every checkpoint and run."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

import torch


def versions() -> dict[str, str]:
    """Package versions (faker generates the text records), and the CPU's vector instruction set torch dispatches
    to: the same seed and threads give different bits on AVX2 and AVX-512 kernels."""
    out = {"python": platform.python_version(), "cpu": f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"}
    for package in ("modelinv", "torch", "numpy", "scikit-learn", "scipy", "safetensors", "faker"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out
