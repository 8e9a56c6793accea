"""Diversity ratio: how spread out the inversions of a class are, relative to real held-out images of that class."""

from __future__ import annotations

import math

import torch

from modelinv.metrics.base import Metric, MetricInputs, register, run_evaluator


class DiversityRatio(Metric):
    """Within-class spread of the reconstructions in the evaluator's features, divided by that of real held-out images.

    For each inverted class c with at least 2 reconstructions, V(c) = mean over pairs i != j of
    ||e(x_i) - e(x_j)||^2 among the images labelled c (e = evaluator.embed, the features knn_dist uses);
    this is twice the total unbiased feature variance of the class, so it does not depend on how many
    images there are. The metric is sum_c V_fake(c) / sum_c V_real(c), V_real over the held-out private
    images of the same classes: 1 means the inversions of a class vary as much as real images of it,
    0 that they are copies of one image (a collapsed search), above 1 that they are more scattered than
    real images (noise is). The pairwise-distance diversity of generative models (Zhu et al., NeurIPS 2017;
    Mao et al., CVPR 2019), here in the judge's features and against real data. Read beside knn_ratio, never
    alone: knn_ratio scores each inversion by its nearest private image, so 20 copies of one good image score
    as well as 20 different good images. None (shown "n/a") when no class has 2 reconstructions and 2 real images.

    Shape: reconstructions (N, C, H, W), labels (N,), holdout (M images) -> a float >= 0, or None.
    Example: compute(["diversity_ratio"], MetricInputs(x_hat, labels, evaluator=judge, holdout=real)) -> {"diversity_ratio": 0.41}.
    """

    name = "diversity_ratio"
    needs = frozenset({"evaluator", "holdout"})
    higher_is_better = True  # up to 1 (as varied as real images); read with knn_ratio
    bounds = (0.0, math.inf)

    def evaluate(self, inputs: MetricInputs) -> float | None:
        fake = run_evaluator(inputs.evaluator, inputs.reconstructions, embed=True).double()
        real = run_evaluator(inputs.evaluator, inputs.holdout.x, embed=True).double()
        labels, real_y = inputs.labels.cpu(), inputs.holdout.y.cpu()
        spread_fake = spread_real = 0.0
        for c in labels.unique():
            mine, theirs = fake[labels == c], real[real_y == c]
            if len(mine) < 2 or len(theirs) < 2:
                continue
            spread_fake += pairwise_spread(mine)
            spread_real += pairwise_spread(theirs)
        return None if spread_real == 0.0 else spread_fake / spread_real


def pairwise_spread(z: torch.Tensor) -> float:
    """Mean squared distance over ordered pairs i != j of the rows of z (n >= 2): 2 x the total unbiased variance."""
    return 2.0 * z.var(dim=0, unbiased=True).sum().item()


register(DiversityRatio())
