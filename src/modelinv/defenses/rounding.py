"""Rounding of confidence scores (Fredrikson, Jha & Ristenpart, CCS 2015, countermeasures): the API returns
each probability (or logit) rounded to `decimals` decimal places, coarsening what an inversion can fit."""

from __future__ import annotations

import torch
from pydantic import Field

from modelinv.defenses.base import DefenseParams, OutputDefense
from modelinv.defenses.registry import DEFENSES


class RoundParams(DefenseParams):
    decimals: int = Field(2, ge=0, description="decimal places kept (Fredrikson et al.: 1 to 5)")


@DEFENSES.register("round")
class Round(OutputDefense):
    """Scores rounded to k decimal places (Fredrikson et al., CCS 2015)."""

    applies_to = frozenset({"probs", "logits"})
    Params = RoundParams

    def perturb(self, observation: torch.Tensor) -> torch.Tensor:
        return observation.round(decimals=self.params.decimals)
