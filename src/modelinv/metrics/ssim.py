"""Structural similarity between reconstructions and the true inputs."""

from __future__ import annotations

from torchmetrics.functional.image import structural_similarity_index_measure

from modelinv.errors import ModelinvError
from modelinv.metrics.base import Metric, MetricInputs, register

SIGMA, RADIUS = 1.5, 5
"""The 11x11 Gaussian window of Wang et al. (2004), sigma 1.5, half-width 5."""


class SSIM(Metric):
    """Structural similarity (Wang et al., IEEE TIP 2004), mean over images, torchmetrics with data_range 1.

    SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))
    (eq. 13) with C1 = 0.01^2, C2 = 0.03^2, averaged over Gaussian windows, then over images.
    Images smaller than the 11x11 window use the largest window that fits, 2r + 1 <= min(H, W), with
    sigma scaled alike, 1.5 r / 5 (e.g. 7x7 and sigma 0.9 on 8x8 digits), rather than averaging
    over mostly mirrored padding.
    """

    name = "ssim"
    needs = frozenset({"truth"})
    higher_is_better = True

    def evaluate(self, inputs: MetricInputs) -> float:
        x_hat, x = inputs.reconstructions.double(), inputs.truth.double()
        if x.ndim != 4:
            raise ModelinvError(f"metric 'ssim' needs images (N, C, H, W); got shape {tuple(x.shape)}")
        radius = min(RADIUS, (min(x.shape[-2:]) - 1) // 2)
        if radius < 1:
            raise ModelinvError(f"metric 'ssim' needs images of at least 3x3 pixels; got {tuple(x.shape[-2:])}")
        # torchmetrics sizes its Gaussian window from sigma alone: 2 * int(3.5 sigma + 0.5) + 1 = 2 r + 1.
        per_image = structural_similarity_index_measure(
            x_hat, x, sigma=SIGMA * radius / RADIUS, data_range=1.0, reduction="none"
        )
        return per_image.mean().item()


register(SSIM())
