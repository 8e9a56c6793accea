"""Gaussian noise on split-layer features (He, Zhang & Lee, "Attacking and Protecting Data Privacy in
Edge-Cloud Collaborative Inference Systems", IEEE IoT Journal 2020, noise obfuscation):
the client sends h~ = f1(x) + n, n ~ N(0, sigma^2 I), at inference and (by default) while training."""

from __future__ import annotations

import torch
from pydantic import Field

from modelinv.defenses.base import FeatureDefense, FeatureParams
from modelinv.defenses.registry import DEFENSES


class GaussianParams(FeatureParams):
    sigma: float = Field(0.5, gt=0, description="standard deviation of the noise")


@DEFENSES.register("gaussian-noise")
class GaussianNoise(FeatureDefense):
    """Gaussian noise of standard deviation sigma added to the split-layer features (He et al., IoTJ 2020)."""

    Params = GaussianParams

    def perturb(self, observation: torch.Tensor) -> torch.Tensor:
        # drawn on the CPU from the global state (as randn_like there), then moved: the same noise on every device
        return observation + self.params.sigma * torch.randn(observation.shape, dtype=observation.dtype).to(observation.device)
