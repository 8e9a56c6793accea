"""Peak signal-to-noise ratio between reconstructions and the true inputs."""

from __future__ import annotations

from modelinv.metrics.base import Metric, MetricInputs, register

MAX_DB = 100.0
"""PSNR of an exact reconstruction (infinite in theory), so that averages stay finite."""


class PSNR(Metric):
    """Peak signal-to-noise ratio in dB, per image then averaged: mean_i 10 log10(1 / MSE_i), peak 1.0.

    MSE_i is the mean squared pixel error of image i; the peak 1.0 on [0, 1] images gives the same
    figure as peak 255 on 8-bit images. The mean of per-image PSNRs is at least the PSNR of the pooled
    MSE (Jensen). An image reconstructed exactly scores MAX_DB = 100 dB.
    """

    name = "psnr"
    needs = frozenset({"truth"})
    higher_is_better = True

    def evaluate(self, inputs: MetricInputs) -> float:
        diff = inputs.reconstructions.double() - inputs.truth.double()
        mse = diff.pow(2).flatten(1).mean(dim=1)
        return (-10.0 * mse.clamp_min(10.0 ** (-MAX_DB / 10.0)).log10()).mean().item()


register(PSNR())
