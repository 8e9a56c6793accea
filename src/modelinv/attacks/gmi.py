"""GMI: generative model inversion (Zhang et al., "The Secret Revealer", CVPR 2020).

Stage 1 (`modelinv.gans.wgan_gp`): a WGAN-GP trained on the attacker's public data only. Stage 2
(sec. 4.2, Eq. 3-5): for each wanted class y, search the latent space for

    z* = argmin_z  -D(G(z)) + lambda_id * CE(T(G(z)), y)

(prior loss: the critic's realness; identity loss: the target's cross-entropy), from z ~ N(0, I),
with SGD with Nesterov momentum, clamping z to [-clip, clip] after each step. Of `restarts`
independent searches, the one whose final image has the highest target logit for y is returned.
Defaults are the reference code's MNIST settings: lambda_id 100, lr 1e-2, momentum 0.9, 1,500
iterations, 5 restarts, clip 1.

As in the reference, the losses are averaged over a batch of latents (`batch_size`), so the step a
latent takes scales with 1 / batch_size; a smaller last batch is divided by batch_size too, so every
latent follows the same dynamics wherever it falls.

`gan: kedmi` runs this search on KEDMI's GAN instead (the same one the kedmi attack searches at the same
seed), its realness logsumexp l(x) in place of D: an ablation, not the paper's attack
(`modelinv.attacks.generative.GANS`).

With `lomma: true` the identity loss is LOMMA's (Nguyen et al., CVPR 2023; `modelinv.attacks.lomma`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from modelinv.attacks.base import AttackParams
from modelinv.attacks.generative import GANChoice, GANFamily, GenerativeAttack, Prior
from modelinv.attacks.lomma import LOMMA, LOMMAParams
from modelinv.attacks.registry import ATTACKS
from modelinv.gans.wgan_gp import WGANGPConfig
from modelinv.oracle import WhiteBox
from modelinv.progress import progress_bar


class GMIParams(WGANGPConfig, LOMMAParams, GANChoice, AttackParams):
    gan: GANFamily = Field(
        "wgan-gp", description="the GAN searched: GMI's WGAN-GP (the paper) or KEDMI's GAN with its realness as the prior (an ablation: the prior's share)"
    )
    lambda_id: float = Field(100.0, ge=0, description="weight of the identity loss CE(T(G(z)), y) against the prior loss -D(G(z))")
    lr: float = Field(1e-2, gt=0, description="SGD step size on the latents")
    momentum: float = Field(0.9, ge=0, lt=1, description="Nesterov momentum of the latent search")
    iterations: int = Field(1500, ge=1, description="latent search steps per restart")
    restarts: int = Field(5, ge=1, description="independent searches per image; the best by target logit is kept")
    clip: float = Field(1.0, gt=0, description="latents are clamped to [-clip, clip] after each step")
    batch_size: int = Field(64, ge=1, description="latents optimised together; the losses are averaged over this many")


@ATTACKS.register("gmi")
class GMI(GenerativeAttack):
    """GMI (Zhang et al., CVPR 2020): a WGAN-GP on public data, then a latent search trading realness against the target's cross-entropy."""

    Params = GMIParams

    def search(self, target: WhiteBox, prior: Prior, y: torch.Tensor, lomma: LOMMA | None, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        """`restarts` latent searches per image, in batches; the best restart by target logit is kept."""
        p = self.params
        generator, realness = prior.generator, prior.realness
        z0 = torch.randn(p.restarts * len(y), p.latent_dim, generator=gen).to(y.device)
        labels = y.repeat(p.restarts)
        starts = range(0, len(z0), p.batch_size)
        with progress_bar("GMI latent search", len(starts) * p.iterations) as advance:
            z = torch.cat([self.descend(generator, realness, target, lomma, z0[i : i + p.batch_size], labels[i : i + p.batch_size], advance) for i in starts])
        with torch.no_grad():
            images = generator(z)
            scores = target(images).gather(1, labels[:, None]).view(p.restarts, len(y))
        best = scores.argmax(0)
        images = images.view(p.restarts, len(y), *images.shape[1:])[best, torch.arange(len(y), device=best.device)]
        return images, {"best_restart": best.tolist(), "target_logit": scores.amax(0).tolist()}

    def descend(self, generator, realness, target, lomma: LOMMA | None, z: torch.Tensor, y: torch.Tensor, advance) -> torch.Tensor:
        """Minimise the prior plus weighted identity loss (LOMMA's when given) over latents `z` for classes `y`; return the final latents."""
        p = self.params
        z = z.clone().requires_grad_()
        optimiser = torch.optim.SGD([z], lr=p.lr, momentum=p.momentum, nesterov=p.momentum > 0)
        for _ in range(p.iterations):
            images = generator(z)
            prior = -realness(images).sum() / p.batch_size
            identity = (lomma(images, y) if lomma else F.cross_entropy(target(images), y, reduction="none")).sum() / p.batch_size
            optimiser.zero_grad()
            (prior + p.lambda_id * identity).backward()
            optimiser.step()
            with torch.no_grad():
                z.clamp_(-p.clip, p.clip)
            advance(prior=prior.item(), identity=identity.item())
        return z.detach()
