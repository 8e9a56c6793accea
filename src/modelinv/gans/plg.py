"""Stage 1 of PLG-MI (Yuan et al., "Pseudo Label-Guided Model Inversion Attack via Conditional Generative
Adversarial Network", AAAI 2023): pseudo-label the public data with the target, then train a conditional
GAN on it, guided by the target.

- Top-n selection: for each private class c, keep the k public images with the highest target
  confidence softmax(T(x))_c, labelled c (an image may be kept for several classes, as in the paper).
- Pseudo label-guided cGAN: a class-conditional generator G(z, c) and a spectrally normalised
  projection discriminator D(x, c) trained with the hinge loss

      L_D = E[relu(1 - D(x, c))] + E[relu(1 + D(G(z, c), c))]
      L_G = -E[D(G(z, c), c)] + alpha * E[L_inv(T(A(G(z, c))), c)]

  where L_inv(l, c) = max_{j != c} l_j - l_c is the max-margin loss on the target's logits l and A a
  random augmentation; Adam (lr 2e-4, betas (0.0, 0.9)) with `n_critic` discriminator updates per
  generator update, as in the paper's SNGAN-style training.

Departures, forced by 28x28 digits on CPU: the DCGAN pair of `modelinv.models.gan` (spectral norm
added to D while training) instead of the paper's SN-ResNet pair, with G's class embedding
initialised to zero, so that the class starts without influence as with the paper's conditional
batch norm (with N(0, 1) embeddings the generator ignored z and collapsed to one image per class);
600 generator updates instead of 30,000; and the augmentation A is the paper's random resized crop
(square, area fraction `crop_area`..1) and rotation (up to `rotation` degrees) without its horizontal
flip and colour jitter (a flip changes a digit's identity).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from modelinv.data.types import Dataset
from modelinv.errors import ModelinvError
from modelinv.gans import Draws, GANConfig, cached_gan, charge_training, train_gan
from modelinv.models import build_model
from modelinv.oracle import WhiteBox
from modelinv.seeding import seeded

BETAS = (0.0, 0.9)
"""Adam betas of both GAN networks (the paper's SNGAN setting)."""


class PLGGANConfig(GANConfig):
    """How the PLG-MI GAN is trained; part of its cache key."""

    top_k: int = Field(250, ge=1, description="top-n selection: public images kept per private class (250 of ~2,500 public MNIST digits for 5 classes)")
    gan_steps: int = Field(600, ge=1, description="generator updates")
    gan_lr: float = Field(2e-4, gt=0, description="Adam step size of generator and discriminator (betas 0.0, 0.9)")
    latent_dim: int = Field(128, ge=1, description="generator latent size")
    width: int = Field(32, ge=1, description="channel width of generator and discriminator")
    alpha: float = Field(0.2, ge=0, description="weight of the inversion (max-margin) loss in the generator loss")
    crop_area: float = Field(0.8, gt=0, le=1, description="augmentation: random square crops of at least this fraction of the image area")
    rotation: float = Field(5.0, ge=0, le=180, description="augmentation: random rotation of at most this many degrees")


def max_margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L_inv per sample: the largest logit of another class minus the logit of class y."""
    mine = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return others - mine


def random_augment(x: torch.Tensor, crop_area: float, rotation: float, gen: torch.Generator) -> torch.Tensor:
    """A(x): a random square crop covering crop_area..1 of the image, resized back and rotated by up to
    `rotation` degrees, as one differentiable affine resampling (zeros outside the image)."""
    n = x.shape[0]
    # drawn on the CPU (the same on every device), then moved to the images' device
    side = (crop_area + (1 - crop_area) * torch.rand(n, generator=gen).to(x.device)).sqrt()
    shift = (1 - side)[:, None] * (2 * torch.rand(n, 2, generator=gen).to(x.device) - 1)
    angle = torch.deg2rad(rotation * (2 * torch.rand(n, generator=gen).to(x.device) - 1))
    cos, sin = side * angle.cos(), side * angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


@torch.no_grad()
def top_k_pseudo_labels(target: Callable[[torch.Tensor], torch.Tensor], public: Dataset, num_classes: int, k: int, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Top-n selection: images and pseudo-labels (k per class), and their mean target confidence."""
    if k > len(public):
        raise ModelinvError(f"attack.params.top_k={k} exceeds the {len(public)} images of the attacker's data")
    probs = torch.cat([target(public.x[i : i + batch_size]).softmax(1) for i in range(0, len(public), batch_size)])
    confidence, index = probs.topk(k, dim=0)  # (k, num_classes)
    device = probs.device
    return public.x.to(device)[index.T.flatten()], torch.arange(num_classes, device=device).repeat_interleave(k), float(confidence.mean())


def _spectral_norm(module: nn.Module, on: bool) -> None:
    """Add (on) or bake in and remove (off) spectral normalisation of every layer's weight (Miyato et al., ICLR 2018)."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.Linear, nn.Embedding)):
            if on:
                spectral_norm(layer)
            else:
                parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)


def train_plg_gan(target: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, num_classes: int, config: PLGGANConfig, seed: int) -> tuple[dict[str, nn.Module], dict]:
    """Train G and D on pseudo-labelled images (x, y) with L_D and L_G (module docstring), in `train_gan`'s loop
    with the generator's update first; return both and the losses and the target's accuracy on the fakes,
    averaged over the last tenth of the steps. Trained on the device of `x`; built (spectral norm's vectors
    included) on the CPU."""
    c = config

    def critic_loss(d: nn.Module, draws: Draws):
        images, labels = draws.fake()
        real, real_labels = draws.real()
        loss_d = F.relu(1 - d(real, real_labels)).mean() + F.relu(1 + d(images, labels)).mean()
        return loss_d, {"loss_d": loss_d.detach()}

    def generator_loss(g: nn.Module, d: nn.Module, draws: Draws):
        z, labels = draws.latent()
        images = g(z, labels)
        logits = target(random_augment(images, c.crop_area, c.rotation, draws.gen))
        adversarial, inversion = -d(images, labels).mean(), max_margin_loss(logits, labels).mean()
        accuracy = (logits.argmax(1) == labels).float().mean()
        return adversarial + c.alpha * inversion, {"loss_g_adversarial": adversarial.detach(), "loss_inv": inversion.detach(), "target_acc_fake": accuracy}

    shape = tuple(x.shape[1:])
    with seeded(seed):
        generator = build_model("dcgan-generator", shape, num_classes, latent_dim=c.latent_dim, width=c.width)
        discriminator = build_model("dcgan-discriminator", shape, num_classes, outputs=1, width=c.width)
        nn.init.zeros_(generator.embed.weight)
        _spectral_norm(discriminator, on=True)
        generator.to(x.device)
        discriminator.to(x.device)
        metrics = train_gan(
            generator, discriminator, (x, y), c, seed, critic_loss, generator_loss, "training plg-mi GAN", betas=BETAS, num_classes=num_classes, generator_first=True
        )
    _spectral_norm(discriminator, on=False)
    return {"generator": generator, "discriminator": discriminator}, metrics


def plg_gan(target: WhiteBox, public: Dataset, config: PLGGANConfig, seed: int) -> tuple[nn.Module, dict]:
    """The frozen PLG-MI generator for `target` (its whole model) and the attacker's `public` data: from
    the cache (keyed by the public data, the target's weights, the config and the seed), or pseudo-labelled
    and trained. The metadata has `cached`, `path`, `seconds`, the training metrics and `target_evaluations`."""
    num_classes = int(target.model.spec["num_classes"])

    def produce():
        before = target.queries
        x, y, confidence = top_k_pseudo_labels(target, public, num_classes, config.top_k)
        modules, metrics = train_plg_gan(target, x, y, num_classes, config, seed)
        return modules, {"pseudo_label_confidence": confidence, **metrics, "target_evaluations": target.queries - before}

    modules, meta = cached_gan("plg-mi-gan", public, target.model, config, seed, produce, guided=True, device=target.device)
    charge_training(target, meta)
    return modules["generator"], meta
