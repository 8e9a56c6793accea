"""GAN training for the generative model-inversion attacks, and the pieces their GANs share.

Both train a DCGAN pair (`modelinv.models.gan`) on the attacker's public data with the reference
code's schedule: Adam (lr 2e-4, betas 0.5, 0.999), `n_critic` discriminator updates per generator
update, z ~ N(0, I) of 100 dimensions. PLG-MI's conditional GAN (`modelinv.gans.plg`) runs the same loop,
`train_gan`, with its own betas, class-conditional latents, and the generator's update first. A trained
pair is cached by the hash of what produced it (public data, settings, seed and, for a target-guided GAN,
the target's weights), so a second attack reuses it.

Every GAN is built and trained inside `modelinv.seeding.seeded(seed)`: its initialisation is the seed's,
and the caller's global random state is left as it was.

Devices: a GAN is built on the CPU (the same initial weights everywhere), then moved to the device it
trains on: the target's, or the one given to a black-box attacker's GAN. Its random draws (latents,
classes, batches, interpolation weights) come from a CPU `torch.Generator` and are moved to that device,
so the same seed draws the same numbers on every device. Cached GANs are stored from CPU copies and
loaded onto the device asked for; the cache key holds the device type when it is not the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from modelinv.data.types import Dataset
from modelinv.devices import device_of
from modelinv.errors import ModelinvError
from modelinv.models.store import ModelRequest, cached, module_digest
from modelinv.oracle import Oracle
from modelinv.progress import progress_bar
from modelinv.seeding import seeded

BETAS = (0.5, 0.999)
"""Adam betas of generator and discriminator in the GMI and KEDMI reference code."""

Loss = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""A loss of one update, `critic_loss(D, draws)` or `generator_loss(G, D, draws)`: the scalar to minimise and
named statistics to report."""


class GANConfig(BaseModel):
    """How a GAN is trained; part of its cache key (each GAN's config extends it)."""

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


class Draws:
    """The random inputs of the GAN updates, each drawn from the training generator `gen` when a loss asks for
    it: a loss draws what it uses, in its own order, so every random number is the same from run to run.
    Draws are made on the CPU (`gen` is a CPU generator) and moved to the generator's device."""

    def __init__(self, generator: nn.Module, real: tuple[torch.Tensor, ...], batch: int, latent_dim: int, num_classes: int, gen: torch.Generator):
        self.generator, self.real_rows, self.batch, self.latent_dim, self.num_classes, self.gen = generator, real, batch, latent_dim, num_classes, gen
        self.device = device_of(generator)

    def latent(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch of z ~ N(0, I) and, for a class-conditional generator (`num_classes` > 0), uniformly random
        classes, drawn before z; None for an unconditional one."""
        labels = torch.randint(self.num_classes, (self.batch,), generator=self.gen).to(self.device) if self.num_classes else None
        return torch.randn(self.batch, self.latent_dim, generator=self.gen).to(self.device), labels

    def fake(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images G(z, classes) of a fresh `latent()` batch, without gradients, and their classes."""
        z, labels = self.latent()
        with torch.no_grad():
            return self.generator(z, labels), labels

    def real(self) -> list[torch.Tensor]:
        """One batch of rows drawn with replacement from the tensors `real` (the same rows of each)."""
        pick = torch.randint(len(self.real_rows[0]), (self.batch,), generator=self.gen)  # cpu: row indices, moved below
        return [t[pick.to(t.device)] for t in self.real_rows]


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    real: tuple[torch.Tensor, ...],
    config: GANConfig,
    seed: int,
    critic_loss: Loss,
    generator_loss: Loss,
    desc: str,
    *,
    betas: tuple[float, float] = BETAS,
    num_classes: int = 0,
    generator_first: bool = False,
) -> dict[str, float]:
    """The GAN loop: `config.gan_steps` steps, each `n_critic` Adam updates (lr `gan_lr`, `betas`) of the
    discriminator on `critic_loss(D, draws)` and one of the generator on `generator_loss(G, D, draws)` (the
    discriminator frozen), the generator's first when `generator_first`. `draws` (`Draws`) serves latents,
    class-conditional ones when `num_classes` > 0, generated images and batches of the rows of the tensors
    `real`, all from one generator seeded with `seed`. Return the losses' named statistics averaged over the
    last tenth of the steps. Training runs on the generator's device (the `real` rows are moved there)."""
    c = config
    real = tuple(t.to(device_of(generator)) for t in real)
    draws = Draws(generator, real, c.gan_batch, c.latent_dim, num_classes, torch.Generator().manual_seed(seed))
    opt_g = torch.optim.Adam(generator.parameters(), c.gan_lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), c.gan_lr, betas=betas)

    def update_critic() -> dict[str, torch.Tensor]:
        stats: dict[str, torch.Tensor] = {}
        for _ in range(c.n_critic):
            loss_d, stats = critic_loss(discriminator, draws)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        return stats

    def update_generator() -> dict[str, torch.Tensor]:
        discriminator.requires_grad_(False)
        loss_g, stats = generator_loss(generator, discriminator, draws)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        discriminator.requires_grad_(True)
        return stats

    tail = max(1, c.gan_steps // 10)
    sums: dict[str, float] = {}
    generator.train()
    discriminator.train()
    with progress_bar(desc, c.gan_steps) as advance:
        for step in range(c.gan_steps):
            if generator_first:
                stats_g = update_generator()
                stats_d = update_critic()
            else:
                stats_d = update_critic()
                stats_g = update_generator()
            stats = {k: float(v) for k, v in {**stats_d, **stats_g}.items()}
            if step >= c.gan_steps - tail:
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v / tail
            advance(**stats)
    generator.eval()
    discriminator.eval()
    return sums


def cached_gan(
    role: str,
    public: Dataset,
    target: nn.Module | None,
    config: GANConfig,
    seed: int,
    produce: Callable[[], tuple[dict[str, nn.Module], dict]],
    guided: bool,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, nn.Module], dict]:
    """The GAN modules (frozen, on `device`) that `produce` trains there for `role` on the attacker's `public`
    data, from the cache when present.

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
        device=str(device),
    )
    with seeded(None):  # the cache seeds the global random state before training: keep the caller's
        modules, meta = cached(request, produce)
    for module in modules.values():
        module.requires_grad_(False)
    return modules, {"cached": meta["cached"], "path": meta["path"], "seconds": meta["seconds"], **meta["metrics"]}


def random_latent_images(generator: nn.Module, y: torch.Tensor, seed: int) -> torch.Tensor:
    """G(z) for z ~ N(0, I), one per entry of `y` (given to a class-conditional G): the GAN prior without any
    search, the trivial answer a GAN attack must beat. Drawn from its own generator seeded with `seed`, so the
    attack's own random draws are untouched.

    Shape: y (N,) -> images (N, C, H, W).
    """
    device = device_of(generator)
    z = torch.randn((len(y), generator.latent_dim), generator=torch.Generator().manual_seed(seed)).to(device)  # drawn on the CPU
    with torch.no_grad():
        return generator(z, y.to(device) if generator.num_classes else None)


def charge_training(target: Oracle, meta: dict) -> None:
    """Charge `target`, when the GAN came from the cache, the target evaluations its training made: an attack's
    count is then its whole cost, the same whether or not an earlier run trained the GAN."""
    if meta["cached"]:
        target.charge(meta["target_evaluations"])
