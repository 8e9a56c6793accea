"""The two kinds of defense (DESIGN.md), both `TrainingHooks` of the target's trainer.

- An `OutputDefense` perturbs an observation (split-layer features, probabilities or logits) inside the
  oracle, so the tensor it perturbs is by construction the tensor the attacker sees, in intercepted
  victim traffic and in its own queries alike. A `FeatureDefense` perturbs the cut layer on its way to
  the server too: the deployed model is f2(d(f1(x))), and by default the target is trained that way
  (Titcombe et al. 2021, sec. 3).
- A `TrainingDefense` changes only how the target is trained: its loss, batches or optimiser.

A defense that leaves training unchanged has an empty `training_spec`, so its target is the cached
undefended one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from modelinv.errors import ModelinvError
from modelinv.models.layered import LayeredNet
from modelinv.models.trainer import TrainingHooks
from modelinv.observation import Observation
from modelinv.validation import validate


class DefenseParams(BaseModel):
    """Base of every defense's parameter schema: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class Defense(TrainingHooks):
    """Base class: subclasses set `Params` (and `needs_layer` when they act on the cut layer)."""

    name: ClassVar[str]
    kind: ClassVar[str]
    Params: ClassVar[type[DefenseParams]] = DefenseParams
    needs_layer: ClassVar[bool] = False
    reports: ClassVar[tuple[str, ...]] = ()
    """Training metrics copied into every result row (epsilon and delta for DP-SGD)."""

    def __init__(self, layer: str | None = None, **params: Any):
        self.params = validate(self.Params, params, where="defense.params")
        self.layer = layer

    def check_layer(self) -> str:
        if self.layer is None:
            raise ModelinvError(f"defense '{self.name}' acts on the cut layer: set access.layer")
        return self.layer

    def training_spec(self) -> dict[str, Any]:
        """What the target's cache key records of this defense: {name, params, layer}."""
        return {"name": self.name, "params": self.params.model_dump(), "layer": self.layer}

    def describe(self) -> dict[str, Any]:
        return {"defense": self.name, "defense_params": self.params.model_dump()}


class TrainingDefense(Defense):
    """Changes how the target is trained; what the oracle returns is untouched."""

    kind = "training"


class OutputDefense(Defense):
    """Perturbs the observations in `applies_to` (features, probs, logits) inside the oracle."""

    kind = "output"
    applies_to: ClassVar[frozenset[Observation]] = frozenset()

    def perturb(self, observation: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check_observation(self, observation: Observation | None) -> None:
        """Raise ModelinvError unless this defense perturbs `observation` (access.observe)."""
        if observation not in self.applies_to:
            raise ModelinvError(
                f"defense '{self.name}' perturbs {' or '.join(sorted(self.applies_to))}, "
                f"not the observed {observation or 'nothing'} (access.observe)"
            )

    def training_spec(self) -> dict[str, Any]:
        return {}


class FeatureParams(DefenseParams):
    train: bool = Field(True, description="also perturb the cut layer while training the target (Titcombe et al. 2021)")


class FeatureDefense(OutputDefense):
    """Perturbs the split-layer features the client sends: the server and the attacker both get d(f1(x))."""

    applies_to = frozenset({"features"})
    needs_layer = True
    Params: ClassVar[type[FeatureParams]] = FeatureParams

    def training_spec(self) -> dict[str, Any]:
        return Defense.training_spec(self) if self.params.train else {}

    def loss(self, model: LayeredNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.params.train:
            return super().loss(model, x, y)
        return F.cross_entropy(self.deployed(model)(x), y)

    def deployed(self, model: LayeredNet) -> nn.Module:
        return PerturbedSplit(model, self)


class PerturbedSplit(nn.Module):
    """x -> f2(d(f1(x))): a split network deployed with a defense on its cut layer."""

    def __init__(self, net: LayeredNet, defense: FeatureDefense):
        super().__init__()
        self.net, self.defense, self.layer = net, defense, defense.check_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_from(self.defense.perturb(self.net.features(x, self.layer)), self.layer)
