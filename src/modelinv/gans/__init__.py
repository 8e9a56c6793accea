"""GAN training for the generative model-inversion attacks, and the pieces GMI and KEDMI share.

Both train a DCGAN pair (`modelinv.models.gan`) on the attacker's public data with the reference
code's schedule: Adam (lr 2e-4, betas 0.5, 0.999), `n_critic` discriminator updates per generator
update, z ~ N(0, I) of 100 dimensions. A trained pair is cached by the hash of what produced it
(public data, settings, seed and, for a target-guided GAN, the target's weights), so a second attack
reuses it.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.models.store import ModelRequest, cached, module_digest
from modelinv.oracle import Oracle
from modelinv.progress import progress_bar

BETAS = (0.5, 0.999)
"""Adam betas of generator and discriminator in the GMI and KEDMI reference code."""

Loss = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]


class GANConfig(BaseModel):
    """How a GMI or KEDMI GAN is trained; part of its cache key."""

    model_config = ConfigDict(extra="forbid")

    gan_steps: int = Field(1000, ge=1, description="generator updates")
    n_critic: int = Field(5, ge=1, description="discriminator updates per generator update")
    gan_batch: int = Field(64, ge=2, description="GAN mini-batch size")
    gan_lr: float = Field(2e-4, gt=0, description="Adam step size of generator and discriminator (betas 0.5, 0.999)")
    latent_dim: int = Field(100, ge=1, description="generator latent size")
    width: int = Field(16, ge=1, description="channel width of generator and discriminator")


C = TypeVar("C", bound=GANConfig)


def gan_config(schema: type[C], params: BaseModel) -> C:
    """The GAN-training part of an attack's parameters (whose schema extends `schema`)."""
    return schema(**params.model_dump(include=set(schema.model_fields)))


def train_gan(generator: nn.Module, discriminator: nn.Module, real: tuple[torch.Tensor, ...], config: GANConfig, seed: int, critic_loss: Loss, generator_loss: Loss, desc: str) -> dict[str, float]:
    """Alternate `n_critic` updates of `critic_loss(D, fake, *real_batch, gen=gen)` with one of
    `generator_loss(G, D, z, *real_batch)`, each real batch drawn with replacement from the rows of
    the tensors `real`; return the losses' named statistics averaged over the last tenth of the steps."""
    c = config
    gen = torch.Generator().manual_seed(seed)
    opt_g = torch.optim.Adam(generator.parameters(), c.gan_lr, betas=BETAS)
    opt_d = torch.optim.Adam(discriminator.parameters(), c.gan_lr, betas=BETAS)

    def batch() -> list[torch.Tensor]:
        pick = torch.randint(len(real[0]), (c.gan_batch,), generator=gen)
        return [t[pick] for t in real]

    def noise() -> torch.Tensor:
        return torch.randn(c.gan_batch, c.latent_dim, generator=gen)

    tail = max(1, c.gan_steps // 10)
    sums: dict[str, float] = {}
    generator.train()
    discriminator.train()
    with progress_bar(desc, c.gan_steps) as advance:
        for step in range(c.gan_steps):
            for _ in range(c.n_critic):
                with torch.no_grad():
                    fake = generator(noise())
                loss_d, stats_d = critic_loss(discriminator, fake, *batch(), gen=gen)
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
            discriminator.requires_grad_(False)
            loss_g, stats_g = generator_loss(generator, discriminator, noise(), *batch())
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            discriminator.requires_grad_(True)
            stats = {k: float(v) for k, v in {**stats_d, **stats_g}.items()}
            if step >= c.gan_steps - tail:
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v / tail
            advance(**stats)
    generator.eval()
    discriminator.eval()
    return sums


def cached_gan(role: str, public: Dataset, target: nn.Module | None, config: GANConfig, seed: int, produce: Callable[[], tuple[dict[str, nn.Module], dict]], guided: bool) -> tuple[dict[str, nn.Module], dict]:
    """The GAN modules (frozen) that `produce` trains for `role` on the attacker's `public` data, from the cache when present.

    The cache key holds the public data's digest, the input shape, the config and the seed; for a GAN
    `guided` by the target also the target's number of classes and weight digest. Without the `target`
    (a black-box attacker, unguided GAN only) the public data's shape is taken as the target's input shape.
    The metadata summarises the artifact: `cached`, `path`, `seconds` and the training metrics.
    """
    shape = tuple(target.spec["input_shape"]) if target is not None else public.input_shape
    if public.input_shape != shape:
        raise ModelinvError(f"the attacker's data has shape {public.input_shape}; the target takes {shape}")
    request = ModelRequest(
        role=role,
        arch="dcgan-generator",
        input_shape=shape,
        num_classes=int(target.spec["num_classes"]) if guided else 0,
        data_digest=public.digest(),
        seed=seed,
        args={"latent_dim": config.latent_dim, "width": config.width},
        train={**config.model_dump(), "target": module_digest(target) if guided else None},
    )
    modules, meta = cached(request, produce)
    for module in modules.values():
        module.requires_grad_(False)
    return modules, {"cached": meta["cached"], "path": meta["path"], "seconds": meta["seconds"], **meta["metrics"]}


def charge_training(target: Oracle, meta: dict) -> None:
    """Charge `target`, when the GAN came from the cache, the target evaluations its training made: an attack's
    count is then its whole cost, the same whether or not an earlier run trained the GAN."""
    if meta["cached"]:
        target.charge(meta["target_evaluations"])


def requested_classes(attack: str, y: torch.Tensor | None, num_classes: int | None) -> torch.Tensor:
    """An attack's `targets.classes`, checked to be class indices of a target with `num_classes` classes
    (None: unknown to the attacker, any non-negative index)."""
    top = float("inf") if num_classes is None else num_classes
    if y is None or y.ndim != 1 or len(y) == 0 or not ((y >= 0) & (y < top)).all():
        bound = "" if num_classes is None else f" (0..{num_classes - 1})"
        raise ModelinvError(f"attack '{attack}' needs targets.classes, class indices of the target{bound}")
    return y.long()


def derive_seed(gen: torch.Generator) -> int:
    """A seed for the GAN, drawn from the attack's generator: the same attack seed trains the same GAN."""
    return int(torch.randint(2**31 - 1, (1,), generator=gen))
