"""PLG-MI: pseudo label-guided model inversion (Yuan et al., AAAI 2023).

Stage 1 (`modelinv.gans.plg`): the target pseudo-labels the attacker's public data (top-n selection)
and guides a conditional GAN trained on it. Stage 2: for each wanted class c, optimise a latent z,
drawn from N(0, I), with Adam to minimise the max-margin loss of the target on two random
augmentations A of the generated image,

    z* = argmin_z  sum_{v=1,2} L_inv(T(A_v(G(z, c))), c),   L_inv(l, c) = max_{j != c} l_j - l_c,

and return G(z*, c). Defaults are the paper's (lr 0.1, 600 iterations, alpha 0.2); the GAN
departures for 28x28 digits on CPU are listed in `modelinv.gans.plg`.

With `lomma: true` LOMMA's identity loss (Nguyen et al., CVPR 2023; `modelinv.attacks.lomma`) replaces
L_inv on the two augmentations.
"""

from __future__ import annotations

import torch
from pydantic import Field

from modelinv.attacks.base import AttackParams
from modelinv.attacks.generative import GenerativeAttack, Prior, gan_model
from modelinv.attacks.lomma import LOMMA, LOMMAParams, surrogate_models
from modelinv.attacks.registry import ATTACKS
from modelinv.data.types import Dataset
from modelinv.gans import gan_config
from modelinv.gans.plg import PLGGANConfig, max_margin_loss, plg_gan, random_augment
from modelinv.oracle import WhiteBox
from modelinv.progress import progress_bar


class PLGMIParams(PLGGANConfig, LOMMAParams, AttackParams):
    iterations: int = Field(600, ge=1, description="latent optimisation steps")
    lr: float = Field(0.1, gt=0, description="Adam step size on the latents")


@ATTACKS.register("plg-mi")
class PLGMI(GenerativeAttack):
    """PLG-MI (Yuan et al., AAAI 2023): a target-guided conditional GAN on pseudo-labelled public data, then latent search."""

    learns_from_target = True  # its GAN learns from the target's pseudo-labels
    Params = PLGMIParams

    def prior(self, target: WhiteBox, public: Dataset, seed: int) -> Prior:
        generator, meta = plg_gan(target, public, gan_config(PLGGANConfig, self.params), seed)
        return Prior(generator, meta)

    def trained_models(self) -> dict[str, bool]:
        """Its conditional GAN (learned from the target's pseudo-labels) and LOMMA's surrogates."""
        return {gan_model("plg", gan_config(PLGGANConfig, self.params)): True, **surrogate_models(self.params)}

    def search(self, target: WhiteBox, prior: Prior, y: torch.Tensor, lomma: LOMMA | None, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        """One latent per requested image, optimised on two random augmentations per step (module docstring)."""
        p = self.params
        generator = prior.generator
        identity = lomma or (lambda x, c: max_margin_loss(target(x), c))
        z = torch.randn(len(y), p.latent_dim, generator=gen).to(y.device).requires_grad_()
        optimiser = torch.optim.Adam([z], lr=p.lr)
        with progress_bar("plg-mi latent search", p.iterations) as advance:
            for _ in range(p.iterations):
                images = generator(z, y)
                loss = sum(identity(random_augment(images, p.crop_area, p.rotation, gen), y) for _ in range(2))
                optimiser.zero_grad()
                loss.sum().backward()
                optimiser.step()
                advance(loss=loss.mean().item())
        with torch.no_grad():
            images = generator(z, y)
        return images, {"final_loss": loss.detach().tolist()}
