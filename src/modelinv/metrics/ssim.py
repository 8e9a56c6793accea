"""Structural similarity between reconstructions and the true inputs, as Wang et al. (2004) define it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modelinv.errors import ModelinvError
from modelinv.metrics.base import Metric, MetricInputs, register

SIGMA, RADIUS, K1, K2 = 1.5, 5, 0.01, 0.03
"""The Gaussian window of Wang et al. (2004): sigma 1.5, cut at int(3.5 sigma + 0.5) = 5 pixels (11x11)."""


def _gaussian_filter(z: torch.Tensor) -> torch.Tensor:
    """Gaussian blur (sigma SIGMA, radius RADIUS) of each (H, W) plane of z (M, H, W), same size out, borders
    mirrored with the edge pixel repeated (d c b a | a b c d), as scipy.ndimage's mode 'reflect'."""
    offsets = torch.arange(-RADIUS, RADIUS + 1, dtype=torch.float64, device=z.device)
    kernel = torch.exp(-0.5 * (offsets / SIGMA) ** 2)
    kernel = (kernel / kernel.sum()).to(z)
    for axis in (-2, -1):
        n = z.shape[axis]
        index = torch.arange(-RADIUS, n + RADIUS, device=z.device) % (2 * n)
        z = z.index_select(axis, torch.where(index < n, index, 2 * n - 1 - index))
    z = F.conv2d(z.unsqueeze(1), kernel.view(1, 1, -1, 1))
    return F.conv2d(z, kernel.view(1, 1, 1, -1)).squeeze(1)


def ssim_per_image(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """SSIM of each image pair (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004), on [0, 1] images.

    Eq. 13, SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),
    C1 = (0.01)^2, C2 = (0.03)^2, with Gaussian-weighted means and population (co)variances (eq. 14-16,
    sigma 1.5, 11x11), averaged over the windows lying wholly inside the image (the map with a border of 5
    pixels cropped), over channels, per image. This is skimage.metrics.structural_similarity(x_hat, x,
    data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=0).

    Images smaller than 11 pixels a side take skimage's window for them, win_size = the largest odd size
    <= min(H, W): the same Gaussian (radius 5, borders mirrored as scipy's 'reflect') averaged over the
    pixels at least (win_size - 1) // 2 from the border, i.e. skimage with win_size passed explicitly
    (7 on 8x8 digits). Those windows include some mirrored pixels; below 3x3 it raises.

    Hand-written, not torchmetrics: torchmetrics' SSIM mirror-pads the images and averages the map over
    every pixel, the padded border included, which is not the paper's SSIM: on the first 64 mnist5k digits
    against blank images it gives 0.298 (0.028 here), against the digits plus N(0, 0.1^2) noise 0.562 (0.887).

    Shape: x_hat, x (N, C, H, W) -> (N,) float64.
    Example: ssim_per_image(x, x) -> ones (N,); an MNIST digit against its negative 1 - x -> about -0.6.
    """
    if x.ndim != 4 or x.shape != x_hat.shape:
        raise ModelinvError(f"metric 'ssim' needs two batches of images (N, C, H, W); got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    size = min(x.shape[-2:])
    if size < 3:
        raise ModelinvError(f"metric 'ssim' needs images of at least 3x3 pixels; got {tuple(x.shape[-2:])}")
    win_size = min(2 * RADIUS + 1, size if size % 2 else size - 1)
    a, b = x_hat.double(), x.double()
    mu_a, mu_b, aa, bb, ab = _gaussian_filter(torch.stack([a, b, a * a, b * b, a * b]).flatten(0, 2)).view(5, *a.shape)
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    c1, c2 = K1**2, K2**2
    s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    crop, (h, w) = (win_size - 1) // 2, a.shape[-2:]
    return s[..., crop : h - crop, crop : w - crop].mean(dim=(1, 2, 3))


class SSIM(Metric):
    """Structural similarity (Wang et al., IEEE TIP 2004) to the true inputs, mean over images, as scikit-image computes it.

    mean_i SSIM(x_hat_i, x_i), each the eq. 13 map over 11x11 Gaussian windows (sigma 1.5) lying inside
    the image, averaged over windows and channels; see ssim_per_image for small images and why this is
    not torchmetrics' SSIM. 1 for an exact reconstruction, about 0 for unrelated images.

    Shape: reconstructions and truth (N, C, H, W) in [0, 1] -> a float.
    Example: compute(["ssim"], MetricInputs(x_hat, labels, truth=x)) -> {"ssim": 0.71}.
    """

    name = "ssim"
    needs = frozenset({"truth"})
    higher_is_better = True
    bounds = (-1.0, 1.0)

    def evaluate(self, inputs: MetricInputs) -> float:
        return ssim_per_image(inputs.reconstructions, inputs.truth).mean().item()


register(SSIM())
