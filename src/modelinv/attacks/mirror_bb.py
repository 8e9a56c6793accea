"""Mirror, black-box (An et al., "MIRROR: Model Inversion for Deep Learning Network with High Fidelity",
NDSS 2022, sec. IV-C): a genetic algorithm over the public GAN's latent space, its fitness the target's
confidence p_y(G(z)) in the class, read from the probabilities the oracle returns.

Per class y: the `population` latents of a random pool with the highest p_y start the search (the
paper's initial selection from presampled latents; one pool query serves every class). Each generation
keeps the elite (the fittest latent) and breeds `population - 1` children: parents drawn with
probability softmax(fitness), uniform crossover taking each coordinate from parent 1 with probability
f1 / (f1 + f2), mutation of each coordinate with probability `mutation_prob` by uniform noise of
+- `mutation_ce` standard deviations, then clipping to +- `p_std_ce` standard deviations (the paper's
p-space bounds; z ~ N(0, I) here, so the bounds are +- p_std_ce). The images of a class are the final
population's fittest latents, best first.

Defaults are the reference code's (100 generations, mutation probability 0.1 and strength 0.1, bounds
of 1 standard deviation). Departures for 28x28 MNIST on CPU: GMI's WGAN-GP generator with z of 100
dimensions instead of StyleGAN's w space, a pool of 2,000 random latents instead of the presampled
100,000, a population of 100, and mutation noise drawn for every child (the reference draws one noise
vector per generation).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from modelinv.attacks.base import AttackParams
from modelinv.attacks.blackbox import PublicPriorAttack, ask, check_classes, rank_in_class, until_budget
from modelinv.attacks.registry import ATTACKS
from modelinv.errors import ModelinvError
from modelinv.gans.wgan_gp import WGANGPConfig
from modelinv.progress import progress_bar


class MirrorParams(WGANGPConfig, AttackParams):
    pool: int = Field(2000, ge=1, description="random latents scored once; each class's population starts from its best")
    population: int = Field(100, ge=2, description="latents per class in each generation")
    generations: int = Field(100, ge=1, description="generations of the genetic algorithm")
    mutation_prob: float = Field(0.1, ge=0, le=1, description="probability that a child's coordinate mutates")
    mutation_ce: float = Field(0.1, ge=0, description="mutation strength: uniform noise of +- this many standard deviations")
    p_std_ce: float = Field(1.0, gt=0, description="latents are clipped to +- this many standard deviations")


@ATTACKS.register("mirror-bb")
class MirrorBB(PublicPriorAttack):
    """Mirror black-box (An et al., NDSS 2022): a genetic algorithm in the public GAN's latent space, scored by the target's confidence."""

    observes = frozenset({"probs"})
    Params = MirrorParams

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.params.population > self.params.pool:
            raise ModelinvError(f"attack.params.population={self.params.population} exceeds attack.params.pool={self.params.pool}")

    def search(self, observer: Any, generator: nn.Module, y: torch.Tensor, gen: torch.Generator, meta: dict[str, Any]) -> torch.Tensor:
        """The genetic search (module docstring); each class's images are its final population's fittest latents, best first."""
        p = self.params
        classes, which = y.unique(return_inverse=True)
        c, n, d = len(classes), p.population, p.latent_dim

        def fitness(z: torch.Tensor) -> torch.Tensor:
            """p_y(G(z)) for latents (c, m, d) of the classes, in one batch of queries."""
            probs = ask(observer, generator, z.reshape(-1, d), "probs").to(z.device).view(c, z.shape[1], -1)
            return probs.gather(2, classes.view(c, 1, 1).expand(c, z.shape[1], 1)).squeeze(2)

        device = y.device
        z = self.clip(torch.randn(c, n, d, generator=gen).to(device))  # every draw on the CPU, then moved: the same on every device
        score = torch.zeros(c, n, device=device)
        meta["generations"] = 0
        with until_budget(self.name, meta):
            pool = self.clip(torch.randn(p.pool, d, generator=gen).to(device))
            probs = ask(observer, generator, pool, "probs").to(device)
            check_classes(self.name, classes, probs.shape[1])
            score, top = probs[:, classes].T.topk(n, dim=1)
            z = pool[top]
            with progress_bar("mirror-bb genetic search", p.generations) as advance:
                for _ in range(p.generations):
                    children = self.breed(z, score, gen)
                    fit = fitness(children)
                    z, score = torch.cat([z[:, :1], children], 1), torch.cat([score[:, :1], fit], 1)
                    score, order = score.sort(1, descending=True)
                    z = z.gather(1, order[..., None].expand_as(z))
                    meta["generations"] += 1
                    advance(best=score[:, 0].mean().item())
        meta["best_confidence"] = score[:, 0].tolist()
        return z[which, rank_in_class(y) % n]

    def clip(self, z: torch.Tensor) -> torch.Tensor:
        return z.clamp(-self.params.p_std_ce, self.params.p_std_ce)

    def breed(self, z: torch.Tensor, score: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """`population - 1` mutated children per class from fitness-weighted parents (z and score sorted, best first)."""
        p = self.params
        c, n, d = z.shape
        parents = torch.multinomial(score.softmax(1).cpu(), 2 * (n - 1), replacement=True, generator=gen).to(z.device)
        first, second = parents[:, : n - 1], parents[:, n - 1 :]
        f1, f2 = score.gather(1, first), score.gather(1, second)
        keep_first = torch.rand(c, n - 1, d, generator=gen).to(z.device) < (f1 / (f1 + f2).clamp_min(1e-12))[..., None]
        children = torch.where(keep_first, z.gather(1, first[..., None].expand(c, n - 1, d)), z.gather(1, second[..., None].expand(c, n - 1, d)))
        mutate = torch.rand(c, n - 1, d, generator=gen).to(z.device) < p.mutation_prob
        noise = p.mutation_ce * (2 * torch.rand(c, n - 1, d, generator=gen).to(z.device) - 1)
        return self.clip(children + mutate * noise)
