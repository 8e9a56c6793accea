"""Inverting a split network's features by optimisation: rMLE (He, Zhang & Lee, ACSAC 2019, sec. 4), shared by
the `rmle` attack (through the white-box client) and the query-free `shadow` attack (through a shadow client).

    x* = argmin_{x in [0,1]} ||f1(x) - h0||^2 + lambda * TV(x)

with Adam from x = 0.5, projecting onto [0, 1] after each step; all targets are optimised as one batch.
The paper's schedules are the defaults: a shallow cut (one parametric layer) uses lr 1e-2 for 500
iterations, a deeper cut lr 1e-3 for 5000.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field

from modelinv.attacks.base import AttackParams
from modelinv.attacks.priors import total_variation
from modelinv.models.layered import LayeredNet
from modelinv.progress import progress_bar

SHALLOW = {"lr": 1e-2, "iterations": 500, "tv_weight": 0.0}
DEEP = {"lr": 1e-3, "iterations": 5000, "tv_weight": 1e-2}


class RMLEParams(AttackParams):
    lr: float | None = Field(None, gt=0, description="Adam step size; default from the cut depth")
    iterations: int | None = Field(None, ge=1, description="optimisation steps; default from the cut depth")
    tv_weight: float | None = Field(None, ge=0, description="lambda, weight of the total-variation prior; default 0 shallow, 1e-2 deep")
    adam_eps: float = Field(1e-8, gt=0, description="Adam's epsilon (the authors' code uses 1e-3)")
    amsgrad: bool = Field(False, description="Adam's AMSGrad variant (the authors' code uses it)")


def is_shallow(model: LayeredNet, layer: str) -> bool:
    """A cut is shallow when the client part holds a single parametric layer (e.g. LeNet conv1)."""
    parametric = [n for n in model.client_stages(layer) if any(True for _ in model.stages[n].parameters())]
    return len(parametric) <= 1


def schedule(model: LayeredNet, layer: str, params: RMLEParams) -> dict:
    """The paper's lr and iterations for the cut's depth (and our TV weight), overridden by explicit values."""
    default = SHALLOW if is_shallow(model, layer) else DEEP
    return {k: default[k] if getattr(params, k) is None else getattr(params, k) for k in default}


def invert_features(
    f1: Callable[[torch.Tensor], torch.Tensor],
    observed: torch.Tensor,
    input_shape: tuple[int, ...],
    lr: float,
    iterations: int,
    tv_weight: float,
    desc: str = "rMLE",
    adam_eps: float = 1e-8,
    amsgrad: bool = False,
) -> torch.Tensor:
    """Batched rMLE (He et al. 2019, Eq. 3): find x in [0,1] minimising ||f1(x) - observed||^2 / d + tv_weight TV(x)
    for each row of `observed`, with Adam (eps `adam_eps`, optionally AMSGrad) from x = 0.5, clipped to [0, 1] after each step.

    The optimisation runs on the device of `observed` (which `f1` must accept).

    Shape: observed (N, ...) -> x (N, *input_shape).
    """
    x = torch.full((observed.shape[0], *input_shape), 0.5, device=observed.device, requires_grad=True)
    optimiser = torch.optim.Adam([x], lr=lr, eps=adam_eps, amsgrad=amsgrad)
    with progress_bar(desc, iterations) as advance:
        for _ in range(iterations):
            feature_loss = (f1(x) - observed).pow(2).flatten(1).mean(1)
            loss = (feature_loss + tv_weight * total_variation(x)).sum() if tv_weight else feature_loss.sum()  # same gradient, no TV work
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                x.clamp_(0.0, 1.0)
            advance(loss=float(feature_loss.detach().mean()))
    return x.detach()
