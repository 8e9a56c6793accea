"""Peak signal-to-noise ratio between reconstructions and the true inputs."""

from __future__ import annotations

from torchmetrics.functional.image import peak_signal_noise_ratio

from modelinv.metrics.base import Metric, MetricInputs, register

MAX_DB = 100.0
"""PSNR of an exact reconstruction (infinite in theory), so that averages stay finite."""


class PSNR(Metric):
    """Peak signal-to-noise ratio in dB, per image then averaged: mean_i 10 log10(1 / MSE_i), peak 1.0.

    MSE_i is the mean squared pixel error of image i; the peak 1.0 on [0, 1] images gives the same
    figure as peak 255 on 8-bit images. The mean of per-image PSNRs is at least the PSNR of the pooled
    MSE (Jensen). An image reconstructed exactly scores MAX_DB = 100 dB. Per-image values come from
    torchmetrics' peak_signal_noise_ratio (data_range 1.0, reduced over all but the first dimension),
    each capped at MAX_DB, then averaged; they match skimage.metrics.peak_signal_noise_ratio.

    Shape: reconstructions and truth (N, ...) in [0, 1] -> a float.
    Example: a zero image against an image of 0.1 everywhere: MSE 0.01, 20 dB.
    """

    name = "psnr"
    needs = frozenset({"truth"})
    higher_is_better = True

    def evaluate(self, inputs: MetricInputs) -> float:
        x_hat, x = inputs.reconstructions.double(), inputs.truth.double()
        per_image = peak_signal_noise_ratio(x_hat, x, data_range=1.0, reduction="none", dim=tuple(range(1, x.ndim)))
        return per_image.clamp_max(MAX_DB).mean().item()


register(PSNR())
