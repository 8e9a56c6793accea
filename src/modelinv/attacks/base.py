"""The attack interface: declared requirements, validated parameters, one `run` method.

An attack states what it must observe (`observes`) and which part of the model it must know
(`white_box`); calling it with a weaker threat model raises AccessDenied before any work is done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from modelinv.data.types import Dataset
from modelinv.oracle import ThreatModel
from modelinv.validation import validate


class AttackParams(BaseModel):
    """Base of every attack's parameter schema: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Targets:
    """What the attack is asked to invert.

    Reconstruction attacks get `observations` of private inputs (f1(x), probabilities, ...);
    class-representative attacks get the `classes` to invert, one entry per image wanted;
    attribute-inference attacks get private `records` with the sensitive column hidden (NaN), their
    `observations` when the attacker observes outputs, and their true labels as `classes`.
    """

    observations: torch.Tensor | None = None
    classes: torch.Tensor | None = None
    records: torch.Tensor | None = None


@dataclass
class Reconstruction:
    """The attack's output images, with what it cost (queries, seconds) and attack-specific details."""

    images: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)


class Attack:
    """Base class: subclasses set `observes`, `white_box`, `goal`, `Params` and implement `run`.

    `goal` is "reconstruct" (rebuild the specific private inputs behind observations), "class"
    (produce inputs representative of private classes) or "attribute" (complete private records whose
    sensitive column is hidden). The registry sets `name`.
    """

    name: ClassVar[str]
    goal: ClassVar[str] = "reconstruct"
    observes: ClassVar[frozenset[str]] = frozenset()
    white_box: ClassVar[frozenset[str]] = frozenset()
    Params: ClassVar[type[AttackParams]] = AttackParams

    def __init__(self, **params: Any):
        self.params = validate(self.Params, params, where="attack.params")

    def __call__(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, seed: int = 0) -> Reconstruction:
        """Check the threat model, run the attack, record queries, white-box evaluations and wall time."""
        threat.require(self.name, self.observes, self.white_box)
        queries, gradients = threat.queries, threat.gradients
        start = time.perf_counter()
        result = self.run(threat, targets, attacker_data, torch.Generator().manual_seed(seed))
        result.meta["seconds"] = time.perf_counter() - start
        result.meta["queries"] = threat.queries - queries
        result.meta["gradients"] = threat.gradients - gradients
        return result

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        raise NotImplementedError
