"""What the white-box GAN attacks (gmi, kedmi, plg-mi) share: stage 1 trains (or loads) a GAN prior on the
attacker's public data, stage 2 searches its latent space for images the target assigns to each class.

`GenerativeAttack.run` does what is common, in this order: check the requested classes against the
target's, draw one seed from the attack's generator (it seeds the GAN and LOMMA's surrogates, so the same
attack seed loads the same cached GAN), train or load the prior (`prior`), build the LOMMA identity loss
when `lomma: true`, run the attack's own search (`search`), and return the images with the GAN's metadata
first and LOMMA's last. Subclasses set `Params` (extending their GAN config and `LOMMAParams`) and
implement `search`, and `prior` unless their `Params` choose one of the unconditional GAN families `GANS`.

`GANS` names those families: "wgan-gp" (GMI's WGAN-GP on public data) and "kedmi" (KEDMI's semi-supervised GAN,
which learns the target's soft labels). GMI and KEDMI each search their own by default; their `gan` parameter
swaps in the other one, an ablation that tells the prior's share of a difference between the two attacks from the
search's. A swapped-in GAN is trained with that family's own defaults beyond `GANConfig` (a family-specific
setting given for the other family is refused), so it is the very GAN, loaded from the cache, that the other
attack searches at the same seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from pydantic import BaseModel, model_validator
from torch import nn

from modelinv.attacks.base import Attack, Reconstruction, Targets, requested_classes
from modelinv.attacks.lomma import LOMMA, surrogate_models
from modelinv.data.types import Dataset
from modelinv.gans import GANConfig, gan_config, random_latent_images
from modelinv.gans.kedmi import KEDMIGANConfig, kedmi_gan, realness
from modelinv.gans.wgan_gp import WGANGPConfig, wgan_gp
from modelinv.oracle import ThreatModel, WhiteBox
from modelinv.seeding import derive_seed


@dataclass
class Prior:
    """A trained GAN prior: the frozen generator, the GAN's metadata (`modelinv.gans.cached_gan`) and, when the
    search uses it, its discriminator's realness of each image (shape (N, ...) images -> (N,); higher: more real)."""

    generator: nn.Module
    meta: dict[str, Any]
    realness: Callable[[torch.Tensor], torch.Tensor] | None = None


def wgan_gp_prior(target: WhiteBox, public: Dataset, params: GANConfig, seed: int) -> Prior:
    """GMI's WGAN-GP (`modelinv.gans.wgan_gp`); realness is the critic's score D(x)."""
    generator, critic, meta = wgan_gp(public, target.model, gan_config(WGANGPConfig, params), seed)
    return Prior(generator, meta, lambda x: critic(x).squeeze(1))


def kedmi_prior(target: WhiteBox, public: Dataset, params: GANConfig, seed: int) -> Prior:
    """KEDMI's semi-supervised GAN (`modelinv.gans.kedmi`); realness is the logsumexp of its class logits."""
    generator, discriminator, meta = kedmi_gan(target, public, gan_config(KEDMIGANConfig, params), seed)
    return Prior(generator, meta, lambda x: realness(discriminator(x)))


class GANFamilySpec(NamedTuple):
    """A family of `GANS`: its training settings, the prior it gives, and whether it learns from the target's answers."""

    config: type[GANConfig]
    prior: Callable[[WhiteBox, Dataset, GANConfig, int], Prior]
    learns_from_target: bool


GANS: dict[str, GANFamilySpec] = {
    "wgan-gp": GANFamilySpec(WGANGPConfig, wgan_gp_prior, False),
    "kedmi": GANFamilySpec(KEDMIGANConfig, kedmi_prior, True),  # learns the target's soft labels
}


def gan_model(family: str, config: GANConfig) -> str:
    """The name `Attack.trained_models` gives a GAN: its family and training settings, the same for every attack that
    trains it (GMI, Mirror, RLB-MI and BREP-MI train one WGAN-GP; GMI with `gan: kedmi` trains KEDMI's)."""
    return f"gan:{family}:{config.model_dump_json()}"


GANFamily = Literal["wgan-gp", "kedmi"]
"""The names of `GANS`, for the `gan` parameter."""


class GANChoice(BaseModel):
    """The `gan` parameter of GMI and KEDMI: which family of `GANS` the search runs on. Each attack's `Params`
    declares the field with its own family as the default; a setting specific to the default family (beyond
    `GANConfig`) is refused when another family is chosen, since that family would ignore it."""

    gan: GANFamily

    @model_validator(mode="after")
    def _settings_of_the_chosen_gan(self) -> "GANChoice":
        own = type(self).model_fields["gan"].default
        if self.gan != own:
            ignored = sorted((set(GANS[own].config.model_fields) - set(GANConfig.model_fields)) & self.model_fields_set)
            if ignored:
                raise ValueError(f"{', '.join(ignored)} set the {own} GAN, which gan: {self.gan} replaces")
        return self


class GenerativeAttack(Attack):
    """Base of the white-box GAN attacks: a GAN prior on public data, then a latent search per class."""

    white_box = frozenset({"full"})
    goal = "class"

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        target = threat.white_box
        y = requested_classes(self.name, targets.classes, target.model.spec["num_classes"]).to(threat.device)
        seed = derive_seed(gen)
        prior = self.prior(target, attacker_data, seed)
        lomma = LOMMA(target, attacker_data, self.params, seed) if self.params.lomma else None
        images, details = self.search(target, prior, y, lomma, gen)
        meta = {"gan": prior.meta, **details}
        references = {"random-latents": random_latent_images(prior.generator, y, seed)}
        return Reconstruction(images, meta if lomma is None else {**meta, "lomma": lomma.meta}, references)

    def prior(self, target: WhiteBox, public: Dataset, seed: int) -> Prior:
        """The attack's GAN for `target` and the attacker's `public` data, trained with `seed` or loaded from the
        cache: by default the family `GANS[params.gan]`."""
        return GANS[self.params.gan].prior(target, public, self.params, seed)

    def trained_models(self) -> dict[str, bool]:
        """The GAN (`gan_model`: shared with every attack that trains the same one) and LOMMA's surrogates."""
        family = GANS[self.params.gan]
        return {gan_model(self.params.gan, gan_config(family.config, self.params)): family.learns_from_target, **surrogate_models(self.params)}

    def search(self, target: WhiteBox, prior: Prior, y: torch.Tensor, lomma: LOMMA | None, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        """Images for the classes `y` (one per entry), found in the latent space of `prior` with the attack's
        identity loss (LOMMA's when given) and random draws from `gen`; and the search's details for the metadata."""
        raise NotImplementedError
