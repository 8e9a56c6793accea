"""Top-k truncation of the probability vector: the API returns the k largest probabilities and
zeros elsewhere, as prediction APIs that list only the top classes do (Shokri et al., S&P 2017, mitigation strategies)."""

from __future__ import annotations

import torch
from pydantic import Field

from modelinv.defenses.base import DefenseParams, OutputDefense
from modelinv.defenses.registry import DEFENSES


class TopKParams(DefenseParams):
    k: int = Field(1, ge=1, description="number of largest probabilities returned")


@DEFENSES.register("top-k")
class TopK(OutputDefense):
    """Only the k largest probabilities are returned, the others set to 0."""

    applies_to = frozenset({"probs"})
    Params = TopKParams

    def perturb(self, observation: torch.Tensor) -> torch.Tensor:
        k = min(self.params.k, observation.shape[1])
        top = observation.topk(k, dim=1)
        return torch.zeros_like(observation).scatter(1, top.indices, top.values)
