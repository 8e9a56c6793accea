"""Distance correlation between the true inputs and what the attacker observed of them."""

from __future__ import annotations

from modelinv.metrics.base import Metric, MetricInputs, register
from modelinv.stats import bias_corrected_distance_correlation


class DCorObservation(Metric):
    """Bias-corrected distance correlation between true inputs and the (defended) observations of them.

    R* of Szekely & Rizzo (Ann. Stat. 2014), as for `dcor`, but between the N true inputs and what the
    attacker observed of each (cut-layer features or scores, after any output defense), each flattened:
    the leakage statistic NoPeek (Vepakomma et al. 2020) and Titcombe et al. (2021) report for a defended
    representation. It does not depend on the reconstructions, so it is the same for every attack (and
    trivial answer) on the same observations: it describes the defense, not the attack. About 0 when the
    observations are independent of the inputs (spread about 0.023 at N = 64), 1 when they are a rigid,
    scaled copy of the inputs' geometry; higher means more left for an attacker. None (shown "n/a") for N < 4.

    Shape: truth (N, ...), observations (N, ...) with N >= 4 -> a float, or None.
    Example: compute(["dcor_observation"], MetricInputs(x_hat, labels, truth=x, observations=f1_x))
    -> {"dcor_observation": 0.41}.
    """

    name = "dcor_observation"
    needs = frozenset({"truth", "observations"})
    higher_is_better = True
    bounds = (-1.0, 1.0)

    def evaluate(self, inputs: MetricInputs) -> float | None:
        if len(inputs.truth) < 4:
            return None
        return bias_corrected_distance_correlation(inputs.truth.cpu(), inputs.observations.cpu()).item()


register(DCorObservation())
