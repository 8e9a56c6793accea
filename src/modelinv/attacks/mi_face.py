"""MI-Face: gradient-descent inversion of a class (Fredrikson, Jha & Ristenpart, CCS 2015, Algorithm 1).

For each target class y, minimise the cost

    c(x) = 1 - p_y(x) + tv_weight * TV(x) + l2_weight * ||x||^2 / d

from x_0 = 0 by x_i = PROCESS(x_{i-1} - lr * grad c(x_{i-1})), where PROCESS clips to [0, 1] and,
every `blur_every` steps, smooths with a Gaussian of `blur_sigma` pixels (the paper's denoising
step). Each class stops on its own when its cost has not improved on the best of the last
`window` steps, or falls to `threshold`; the lowest-cost iterate is returned. All classes are
optimised as one batch: a stopped class is frozen while the others continue.

Beyond the paper, each step's gradient may be taken on a randomly shifted copy (`jitter`, the
transformation robustness of feature visualisation, Olah et al. 2017), which with the blur turns
adversarial noise into stroke-like class shapes. With jitter the cost that tracks the best iterate and
stops a class is the shifted copy's (the one the step computes anyway: a second, unshifted forward pass
per step cost a third of the step); the unshifted cost then chooses between the best iterate tracked and
the last one. Defaults (300 steps of lr 3, jitter 2, no blur)
were chosen on an MLP on mnist5k (benchmarks/class_inversion.py reports both); the paper's are
5000 steps of lr 0.1 without jitter.
"""

from __future__ import annotations

import torch
from pydantic import Field

from modelinv.attacks.base import Attack, AttackParams, Reconstruction, Targets
from modelinv.attacks.priors import gaussian_blur, total_variation
from modelinv.attacks.registry import ATTACKS
from modelinv.data.transforms import random_shift
from modelinv.data.types import Dataset
from modelinv.oracle import ThreatModel


class MIFaceParams(AttackParams):
    iterations: int = Field(300, ge=1, description="alpha: maximum gradient steps (paper: 5000)")
    window: int = Field(100, ge=1, description="beta: stop a class whose cost is no better than any of its last beta")
    threshold: float = Field(0.0, ge=0, description="gamma: stop a class whose cost falls to this value")
    lr: float = Field(3.0, gt=0, description="lambda: gradient step size (paper: 0.1 over 5000 steps)")
    tv_weight: float = Field(0.0, ge=0, description="weight of the total-variation prior")
    l2_weight: float = Field(0.0, ge=0, description="weight of the mean squared pixel prior")
    blur_sigma: float = Field(0.0, ge=0, description="PROCESS: Gaussian denoising width in pixels (0: off)")
    blur_every: int = Field(4, ge=1, description="PROCESS: apply the denoising every this many steps")
    jitter: int = Field(2, ge=0, description="take each step's gradient on the image shifted by up to this many pixels")


@ATTACKS.register("mi-face")
class MIFace(Attack):
    """MI-Face (Fredrikson et al., CCS 2015): gradient descent on 1 - p_y(x) with priors and early stopping."""

    white_box = frozenset({"full"})
    goal = "class"
    Params = MIFaceParams

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        p = self.params
        model = threat.white_box
        device = threat.device
        y = targets.classes.to(device)
        shape = tuple(model.model.spec["input_shape"])
        x = torch.zeros((len(y), *shape), device=device, requires_grad=True)
        best = x.detach().clone()
        best_cost = torch.full((len(y),), float("inf"), device=device)
        history = torch.full((len(y), p.window), float("inf"), device=device)
        active = torch.ones(len(y), dtype=torch.bool, device=device)
        steps = torch.zeros(len(y), dtype=torch.long, device=device)
        for i in range(p.iterations):
            seen = random_shift(x, p.jitter, gen) if p.jitter else x
            cost = self.cost(model, seen, y)
            (grad,) = torch.autograd.grad(cost.sum(), x)
            with torch.no_grad():
                cost = cost.detach()
                improved = active & (cost < best_cost)
                best[improved], best_cost[improved] = x[improved], cost[improved]
                stalled = (cost >= history.max(1).values) & (i >= p.window)
                active &= ~(stalled | (cost <= p.threshold))
                if not active.any():
                    break
                history = torch.cat([history[:, 1:], cost[:, None]], 1)
                steps += active
                step = x - p.lr * grad
                if p.blur_sigma > 0 and (i + 1) % p.blur_every == 0:
                    step = gaussian_blur(step, p.blur_sigma)
                x[active] = step[active].clamp(0, 1)
        with torch.no_grad():  # the unshifted cost decides, per class, between the best iterate tracked and the last
            final, tracked = self.cost(model, x, y), self.cost(model, best, y)
        improved = final < tracked
        best[improved] = x.detach()[improved]
        return Reconstruction(best, {"steps_per_class": steps.tolist(), "final_cost": final.minimum(tracked).tolist()})

    def cost(self, model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """c(x) per image: 1 - p_y(x) plus the priors."""
        p = self.params
        probs = model(x).softmax(1).gather(1, y[:, None]).squeeze(1)
        c = 1 - probs
        if p.tv_weight:
            c = c + p.tv_weight * total_variation(x)
        if p.l2_weight:
            c = c + p.l2_weight * x.pow(2).flatten(1).mean(1)
        return c
