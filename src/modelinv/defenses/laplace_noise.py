"""Laplace noise on split-layer features (Titcombe et al., "Practical Defences Against Model Inversion
Attacks for Split Neural Networks", ICLR DPML workshop 2021, sec. 3.1): the client sends
h~ = f1(x) + n, n_i ~ Laplace(0, b) i.i.d., at inference and (by default) while training."""

from __future__ import annotations

import torch
from pydantic import Field

from modelinv.defenses.base import FeatureDefense, FeatureParams
from modelinv.defenses.registry import DEFENSES


class LaplaceParams(FeatureParams):
    scale: float = Field(0.5, gt=0, description="b, the Laplace scale of the noise (Titcombe et al.: 0.1 to 1.0)")


@DEFENSES.register("laplace-noise")
class LaplaceNoise(FeatureDefense):
    """Laplace noise of scale b added to the split-layer features (Titcombe et al. 2021)."""

    Params = LaplaceParams

    def perturb(self, observation: torch.Tensor) -> torch.Tensor:
        noise = torch.distributions.Laplace(0.0, self.params.scale).sample(observation.shape)  # drawn on the CPU: the same on every device
        return observation + noise.to(device=observation.device, dtype=observation.dtype)
