"""BiDO: bilateral dependency optimisation (Peng, Liu, Xu, Gu, Cheng & Han, "Bilateral Dependency
Optimization: Defending Against Model-inversion Attacks", KDD 2022, the HSIC variant):

    L = CE(f(x), y) + a1 * sum_j nHSIC(X, Z_j) - a2 * sum_j nHSIC(Y, Z_j)

over the hidden representations Z_j (here the output of every parametric layer but the last):
minimise what the features keep of the input, keep what they carry of the label. Kernels as in the
authors' code: Gaussian of width sigma for inputs and features, linear on one-hot labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from modelinv.defenses.base import DefenseParams, TrainingDefense
from modelinv.defenses.registry import DEFENSES
from modelinv.models.layered import LayeredNet
from modelinv.stats import gaussian_kernel, linear_kernel, normalized_hsic


class BiDOParams(DefenseParams):
    a1: float = Field(0.05, ge=0, description="weight of the input dependency nHSIC(X, Z) (minimised)")
    a2: float = Field(0.5, ge=0, description="weight of the label dependency nHSIC(Y, Z) (maximised)")
    sigma: float = Field(5.0, gt=0, description="width of the Gaussian kernels")


def hidden_layers(model: LayeredNet) -> list[str]:
    """Stages with parameters, but the last (the logits)."""
    return [name for name, stage in model.stages.items() if any(True for _ in stage.parameters())][:-1]


@DEFENSES.register("bido")
class BiDO(TrainingDefense):
    """BiDO-HSIC (Peng et al., KDD 2022): minimise a1 * nHSIC(X, Z), maximise a2 * nHSIC(Y, Z) per hidden layer."""

    Params = BiDOParams

    def loss(self, model: LayeredNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p = self.params
        hidden = set(hidden_layers(model))
        kx, ky = gaussian_kernel(x, p.sigma), linear_kernel(F.one_hot(y, model.spec["num_classes"]).to(x.dtype))
        dependency = torch.zeros((), dtype=x.dtype, device=x.device)
        for name, h in model.activations(x):
            if name in hidden:
                kz = gaussian_kernel(h, p.sigma)
                dependency = dependency + p.a1 * normalized_hsic(kx, kz) - p.a2 * normalized_hsic(ky, kz)
        return F.cross_entropy(h, y) + dependency
