"""Dropout on the split layer (He, Zhang & Lee, IEEE IoT Journal 2020, dropout defense): each feature the
client sends is zeroed with probability p and the rest scaled by 1/(1-p), while training the target
and at inference, so the observed features are random and the attacker cannot fit them exactly."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from modelinv.defenses.base import FeatureDefense, FeatureParams
from modelinv.defenses.registry import DEFENSES


class DropoutParams(FeatureParams):
    p: float = Field(0.5, ge=0, lt=1, description="probability of dropping each split-layer feature")


@DEFENSES.register("split-dropout")
class SplitDropout(FeatureDefense):
    """Dropout with rate p on the split-layer features, in training and inference (He et al., IoTJ 2020)."""

    Params = DropoutParams

    def perturb(self, observation: torch.Tensor) -> torch.Tensor:
        return F.dropout(observation, self.params.p, training=True)
