"""Stage 1 of GMI (Zhang et al., "The Secret Revealer", CVPR 2020, sec. 4.1): an unconditional
WGAN-GP (Gulrajani et al., NeurIPS 2017) trained on the attacker's public data only.

    L_D = E[D(G(z))] - E[D(x)] + gp_weight * E[(||grad_x_hat D(x_hat)||_2 - 1)^2],  x_hat = x + a (G(z) - x), a ~ U(0, 1)
    L_G = -E[D(G(z))]

with the reference code's settings: Adam (lr 2e-4, betas 0.5, 0.999), 5 critic updates per generator
update, gradient-penalty weight 10, z ~ N(0, I_100). The DCGAN pair of `modelinv.models.gan` stands in
for the reference's; the default of 1,000 generator updates at width 16 (about 5 minutes on one CPU
thread) gives recognisable 28x28 digits where the reference trains for many epochs on a GPU.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from modelinv.data.types import Dataset
from modelinv.devices import device_of
from modelinv.gans import Draws, GANConfig, cached_gan, train_gan
from modelinv.models import build_model
from modelinv.seeding import seeded


class WGANGPConfig(GANConfig):
    gp_weight: float = Field(10.0, ge=0, description="weight of the WGAN-GP gradient penalty")


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] at random interpolates x_hat between real and fake images."""
    a = torch.rand(real.shape[0], *[1] * (real.dim() - 1), generator=gen).to(real.device)  # drawn on the CPU
    x_hat = (real + a * (fake - real)).requires_grad_()
    (grad,) = torch.autograd.grad(discriminator(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def train_wgan_gp(public: Dataset, config: WGANGPConfig, seed: int, device: torch.device | str = "cpu") -> tuple[dict[str, nn.Module], dict]:
    """Train G and D on the public images with L_D and L_G (module docstring), on `device` (built on the CPU);
    return both and training metrics."""
    c = config

    def critic_loss(d: nn.Module, draws: Draws):
        fake, _ = draws.fake()
        (real,) = draws.real()
        distance = d(real).mean() - d(fake).mean()
        return -distance + c.gp_weight * gradient_penalty(d, real, fake, draws.gen), {"wasserstein": distance.detach()}

    def generator_loss(g: nn.Module, d: nn.Module, draws: Draws):
        z, _ = draws.latent()
        draws.real()  # unused; drawn to keep the random stream, hence the GANs, of earlier versions
        return -d(g(z)).mean(), {}

    with seeded(seed):
        generator = build_model("dcgan-generator", public.input_shape, 0, latent_dim=c.latent_dim, width=c.width).to(device)
        discriminator = build_model("dcgan-discriminator", public.input_shape, 0, outputs=1, width=c.width).to(device)
        metrics = train_gan(generator, discriminator, (public.x,), c, seed, critic_loss, generator_loss, "training gmi WGAN-GP")
    return {"generator": generator, "discriminator": discriminator}, metrics


def wgan_gp(public: Dataset, target: nn.Module | None, config: WGANGPConfig, seed: int, device: torch.device | str | None = None) -> tuple[nn.Module, nn.Module, dict]:
    """The GMI generator and critic for the attacker's `public` data (shaped like `target`'s inputs, when the
    attacker has the target): cached or trained, on `device` (default: the target's, else the CPU). It never
    uses the target, so black-box attacks share it."""
    device = torch.device(device) if device is not None else device_of(target)
    modules, meta = cached_gan("gmi-gan", public, target, config, seed, lambda: train_wgan_gp(public, config, seed, device), guided=False, device=device)
    return modules["generator"], modules["discriminator"], meta
