"""Versions of everything that can change a result, recorded with every checkpoint and run."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("modelinv", "torch", "numpy", "scikit-learn", "scipy", "safetensors"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out
