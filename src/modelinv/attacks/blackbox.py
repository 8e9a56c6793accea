"""What the black-box and label-only generative attacks (mirror-bb, brep-mi, rlb-mi) share.

- The frame, `PublicPriorAttack.run`: check the requested classes, load the prior, run the attack's
  search for one latent per requested image, return their images G(z) with the GAN's metadata first.
- The prior: GMI's WGAN-GP generator (`modelinv.gans.wgan_gp`), trained on the attacker's public data
  without the target and cached; the same attack seed loads the same GAN as `gmi`.
- The target is reached only through the observation oracle, `threat.observer`, as images go in and
  probabilities or labels come out (under `torch.no_grad`), so a served model behind HTTP works unchanged.
- A query budget stops the search where it stands: `until_budget` records the oracle's message in the
  result's `meta["stopped"]`, warns with it, and the attack returns the best result found so far.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from modelinv.attacks.base import Attack, Reconstruction, Targets, requested_classes
from modelinv.attacks.generative import GANS, gan_model
from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError, QueryBudgetExceeded
from modelinv.gans import gan_config, random_latent_images
from modelinv.gans.wgan_gp import WGANGPConfig, wgan_gp
from modelinv.oracle import ThreatModel
from modelinv.seeding import derive_seed


def public_prior(attacker_data: Dataset, params: WGANGPConfig, gen: torch.Generator, device: torch.device | str = "cpu") -> tuple[nn.Module, dict, int]:
    """The frozen GMI generator for the attacker's public data (cached or trained), on `device`, its metadata and its seed."""
    seed = derive_seed(gen)
    generator, _, meta = wgan_gp(attacker_data, None, gan_config(WGANGPConfig, params), seed, device=device)
    return generator, meta, seed


@torch.no_grad()
def ask(observer: Any, generator: nn.Module, z: torch.Tensor, want: str) -> torch.Tensor:
    """The oracle's answer for the images G(z) as `want` ("probs" or "label"), derived from a richer answer
    (logits -> probabilities -> top-1 label) when the oracle gives more; every image counts as a query."""
    out = observer(generator(z))
    if observer.kind == want:
        return out
    return out.argmax(1) if want == "label" else out.softmax(1)


def check_classes(attack: str, classes: torch.Tensor, num_classes: int) -> None:
    """Refuse classes the target's answers do not have (known to the attacker once it sees a probability vector)."""
    if int(classes.max()) >= num_classes:
        raise ModelinvError(f"attack '{attack}': targets.classes asks for class {int(classes.max())}, the target has {num_classes} classes")


@contextmanager
def until_budget(attack: str, meta: dict[str, Any]) -> Iterator[None]:
    """Run the search; when the oracle's query budget runs out, record and warn, and carry on with the best so far."""
    try:
        yield
    except QueryBudgetExceeded as err:
        message = f"attack '{attack}' stopped early, {err}; returning the best result found so far"
        meta["stopped"] = message
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def rank_in_class(y: torch.Tensor) -> torch.Tensor:
    """For each requested class index in `y`, how many earlier entries ask for the same class (0, 1, 2, ...)."""
    same = y[:, None] == y[None, :]
    return torch.tril(same, diagonal=-1).sum(1)


class PublicPriorAttack(Attack):
    """Base of the black-box and label-only GAN attacks: the public prior, a latent search through the oracle, G(z)."""

    goal = "class"
    queries = True

    def run(self, threat: ThreatModel, targets: Targets, attacker_data: Dataset, gen: torch.Generator) -> Reconstruction:
        y = requested_classes(self.name, targets.classes, None).to(threat.device)
        generator, gan, seed = public_prior(attacker_data, self.params, gen, threat.device)
        meta: dict[str, Any] = {"gan": gan}
        z = self.search(threat.observer, generator, y, gen, meta)
        with torch.no_grad():
            images = generator(z)
        return Reconstruction(images, meta, {"random-latents": random_latent_images(generator, y, seed)})

    def trained_models(self) -> dict[str, bool]:
        """GMI's WGAN-GP on the public data (`gan_model`: the GAN GMI trains at the same settings)."""
        return {gan_model("wgan-gp", gan_config(WGANGPConfig, self.params)): GANS["wgan-gp"].learns_from_target}

    def search(self, observer: Any, generator: nn.Module, y: torch.Tensor, gen: torch.Generator, meta: dict[str, Any]) -> torch.Tensor:
        """One latent per entry of the requested classes `y`, found by asking `observer` about images of
        `generator` (`ask`), with random draws from `gen`; details go into `meta`. A search stops at the
        query budget with the best latents so far (`until_budget`)."""
        raise NotImplementedError
