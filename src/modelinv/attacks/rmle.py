"""rMLE: regularised maximum-likelihood estimation of a split network's input (He, Zhang & Lee, ACSAC 2019, sec. 4).

Given white-box access to the client part f1 and an observed split-layer activation h0 = f1(x0), solve

    x* = argmin_{x in [0,1]} ||f1(x) - h0||^2 + lambda * TV(x)

with Adam from x = 0.5, projecting onto [0, 1] after each step; all targets are optimised as one batch.
The paper's schedules are the defaults: a shallow cut (one parametric layer) uses lr 1e-2 for 500
iterations, a deeper cut lr 1e-3 for 5000.
"""

from __future__ import annotations

import torch
from pydantic import Field

from modelinv.attacks.base import Attack, AttackParams, Reconstruction, Targets
from modelinv.attacks.registry import ATTACKS
from modelinv.data.types import Dataset
from modelinv.models.layered import LayeredNet
from modelinv.oracle import ThreatModel
from modelinv.progress import progress_bar

SHALLOW = {"lr": 1e-2, "iterations": 500, "tv_weight": 0.0}
DEEP = {"lr": 1e-3, "iterations": 5000, "tv_weight": 1e-2}


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per image: mean |x[i+1,j] - x[i,j]| + mean |x[i,j+1] - x[i,j]|."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def is_shallow(model: LayeredNet, layer: str) -> bool:
    """A cut is shallow when the client part holds a single parametric layer (e.g. LeNet conv1)."""
    parametric = [n for n in model.client_stages(layer) if any(True for _ in model.stages[n].parameters())]
    return len(parametric) <= 1


def schedule(model: LayeredNet, layer: str, params: RMLEParams) -> dict:
    """The paper's lr and iterations for the cut's depth (and our TV weight), overridden by explicit values."""
    default = SHALLOW if is_shallow(model, layer) else DEEP
    return {k: default[k] if getattr(params, k) is None else getattr(params, k) for k in default}


def invert_features(
    f1: torch.nn.Module,
    observed: torch.Tensor,
    input_shape: tuple[int, ...],
    lr: float,
    iterations: int,
    tv_weight: float,
    desc: str = "rMLE",
) -> torch.Tensor:
    """Batched rMLE: find x in [0,1] with f1(x) close to each row of `observed`."""
    x = torch.full((observed.shape[0], *input_shape), 0.5, requires_grad=True)
    optimiser = torch.optim.Adam([x], lr=lr)
    with progress_bar(desc, iterations) as advance:
        for _ in range(iterations):
            feature_loss = (f1(x) - observed).pow(2).flatten(1).mean(1)
            loss = (feature_loss + tv_weight * total_variation(x)).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                x.clamp_(0.0, 1.0)
            advance(loss=float(feature_loss.detach().mean()))
    return x.detach()


class RMLEParams(AttackParams):
    lr: float | None = Field(None, gt=0, description="Adam step size; default from the cut depth")
    iterations: int | None = Field(None, ge=1, description="optimisation steps; default from the cut depth")
    tv_weight: float | None = Field(None, ge=0, description="lambda, weight of the total-variation prior; default 0 shallow, 1e-2 deep")


@ATTACKS.register("rmle", threat="white-box client + features")
class RMLE(Attack):
    """rMLE (He et al., ACSAC 2019): optimise the input until the client model reproduces the observed features."""

    observes = frozenset({"features"})
    white_box = frozenset({"client"})
    Params = RMLEParams

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        layer = threat.observer.layer
        model = threat.white_box.model
        steps = schedule(model, layer, self.params)
        f1 = lambda x: threat.white_box.features(x, layer)  # noqa: E731
        images = invert_features(f1, targets.observations, tuple(model.spec["input_shape"]), **steps)
        return Reconstruction(images, steps)
