"""Defenses, one file each, registered by name: output defenses wrap the oracle, training defenses change
how the target is trained (see defenses.base). `build_defense("laplace-noise", {"scale": 0.5}, "relu2")`."""

from __future__ import annotations

from typing import Any

from modelinv.defenses import bido, dp_sgd, gaussian_noise, label_only, laplace_noise, mid, nopeek, rounding, split_dropout, top_k  # noqa: F401  (registration)
from modelinv.defenses.base import Defense, DefenseParams, FeatureDefense, OutputDefense, TrainingDefense
from modelinv.defenses.registry import DEFENSES


def build_defense(name: str, params: dict[str, Any] | None = None, layer: str | None = None) -> Defense:
    """The defense `name` with validated `params`, acting on cut `layer` where it needs one."""
    return DEFENSES.get(name)(layer=layer, **(params or {}))


def describe_defenses() -> list[dict[str, Any]]:
    """Name, summary, kind, what it perturbs and parameters (with defaults) of every defense."""
    rows = []
    for name in DEFENSES.names():
        cls = DEFENSES.get(name)
        params = {k: {"default": f.default, "description": f.description} for k, f in cls.Params.model_fields.items()}
        perturbs = sorted(getattr(cls, "applies_to", ()))
        kind = f"output ({', '.join(perturbs)})" if perturbs else cls.kind
        rows.append({**DEFENSES.info(name), "kind": kind, "perturbs": perturbs, "params": params})
    return rows


__all__ = ["DEFENSES", "Defense", "DefenseParams", "FeatureDefense", "OutputDefense", "TrainingDefense", "build_defense", "describe_defenses"]
