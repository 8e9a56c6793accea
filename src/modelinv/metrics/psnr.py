"""Peak signal-to-noise ratio between reconstructions and the true inputs."""

from __future__ import annotations

import torch

from modelinv.metrics.base import Metric, MetricInputs, register

MAX_DB = 100.0
"""PSNR of an exact reconstruction (infinite in theory), so that averages stay finite."""


class PSNR(Metric):
    """Peak signal-to-noise ratio in dB, per image then averaged: mean_i 10 log10(1 / MSE_i), peak 1.0.

    MSE_i is the mean squared pixel error of image i; the peak 1.0 on [0, 1] images gives the same
    figure as peak 255 on 8-bit images. The mean of per-image PSNRs is at least the PSNR of the pooled
    MSE (Jensen). An image reconstructed exactly scores MAX_DB = 100 dB. Per image this is
    skimage.metrics.peak_signal_noise_ratio(x, x_hat, data_range=1.0) (tests/test_metrics.py compares them),
    computed in float64, each capped at MAX_DB, then averaged.

    Hand-written since issue 16, where torchmetrics' functional form was used before: the formula is one line,
    and importing torchmetrics (which loads its audio, text and plotting modules, and transformers when installed)
    took 3-5 s in every process that computes a metric, a tenth of the warm demo's wall time.

    Shape: reconstructions and truth (N, ...) in [0, 1] -> a float.
    Example: a zero image against an image of 0.1 everywhere: MSE 0.01, 20 dB.
    """

    name = "psnr"
    needs = frozenset({"truth"})
    higher_is_better = True

    def evaluate(self, inputs: MetricInputs) -> float:
        x_hat, x = inputs.reconstructions.double(), inputs.truth.double()
        mse = (x_hat - x).pow(2).flatten(1).mean(1)
        per_image = 10 * torch.log10(1.0 / mse)  # an exact image: +inf, then capped
        return per_image.clamp_max(MAX_DB).mean().item()


register(PSNR())
