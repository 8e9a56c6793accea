"""KEDMI: knowledge-enriched distributional model inversion (Chen et al., ICCV 2021).

Stage 1 (`modelinv.gans.kedmi`): an inversion-specific GAN whose discriminator learns the target's soft
labels on the attacker's public data. Stage 2 (sec. 3.2, Eq. 6): for each wanted class y, learn a
Gaussian N(mu, diag(sigma^2)) over the latent space, sampling z = mu + sigma * eps (reparameterisation)
at every step, to minimise

    lambda_prior * softplus(-lse l(G(z))) + lambda_id * CE(T(G(z)), y)

(the prior term is -log D(G(z)) of the semi-supervised discriminator, D = sigmoid(logsumexp l)) with Adam
on (mu, log sigma^2), from mu = 0 and log sigma^2 = 1 as in the reference code. The reconstructions are
samples G(mu_y + sigma_y * eps), one per requested image, so the images of a class show the learned
distribution. Defaults are the reference's: lambda_id 100, lr 2e-2, 1,500 iterations, one sample per
class per step; like the reference there are no restarts (it reports averages over 5 draws from the
learned distributions instead). `output: means` returns G(mu_y) for every image of class y instead of samples:
not the paper's attack, an ablation that measures what the samples' spread costs. `gan: wgan-gp` runs the search
on GMI's WGAN-GP instead (the one the gmi attack searches at the same seed), its critic's score D(x) in place of
lse l(x): an ablation that measures the prior's share (`modelinv.attacks.generative.GANS`).

With `lomma: true` the identity loss is LOMMA's (Nguyen et al., CVPR 2023; `modelinv.attacks.lomma`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from modelinv.attacks.base import AttackParams
from modelinv.attacks.generative import GANChoice, GANFamily, GenerativeAttack, Prior
from modelinv.attacks.lomma import LOMMA, LOMMAParams
from modelinv.attacks.registry import ATTACKS
from modelinv.gans.kedmi import KEDMIGANConfig
from modelinv.oracle import WhiteBox
from modelinv.progress import progress_bar

INITIAL_LOG_VAR = 1.0
"""log sigma^2 at the start of the search, as in the reference code."""


class KEDMIParams(KEDMIGANConfig, LOMMAParams, GANChoice, AttackParams):
    gan: GANFamily = Field(
        "kedmi", description="the GAN searched: KEDMI's (the paper) or GMI's WGAN-GP with its critic's score as the realness (an ablation: the prior's share)"
    )
    lambda_id: float = Field(100.0, ge=0, description="weight of the identity loss CE(T(G(z)), y)")
    lambda_prior: float = Field(1.0, ge=0, description="weight of the prior loss -log D(G(z))")
    lr: float = Field(2e-2, gt=0, description="Adam step size on the means and log-variances")
    iterations: int = Field(1500, ge=1, description="optimisation steps of the latent distributions")
    output: Literal["samples", "means"] = Field(
        "samples",
        description="what is returned: a sample of the learned distribution per requested image (the paper), or its mean G(mu_y) for every "
        "image of class y (an ablation: what the samples' spread costs; the search is the same)",
    )


@ATTACKS.register("kedmi")
class KEDMI(GenerativeAttack):
    """KEDMI (Chen et al., ICCV 2021): a target-aware GAN on public data, then a learned latent distribution per class."""

    learns_from_target = True  # its GAN learns from the target's outputs
    Params = KEDMIParams

    def search(self, target: WhiteBox, prior: Prior, y: torch.Tensor, lomma: LOMMA | None, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        """Learn N(mu, sigma^2) per class (module docstring); return one sample per requested image (or, with
        `output: means`, G(mu) of its class)."""
        p = self.params
        generator, realness = prior.generator, prior.realness
        classes, which = y.unique(return_inverse=True)
        mu = torch.zeros(len(classes), p.latent_dim, device=y.device, requires_grad=True)
        log_var = torch.full((len(classes), p.latent_dim), INITIAL_LOG_VAR, device=y.device, requires_grad=True)
        optimiser = torch.optim.Adam([mu, log_var], lr=p.lr)

        def sample(rows: torch.Tensor) -> torch.Tensor:
            eps = torch.randn(len(rows), p.latent_dim, generator=gen).to(mu.device)  # drawn on the CPU: the same on every device
            return generator(mu[rows] + (0.5 * log_var[rows]).exp() * eps)

        with progress_bar("KEDMI distribution search", p.iterations) as advance:
            for _ in range(p.iterations):
                images = sample(torch.arange(len(classes), device=mu.device))
                prior_loss = F.softplus(-realness(images)).mean()
                identity = lomma(images, classes).mean() if lomma else F.cross_entropy(target(images), classes)
                optimiser.zero_grad()
                (p.lambda_prior * prior_loss + p.lambda_id * identity).backward()
                optimiser.step()
                advance(prior=prior_loss.item(), identity=identity.item())
        with torch.no_grad():
            images = sample(which) if p.output == "samples" else generator(mu[which])
        details = {"final_prior_loss": prior_loss.item(), "final_identity_loss": identity.item(), "sigma_mean_per_class": (0.5 * log_var).exp().mean(1).tolist()}
        return images, details
