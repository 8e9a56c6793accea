"""BREP-MI: boundary-repelling model inversion (Kahla et al., "Label-Only Model Inversion Attacks via
Boundary Repulsion", CVPR 2022, sec. 3, Algorithm 1), from the target's top-1 labels only.

Each requested image is an independent search in the public GAN's latent space. It starts from a random
latent z (clipped to +- `clip`) that the target labels as the class y. At every step it samples N
points z + R u_n on the sphere of radius R around z (u_n uniform on the unit sphere) and asks for their
labels; the points labelled otherwise repel z (the reference's repulsion-only estimate, sec. 3.2):

    g = (1 / N) sum_n phi(z + R u_n) R u_n / R,   phi = -1/2 outside the class, 0 inside
    z <- clip(z + min(R / 3, 3) g)   if the target still labels G(z) as y, else z stays

and when more than 3/4 of the sphere lies inside the class the radius grows, R <- 1.3 R: z has moved
deeper into the class. A search ends after `max_iters_at_radius` steps without the radius growing.

Defaults are the paper's (N = 32 points, R_0 = 2, growth 1.3, clip 1.5, batches of 256 random latents
for the starting points, 1,000 steps without growth to end). Departures for CPU: GMI's WGAN-GP generator
on the public digits, and a cap of `iterations` steps per search (300; the paper runs until the radius
stalls). A search that finds no starting point within `init_batches` batches returns G(z) of a random
latent and is counted in `meta["no_start"]`.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from modelinv.attacks.base import AttackParams
from modelinv.attacks.blackbox import PublicPriorAttack, ask, until_budget
from modelinv.attacks.registry import ATTACKS
from modelinv.gans.wgan_gp import WGANGPConfig
from modelinv.progress import progress_bar


class BREPMIParams(WGANGPConfig, AttackParams):
    sphere_points: int = Field(32, ge=1, description="N: points sampled on the sphere at each step")
    initial_radius: float = Field(2.0, gt=0, description="R_0: starting sphere radius")
    expansion: float = Field(1.3, gt=1, description="the radius grows by this factor when enough of the sphere is inside the class")
    grow_fraction: float = Field(0.75, ge=0, lt=1, description="grow the radius when more than this fraction of the sphere is labelled as the class")
    clip: float = Field(1.5, gt=0, description="latents are clipped to [-clip, clip]")
    max_iters_at_radius: int = Field(1000, ge=1, description="a search ends after this many steps without the radius growing")
    iterations: int = Field(300, ge=1, description="at most this many steps per search")
    init_batch: int = Field(256, ge=1, description="random latents labelled per batch when looking for starting points")
    init_batches: int = Field(20, ge=1, description="at most this many batches when looking for starting points")


@ATTACKS.register("brep-mi")
class BREPMI(PublicPriorAttack):
    """BREP-MI (Kahla et al., CVPR 2022): label-only inversion, repelling a latent from the class boundary on growing spheres."""

    observes = frozenset({"label"})
    Params = BREPMIParams

    def search(self, observer: Any, generator: nn.Module, y: torch.Tensor, gen: torch.Generator, meta: dict[str, Any]) -> torch.Tensor:
        """One boundary-repulsion search per requested image, all stepped together (module docstring)."""
        p = self.params
        z = torch.randn(len(y), p.latent_dim, generator=gen).to(y.device).clamp(-p.clip, p.clip)  # drawn on the CPU: the same on every device
        radius = torch.full((len(y),), p.initial_radius, device=y.device)
        started = torch.zeros(len(y), dtype=torch.bool, device=y.device)
        meta["steps"] = 0
        with until_budget(self.name, meta):
            self.start(observer, generator, y, z, started, gen)
            self.repel(observer, generator, y, z, radius, started, gen, meta)
        meta.update(no_start=int((~started).sum()), final_radius=radius.tolist())
        return z

    def start(self, observer, generator, y: torch.Tensor, z: torch.Tensor, started: torch.Tensor, gen: torch.Generator) -> None:
        """Fill z, in place, with random latents the target labels as each search's class; mark them `started`."""
        p = self.params
        for _ in range(p.init_batches):
            if started.all():
                return
            candidates = torch.randn(p.init_batch, p.latent_dim, generator=gen).to(z.device).clamp(-p.clip, p.clip)
            labels = ask(observer, generator, candidates, "label").to(z.device)
            free = torch.ones(p.init_batch, dtype=torch.bool, device=z.device)
            for i in (~started).nonzero().flatten().tolist():
                hits = (free & (labels == y[i])).nonzero().flatten()
                if len(hits):
                    z[i], free[hits[0]], started[i] = candidates[hits[0]], False, True

    def repel(self, observer, generator, y, z, radius, started, gen, meta) -> None:
        """Boundary repulsion (module docstring) of the started searches, all stepped together, updating z and radius in place."""
        p = self.params
        last_growth = torch.zeros(len(y), dtype=torch.long, device=z.device)
        with progress_bar("brep-mi boundary repulsion", p.iterations) as advance:
            for step in range(1, p.iterations + 1):
                active = (started & (step - last_growth <= p.max_iters_at_radius)).nonzero().flatten()
                if not len(active):
                    return
                r = radius[active, None, None]
                u = torch.randn(len(active), p.sphere_points, p.latent_dim, generator=gen).to(z.device)
                u = r * u / u.norm(dim=2, keepdim=True)
                labels = ask(observer, generator, (z[active, None] + u).flatten(0, 1), "label").to(z.device).view(len(active), -1)
                inside = labels == y[active, None]
                grow = inside.float().mean(1) > p.grow_fraction
                step_size = (radius[active] / 3).clamp(max=3)
                direction = (-0.5 * (~inside).float()[..., None] * u).mean(1) / r[:, 0]
                radius[active[grow]] *= p.expansion
                last_growth[active[grow]] = step
                moved = (z[active] + step_size[:, None] * direction).clamp(-p.clip, p.clip)
                accept = ask(observer, generator, moved, "label").to(z.device) == y[active]
                z[active[accept]] = moved[accept]
                meta["steps"] = step
                advance(radius=radius[active].mean().item())
