"""Distance correlation between the true inputs and their reconstructions."""

from __future__ import annotations

from modelinv.metrics.base import Metric, MetricInputs, register
from modelinv.stats import distance_correlation


class DCor(Metric):
    """Sample distance correlation between true inputs and reconstructions (Szekely et al. 2007), in [0, 1].

    dCor^2 = dCov^2(x, x_hat) / sqrt(dVar^2(x) dVar^2(x_hat)) over the N paired images, each flattened;
    see modelinv.stats.distance_correlation. 1 means the reconstructions are a rigid, scaled copy of
    the inputs' geometry; 0 means independence. Used to measure leakage in split learning
    (Vepakomma et al., NoPeek 2020). The sample statistic is biased upwards when there are few images
    for their number of pixels (about 0.97 for 20 independent pairs of random 8x8 images), so compare
    values at equal N and image size, or against a baseline of unrelated images.
    """

    name = "dcor"
    needs = frozenset({"truth"})
    higher_is_better = True

    def evaluate(self, inputs: MetricInputs) -> float:
        return distance_correlation(inputs.truth.double(), inputs.reconstructions.double()).item()


register(DCor())
