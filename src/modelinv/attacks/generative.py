"""What the white-box GAN attacks (gmi, kedmi, plg-mi) share: stage 1 trains (or loads) a GAN prior on the
attacker's public data, stage 2 searches its latent space for images the target assigns to each class.

`GenerativeAttack.run` does what is common, in this order: check the requested classes against the
target's, draw one seed from the attack's generator (it seeds the GAN and LOMMA's surrogates, so the same
attack seed loads the same cached GAN), train or load the prior (`prior`), build the LOMMA identity loss
when `lomma: true`, run the attack's own search (`search`), and return the images with the GAN's metadata
first and LOMMA's last. Subclasses set `Params` (extending their GAN config and `LOMMAParams`) and
implement `prior` and `search`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from modelinv.attacks.base import Attack, Reconstruction, Targets, requested_classes
from modelinv.attacks.lomma import LOMMA
from modelinv.data.types import Dataset
from modelinv.gans import random_latent_images
from modelinv.oracle import ThreatModel, WhiteBox
from modelinv.seeding import derive_seed


@dataclass
class Prior:
    """A trained GAN prior: the frozen generator, the discriminator when the search uses it, and the GAN's
    metadata (`modelinv.gans.cached_gan`)."""

    generator: nn.Module
    discriminator: nn.Module | None
    meta: dict[str, Any]


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
        """The attack's GAN for `target` and the attacker's `public` data, trained with `seed` or loaded from the cache."""
        raise NotImplementedError

    def search(self, target: WhiteBox, prior: Prior, y: torch.Tensor, lomma: LOMMA | None, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        """Images for the classes `y` (one per entry), found in the latent space of `prior` with the attack's
        identity loss (LOMMA's when given) and random draws from `gen`; and the search's details for the metadata."""
        raise NotImplementedError
