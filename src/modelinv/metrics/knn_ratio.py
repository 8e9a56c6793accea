"""KNN ratio: knn_dist of the inversions relative to that of real held-out images of the same classes."""

from __future__ import annotations

import math

from modelinv.errors import ModelinvError
from modelinv.metrics.base import Metric, MetricInputs, register
from modelinv.metrics.knn_dist import nearest_same_class


class KNNRatio(Metric):
    """knn_dist of the reconstructions divided by knn_dist of real held-out images of the same classes.

    Both distances are measured in the same evaluator's penultimate features to the nearest private
    training sample of the class. About 1 means the inversions sit as close to the private data as
    real unseen images do; saturated, noise-like inversions score well above 1 even when the
    evaluator labels them correctly, which is why accuracy alone must not rank attacks.
    """

    name = "knn_ratio"
    needs = frozenset({"evaluator", "private", "holdout"})
    higher_is_better = False
    bounds = (0.0, math.inf)

    def evaluate(self, inputs: MetricInputs) -> float:
        classes = inputs.labels.unique()
        keep = (inputs.holdout.y.unsqueeze(1) == classes.unsqueeze(0)).any(1)
        if not keep.any():
            raise ModelinvError(f"metric '{self.name}': the held-out samples have none of the inverted classes")
        real = nearest_same_class(inputs.evaluator, inputs.holdout.x, inputs.holdout.y[keep], inputs.private, self.name, rows=keep)
        fake = nearest_same_class(inputs.evaluator, inputs.reconstructions, inputs.labels, inputs.private, self.name)
        return (fake.mean() / real.mean()).item()


register(KNNRatio())
