"""Small DCGAN-style generator and discriminator (Radford et al., ICLR 2016) for 28-64 px images.

They serve every GAN-based attack: an unconditional WGAN-GP pair for GMI (Zhang et al., CVPR 2020),
a discriminator with K class outputs for KEDMI (Chen et al., ICCV 2021), and a class-conditional
generator with a projection discriminator (Miyato & Koyama, ICLR 2018) for PLG-MI (Yuan et al., AAAI 2023).
The discriminator has no batch normalisation, as the WGAN-GP gradient penalty requires.
"""

from __future__ import annotations

import torch
from torch import nn

from modelinv.errors import ModelinvError
from modelinv.models.conv import Conv2d
from modelinv.models.registry import MODELS


def _check_size(image_shape) -> tuple[int, int, int]:
    c, h, w = image_shape
    if h % 4 or w % 4:
        raise ModelinvError(f"GAN image size must be divisible by 4, got {h}x{w} (set data.image_size)")
    return c, h, w


class Generator(nn.Module):
    """z (and a class, when conditional) -> image in [0, 1]: linear, two stride-2 transposed convolutions."""

    def __init__(self, image_shape, num_classes: int = 0, latent_dim: int = 100, width: int = 64):
        super().__init__()
        c, h, w = _check_size(image_shape)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        self.base = (4 * width, h // 4, w // 4)
        inputs = latent_dim * (2 if num_classes else 1)
        self.project = nn.Sequential(nn.Linear(inputs, 4 * width * (h // 4) * (w // 4)), nn.BatchNorm1d(4 * width * (h // 4) * (w // 4)), nn.ReLU())
        self.body = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            Conv2d(width, c, 3, 1, 1),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional generator needs class labels")
            z = torch.cat([z, self.embed(y)], dim=1)
        return torch.sigmoid(self.body(self.project(z).view(-1, *self.base)))


class Discriminator(nn.Module):
    """Image -> `outputs` scores from strided convolutions with LeakyReLU; optional class projection."""

    def __init__(self, image_shape, num_classes: int = 0, outputs: int = 1, width: int = 64):
        super().__init__()
        c, h, w = _check_size(image_shape)
        self.body = nn.Sequential(
            Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2),
            Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            Conv2d(2 * width, 4 * width, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        features = 4 * width * (h // 4) * (w // 4)
        self.head = nn.Linear(features, outputs)
        self.embed = nn.Embedding(num_classes, features) if num_classes else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - 0.5) / 0.5)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        phi = self.features(x)
        out = self.head(phi)
        if self.embed is not None:
            if y is None:
                raise ValueError("a projection discriminator needs class labels")
            out = out + (self.embed(y) * phi).sum(1, keepdim=True)
        return out


@MODELS.register("dcgan-generator", family="generator")
def dcgan_generator(input_shape, num_classes, latent_dim: int = 100, width: int = 64) -> Generator:
    """DCGAN generator; conditional on `num_classes` classes when it is positive."""
    return Generator(input_shape, num_classes, latent_dim, width)


@MODELS.register("dcgan-discriminator", family="discriminator")
def dcgan_discriminator(input_shape, num_classes, outputs: int = 1, width: int = 64) -> Discriminator:
    """DCGAN discriminator without batch norm; projection on `num_classes` classes when positive."""
    return Discriminator(input_shape, num_classes, outputs, width)
