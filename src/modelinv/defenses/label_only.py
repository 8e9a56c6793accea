"""Label-only output: the API returns the predicted class alone, as a one-hot vector in place of the
scores (top-k with k = 1 and no score; Shokri et al., S&P 2017, mitigation strategies)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modelinv.defenses.base import OutputDefense
from modelinv.defenses.registry import DEFENSES


@DEFENSES.register("label-only")
class LabelOnly(OutputDefense):
    """Scores replaced by the one-hot top-1 label."""

    applies_to = frozenset({"probs", "logits"})

    def perturb(self, observation: torch.Tensor) -> torch.Tensor:
        return F.one_hot(observation.argmax(1), observation.shape[1]).to(observation.dtype)
