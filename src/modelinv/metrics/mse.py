"""Mean squared error between reconstructions and the true inputs."""

from __future__ import annotations

import math

from modelinv.metrics.base import Metric, MetricInputs, register


class MSE(Metric):
    """Mean squared error to the true inputs, (1 / N P) sum_i ||x_hat_i - x_i||^2 over N images of P pixels."""

    name = "mse"
    needs = frozenset({"truth"})
    higher_is_better = False
    bounds = (0.0, math.inf)

    def evaluate(self, inputs: MetricInputs) -> float:
        diff = inputs.reconstructions.double() - inputs.truth.double()
        return diff.pow(2).mean().item()


register(MSE())
