"""Distance correlation between the true inputs and their reconstructions."""

from __future__ import annotations

from modelinv.metrics.base import Metric, MetricInputs, register
from modelinv.stats import bias_corrected_distance_correlation


class DCor(Metric):
    """Bias-corrected distance correlation between true inputs and reconstructions (Szekely & Rizzo, Ann. Stat. 2014).

    R* = (A~ . B~) / sqrt((A~ . A~)(B~ . B~)) over the N paired images, each flattened, with A~, B~ their
    U-centred distance matrices; see modelinv.stats.bias_corrected_distance_correlation. It estimates the
    squared population dCor without the small-sample bias of the V-statistic (which gives about 0.99 for
    64 independent pairs of random 28x28 images): 1 means the reconstructions are a rigid, scaled copy of
    the inputs' geometry, about 0 unrelated images, and it may be slightly negative (reported as is).
    Measures leakage in split learning (Vepakomma et al., NoPeek 2020). None (shown "n/a") for N < 4.

    Shape: reconstructions and truth (N, ...) with N >= 4 -> a float, or None.
    Example: compute(["dcor"], MetricInputs(x_hat, labels, truth=x)) -> {"dcor": 0.62}.
    """

    name = "dcor"
    needs = frozenset({"truth"})
    higher_is_better = True
    bounds = (-1.0, 1.0)

    def evaluate(self, inputs: MetricInputs) -> float | None:
        if len(inputs.truth) < 4:
            return None
        return bias_corrected_distance_correlation(inputs.truth, inputs.reconstructions).item()


register(DCor())
