"""The attack interface: declared requirements, validated parameters, one `run` method.

An attack states what it must observe (`observes`), which part of the model it must know
(`white_box`) and whether it queries the observation oracle with inputs of its own (`queries`);
calling it with a weaker threat model raises AccessDenied before any work is done. Its threat model
in words (`threat_summary`, shown by `modelinv list attacks`) is written from these attributes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.observation import OBSERVATIONS
from modelinv.oracle import ThreatModel
from modelinv.validation import validate

OBSERVED = {"features": "split-layer features", "logits": "logits", "probs": "probabilities", "label": "top-1 labels"}
"""Each observation kind in words, for `Attack.threat_summary`."""


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
    """The attack's output images, with what it cost (queries, seconds) and attack-specific details.

    `references` holds trivial answers only the attack can produce, scored beside it with the same metrics:
    e.g. a GAN attack's unoptimised samples from random latents ("random-latents"), same shape and labels."""

    images: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    references: dict[str, torch.Tensor] = field(default_factory=dict)


def requested_classes(attack: str, y: torch.Tensor | None, num_classes: int | None) -> torch.Tensor:
    """An attack's `targets.classes`, checked to be class indices of a target with `num_classes` classes
    (None: unknown to the attacker, any non-negative index)."""
    top = float("inf") if num_classes is None else num_classes
    if y is None or y.ndim != 1 or len(y) == 0 or not ((y >= 0) & (y < top)).all():
        bound = "" if num_classes is None else f" (0..{num_classes - 1})"
        raise ModelinvError(f"attack '{attack}' needs targets.classes, class indices of the target{bound}")
    return y.long()


class Attack:
    """Base class: subclasses set `goal`, `observes`, `white_box`, `queries`, `Params` and implement `run`.

    `goal` is "reconstruct" (rebuild the specific private inputs behind observations), "class"
    (produce inputs representative of private classes) or "attribute" (complete private records whose
    sensitive column is hidden); `modelinv.attacks.goals` says how each is measured. `observes` lists the
    observations of which the threat model must grant one (empty: none needed), `white_box` the model
    parts of which it must know one, and `queries` says whether the attack submits inputs of its own to
    the observation oracle (rather than only reading the victims' intercepted observations). These are
    class attributes: an attack's requirements do not depend on its parameters. The registry sets `name`.
    `learns_from_target` says whether a model the attack trains and caches (a decoder, a surrogate) is
    learned from what the target answers, so that it differs with the target, its defense and the access
    (the runner may then run such attacks on different targets at once); a model learned from public data
    alone (a GAN prior) is the same for every target. `trained_models` names those models for the sweep.
    """

    name: ClassVar[str]
    goal: ClassVar[str] = "reconstruct"
    observes: ClassVar[frozenset[str]] = frozenset()
    white_box: ClassVar[frozenset[str]] = frozenset()
    queries: ClassVar[bool] = False
    learns_from_target: ClassVar[bool] = False
    Params: ClassVar[type[AttackParams]] = AttackParams

    @classmethod
    def threat_summary(cls) -> str:
        """The threat model in words, from `white_box`, `observes` and `queries`: e.g. "white-box client model +
        observed split-layer features", "black-box: queries for probabilities", "label-only: queries for top-1 labels"."""
        seen = " or ".join(OBSERVED[o] for o in OBSERVATIONS if o in cls.observes)
        if seen:
            seen = f"queries for {seen}" if cls.queries else f"observed {seen}"
        if cls.white_box:
            known = " or ".join(sorted(cls.white_box))
            return f"white-box {known} model" + (f" + {seen}" if seen else "")
        if not seen:
            return "no access to the model"
        return f"{'label-only' if cls.observes == {'label'} else 'black-box'}: {seen}"

    def __init__(self, **params: Any):
        self.params = validate(self.Params, params, where="attack.params")

    def trained_models(self) -> dict[str, bool]:
        """The models a run of the attack with these parameters may train and cache, each by a name that every attack
        training the same model gives it (a GAN family with its settings), mapped to whether it learns from the target's
        answers. The sweep never runs at once two runs that may train the same model (for the same data and seed, and,
        when it learns from the target, the same target, defense and access). Default: one model, named by the attack
        and all its parameters, learning from the target when `learns_from_target` says so.

        Shape: -> {model name: learns from the target}.
        Example: ATTACKS.get("inverse-net")().trained_models() -> {'inverse-net:{"epochs":...}': True}."""
        return {f"{self.name}:{self.params.model_dump_json()}": self.learns_from_target}

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
